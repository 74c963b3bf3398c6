// Text the gateway emits (status messages, ErrorInfo metadata, logs) is valid UTF-8, bounded,
// and free of secrets, whatever an upstream wrote.
//
//   RegisterSecret(upstream.token);                        // once, at start-up
//   std::string m = TruncateUtf8(SanitizeUtf8(raw), 500);  // "...": never inside a character
//   m = RedactSecrets(m);                                  // "[REDACTED]" for every secret
//
// GatewayError (errors.h) applies SanitizeUtf8 and RedactSecrets to its message and every
// detail string, so errors built there need nothing more.
//
// Thread-safe.
#ifndef GATEWAY_UPSTREAM_SAFE_TEXT_H_
#define GATEWAY_UPSTREAM_SAFE_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace gateway::upstream {

// `text` with every ill-formed UTF-8 sequence (stray continuation bytes, truncated or overlong
// sequences, surrogates, code points above U+10FFFF) replaced by U+FFFD.
std::string SanitizeUtf8(absl::string_view text);

// `text` (valid UTF-8) if it has at most `max_bytes` bytes; otherwise its longest prefix of at
// most `max_bytes` bytes that ends on a character boundary, followed by "..." (so the result has
// at most max_bytes + 3 bytes, and never half a character).
std::string TruncateUtf8(absl::string_view text, size_t max_bytes);

// The replacement of a secret in emitted text.
inline constexpr absl::string_view kRedacted = "[REDACTED]";

// Adds `secret` (an upstream token, a webhook secret, a caller token, a password) to the
// process-wide set that RedactSecrets removes. Secrets shorter than 4 bytes are ignored: they
// would redact ordinary words and cannot be real credentials.
void RegisterSecret(absl::string_view secret);

// `text` with every occurrence of a registered secret replaced by kRedacted (longer secrets
// first, so one that contains another is removed whole).
std::string RedactSecrets(absl::string_view text);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_SAFE_TEXT_H_
