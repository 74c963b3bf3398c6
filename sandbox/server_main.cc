// The sandbox binary: an in-memory emulator of the respond.io Developer API
// v2 (routes at the root and under /v2, e.g. /v2/contact/{identifier}) and of Chatwoot's
// application API (/api/v1/accounts/{account_id}/...), plus /__admin/*.
//
//   bazel-bin/sandbox/sandbox --listen=127.0.0.1:8081
//       --respondio_token=sandbox-token --rate_limits=true
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "sandbox/sandbox_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8081",
          "HOST:PORT to listen on (port 0 picks a free port)");
ABSL_FLAG(std::string, respondio_token, "sandbox-token",
          "Bearer tokens the respond.io emulator accepts, comma-separated (one per "
          "organization, each with its own rate limits; the request log shows which one each "
          "request carried)");
ABSL_FLAG(std::string, chatwoot_token, "sandbox-token",
          "api_access_tokens the Chatwoot emulator accepts, comma-separated (its rate limit "
          "stays per client IP)");
ABSL_FLAG(int, chatwoot_rate_limit_per_minute, 3000,
          "Chatwoot's per-client-IP limit (requests per minute, all endpoints)");
ABSL_FLAG(bool, rate_limits, true,
          "Enforce respond.io's per-endpoint requests-per-second limits and "
          "Chatwoot's per-IP requests-per-minute limit");
ABSL_FLAG(int, threads, 64, "HTTP worker threads");
ABSL_FLAG(std::string, webhook_url, "",
          "base URL to POST signed webhooks to ({url}/webhooks/respondio, "
          "{url}/webhooks/chatwoot) when state changes through the API and for "
          "POST /__admin/{respondio,chatwoot}/inbound_message (default: none)");
ABSL_FLAG(std::string, webhook_path_suffix, "",
          "appended to each webhook path, e.g. /acme posts to {url}/webhooks/respondio/acme "
          "(a gateway workspace's webhook endpoint)");
ABSL_FLAG(std::string, respondio_webhook_secret, "sandbox-webhook-secret",
          "respond.io webhook signing key");
ABSL_FLAG(std::string, chatwoot_webhook_secret, "sandbox-webhook-secret",
          "Chatwoot webhook secret");
ABSL_FLAG(std::string, respondio_dialect, "live",
          "respond.io behaviour: live (what api.respond.io does) or openapi "
          "(what its OpenAPI document describes)");
ABSL_FLAG(std::string, chatwoot_dialect, "live",
          "Chatwoot behaviour: live (what Chatwoot's Rails code does) or "
          "openapi (what its OpenAPI document describes)");

namespace {

bool ParseListen(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (host->empty()) return false;
  return absl::SimpleAtoi(listen.substr(colon + 1), port) && *port >= 0 &&
         *port <= 65535;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "In-memory respond.io Developer API v2 and Chatwoot emulator with "
      "/__admin/* test endpoints.");
  absl::ParseCommandLine(argc, argv);

  sandbox::SandboxOptions options;
  if (!ParseListen(absl::GetFlag(FLAGS_listen), &options.host,
                   &options.port)) {
    std::cerr << "invalid --listen '" << absl::GetFlag(FLAGS_listen)
              << "', expected HOST:PORT" << std::endl;
    return 2;
  }
  options.respondio_token = absl::GetFlag(FLAGS_respondio_token);
  options.chatwoot_token = absl::GetFlag(FLAGS_chatwoot_token);
  options.chatwoot_rate_limit_per_minute =
      absl::GetFlag(FLAGS_chatwoot_rate_limit_per_minute);
  if (options.chatwoot_rate_limit_per_minute <= 0) {
    std::cerr << "--chatwoot_rate_limit_per_minute must be positive" << std::endl;
    return 2;
  }
  options.rate_limits = absl::GetFlag(FLAGS_rate_limits);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.webhook_url = absl::GetFlag(FLAGS_webhook_url);
  options.webhook_path_suffix = absl::GetFlag(FLAGS_webhook_path_suffix);
  options.respondio_webhook_secret = absl::GetFlag(FLAGS_respondio_webhook_secret);
  options.chatwoot_webhook_secret = absl::GetFlag(FLAGS_chatwoot_webhook_secret);
  if (!sandbox::ParseDialect(absl::GetFlag(FLAGS_respondio_dialect),
                             &options.respondio_dialect)) {
    std::cerr << "--respondio_dialect must be live or openapi" << std::endl;
    return 2;
  }
  if (!sandbox::ParseDialect(absl::GetFlag(FLAGS_chatwoot_dialect),
                             &options.chatwoot_dialect)) {
    std::cerr << "--chatwoot_dialect must be live or openapi" << std::endl;
    return 2;
  }

  // Block the termination signals in every thread (worker threads inherit the
  // mask) and wait for them synchronously below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sandbox::SandboxServer server(options);
  std::string error;
  if (!server.Start(&error)) {
    std::cerr << error << std::endl;
    return 1;
  }
  std::cout << "sandbox listening on " << server.url() << std::endl;
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "sandbox: received signal " << sig << ", shutting down"
            << std::endl;
  server.Stop();
  return 0;
}
