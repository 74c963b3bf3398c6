// What the server learned about one finished call: the input of the per-call log line and of
// the call metrics (service/call_log.h, service/metrics.h). Never holds a secret: the caller is
// the name from the callers file (or the `x-caller` metadata without one), never its token.
#ifndef GATEWAY_SERVICE_CALL_RECORD_H_
#define GATEWAY_SERVICE_CALL_RECORD_H_

#include <string>

#include "absl/time/time.h"
#include "grpcpp/support/status_code_enum.h"

namespace gateway::service {

struct CallRecord {
  std::string rpc;         // "/package.Service/Method" as called
  bool known_rpc = false;  // whether the gateway serves `rpc`
  std::string caller;      // "" when unknown
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string reason;      // ErrorInfo.reason of an error, "" on success
  absl::Duration latency;  // from the call's arrival to its status
  std::string upstream;    // "respondio", "chatwoot"; "" for unknown RPCs
  std::string bucket;      // the route's rate-limit bucket
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none was received
  bool cache_hit = false;   // answered from the reply cache
};

// The canonical name of a gRPC code, e.g. "NOT_FOUND".
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CALL_RECORD_H_
