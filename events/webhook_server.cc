#include "events/webhook_server.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace gateway::events {
namespace {

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(const std::string& listen,
                                                                    bool allow_unsigned,
                                                                    WebhookIngress* ingress) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--webhook_listen: \"", listen, "\" is not HOST:PORT (port 0..65535)"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (allow_unsigned && !IsLoopback(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--webhook_allow_unsigned is for loopback development only; --webhook_listen "
                     "is ",
                     listen));
  }
  std::unique_ptr<WebhookServer> out(new WebhookServer());
  out->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *out->server_;
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // httplib answers 413 itself beyond this, before reading the body; one byte more than the
  // ingress' own limit, so that the ingress decides for every body it could accept.
  server.set_payload_max_length(ingress->max_body_bytes() + 1);
  server.set_error_handler([ingress](const httplib::Request& request,
                                     httplib::Response& response) {
    if (response.status != 413) return;
    const std::string path = request.path;
    std::string upstream = path.rfind("/webhooks/", 0) == 0 ? path.substr(10) : "unknown";
    upstream = upstream.substr(0, upstream.find('/'));
    if (upstream != "respondio" && upstream != "chatwoot") upstream = "unknown";
    response.set_content(
        ingress->Reject(upstream, 413, "BODY_TOO_LARGE", "the webhook body is too large").Body(),
        "application/json");
  });
  server.Post(R"(/webhooks/([A-Za-z0-9_]+)(?:/([A-Za-z0-9_.-]+))?)",
              [ingress](const httplib::Request& request, httplib::Response& response) {
                WebhookIngress::Headers headers(request.headers.begin(), request.headers.end());
                const std::string upstream = request.matches[1];
                const std::string workspace =
                    request.matches.size() > 2 ? std::string(request.matches[2]) : "";
                WebhookIngress::Result result =
                    ingress->Handle(upstream, workspace, headers, request.body);
                response.status = result.http_status;
                response.set_content(result.Body(), "application/json");
              });
  if (port == 0) {
    out->port_ = server.bind_to_any_port(host);
    if (out->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("--webhook_listen: cannot bind ", listen));
    }
  } else {
    if (!server.bind_to_port(host, port)) {
      return absl::UnavailableError(absl::StrCat("--webhook_listen: cannot bind ", listen));
    }
    out->port_ = port;
  }
  WebhookServer* raw = out.get();
  out->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  // httplib's stop() is a no-op until the accept loop runs: wait for it, so that a Stop() right
  // after Start() cannot leave the thread serving forever.
  while (!server.is_running()) absl::SleepFor(absl::Milliseconds(1));
  return out;
}

void WebhookServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

WebhookServer::~WebhookServer() { Stop(); }

}  // namespace gateway::events
