// The sandbox HTTP server: wires the emulated APIs (respond.io at the root and
// under /v2, Chatwoot under /api/v1/), the request log, fault injection, rate limiting and
// the admin endpoints onto one httplib::Server.
// Used by server_main.cc and, in-process, by sandbox_test.cc.
#ifndef SANDBOX_SANDBOX_SERVER_H_
#define SANDBOX_SANDBOX_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include <httplib.h>

#include "sandbox/admin.h"
#include "sandbox/chatwoot_routes.h"
#include "sandbox/chatwoot_state.h"
#include "sandbox/rate_limiter.h"
#include "sandbox/respondio_routes.h"
#include "sandbox/respondio_state.h"
#include "sandbox/webhooks.h"

namespace sandbox {

struct SandboxOptions {
  std::string host = "127.0.0.1";
  int port = 8081;  // 0 picks a free port
  // The Bearer tokens the respond.io emulator accepts, comma-separated: one per organization,
  // each with its own rate limits.
  std::string respondio_token = "sandbox-token";
  // The api_access_tokens the Chatwoot emulator accepts, comma-separated.
  std::string chatwoot_token = "sandbox-token";
  // Chatwoot's Rack::Attack limit: requests per minute per client IP.
  int chatwoot_rate_limit_per_minute = 3000;
  bool rate_limits = true;
  int threads = 64;
  // Base URL webhooks are POSTed to ("" = none; see webhooks.h) and the upstreams' secrets.
  std::string webhook_url;
  std::string webhook_path_suffix;  // appended to /webhooks/{upstream}, e.g. "/acme"
  std::string respondio_webhook_secret = "sandbox-webhook-secret";
  std::string chatwoot_webhook_secret = "sandbox-webhook-secret";
  // live: what the real services do (specs/live-api.md); openapi: what their
  // OpenAPI documents describe.
  Dialect respondio_dialect = Dialect::kLive;
  Dialect chatwoot_dialect = Dialect::kLive;
};

class SandboxServer {
 public:
  explicit SandboxServer(SandboxOptions options);
  ~SandboxServer();

  SandboxServer(const SandboxServer&) = delete;
  SandboxServer& operator=(const SandboxServer&) = delete;

  // Binds and starts serving on a background thread. Returns false (with a
  // message) when the address cannot be bound.
  bool Start(std::string* error);
  // Stops accepting, finishes in-flight requests and joins the thread.
  void Stop();

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }
  std::string url() const;

 private:
  void HandleRequest(const httplib::Request& req, httplib::Response& res);
  // Emits the respond.io webhook a successful API call implies (--webhook_url; Chatwoot's go
  // through ChatwootApi's change hooks).
  void EmitForRespondioCall(const RequestContext& ctx, const std::string& endpoint,
                            const httplib::Response& res);
  std::optional<Json> RespondioContact(const std::string& identifier) const;

  SandboxOptions options_;
  int port_ = 0;
  std::string host_port_;

  RequestLog log_;
  std::unique_ptr<WebhookEmitter> webhooks_;  // null without --webhook_url
  std::unique_ptr<ChatwootWebhooks> chatwoot_webhooks_;  // likewise
  FaultInjector faults_;
  RateLimiter limiter_;
  respondio::RespondioState respondio_state_;
  respondio::RespondioApi respondio_api_;
  chatwoot::ChatwootState chatwoot_state_;
  chatwoot::ChatwootApi chatwoot_api_;
  AdminApi admin_;

  // httplib::Server whose listen backlog can be raised: Debian's
  // libcpp-httplib is compiled with a backlog of 5, so a burst of concurrent
  // connects would otherwise see dropped SYNs and one-second retransmits.
  class Server : public httplib::Server {
   public:
    bool RaiseListenBacklog(int backlog);
  };

  Server server_;
  std::thread thread_;
};

}  // namespace sandbox

#endif  // SANDBOX_SANDBOX_SERVER_H_
