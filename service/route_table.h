// The route table: every RPC the gateway serves, compiled from the proto descriptors linked into
// the binary (their `gateway.v1.binding` / `policy` options), the dialect each upstream speaks
// (upstream/binding/dialect.h) and configured overrides, applied in that order.
//
//   auto table = RouteTable::Build(config.routes, config.dialects);  // errors name the bad RPC
//   const upstream::Route* route = table->Find("/respondio.v2.ContactService/GetContact");
//
// Immutable after Build(); safe to share between threads.
#ifndef GATEWAY_SERVICE_ROUTE_TABLE_H_
#define GATEWAY_SERVICE_ROUTE_TABLE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "service/config.h"
#include "upstream/binding/route.h"

namespace gateway::service {

class RouteTable {
 public:
  // Compiles every RPC of every service in the embedded descriptor set. `dialects` maps an
  // upstream name to the dialect it speaks ("live" or "openapi"); upstreams not listed speak
  // "openapi" (the bindings exactly as the protos declare them). Every route also learns the
  // other dialects' reply shapes, so replies decode whichever dialect answers. Errors: an
  // override or a dialect file names an unknown RPC, an unknown dialect, or a (possibly
  // overridden) binding does not compile.
  static absl::StatusOr<RouteTable> Build(
      const absl::flat_hash_map<std::string, RouteOverride>& overrides,
      const absl::flat_hash_map<std::string, std::string>& dialects = {});

  // The route of "/package.Service/Method", or nullptr.
  const upstream::Route* Find(absl::string_view rpc) const;

  // All routes, sorted by RPC name.
  const std::vector<std::unique_ptr<upstream::Route>>& routes() const { return routes_; }

  // Full names of the services served ("respondio.v2.ContactService", ...), sorted.
  std::vector<std::string> ServiceNames() const;

  // One JSON object per line: {"rpc","upstream","dialect","verb","path","body","bucket",...}.
  std::string PrintRoutes() const;

 private:
  std::vector<std::unique_ptr<upstream::Route>> routes_;
  absl::flat_hash_map<std::string, const upstream::Route*> by_rpc_;
};

// The FileDescriptorSet of every served proto file (with imports), as linked into the binary.
absl::string_view ServedDescriptorSet();

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_ROUTE_TABLE_H_
