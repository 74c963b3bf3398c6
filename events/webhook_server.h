// The webhook HTTP listener (--webhook_listen): POST /webhooks/{upstream}[/{workspace}] served
// by a WebhookIngress (see webhook_ingress.h for the answers). This is the one port meant to be
// reachable from the internet; it serves nothing else.
#ifndef GATEWAY_EVENTS_WEBHOOK_SERVER_H_
#define GATEWAY_EVENTS_WEBHOOK_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "events/webhook_ingress.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace gateway::events {

class WebhookServer {
 public:
  // Binds `listen` ("HOST:PORT", port 0 = a free port) and serves on threads of its own.
  // Errors: INVALID_ARGUMENT for a malformed address, or allow_unsigned on a host that is not
  // loopback; UNAVAILABLE when it cannot bind. `ingress` must outlive the server.
  static absl::StatusOr<std::unique_ptr<WebhookServer>> Start(const std::string& listen,
                                                              bool allow_unsigned,
                                                              WebhookIngress* ingress);
  ~WebhookServer();
  int port() const { return port_; }
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  WebhookServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_WEBHOOK_SERVER_H_
