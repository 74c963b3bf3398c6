// What the server learned about one finished call: the input of the per-call log line and of
// the call metrics (service/call_log.h, service/metrics.h). Never holds a secret: the caller is
// the name from the callers file (or the `x-caller` metadata without one), never its token.
//
// Cheap to fill on every call: the text fields that the call already holds elsewhere (its
// method name, route, workspace snapshot and trace context) are views of it, so a record costs
// no copy and no allocation. They are valid while the record is being reported (the
// on_call_done callback); a consumer that keeps one past that copies it. `caller` and `reason`
// are owned: they are made for the record (a caller's name is usually short enough for
// std::string's inline buffer, and a reason is only set on errors).
#ifndef GATEWAY_SERVICE_CALL_RECORD_H_
#define GATEWAY_SERVICE_CALL_RECORD_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status_code_enum.h"

namespace gateway::service {

class WorkspaceSeries;  // service/metrics.h

struct CallRecord {
  absl::string_view rpc;  // "/package.Service/Method" as called
  bool known_rpc = false;  // whether the gateway serves `rpc`
  std::string caller;      // "" when unknown
  // The workspace the call used; "" when none was selected (an error).
  absl::string_view workspace;
  // That workspace's metric series (Metrics::ForWorkspace, resolved when its dispatcher was
  // built), so that recording the call looks nothing up by workspace; null: looked up by name.
  WorkspaceSeries* workspace_series = nullptr;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string reason;      // ErrorInfo.reason of an error, "" on success
  absl::Duration latency;  // from the call's arrival to its status
  absl::string_view upstream;  // "respondio", "chatwoot"; "" for unknown RPCs
  absl::string_view bucket;    // the route's rate-limit bucket
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none was received
  bool cache_hit = false;   // answered from the reply cache
  // Whether the call asked the rate limiter for admission, and how long it waited for it.
  bool limited = false;
  absl::Duration queue_wait;
  // Latency of the last upstream HTTP request (with upstream_status); 0 when none was sent.
  absl::Duration upstream_latency;
  // W3C trace context of the call (service/trace_context.h): the caller's trace or one the
  // gateway started, and the gateway's span; "" when not set.
  absl::string_view trace_id;
  absl::string_view span_id;
};

// The canonical name of a gRPC code, e.g. "NOT_FOUND".
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CALL_RECORD_H_
