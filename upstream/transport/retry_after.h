// The one parser of the HTTP `Retry-After` header (RFC 9110 section 10.2.3), used wherever the
// gateway reads it (error details, retries, limiter pauses).
//
//   std::optional<absl::Duration> wait = RetryAfterOf(response, scheduler.Now());
//   if (wait) limiter.Pause(bucket, config, *wait);
//
// A value is delta-seconds ("120") or an HTTP-date in any of the three forms RFC 9110 accepts
// (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT",
// asctime "Sun Nov  6 08:49:37 1994"). Whatever the upstream says, the result is in
// [0, cap]: a date in the past waits 0, "Fri, 31 Dec 9999 23:59:59 GMT" or a 20-digit number
// waits `cap` (default kDefaultRetryAfterCap, 300 s), never years.
//
// Thread-safe: pure functions.
#ifndef GATEWAY_UPSTREAM_RETRY_AFTER_H_
#define GATEWAY_UPSTREAM_RETRY_AFTER_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "upstream/transport/http_transport.h"

namespace gateway::upstream {

// The longest wait an upstream can impose by default: 5 minutes. Longer than any real rate-limit
// window of the upstreams (seconds to a minute), short enough that a hostile or broken header
// cannot stall a bucket for long.
inline constexpr absl::Duration kDefaultRetryAfterCap = absl::Seconds(300);

// Parses one Retry-After value relative to `now`, clamped to [0, cap]. nullopt when empty or
// not one of the forms above (negative or fractional-garbage numbers included).
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now,
                                              absl::Duration cap = kDefaultRetryAfterCap);

// The response's `retry-after` header parsed as above; nullopt when absent or unparseable.
std::optional<absl::Duration> RetryAfterOf(const HttpResponse& response, absl::Time now,
                                           absl::Duration cap = kDefaultRetryAfterCap);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_RETRY_AFTER_H_
