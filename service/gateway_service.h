// The one gRPC handler behind every RPC: a callback-API generic service that parses the request
// with the RPC's descriptor, hands it to the upstream Dispatcher and writes the serialized reply
// bytes back. No per-RPC C++, and no thread waits on a call: the reactor finishes later, from
// whichever thread completes the upstream work.
#ifndef GATEWAY_SERVICE_GATEWAY_SERVICE_H_
#define GATEWAY_SERVICE_GATEWAY_SERVICE_H_

#include <functional>

#include "absl/time/time.h"
#include "grpcpp/generic/async_generic_service.h"
#include "service/auth.h"
#include "service/call_record.h"
#include "service/route_table.h"
#include "service/workspaces.h"
#include "upstream/pipeline/dispatcher.h"

namespace gateway::service {

class GatewayService : public grpc::CallbackGenericService {
 public:
  struct Options {
    // Deadline applied to calls whose caller set none.
    absl::Duration default_deadline = absl::Seconds(30);
    // When set, every call needs "authorization: Bearer <token>" metadata of a caller allowed
    // to call its RPC (UNAUTHENTICATED / PERMISSION_DENIED otherwise, before anything else).
    // Without it, the caller is the `x-caller` metadata, unverified. Must outlive the server.
    const CallerAuth* auth = nullptr;
    // Called once per finished call with what the log and metrics need, on the thread that
    // finished it. Must be quick and thread-safe.
    std::function<void(const CallRecord&)> on_call_done;
    // Whether every CallRecord carries the call's trace ids (the call log writes them). Off,
    // a call that sends nothing upstream (a cache hit, an error before dispatch) makes none
    // and its record has them empty; a call that goes upstream always has them (they are
    // forwarded).
    bool record_trace_ids = true;
  };

  // `routes` and `workspaces` must outlive the server. Each call selects its workspace by the
  // `x-workspace` metadata (absent: `default`; errors WORKSPACE_REQUIRED, UNKNOWN_WORKSPACE,
  // and WORKSPACE_NOT_ALLOWED for a caller the callers file does not let use it) and keeps
  // the workspace snapshot it started with until it ends, whatever a reload installs meanwhile.
  GatewayService(const RouteTable* routes, const Workspaces* workspaces, Options options);

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

 private:
  const RouteTable* routes_;
  const Workspaces* workspaces_;
  Options options_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_GATEWAY_SERVICE_H_
