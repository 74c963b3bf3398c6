#include "events/signature.h"

#include "gtest/gtest.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

TEST(HmacTest, KnownVector) {
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ChatwootSignatureTest, AcceptsItsOwnSignatureAndRejectsTampering) {
  const std::string body = R"({"event":"message_created","id":1})";
  const std::string sig = SignChatwoot("s3cret", 1'700'000'000, body);
  EXPECT_EQ(sig.rfind("sha256=", 0), 0u);
  EXPECT_TRUE(VerifyChatwoot("s3cret", sig, "1700000000", body, kNow).ok());
  // Upper-case hex is the same signature.
  std::string upper = sig;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(toupper(upper[i]));
  EXPECT_TRUE(VerifyChatwoot("s3cret", upper, "1700000000", body, kNow).ok());

  auto reason = [&](absl::string_view s, absl::string_view ts, absl::string_view b) {
    return upstream::ErrorReasonOf(VerifyChatwoot("s3cret", s, ts, b, kNow));
  };
  EXPECT_EQ(reason(sig, "1700000000", body + " "), "SIGNATURE_INVALID");
  EXPECT_EQ(reason(sig, "1700000001", body), "SIGNATURE_INVALID");  // timestamp is signed
  EXPECT_EQ(reason(SignChatwoot("other", 1'700'000'000, body), "1700000000", body),
            "SIGNATURE_INVALID");
  EXPECT_EQ(reason("", "1700000000", body), "SIGNATURE_MISSING");
  EXPECT_EQ(reason(sig, "", body), "TIMESTAMP_MISSING");
  EXPECT_EQ(reason(sig, "yesterday", body), "TIMESTAMP_MISSING");
  const std::string old = SignChatwoot("s3cret", 1'700'000'000 - 301, body);
  EXPECT_EQ(reason(old, "1699999699", body), "TIMESTAMP_STALE");
  const std::string recent = SignChatwoot("s3cret", 1'700'000'000 - 299, body);
  EXPECT_TRUE(VerifyChatwoot("s3cret", recent, "1699999701", body, kNow).ok());
  EXPECT_EQ(VerifyChatwoot("s3cret", "", "", body, kNow).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(RespondioSignatureTest, Base64AndHexSchemes) {
  const std::string body = R"({"event_id":"e1","event_type":"contact.updated"})";
  RespondioScheme base64;
  const std::string sig = SignRespondio("key", base64, body);
  EXPECT_EQ(sig.size(), 44u);  // base64 of 32 bytes
  EXPECT_TRUE(VerifyRespondio("key", base64, sig, body).ok());
  EXPECT_EQ(upstream::ErrorReasonOf(VerifyRespondio("key", base64, sig, body + "x")),
            "SIGNATURE_INVALID");
  EXPECT_EQ(upstream::ErrorReasonOf(VerifyRespondio("key", base64, "", body)),
            "SIGNATURE_MISSING");

  RespondioScheme hex{.header = "x-signature", .encoding = "hex"};
  const std::string hex_sig = SignRespondio("key", hex, body);
  EXPECT_EQ(hex_sig, HexEncode(HmacSha256("key", body)));
  EXPECT_TRUE(VerifyRespondio("key", hex, "sha256=" + hex_sig, body).ok());
  EXPECT_FALSE(VerifyRespondio("key", base64, hex_sig, body).ok());

  EXPECT_FALSE(ValidateScheme({.header = "x", .encoding = "rot13"}).ok());
  EXPECT_FALSE(ValidateScheme({.header = "", .encoding = "hex"}).ok());
}

TEST(ConstantTimeEqualsTest, Basics) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace gateway::events
