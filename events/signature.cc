#include "events/signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

absl::Status Unauthenticated(absl::string_view reason, absl::string_view message) {
  return upstream::GatewayError(absl::StatusCode::kUnauthenticated, message,
                                {.reason = std::string(reason)});
}

}  // namespace

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string HexEncode(absl::string_view bytes) {
  return absl::AsciiStrToLower(absl::BytesToHexString(bytes));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string SignChatwoot(absl::string_view secret, int64_t timestamp, absl::string_view body) {
  return absl::StrCat("sha256=", HexEncode(HmacSha256(secret, absl::StrCat(timestamp, ".", body))));
}

absl::Status VerifyChatwoot(absl::string_view secret, absl::string_view signature_header,
                            absl::string_view timestamp_header, absl::string_view body,
                            absl::Time now, absl::Duration max_age) {
  signature_header = absl::StripAsciiWhitespace(signature_header);
  timestamp_header = absl::StripAsciiWhitespace(timestamp_header);
  if (signature_header.empty()) {
    return Unauthenticated("SIGNATURE_MISSING", "missing X-Chatwoot-Signature");
  }
  int64_t timestamp = 0;
  if (timestamp_header.empty() || !absl::SimpleAtoi(timestamp_header, &timestamp)) {
    return Unauthenticated("TIMESTAMP_MISSING", "missing or malformed X-Chatwoot-Timestamp");
  }
  // The signature is checked before the age: the timestamp means nothing until it is known to
  // be the sender's, and a forged request then always gets SIGNATURE_INVALID.
  const std::string expected = SignChatwoot(secret, timestamp, body);
  std::string given(signature_header);
  // The "sha256=" prefix is case-insensitive and the hex may be upper case.
  given = absl::AsciiStrToLower(given);
  if (!ConstantTimeEquals(expected, given)) {
    return Unauthenticated("SIGNATURE_INVALID", "X-Chatwoot-Signature does not match the body");
  }
  const absl::Time sent = absl::FromUnixSeconds(timestamp);
  if (sent < now - max_age || sent > now + max_age) {
    return Unauthenticated("TIMESTAMP_STALE",
                           absl::StrCat("X-Chatwoot-Timestamp is more than ",
                                        absl::FormatDuration(max_age), " away from now"));
  }
  return absl::OkStatus();
}

absl::Status ValidateScheme(const RespondioScheme& scheme) {
  if (scheme.encoding != "base64" && scheme.encoding != "hex") {
    return absl::InvalidArgumentError(absl::StrCat(
        "respond.io webhook signature encoding \"", scheme.encoding, "\": use base64 or hex"));
  }
  if (scheme.header.empty()) {
    return absl::InvalidArgumentError("respond.io webhook signature header must not be empty");
  }
  return absl::OkStatus();
}

std::string SignRespondio(absl::string_view secret, const RespondioScheme& scheme,
                          absl::string_view body) {
  const std::string mac = HmacSha256(secret, body);
  return scheme.encoding == "hex" ? HexEncode(mac) : absl::Base64Escape(mac);
}

absl::Status VerifyRespondio(absl::string_view secret, const RespondioScheme& scheme,
                             absl::string_view signature_header, absl::string_view body) {
  signature_header = absl::StripAsciiWhitespace(signature_header);
  if (signature_header.empty()) {
    return Unauthenticated("SIGNATURE_MISSING", absl::StrCat("missing ", scheme.header));
  }
  std::string given(signature_header);
  if (absl::StartsWithIgnoreCase(given, "sha256=")) given = given.substr(7);
  if (scheme.encoding == "hex") given = absl::AsciiStrToLower(given);
  if (!ConstantTimeEquals(SignRespondio(secret, scheme, body), given)) {
    return Unauthenticated("SIGNATURE_INVALID",
                           absl::StrCat(scheme.header, " does not match the body"));
  }
  return absl::OkStatus();
}

}  // namespace gateway::events
