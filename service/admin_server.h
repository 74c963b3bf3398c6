// The admin HTTP listener (--admin_listen): plain HTTP/1.1 for operators and Kubernetes.
//
//   GET /          the status page, HTML (service/status_page.h), when a handler is given
//   GET /metrics   Prometheus text (service/metrics.h)
//   GET /healthz   200 "ok" while the process serves (liveness)
//   GET /readyz    200 with the readiness report when ready, else 503 with it
//   GET /drift     the upstream drift report as JSON (upstream/binding/drift_report.h)
//
// No authentication: bind it to a private interface (the pod network, never a public one).
//
//   auto admin = AdminServer::Start("127.0.0.1:9090", {.metrics = ..., .ready = ...});
//   admin->port();  // the bound port (useful with port 0)
//   admin->Stop();
#ifndef GATEWAY_SERVICE_ADMIN_SERVER_H_
#define GATEWAY_SERVICE_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace gateway::service {

class AdminServer {
 public:
  struct Handlers {
    std::function<std::string()> metrics;
    // (ready, report)
    std::function<std::pair<bool, std::string>()> ready;
    // The status page's HTML; no `/` route when empty.
    std::function<std::string()> status_page;
    // The body of GET /drift; unset: no /drift endpoint.
    std::function<std::string()> drift;
  };
  // Binds `listen` ("HOST:PORT", port 0 = any free port) and serves on a thread of its own.
  // Errors: INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen,
                                                            Handlers handlers);
  ~AdminServer();
  int port() const { return port_; }
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  AdminServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "HOST:PORT" (HOST may be "[::1]"). Errors: INVALID_ARGUMENT naming `what`.
absl::StatusOr<std::pair<std::string, int>> ParseHostPort(const std::string& address,
                                                          const std::string& what);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_ADMIN_SERVER_H_
