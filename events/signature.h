// Webhook signature checks (HMAC-SHA256, compared in constant time).
//
//   Chatwoot (v4.11+): X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "{ts}.{body}")>,
//                      X-Chatwoot-Timestamp: <unix seconds>, rejected when older than max_age.
//   respond.io:        x-webhook-signature: base64(HMAC-SHA256(secret, body)). This scheme is
//                      only known from third-party evidence, so the header and the encoding are
//                      configurable (RespondioScheme).
//
// Errors are UNAUTHENTICATED with a reason (the webhook's 401):
//   SIGNATURE_MISSING, SIGNATURE_INVALID, TIMESTAMP_MISSING, TIMESTAMP_STALE.
// Pure functions; thread-safe.
#ifndef GATEWAY_EVENTS_SIGNATURE_H_
#define GATEWAY_EVENTS_SIGNATURE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway::events {

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(absl::string_view key, absl::string_view data);
// Lower-case hex of `bytes`.
std::string HexEncode(absl::string_view bytes);
// Whether a == b, in time depending only on the lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// Verifies a Chatwoot webhook. `now` is the injectable clock's time. A timestamp more than
// `max_age` in the past (or that far in the future) is TIMESTAMP_STALE.
absl::Status VerifyChatwoot(absl::string_view secret, absl::string_view signature_header,
                            absl::string_view timestamp_header, absl::string_view body,
                            absl::Time now, absl::Duration max_age = absl::Minutes(5));
// The X-Chatwoot-Signature value for `timestamp` and `body` (for the sandbox and tests).
std::string SignChatwoot(absl::string_view secret, int64_t timestamp, absl::string_view body);

// How respond.io signs its webhooks.
struct RespondioScheme {
  // Header carrying the signature (matched case-insensitively).
  std::string header = "x-webhook-signature";
  // "base64" or "hex" encoding of HMAC-SHA256(secret, body).
  std::string encoding = "base64";
};
// INVALID_ARGUMENT unless the scheme's encoding is known.
absl::Status ValidateScheme(const RespondioScheme& scheme);

absl::Status VerifyRespondio(absl::string_view secret, const RespondioScheme& scheme,
                             absl::string_view signature_header, absl::string_view body);
std::string SignRespondio(absl::string_view secret, const RespondioScheme& scheme,
                          absl::string_view body);

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_SIGNATURE_H_
