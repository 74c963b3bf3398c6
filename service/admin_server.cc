#include "service/admin_server.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace gateway::service {

absl::StatusOr<std::pair<std::string, int>> ParseHostPort(const std::string& address,
                                                          const std::string& what) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", address, "\" is not HOST:PORT (port 0..65535)"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, port);
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const std::string& listen,
                                                                Handlers handlers) {
  auto host_port = ParseHostPort(listen, "--admin_listen");
  if (!host_port.ok()) return host_port.status();
  std::unique_ptr<AdminServer> admin(new AdminServer());
  admin->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *admin->server_;
  // httplib's default also sets SO_REUSEPORT, which would let a second process bind the same
  // port silently; an address in use must be a start-up error.
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.Get("/metrics", [metrics = handlers.metrics](const httplib::Request&,
                                                      httplib::Response& response) {
    response.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (handlers.status_page) {
    server.Get("/", [page = handlers.status_page](const httplib::Request&,
                                                   httplib::Response& response) {
      response.set_header("Cache-Control", "no-store");
      response.set_content(page(), "text/html; charset=utf-8");
    });
  }
  if (handlers.drift) {
    server.Get("/drift", [drift = handlers.drift](const httplib::Request&,
                                                  httplib::Response& response) {
      response.set_content(drift(), "application/json");
    });
  }
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  server.Get("/readyz", [ready = handlers.ready](const httplib::Request&,
                                                 httplib::Response& response) {
    auto [ok, report] = ready();
    response.status = ok ? 200 : 503;
    response.set_content(absl::StrCat(ok ? "ready\n" : "not ready\n", report), "text/plain");
  });
  const auto& [host, port] = *host_port;
  if (port == 0) {
    admin->port_ = server.bind_to_any_port(host);
    if (admin->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("--admin_listen: cannot bind ", listen));
    }
  } else {
    if (!server.bind_to_port(host, port)) {
      return absl::UnavailableError(absl::StrCat("--admin_listen: cannot bind ", listen));
    }
    admin->port_ = port;
  }
  AdminServer* raw = admin.get();
  admin->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  return admin;
}

void AdminServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

AdminServer::~AdminServer() { Stop(); }

}  // namespace gateway::service
