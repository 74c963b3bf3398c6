// What the server learned about one finished call: the input of the per-call log line and of
// the call metrics (service/call_log.h, service/metrics.h). Never holds a secret: the caller is
// the name from the callers file (or the `x-caller` metadata without one), never its token.
#ifndef GATEWAY_SERVICE_CALL_RECORD_H_
#define GATEWAY_SERVICE_CALL_RECORD_H_

#include <string>

#include "absl/time/time.h"
#include "grpcpp/support/status_code_enum.h"

namespace gateway::service {

class WorkspaceSeries;  // service/metrics.h

struct CallRecord {
  std::string rpc;         // "/package.Service/Method" as called
  bool known_rpc = false;  // whether the gateway serves `rpc`
  std::string caller;      // "" when unknown
  std::string workspace;   // the workspace the call used; "" when none was selected (an error)
  // That workspace's metric series (Metrics::ForWorkspace, resolved when its dispatcher was
  // built), so that recording the call looks nothing up by workspace; null: looked up by name.
  WorkspaceSeries* workspace_series = nullptr;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string reason;      // ErrorInfo.reason of an error, "" on success
  absl::Duration latency;  // from the call's arrival to its status
  std::string upstream;    // "respondio", "chatwoot"; "" for unknown RPCs
  std::string bucket;      // the route's rate-limit bucket
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none was received
  bool cache_hit = false;   // answered from the reply cache
  // Whether the call asked the rate limiter for admission, and how long it waited for it.
  bool limited = false;
  absl::Duration queue_wait;
  // Latency of the last upstream HTTP request (with upstream_status); 0 when none was sent.
  absl::Duration upstream_latency;
  // W3C trace context of the call (service/trace_context.h): the caller's trace or one the
  // gateway started, and the gateway's span; "" when not set.
  std::string trace_id;
  std::string span_id;
};

// The canonical name of a gRPC code, e.g. "NOT_FOUND".
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CALL_RECORD_H_
