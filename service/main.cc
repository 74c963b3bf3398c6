// The gateway binary: typed gRPC in front of respond.io and Chatwoot.
//
//   gateway --listen=127.0.0.1:8080 --respondio_base_url=https://api.respond.io/v2 \
//           --respondio_token_file=/run/secrets/respondio
//   gateway --print_routes [--config=FILE]
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "service/config.h"
#include "service/gateway_service.h"
#include "service/route_table.h"
#include "upstream/dispatcher.h"
#include "upstream/http_client.h"

ABSL_FLAG(std::string, listen, "",
          "gRPC listen address HOST:PORT (default 127.0.0.1:8080; port 0 picks a free port, "
          "printed at start-up)");
ABSL_FLAG(std::string, config, "", "JSON config file: upstreams, route overrides (see README)");
ABSL_FLAG(std::string, respondio_base_url, "",
          "respond.io base URL, e.g. https://api.respond.io/v2 (default: the bundled sandbox at "
          "http://127.0.0.1:8081)");
ABSL_FLAG(std::string, respondio_token_file, "",
          "file holding the respond.io API token (else env RESPONDIO_API_TOKEN)");
ABSL_FLAG(std::string, chatwoot_base_url, "",
          "Chatwoot base URL, e.g. https://chatwoot.example.com (default: the bundled sandbox)");
ABSL_FLAG(std::string, chatwoot_token_file, "",
          "file holding the Chatwoot api_access_token (else env CHATWOOT_API_TOKEN)");
ABSL_FLAG(int64_t, chatwoot_account_id, 0,
          "Chatwoot account used when a request's account_id is 0 (default 1)");
ABSL_FLAG(bool, print_routes, false,
          "print the effective route table, one JSON object per line, and exit");
ABSL_FLAG(std::string, ca_file, "", "PEM CA bundle for https upstreams (default: system store)");

namespace {

absl::Notification* g_stop = nullptr;

void OnSignal(int) {
  // Notify is async-signal-unsafe in theory; a dedicated waiter thread would be stricter, but
  // absl::Notification::Notify only takes an uncontended mutex here, set once.
  if (g_stop != nullptr && !g_stop->HasBeenNotified()) g_stop->Notify();
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "typed gRPC gateway to respond.io and Chatwoot.\n"
      "  gateway [--listen=HOST:PORT] [--config=FILE] [--respondio_base_url=URL] ...\n"
      "  gateway --print_routes [--config=FILE]");
  absl::ParseCommandLine(argc, argv);

  gateway::service::ConfigSources sources;
  sources.config_file = absl::GetFlag(FLAGS_config);
  sources.listen = absl::GetFlag(FLAGS_listen);
  sources.respondio_base_url = absl::GetFlag(FLAGS_respondio_base_url);
  sources.respondio_token_file = absl::GetFlag(FLAGS_respondio_token_file);
  sources.chatwoot_base_url = absl::GetFlag(FLAGS_chatwoot_base_url);
  sources.chatwoot_token_file = absl::GetFlag(FLAGS_chatwoot_token_file);
  sources.chatwoot_account_id = absl::GetFlag(FLAGS_chatwoot_account_id);
  sources.respondio_token_env = Env("RESPONDIO_API_TOKEN");
  sources.chatwoot_token_env = Env("CHATWOOT_API_TOKEN");
  auto config = gateway::service::LoadConfig(sources);
  if (!config.ok()) {
    std::cerr << "gateway: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  auto routes = gateway::service::RouteTable::Build(config->routes);
  if (!routes.ok()) {
    std::cerr << "gateway: invalid route table: " << routes.status().message() << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_print_routes)) {
    std::cout << routes->PrintRoutes() << std::flush;
    return 0;
  }

  gateway::upstream::HttpClient::Options http_options;
  http_options.ca_file = absl::GetFlag(FLAGS_ca_file);
  gateway::upstream::HttpClient http(http_options);
  gateway::upstream::Dispatcher dispatcher(config->upstreams, &http);
  gateway::service::GatewayService service(&*routes, &dispatcher,
                                           {.default_deadline = config->default_deadline});

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config->listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "gateway: cannot listen on " << config->listen << "\n";
    return 2;
  }
  const std::string host = config->listen.substr(0, config->listen.rfind(':'));
  std::cout << "gateway listening on " << host << ":" << port << " (" << routes->routes().size()
            << " RPCs)" << std::endl;

  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  stop.WaitForNotification();
  std::cout << "gateway: shutting down" << std::endl;
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return 0;
}
