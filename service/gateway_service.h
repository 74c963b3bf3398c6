// The one gRPC handler behind every RPC: a callback-API generic service that parses the request
// with the RPC's descriptor, hands it to the upstream Dispatcher and writes the serialized reply
// bytes back. No per-RPC C++, and no thread waits on a call: the reactor finishes later, from
// whichever thread completes the upstream work.
#ifndef GATEWAY_SERVICE_GATEWAY_SERVICE_H_
#define GATEWAY_SERVICE_GATEWAY_SERVICE_H_

#include "absl/time/time.h"
#include "grpcpp/generic/async_generic_service.h"
#include "service/route_table.h"
#include "upstream/dispatcher.h"

namespace gateway::service {

class GatewayService : public grpc::CallbackGenericService {
 public:
  struct Options {
    // Deadline applied to calls whose caller set none.
    absl::Duration default_deadline = absl::Seconds(30);
  };

  // `routes` and `dispatcher` must outlive the server.
  GatewayService(const RouteTable* routes, const upstream::Dispatcher* dispatcher, Options options);

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

 private:
  const RouteTable* routes_;
  const upstream::Dispatcher* dispatcher_;
  Options options_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_GATEWAY_SERVICE_H_
