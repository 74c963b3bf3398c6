// The gateway's error model: upstream HTTP outcomes -> absl::Status with google.rpc details.
//
//   400, 422        INVALID_ARGUMENT   UPSTREAM_INVALID_ARGUMENT (upstream message in metadata)
//   401             INTERNAL           UPSTREAM_AUTH_REJECTED (the gateway's token, not the caller's)
//   403             PERMISSION_DENIED  UPSTREAM_PERMISSION_DENIED
//   404             NOT_FOUND          UPSTREAM_NOT_FOUND
//   409             ALREADY_EXISTS     UPSTREAM_CONFLICT
//   429             RESOURCE_EXHAUSTED UPSTREAM_RATE_LIMITED + RetryInfo + QuotaFailure(bucket)
//   449             UNAVAILABLE        UPSTREAM_NOT_READY + RetryInfo
//   other 4xx       FAILED_PRECONDITION UPSTREAM_REJECTED
//   5xx             UNAVAILABLE        UPSTREAM_UNAVAILABLE (+ RetryInfo when Retry-After is set)
//   connect/reset   UNAVAILABLE        UPSTREAM_UNREACHABLE
//   timeout         DEADLINE_EXCEEDED  UPSTREAM_TIMEOUT
//
// ErrorInfo.domain is the upstream's name; metadata carries upstream, upstream_status, rpc and,
// when the upstream said one, upstream_message (never headers or tokens).
#ifndef GATEWAY_UPSTREAM_ERROR_MAPPING_H_
#define GATEWAY_UPSTREAM_ERROR_MAPPING_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "upstream/transport/http_transport.h"

namespace gateway::upstream {

struct UpstreamCallInfo {
  std::string upstream;  // "respondio"
  std::string rpc;       // "/respondio.v2.ContactService/GetContact"
  std::string bucket;    // rate-limit bucket of the RPC
};

// OK for 2xx; otherwise the mapped error.
absl::Status StatusFromHttp(const UpstreamCallInfo& call, const HttpResponse& response);

// Maps a transport failure of HttpClient (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED).
absl::Status StatusFromTransport(const UpstreamCallInfo& call, const absl::Status& transport);

// Parses Retry-After (delta seconds or an HTTP date, relative to `now`); nullopt when absent or
// unparseable.
std::optional<absl::Duration> ParseRetryAfter(const HttpResponse& response, absl::Time now);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_ERROR_MAPPING_H_
