// The gateway's error model, and the one table from an upstream HTTP outcome to a gRPC code,
// ErrorInfo reason, and what may happen next (retry, and whether the upstream certainly did not
// process the request). Nothing else in the gateway classifies HTTP statuses.
//
//   status  code                reason                      retry reads  retry writes  not processed
//   2xx     OK                  -                           -            -             no
//   400,422 INVALID_ARGUMENT    UPSTREAM_INVALID_ARGUMENT   no           no            yes
//   401     INTERNAL            UPSTREAM_AUTH_REJECTED      no           no            yes
//           (the gateway's token, not the caller's)
//   403     PERMISSION_DENIED   UPSTREAM_PERMISSION_DENIED  no           no            yes
//   404     NOT_FOUND           UPSTREAM_NOT_FOUND          no           no            yes
//   408     FAILED_PRECONDITION UPSTREAM_REJECTED           no           no            no
//   409     ALREADY_EXISTS      UPSTREAM_CONFLICT           no           no            yes
//   429     RESOURCE_EXHAUSTED  UPSTREAM_RATE_LIMITED       yes          yes           yes
//           + RetryInfo (Retry-After, else 1 s) + QuotaFailure(bucket);
//           pauses the bucket (HttpOutcome::pause) for Retry-After, else 1 s
//   449     UNAVAILABLE         UPSTREAM_NOT_READY          yes          yes           yes
//           + RetryInfo (Retry-After, else 5 s)
//   other 4xx FAILED_PRECONDITION UPSTREAM_REJECTED         no           no            yes
//   502,503,504 UNAVAILABLE     UPSTREAM_UNAVAILABLE        yes          no            no
//   other 5xx UNAVAILABLE       UPSTREAM_UNAVAILABLE        no           no            no
//           (+ RetryInfo when Retry-After is set)
//   body nested too deep (any status)
//           INTERNAL            UPSTREAM_RESPONSE_TOO_DEEP  no           no            as its status
//   transport failures (StatusFromTransport):
//   not sent (refused, DNS, TLS, connect, queued)
//           UNAVAILABLE         UPSTREAM_UNREACHABLE        yes          yes           yes
//   reset, empty reply after sending
//           UNAVAILABLE         UPSTREAM_UNREACHABLE        yes          no            no
//   timeout DEADLINE_EXCEEDED   UPSTREAM_TIMEOUT            no           no            if not sent
//   cancel  CANCELLED           CANCELLED                   no           no            if not sent
//   response over a size bound
//           INTERNAL            UPSTREAM_RESPONSE_TOO_LARGE no           no            no
//
// Retry-After is read by the one parser (retry_after.h), capped at the caller's `cap` (the
// configured rate_limits.max_pause_seconds in the pipeline): the retry backoff, the RetryInfo
// and the bucket's pause all use that one capped value. X-RateLimit-Limit/Remaining of any
// response are read here too (HttpOutcome::rate_limit), for the limiter. ErrorInfo.domain is the
// upstream's name; metadata carries upstream, upstream_status, rpc, `not_sent: "true"` for
// requests that provably never left the gateway, and, when the upstream said one,
// upstream_message: valid UTF-8, cut on a character boundary after 500 bytes, with the
// gateway's secrets redacted (never headers or tokens).
#ifndef GATEWAY_UPSTREAM_ERROR_MAPPING_H_
#define GATEWAY_UPSTREAM_ERROR_MAPPING_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "upstream/transport/http_transport.h"
#include "upstream/transport/retry_after.h"

namespace gateway::upstream {

struct UpstreamCallInfo {
  std::string upstream;  // "respondio"
  std::string rpc;       // "/respondio.v2.ContactService/GetContact"
  std::string bucket;    // rate-limit bucket of the RPC
};

// Longest upstream_message carried in an error, in bytes (before "...").
inline constexpr size_t kMaxUpstreamMessageBytes = 500;

// One row of the table above, for one outcome.
struct HttpOutcome {
  absl::Status status;  // OK for 2xx (the body is still to be decoded)
  // The request may be sent again: for reads (idempotent) and, separately, for writes (only when
  // the upstream certainly did not act on it).
  bool retry_read = false;
  bool retry_write = false;
  // The upstream certainly did not process the request: a write's request_id may be released.
  bool not_processed = false;
  // From Retry-After, capped (retry_after.h); nullopt when absent or unparseable.
  std::optional<absl::Duration> retry_after;
  // The upstream says the bucket's budget is spent (429): hold the bucket, for every replica,
  // this long (retry_after, else 1 s; so also capped). nullopt: no pause.
  std::optional<absl::Duration> pause;
  // X-RateLimit-Limit and X-RateLimit-Remaining of any response, when both are integers
  // (RateLimiter::ObserveRemaining bounds what they can do).
  struct RateLimit {
    int limit = 0;
    int remaining = 0;
  };
  std::optional<RateLimit> rate_limit;
};

// Classifies an HTTP response of any status. `now` is for HTTP-date Retry-After values;
// `retry_after_cap` is the longest wait a header may impose (rate_limits.max_pause_seconds).
HttpOutcome ClassifyResponse(const UpstreamCallInfo& call, const HttpResponse& response,
                             absl::Time now, absl::Duration retry_after_cap = kDefaultRetryAfterCap);

// Classifies a transport failure of an HttpTransport (UNAVAILABLE, DEADLINE_EXCEEDED,
// CANCELLED, INVALID_ARGUMENT, a response over a size bound). The status keeps the transport's
// not-sent mark (IsNotSent) and says so in ErrorInfo metadata.
HttpOutcome ClassifyTransportFailure(const UpstreamCallInfo& call, const absl::Status& transport);

// ClassifyResponse(...).status: OK for 2xx; otherwise the mapped error.
absl::Status StatusFromHttp(const UpstreamCallInfo& call, const HttpResponse& response);

// ClassifyTransportFailure(...).status.
absl::Status StatusFromTransport(const UpstreamCallInfo& call, const absl::Status& transport);

// The error for a 2xx body that ParseUpstreamJson (upstream_json.h) refused: INTERNAL with
// UPSTREAM_RESPONSE_TOO_DEEP when it nested too deep, else UPSTREAM_BAD_RESPONSE.
absl::Status StatusFromBadBody(const UpstreamCallInfo& call, int http_status,
                               const absl::Status& parse_error);

// Kept for callers not yet on RetryAfterOf (retry_after.h), which it forwards to (capped at
// kDefaultRetryAfterCap).
std::optional<absl::Duration> ParseRetryAfter(const HttpResponse& response, absl::Time now);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_ERROR_MAPPING_H_
