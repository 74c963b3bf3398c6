#include "upstream/binding/page_token.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::BadRequestFieldOf;
using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;

constexpr char kListContacts[] = "/respondio.v2.ContactService/ListContacts";
constexpr char kListUsers[] = "/respondio.v2.SpaceService/ListSpaceUsers";

void ExpectBadToken(const absl::StatusOr<std::string>& decoded) {
  ASSERT_FALSE(decoded.ok()) << "decoded to '" << *decoded << "'";
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("page_token"));
  EXPECT_EQ(ErrorInfoOf(decoded.status()).reason(), "INVALID_PAGE_TOKEN");
  EXPECT_EQ(BadRequestFieldOf(decoded.status()), "page_token");
}

TEST(PageToken, RoundTrip) {
  for (const std::string& cursor :
       {std::string("12345"), std::string(""), std::string("2"), std::string("a\nb\nc"),
        std::string("caf\xC3\xA9"), std::string(1000, 'x'), std::string("\0\xff", 2)}) {
    SCOPED_TRACE(cursor);
    const std::string token = EncodePageToken(kListContacts, cursor);
    auto decoded = DecodePageToken(kListContacts, token);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, cursor);
  }
}

TEST(PageToken, IsOpaqueAndUrlSafe) {
  const std::string token = EncodePageToken(kListContacts, "12345");
  EXPECT_THAT(token, ::testing::Not(HasSubstr("12345")));
  EXPECT_EQ(token.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos)
      << token;
}

TEST(PageToken, StableAcrossCallsAndProcesses) {
  EXPECT_EQ(EncodePageToken(kListContacts, "12345"), EncodePageToken(kListContacts, "12345"));
  // Golden value, computed independently (base64url of "p1\n<fnv32(rpc)>\n12345\n<fnv64>"): a
  // replica or a restart must issue and accept exactly this token.
  EXPECT_EQ(EncodePageToken(kListContacts, "12345"),
            "cDEKMDkyNmEzMTYKMTIzNDUKNWRlNjBkYjkyMDU2MGIyZg");
  auto decoded = DecodePageToken(kListContacts, "cDEKMDkyNmEzMTYKMTIzNDUKNWRlNjBkYjkyMDU2MGIyZg");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, "12345");
}

TEST(PageToken, DifferentInputsGiveDifferentTokens) {
  EXPECT_NE(EncodePageToken(kListContacts, "1"), EncodePageToken(kListContacts, "2"));
  EXPECT_NE(EncodePageToken(kListContacts, "1"), EncodePageToken(kListUsers, "1"));
}

TEST(PageToken, TokenOfAnotherRpcIsRejected) {
  const auto decoded = DecodePageToken(kListUsers, EncodePageToken(kListContacts, "12345"));
  ExpectBadToken(decoded);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("another RPC"));
}

TEST(PageToken, GarbageIsRejected) {
  for (const std::string& garbage :
       {std::string("garbage"), std::string("not a token!"), std::string("===="),
        std::string("12345"), std::string("cDE"), std::string("AAAAAAAAAAAAAAAAAAAAAAAA"),
        std::string(5000, 'A')}) {
    SCOPED_TRACE(garbage);
    ExpectBadToken(DecodePageToken(kListContacts, garbage));
  }
}

TEST(PageToken, EveryTruncationIsRejected) {
  const std::string token = EncodePageToken(kListContacts, "12345");
  for (size_t n = 0; n < token.size(); ++n) {
    SCOPED_TRACE(n);
    ExpectBadToken(DecodePageToken(kListContacts, token.substr(0, n)));
  }
}

TEST(PageToken, EveryOneCharacterTamperingIsRejected) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const std::string token = EncodePageToken(kListContacts, "12345");
  for (size_t i = 0; i < token.size(); ++i) {
    SCOPED_TRACE(i);
    const size_t value = std::string(kAlphabet).find(token[i]);
    ASSERT_NE(value, std::string::npos);
    std::string tampered = token;
    // Flip the highest of the character's six bits: that bit always carries data.
    tampered[i] = kAlphabet[value ^ 32];
    ExpectBadToken(DecodePageToken(kListContacts, tampered));
  }
}

TEST(PageToken, ForgedCursorWithoutValidChecksumIsRejected) {
  // A client that base64-decodes the token and rewrites the cursor cannot fix up the checksum.
  const std::string other = EncodePageToken(kListContacts, "99999");
  const std::string token = EncodePageToken(kListContacts, "12345");
  ASSERT_EQ(other.size(), token.size());
  // 24 characters = 18 bytes = "p1\n<rpc hash>\n12345\n"; the rest is the other token's checksum.
  std::string spliced = token.substr(0, 24) + other.substr(24);
  ASSERT_NE(spliced, token);
  ASSERT_NE(spliced, other);
  ExpectBadToken(DecodePageToken(kListContacts, spliced));
}

}  // namespace
}  // namespace gateway::upstream
