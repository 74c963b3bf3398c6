// The gateway binary: typed gRPC in front of respond.io and Chatwoot.
//
//   gateway --listen=127.0.0.1:8080 --respondio_base_url=https://api.respond.io/v2
//           --respondio_token_file=/run/secrets/respondio   (one command line)
//   gateway --print_routes [--config=FILE]
//   gateway --help     # every flag
//
// Start-up checks every flag and file and exits 2 with a message naming the problem; once
// serving, SIGTERM (or SIGINT) drains: not ready at once, stop accepting after --drain_delay,
// finish in-flight calls within --shutdown_grace, exit 0.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "events/event_service.h"
#include "events/memory_event_log.h"
#include "events/redis_event_log.h"
#include "events/webhook_ingress.h"
#include "events/webhook_server.h"
#include "service/admin_server.h"
#include "service/auth.h"
#include "service/call_log.h"
#include "service/component_metrics.h"
#include "service/config.h"
#include "service/gateway_service.h"
#include "service/health.h"
#include "service/metrics.h"
#include "service/reflection.h"
#include "service/reloader.h"
#include "service/workspaces.h"
#include "service/route_table.h"
#include "service/status_page.h"
#include "upstream/pipeline/dispatcher.h"
#include "upstream/transport/http_client.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/transport/redis_client.h"
#include "upstream/budget/response_cache.h"
#include "upstream/scheduler.h"

ABSL_FLAG(std::string, listen, "",
          "gRPC listen address HOST:PORT (default 127.0.0.1:8080; port 0 picks a free port, "
          "printed at start-up)");
ABSL_FLAG(std::string, config, "",
          "config file: the JSON form of gateway.v1.Config (proto/gateway/v1/config.proto): "
          "upstreams, workspaces, rate limits, route overrides (see README)");
ABSL_FLAG(std::string, workspaces_file, "",
          "file of workspaces (gateway.v1.Config JSON setting only `workspaces`), merged over "
          "--config's; reloaded without a restart when it changes");
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
ABSL_FLAG(absl::Duration, coalescing_lease, absl::Seconds(2),
          "With --redis_url: how long the replica leading a cached read holds its Redis lease; "
          "identical reads on other replicas wait for its cache fill, and send their own "
          "request when the lease lapses without one (the leader died or was slower)");
ABSL_FLAG(std::string, redis_url, "",
          "redis://HOST:PORT[/DB] shared by all replicas for rate limits, the reply cache and "
          "request_id records (default: in-process state, enough for one replica)");
ABSL_FLAG(int64_t, cache_max_bytes, -1,
          "bytes of reply cache per replica; 0 disables caching (default: the config file's "
          "cache.max_bytes, else 64 MiB)");
ABSL_FLAG(std::string, respondio_dialect, "",
          "how respond.io is spoken: live (default: what the live API and respond.io's own "
          "clients do) or openapi (its OpenAPI document); overrides upstreams.respondio.dialect");
ABSL_FLAG(std::string, chatwoot_dialect, "",
          "how Chatwoot is spoken: live (default: what Chatwoot's Rails code does) or openapi "
          "(its OpenAPI document); overrides upstreams.chatwoot.dialect");
ABSL_FLAG(bool, print_routes, false,
          "print the effective route table, one JSON object per line, and exit");
ABSL_FLAG(bool, check_config, false,
          "validate the configuration (--config, flags, routes, rates, --callers_file when "
          "given; upstream tokens are neither read nor required) and exit: 0 when valid, else 2 with a "
          "message naming the problem");
ABSL_FLAG(bool, print_config, false,
          "print the effective configuration (gateway.v1.Config JSON: defaults, --config and "
          "flags merged; tokens never shown, URL passwords redacted) and exit");
ABSL_FLAG(std::string, ca_file, "", "PEM CA bundle for https upstreams (default: system store)");
ABSL_FLAG(std::string, admin_listen, "",
          "admin HTTP listen address HOST:PORT serving the status page /, /metrics, /drift, /healthz and /readyz (default: "
          "no admin listener; port 0 picks a free port, printed at start-up). Unauthenticated: "
          "keep it off public interfaces");
ABSL_FLAG(std::string, callers_file, "",
          "JSON file of callers: bearer tokens and the RPCs each may call (see README). When "
          "set, every gRPC call needs \"authorization: Bearer <token>\"; without it the gateway "
          "trusts the network and takes the caller from `x-caller` metadata");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain for TLS on the gRPC listener (with --tls_key_file)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: require and verify client certificates (mutual TLS; needs "
          "--tls_cert_file)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "on SIGTERM, how long in-flight calls may take to finish before they are cancelled");
ABSL_FLAG(absl::Duration, drain_delay, absl::ZeroDuration(),
          "on SIGTERM, how long to keep serving while reporting NOT_SERVING before refusing new "
          "calls (lets load balancers notice; Kubernetes' preStop hook does the same)");
ABSL_FLAG(bool, log_calls, true, "write one JSON line per call to stdout");
ABSL_FLAG(absl::Duration, reload_poll_interval, absl::Seconds(2),
          "how often the callers file, --config, --workspaces_file and the token files they "
          "name are read for changes, which are then applied without a restart (also on "
          "SIGHUP): callers and workspaces; 0 disables polling");
ABSL_FLAG(std::string, webhook_listen, "",
          "webhook HTTP listen address HOST:PORT serving POST /webhooks/respondio and "
          "/webhooks/chatwoot (default: none; port 0 picks a free port, printed at start-up). The "
          "one port meant for the internet");
ABSL_FLAG(std::string, respondio_webhook_secret_file, "",
          "file holding respond.io's webhook signing key");
ABSL_FLAG(std::string, chatwoot_webhook_secret_file, "",
          "file holding the Chatwoot webhook's secret (X-Chatwoot-Signature)");
ABSL_FLAG(bool, webhook_allow_unsigned, false,
          "accept webhooks without signatures (loopback --webhook_listen only; development)");
ABSL_FLAG(std::string, respondio_webhook_signature_header, "x-webhook-signature",
          "header carrying respond.io's webhook signature");
ABSL_FLAG(std::string, respondio_webhook_signature_encoding, "base64",
          "encoding of respond.io's HMAC-SHA256(key, body) signature: base64 or hex");
ABSL_FLAG(int64_t, event_retention_max_events, 100000,
          "events kept in the event log (Redis stream or in-process); older ones are trimmed");
ABSL_FLAG(absl::Duration, event_retention_max_age, absl::Hours(24),
          "how long events are kept in the event log");
ABSL_FLAG(absl::Duration, event_visibility_timeout, absl::Seconds(30),
          "how long a consumer group member has to Ack an event before another member gets it");

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

int StartupError(absl::string_view message) {
  std::cerr << "gateway: " << message << "\n";
  return 2;
}

// Blocks SIGTERM, SIGINT and SIGHUP (reload) in this thread and every thread it starts, so they
// can be taken with sigwait() instead of a handler (nothing runs in signal context).
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

absl::StatusOr<std::string> ReadSecret(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string secret(absl::StripTrailingAsciiWhitespace(buffer.str()));
  if (secret.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  return secret;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!absl::StrContains(buffer.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not PEM"));
  }
  return buffer.str();
}

// Insecure credentials, or TLS / mutual TLS from the --tls_* flags.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenerCredentials() {
  const std::string cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key_file = absl::GetFlag(FLAGS_tls_key_file);
  const std::string ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  if (cert_file.empty()) {
    if (!ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file (mutual TLS) needs --tls_cert_file and --tls_key_file");
    }
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadPem(cert_file, "--tls_cert_file");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(key_file, "--tls_key_file");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(
      ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                      : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!ca_file.empty()) {
    auto ca = ReadPem(ca_file, "--tls_client_ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t termination = BlockTerminationSignals();  // before any thread starts
  // Debian's Abseil checks every mutex acquisition (gRPC's too) for lock-order cycles: a debug
  // aid that costs ~16% of the CPU of a cache hit (make bench). Lock order is reviewed instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  absl::SetProgramUsageMessage(
      "typed gRPC gateway to respond.io and Chatwoot.\n"
      "  gateway [--listen=HOST:PORT] [--config=FILE] [--respondio_base_url=URL] ...\n"
      "  gateway --print_routes [--config=FILE]\n"
      "  gateway --check_config --config=FILE\n"
      "  gateway --print_config [--config=FILE]");
  absl::FlagsUsageConfig usage;
  // --help lists this file's flags (absl would look for gateway.cc by the binary's name).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "service/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return StartupError(absl::StrCat("unexpected argument \"", positional[1],
                                     "\" (flags look like --name=value; see --help)"));
  }
  if (absl::GetFlag(FLAGS_shutdown_grace) < absl::ZeroDuration()) {
    return StartupError("--shutdown_grace must not be negative");
  }
  if (absl::GetFlag(FLAGS_drain_delay) < absl::ZeroDuration()) {
    return StartupError("--drain_delay must not be negative");
  }

  gateway::service::ConfigSources sources;
  sources.config_file = absl::GetFlag(FLAGS_config);
  sources.workspaces_file = absl::GetFlag(FLAGS_workspaces_file);
  sources.listen = absl::GetFlag(FLAGS_listen);
  sources.respondio_base_url = absl::GetFlag(FLAGS_respondio_base_url);
  sources.respondio_token_file = absl::GetFlag(FLAGS_respondio_token_file);
  sources.chatwoot_base_url = absl::GetFlag(FLAGS_chatwoot_base_url);
  sources.chatwoot_token_file = absl::GetFlag(FLAGS_chatwoot_token_file);
  sources.chatwoot_account_id = absl::GetFlag(FLAGS_chatwoot_account_id);
  sources.redis_url = absl::GetFlag(FLAGS_redis_url);
  sources.cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  const bool check_only = absl::GetFlag(FLAGS_check_config);
  const bool print_config = absl::GetFlag(FLAGS_print_config);
  sources.read_secrets = !check_only && !print_config;
  sources.respondio_dialect = absl::GetFlag(FLAGS_respondio_dialect);
  sources.chatwoot_dialect = absl::GetFlag(FLAGS_chatwoot_dialect);
  sources.respondio_token_env = Env("RESPONDIO_API_TOKEN");
  sources.chatwoot_token_env = Env("CHATWOOT_API_TOKEN");
  auto config = gateway::service::LoadConfig(sources);
  if (!config.ok()) {
    return StartupError(absl::StrCat("invalid configuration: ", config.status().message()));
  }
  if (auto listen = gateway::service::ParseHostPort(config->listen, "--listen"); !listen.ok()) {
    return StartupError(listen.status().message());
  }
  auto routes = gateway::service::RouteTable::Build(config->routes, config->dialects);
  if (!routes.ok()) {
    return StartupError(absl::StrCat("invalid route table: ", routes.status().message()));
  }
  {
    // Bucket rates are data: a route whose bucket has no rate is an error, not a silent 5/s.
    std::vector<gateway::service::BucketUse> uses;
    for (const auto& route : routes->routes()) {
      uses.push_back({route->rpc, absl::StrCat(route->binding.upstream(), "/",
                                               route->policy.bucket())});
    }
    if (absl::Status s = gateway::service::CheckBucketRates(*config, uses); !s.ok()) {
      return StartupError(absl::StrCat("invalid configuration: ", s.message()));
    }
  }
  if (print_config) {
    std::cout << gateway::service::PrintConfig(*config) << std::flush;
    return 0;
  }
  if (absl::GetFlag(FLAGS_print_routes)) {
    std::cout << routes->PrintRoutes() << std::flush;
    return 0;
  }
  std::optional<gateway::service::CallerAuth> auth;
  if (const std::string file = absl::GetFlag(FLAGS_callers_file); !file.empty()) {
    std::vector<std::string> names;
    for (const auto& [name, ws] : config->workspaces) names.push_back(name);
    auto loaded = gateway::service::CallerAuth::Load(file, *routes, &names);
    if (!loaded.ok()) return StartupError(loaded.status().message());
    auth = *std::move(loaded);
  }
  if (check_only) {
    std::cout << "gateway: configuration is valid (" << routes->routes().size() << " RPCs, "
              << config->workspaces.size() << " workspace"
              << (config->workspaces.size() == 1 ? "" : "s")
              << (auth.has_value() ? ", callers file" : "")
              << "; upstream tokens not read)" << std::endl;
    return 0;
  }
  auto credentials = ListenerCredentials();
  if (!credentials.ok()) return StartupError(credentials.status().message());
  const std::string admin_listen = absl::GetFlag(FLAGS_admin_listen);
  if (!admin_listen.empty()) {
    if (auto a = gateway::service::ParseHostPort(admin_listen, "--admin_listen"); !a.ok()) {
      return StartupError(a.status().message());
    }
  }
  auto reflection = gateway::service::ServerReflection::Create(
      gateway::service::ServedDescriptorSet(),
      {grpc::health::v1::HealthCheckRequest::descriptor()->file()->FindServiceByName("Health"),
       gateway::v1::EventEnvelope::descriptor()->file()->FindServiceByName("EventService")});
  if (!reflection.ok()) return StartupError(reflection.status().message());

  // The shared budget: state in Redis when configured (all replicas share it), else in-process.
  // Destruction order matters: the HTTP client (declared below, after everything its answers
  // reach) goes first, then the Redis client (answering its pending commands) before the
  // components that use it, and the scheduler last.
  gateway::upstream::TimerThreadScheduler scheduler;
  std::unique_ptr<gateway::upstream::RedisClient> redis;
  if (!config->redis_url.empty()) {
    auto redis_options = gateway::upstream::RedisClient::ParseUrl(config->redis_url);
    if (!redis_options.ok()) return StartupError(redis_options.status().message());
    // While Redis is down, fail fast but look again soon: replicas that come back to the shared
    // limits at different times would otherwise add their local shares on top of it.
    redis_options->retry_interval = absl::Milliseconds(100);
    redis = std::make_unique<gateway::upstream::RedisClient>(*redis_options);
  }
  gateway::upstream::RateLimiter limiter({.redis_fallback_share = config->redis_fallback_share,
                                          .redis_probe_interval = absl::Milliseconds(100),
                                          .max_queue_wait = config->max_queue_wait,
                                          .max_pause = config->max_pause},
                                         &scheduler, redis.get());
  gateway::upstream::ResponseCache cache(
      {.max_bytes = static_cast<size_t>(config->cache_max_bytes)}, &scheduler, redis.get());
  gateway::upstream::IdempotencyStore idempotency({}, &scheduler, redis.get());
  // What in the upstreams' replies does not fit the protos: /drift and the drift metric.
  gateway::upstream::DriftReport drift;
  absl::flat_hash_map<std::string, std::string> upstream_of_rpc;  // drift metric's `upstream`
  for (const auto& route : routes->routes()) {
    upstream_of_rpc[route->rpc] = route->binding.upstream();
  }
  for (const char* upstream : {"respondio", "chatwoot"}) {  // unknown webhook events
    upstream_of_rpc[absl::StrCat("/webhooks/", upstream)] = upstream;
  }
  // Destroyed before the components above: its destruction answers the requests still pending
  // (CANCELLED), and those answers reach exchanges that use the limiter, the cache, the store,
  // the drift report and the scheduler (an exchange keeps its dispatcher alive by itself).
  gateway::upstream::HttpClient::Options http_options;
  http_options.ca_file = absl::GetFlag(FLAGS_ca_file);
  gateway::upstream::HttpClient http(http_options);
  // One dispatcher per workspace over the shared components (service/workspaces.h).
  const gateway::upstream::Dispatcher::Components components{
      .http = &http,
      .scheduler = &scheduler,
      .limiter = &limiter,
      .cache = config->cache_max_bytes > 0 ? &cache : nullptr,
      .idempotency = &idempotency,
      .redis = redis.get(),
      .coalescing_lease = absl::GetFlag(FLAGS_coalescing_lease),
      .drift = &drift};
  // Observability: metrics (scraped from the admin listener) and one log line per call. Each
  // workspace gets its series when its dispatcher is built.
  gateway::service::Metrics metrics;
  // Every workspace calls its upstreams in its own dialects (workspaces.<name>.<upstream>.dialect).
  auto dialect_routes = gateway::service::DialectRoutes::Build(config->routes);
  if (!dialect_routes.ok()) {
    return StartupError(absl::StrCat("invalid route table: ", dialect_routes.status().message()));
  }
  gateway::service::Workspaces workspaces(gateway::service::WorkspaceSet::Build(
      *config, components, nullptr, &metrics, dialect_routes->get()));
  // Route overrides (bindings, buckets, cache TTLs) reload too: a reload that changes them
  // compiles new tables for the workspaces. Every table set ever installed is kept for the
  // process' life (calls in flight, and their exchanges, point into them); one exists per change
  // of the overrides, which is rare. Touched only by reloads, which run one at a time.
  std::vector<std::unique_ptr<gateway::service::DialectRoutes>> route_generations;
  route_generations.push_back(*std::move(dialect_routes));
  absl::flat_hash_map<std::string, gateway::service::RouteOverride> overrides_in_force =
      config->routes;

  // One log line per call (the metrics are above).
  gateway::service::CallLog call_log(STDOUT_FILENO);
  const bool log_calls = absl::GetFlag(FLAGS_log_calls);
  // The components' own counters, read at scrape time.
  // The (upstream, bucket) pairs the routes name, for per-bucket metrics from the config.
  std::set<std::pair<std::string, std::string>> route_buckets;
  for (const auto& route : routes->routes()) {
    route_buckets.emplace(route->binding.upstream(), route->policy.bucket());
  }
  metrics.AddCollector([&](gateway::service::MetricsWriter& out) {
    // Released (retired by a reload, then done) dispatchers' counts, plus the live ones'.
    gateway::upstream::Dispatcher::Counters d = workspaces.released_counters();
    int64_t live_current = 0, live_retired = 0;
    for (const auto& installed : workspaces.AllDispatchers()) {
      gateway::service::AddCounters(installed.dispatcher->counters(), &d);
      ++(installed.retired ? live_retired : live_current);
    }
    for (const auto& [state, n] : {std::pair<const char*, int64_t>{"current", live_current},
                                   {"retired", live_retired}}) {
      out.Gauge("gateway_workspace_dispatchers",
                "Dispatchers alive: state=current (the workspaces in force) and state=retired "
                "(replaced by a reload, still serving calls that started before it; released "
                "when those end).",
                {{"state", state}}, n);
    }
    // Buckets from the configuration in force, not from use: each bucket key every configured
    // workspace's routes are admitted under, labelled with every workspace that shares it (all
    // workspaces of one Chatwoot installation, or of one respond.io token), with its rate.
    absl::flat_hash_map<std::string, double> rates;  // by bucket key
    absl::flat_hash_map<std::string, std::set<std::string>> bucket_workspaces;
    const std::shared_ptr<const gateway::service::WorkspaceSet> current = workspaces.Current();
    for (const auto& [name, ws] : current->all()) {
      for (const auto& [upstream_name, bucket_name] : route_buckets) {
        std::optional<std::string> key = ws.dispatcher->BucketKeyOf(upstream_name, bucket_name);
        if (!key.has_value()) continue;  // the workspace does not configure this upstream
        bucket_workspaces[*key].insert(name);
        auto limit = ws.config.buckets.find(absl::StrCat(upstream_name, "/", bucket_name));
        // Every route's bucket has a rate (checked at start-up and on reload).
        rates.try_emplace(*key, limit != ws.config.buckets.end() ? limit->second.rate_per_second : 0);
      }
    }
    const std::pair<const char*, int64_t> dispatcher_counters[] = {
        {"calls", d.calls}, {"upstream_requests", d.upstream_requests}, {"retries", d.retries},
        {"coalesced", d.coalesced}, {"idempotent_replays", d.idempotent_replays},
        {"cancelled", d.cancelled}, {"aborted_in_flight", d.aborted_in_flight}};
    for (const auto& [name, value] : dispatcher_counters) {
      out.Counter(absl::StrCat("gateway_dispatcher_", name, "_total"),
                  "Dispatcher events (upstream/pipeline/dispatcher.h).", {}, value);
    }
    gateway::service::WriteCoalescingMetrics(d.coalescing, out);
    std::map<std::string, double> sorted(rates.begin(), rates.end());
    absl::flat_hash_map<std::string, std::string> workspace_label;  // by bucket key
    for (const auto& [bucket, rate] : sorted) {
      const std::string& names = workspace_label.emplace(
          bucket, absl::StrJoin(bucket_workspaces[bucket], ",")).first->second;
      gateway::service::WriteLimiterMetrics(bucket, names, limiter.counters(bucket), out);
      gateway::service::WriteBucketLimit(bucket, names, rate, out);
    }
    gateway::service::WriteHttpMetrics(http.FairnessStats(), http.responses_too_large(), out,
                                       &workspace_label);
    if (config->cache_max_bytes > 0) gateway::service::WriteCacheMetrics(cache.counters(), out);
    gateway::service::WriteIdempotencyMetrics(idempotency.counters(), out);
    if (redis != nullptr) {
      out.Gauge("gateway_redis_up",
                "1 while the shared state in Redis is reachable, 0 while the gateway runs on "
                "its local fallback. Absent without --redis_url.",
                {}, limiter.redis_healthy() ? 1 : 0);
    }
    out.Counter("gateway_call_log_dropped_total",
                "Call log lines dropped because stdout could not keep up (the buffer was full).",
                {}, call_log.dropped());
    gateway::service::WriteDriftMetrics(drift.Snapshot(), upstream_of_rpc, out);
  });

  // Events: webhooks in (--webhook_listen), stored in the event log (Redis Streams shared by
  // the replicas, else in-process), streamed by gateway.v1.EventService.
  gateway::events::LogRetention retention{
      .max_events = absl::GetFlag(FLAGS_event_retention_max_events),
      .max_age = absl::GetFlag(FLAGS_event_retention_max_age)};
  if (retention.max_events <= 0 || retention.max_age <= absl::ZeroDuration()) {
    return StartupError("--event_retention_max_events and --event_retention_max_age must be positive");
  }
  std::unique_ptr<gateway::upstream::RedisClient> events_redis;
  std::unique_ptr<gateway::events::EventLog> event_log;
  if (redis != nullptr) {
    // Its own connections: the log's blocking reads must not delay the limiter's commands.
    events_redis = std::make_unique<gateway::upstream::RedisClient>(redis->options());
    event_log = std::make_unique<gateway::events::RedisEventLog>(
        gateway::events::RedisEventLog::Options{.retention = retention}, events_redis.get(),
        &scheduler);
  } else {
    event_log = std::make_unique<gateway::events::MemoryEventLog>(retention, &scheduler);
  }
  gateway::events::WebhookIngress::Options ingress_options;
  ingress_options.allow_unsigned = absl::GetFlag(FLAGS_webhook_allow_unsigned);
  ingress_options.respondio_scheme = {
      .header = absl::GetFlag(FLAGS_respondio_webhook_signature_header),
      .encoding = absl::GetFlag(FLAGS_respondio_webhook_signature_encoding)};
  for (const auto& [upstream, flag, file] :
       {std::tuple<std::string, std::string, std::string>{
            "respondio", "--respondio_webhook_secret_file",
            absl::GetFlag(FLAGS_respondio_webhook_secret_file)},
        {"chatwoot", "--chatwoot_webhook_secret_file",
         absl::GetFlag(FLAGS_chatwoot_webhook_secret_file)}}) {
    if (file.empty()) continue;
    auto secret = ReadSecret(file, flag);
    if (!secret.ok()) return StartupError(secret.status().message());
    ingress_options.secrets[upstream] = *secret;
  }
  // Unknown webhook event types (and known ones whose JSON did not fit) are drift too: the
  // event is kept, the drift report counts it as kind unknown_event under /webhooks/{upstream}.
  ingress_options.on_unknown_event = [&drift](const std::string& upstream, const std::string& type,
                                              const std::string& decode_error) {
    drift.Record(absl::StrCat("/webhooks/", upstream), type,
                 gateway::upstream::DriftKind::kUnknownEvent, decode_error);
  };
  // Workspaces: /webhooks/{upstream}/{workspace} is checked with that workspace's
  // webhook_secret_file (the default workspace's, else the flag's, also on the path without a
  // workspace); read from the current set, so a reload rotates them.
  ingress_options.workspace_secret =
      [&workspaces, flag_secrets = ingress_options.secrets](
          const std::string& upstream, const std::string& workspace) -> absl::StatusOr<std::string> {
    const std::shared_ptr<const gateway::service::WorkspaceSet> set = workspaces.Current();
    const std::string name = workspace.empty() ? gateway::service::kDefaultWorkspace : workspace;
    auto flag = flag_secrets.find(upstream);
    const std::string fallback = flag != flag_secrets.end() ? flag->second : "";
    auto it = set->all().find(name);
    if (it == set->all().end()) {
      if (workspace.empty()) return fallback;  // no default workspace: the flags' secret
      return absl::NotFoundError(absl::StrCat("no workspace \"", workspace, "\""));
    }
    auto own = it->second.config.webhook_secrets.find(upstream);
    if (own != it->second.config.webhook_secrets.end()) return own->second;
    return name == gateway::service::kDefaultWorkspace ? fallback : std::string();
  };
  // An event invalidates in its own workspace's cache partition only.
  ingress_options.invalidate = [&workspaces](const std::string& upstream,
                                             const std::string& workspace,
                                             const std::vector<std::string>& tags,
                                             const std::vector<std::string>& aliases) {
    const std::shared_ptr<const gateway::service::WorkspaceSet> set = workspaces.Current();
    auto it = set->all().find(workspace.empty() ? gateway::service::kDefaultWorkspace : workspace);
    if (it != set->all().end()) it->second.dispatcher->InvalidateTags(upstream, tags, aliases);
  };
  auto ingress = gateway::events::WebhookIngress::Create(ingress_options, event_log.get());
  if (!ingress.ok()) return StartupError(ingress.status().message());
  gateway::events::EventService event_service(
      event_log.get(),
      {.authorize = [&auth](grpc::CallbackServerContext* context,
                            const std::string& rpc) -> absl::Status {
         if (!auth.has_value()) return absl::OkStatus();
         auto it = context->client_metadata().find("authorization");
         const std::string value =
             it == context->client_metadata().end() ? "" : std::string(it->second.data(),
                                                                       it->second.size());
         auto caller = auth->CheckRpc(value, rpc);
         return caller.ok() ? absl::OkStatus() : caller.status();
       },
       // Subscribe's workspaces: configured ones, within the caller's allowlist; none named
       // means every workspace the caller may use.
       .workspaces = [&auth, &workspaces](grpc::CallbackServerContext* context,
                                          const std::vector<std::string>& requested)
           -> absl::StatusOr<std::vector<std::string>> {
         const std::shared_ptr<const gateway::service::WorkspaceSet> set = workspaces.Current();
         for (const std::string& name : requested) {
           if (auto ws = set->Select(name, /*present=*/true); !ws.ok()) return ws.status();
         }
         if (!auth.has_value()) return requested;
         auto it = context->client_metadata().find("authorization");
         const std::string value =
             it == context->client_metadata().end() ? "" : std::string(it->second.data(),
                                                                       it->second.size());
         auto caller = auth->CheckRpc(value, "/gateway.v1.EventService/Subscribe");
         if (!caller.ok()) return caller.status();
         for (const std::string& name : requested) {
           if (absl::Status s = auth->CheckWorkspace(*caller, name); !s.ok()) return s;
         }
         if (!requested.empty()) return requested;
         std::vector<std::string> allowed;
         absl::Status refused;
         for (const std::string& name : set->Names()) {
           absl::Status s = auth->CheckWorkspace(*caller, name);
           if (s.ok()) {
             allowed.push_back(name);
           } else if (refused.ok()) {
             refused = s;
           }
         }
         // A caller's events are those of the workspaces it may use now (never "all", which
         // would include workspaces it is not allowed).
         if (allowed.empty()) {
           return refused.ok() ? absl::PermissionDeniedError("no workspace is configured")
                               : refused;
         }
         return allowed;
       },
       .visibility_timeout = absl::GetFlag(FLAGS_event_visibility_timeout)});
  metrics.AddCollector([&](gateway::service::MetricsWriter& out) {
    // Families exposed (HELP and TYPE) before their first series, so alerts on them
    // (k8s/monitoring) name metrics every gateway serves.
    constexpr char kReceivedHelp[] = "Webhook POSTs received.";
    constexpr char kStoredHelp[] = "Webhook events stored in the event log.";
    constexpr char kRejectedHelp[] = "Webhooks rejected, by reason.";
    constexpr char kDuplicatesHelp[] =
        "Webhook deliveries already stored (answered 200, nothing stored).";
    constexpr char kUnknownHelp[] = "Events of types the protos do not know (kept as UnknownEvent).";
    constexpr char kDeliveredHelp[] = "Events written to Subscribe streams.";
    constexpr char kLagHelp[] = "Retained events not yet delivered to the group.";
    constexpr char kPendingHelp[] = "Events delivered to the group, not acknowledged.";
    constexpr char kExpiredHelp[] =
        "Events delivered to a member of the group, never acknowledged, and trimmed by "
        "retention before they could be redelivered (lost to the group; counted by the replica "
        "that found them).";
    using prometheus::MetricType;
    for (const auto& [name, type, help] :
         {std::tuple<const char*, MetricType, const char*>{"gateway_webhooks_received_total",
                                                           MetricType::Counter, kReceivedHelp},
          {"gateway_webhooks_stored_total", MetricType::Counter, kStoredHelp},
          {"gateway_webhooks_rejected_total", MetricType::Counter, kRejectedHelp},
          {"gateway_webhooks_duplicates_total", MetricType::Counter, kDuplicatesHelp},
          {"gateway_webhooks_unknown_events_total", MetricType::Counter, kUnknownHelp},
          {"gateway_events_delivered_total", MetricType::Counter, kDeliveredHelp},
          {"gateway_event_group_lag", MetricType::Gauge, kLagHelp},
          {"gateway_event_group_pending", MetricType::Gauge, kPendingHelp},
          {"gateway_event_group_expired_unacked_total", MetricType::Counter, kExpiredHelp}}) {
      out.Declare(name, type, help);
    }
    const gateway::events::WebhookIngress::Counters w = (*ingress)->counters();
    for (const auto& [upstream, n] : w.received) {
      out.Counter("gateway_webhooks_received_total", kReceivedHelp, {{"upstream", upstream}}, n);
    }
    for (const auto& [upstream, n] : w.stored) {
      out.Counter("gateway_webhooks_stored_total", kStoredHelp, {{"upstream", upstream}}, n);
    }
    for (const auto& [key, n] : w.rejected) {
      out.Counter("gateway_webhooks_rejected_total", kRejectedHelp,
                  {{"upstream", key.first}, {"reason", key.second}}, n);
    }
    for (const auto& [upstream, n] : w.duplicates) {
      out.Counter("gateway_webhooks_duplicates_total", kDuplicatesHelp, {{"upstream", upstream}},
                  n);
    }
    for (const auto& [key, n] : w.unknown) {
      out.Counter("gateway_webhooks_unknown_events_total", kUnknownHelp,
                  {{"upstream", key.first}, {"type", key.second}}, n);
    }
    const gateway::events::EventService::Counters e = event_service.counters();
    for (const auto& [group, n] : e.delivered) {
      out.Counter("gateway_events_delivered_total", kDeliveredHelp, {{"group", group}}, n);
    }
    out.Gauge("gateway_event_streams", "Open Subscribe streams.", {}, e.streams);
    out.Gauge("gateway_event_buffered_bytes",
              "Event payload bytes Subscribe streams hold (read from the log, not yet written).",
              {}, e.buffered_bytes);
    out.Gauge("gateway_event_stream_buffered_bytes_peak",
              "The most event payload bytes one Subscribe stream held at once since start.", {},
              e.peak_stream_buffered_bytes);
    for (const gateway::events::GroupInfo& g : event_log->Groups()) {
      out.Gauge("gateway_event_group_lag", kLagHelp, {{"group", g.name}}, g.lag);
      out.Gauge("gateway_event_group_pending", kPendingHelp, {{"group", g.name}}, g.pending);
      out.Counter("gateway_event_group_expired_unacked_total", kExpiredHelp, {{"group", g.name}},
                  g.expired_unacked);
    }
  });

  // Reloading without a restart: the callers file (and the token files it names) on SIGHUP and
  // when their content changes. A rejected file is logged and counted, and the previous callers
  // keep serving; readiness does not change.
  gateway::service::Reloader reloader(
      {.poll_interval = absl::GetFlag(FLAGS_reload_poll_interval), .log = stderr});
  // The workspaces (tokens, base URLs, accounts, rates) from --config, --workspaces_file and the
  // token files they name. Everything else in the config needs a restart: it is compared and a
  // difference is logged, not applied.
  gateway::v1::Config running = config->effective;
  running.clear_workspaces();
  reloader.Add({.name = "workspaces",
                .files = config->source_files,
                .reload = [&, sources](std::vector<std::string>* files_out) -> absl::Status {
                  auto next = gateway::service::LoadConfig(sources);
                  if (!next.ok()) return next.status();
                  *files_out = next->source_files;
                  auto same = [](const gateway::service::RouteOverride& a,
                                 const gateway::service::RouteOverride& b) {
                    return a.method == b.method && a.path == b.path && a.body == b.body &&
                           a.response_body == b.response_body && a.bucket == b.bucket &&
                           a.cache_ttl_seconds == b.cache_ttl_seconds;
                  };
                  bool routes_changed = next->routes.size() != overrides_in_force.size();
                  for (const auto& [rpc, o] : next->routes) {
                    auto it = overrides_in_force.find(rpc);
                    if (it == overrides_in_force.end() || !same(o, it->second)) routes_changed = true;
                  }
                  std::unique_ptr<gateway::service::DialectRoutes> new_routes;
                  if (routes_changed) {
                    auto built = gateway::service::DialectRoutes::Build(next->routes);
                    if (!built.ok()) return built.status();
                    new_routes = *std::move(built);
                  }
                  const gateway::service::DialectRoutes* tables =
                      new_routes != nullptr ? new_routes.get() : route_generations.back().get();
                  std::vector<gateway::service::BucketUse> uses;
                  for (const auto& route : tables->For({}, next->dialects)->routes()) {
                    uses.push_back({route->rpc, absl::StrCat(route->binding.upstream(), "/",
                                                             route->policy.bucket())});
                  }
                  if (absl::Status s = gateway::service::CheckBucketRates(*next, uses); !s.ok()) {
                    return s;
                  }
                  if (auth.has_value()) {
                    // The callers file must not name a workspace that is going away.
                    std::vector<std::string> names;
                    for (const auto& [name, ws] : next->workspaces) names.push_back(name);
                    auto callers = gateway::service::CallerAuth::Load(
                        absl::GetFlag(FLAGS_callers_file), *routes, &names);
                    if (!callers.ok()) return callers.status();
                  }
                  gateway::v1::Config other = next->effective;
                  other.clear_workspaces();
                  // Top-level rates, dialects, route overrides and the default workspace's
                  // credentials are applied; the rest (listen, Redis, cache size, ...) only at
                  // the next start.
                  other.mutable_rate_limits()->clear_buckets();
                  other.clear_routes();
                  gateway::v1::Config base = running;
                  base.mutable_rate_limits()->clear_buckets();
                  base.clear_routes();
                  for (gateway::v1::Config* c : {&other, &base}) {
                    for (gateway::v1::Upstream* up : {c->mutable_upstreams()->mutable_respondio(),
                                                      c->mutable_upstreams()->mutable_chatwoot()}) {
                      up->clear_token_file();
                      up->clear_base_url();
                      up->clear_default_account_id();
                      up->clear_dialect();  // applied: each workspace's routes follow it
                    }
                  }
                  if (other.SerializeAsString() != base.SerializeAsString()) {
                    std::cerr << "gateway: the new configuration also changes settings that "
                                 "apply only at start-up (listen, redis_url, cache, limiter "
                                 "settings); they are not applied until a restart"
                              << std::endl;
                  }
                  if (new_routes != nullptr) {
                    route_generations.push_back(std::move(new_routes));
                    overrides_in_force = next->routes;
                  }
                  workspaces.Replace(gateway::service::WorkspaceSet::Build(
                      *next, components, workspaces.Current().get(), &metrics,
                      route_generations.back().get()));
                  return absl::OkStatus();
                }});
  if (auth.has_value()) {
    const std::string callers_file = absl::GetFlag(FLAGS_callers_file);
    std::vector<std::string> files = {callers_file};
    for (const std::string& f : auth->TokenFiles()) files.push_back(f);
    reloader.Add({.name = "callers",
                  .files = files,
                  .reload = [&auth, &routes, &workspaces,
                             callers_file](std::vector<std::string>* files_out) {
                    const std::vector<std::string> names = workspaces.Current()->Names();
                    auto loaded = gateway::service::CallerAuth::Load(callers_file, *routes, &names);
                    if (!loaded.ok()) return loaded.status();
                    auth->Replace(*loaded);
                    *files_out = {callers_file};
                    for (const std::string& f : loaded->TokenFiles()) files_out->push_back(f);
                    return absl::OkStatus();
                  }});
  }
  metrics.AddCollector([&reloader](gateway::service::MetricsWriter& out) {
    for (const auto& [source, c] : reloader.counters()) {
      out.Counter("gateway_config_reloads_total",
                  "Reloads of a configuration source (callers, workspaces) on SIGHUP or a file "
                  "change, by result: applied, or rejected (invalid; the previous one keeps "
                  "serving).",
                  {{"source", source}, {"result", "applied"}}, c.applied);
      out.Counter("gateway_config_reloads_total",
                  "Reloads of a configuration source (callers, workspaces) on SIGHUP or a file "
                  "change, by result: applied, or rejected (invalid; the previous one keeps "
                  "serving).",
                  {{"source", source}, {"result", "rejected"}}, c.rejected);
      out.Gauge("gateway_config_last_reload_success",
                "1 when the latest reload of the configuration source succeeded (or none was "
                "tried since start), 0 while its latest reload was rejected and the previous "
                "configuration keeps serving: alert on 0.",
                {{"source", source}}, c.last_succeeded ? 1 : 0);
    }
  });

  // Readiness: the configuration is loaded (or we would have exited). Components that can be
  // unreachable (Redis) add hooks here: health.AddCheck("redis", [&] { return ...; });
  gateway::service::HealthMonitor health({});
  metrics.AddCollector([&health](gateway::service::MetricsWriter& out) {
    out.Gauge("gateway_ready", "1 while /readyz reports ready, else 0.", {},
              health.Evaluate().first ? 1 : 0);
  });
  health.AddCheck("config", [] { return true; });
  if (redis != nullptr) {
    // Ready while the shared limiter state is reachable; the limiter keeps serving from its
    // bounded local fallback meanwhile, but this replica should not take new traffic.
    health.AddCheck("redis", [&limiter] { return limiter.redis_healthy(); });
  }

  gateway::service::GatewayService service(
      &*routes, &workspaces,
      {.default_deadline = config->default_deadline,
       .auth = auth.has_value() ? &*auth : nullptr,
       .on_call_done = [&metrics, &call_log, log_calls](
                           const gateway::service::CallRecord& record) {
         metrics.RecordCall(record);
         if (log_calls) call_log.Write(record);
       },
       // Only the call log reads the trace ids of calls that stay in the gateway.
       .record_trace_ids = log_calls});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config->listen, *credentials, &port);
  builder.RegisterService((*reflection)->v1());
  builder.RegisterService((*reflection)->v1alpha());
  builder.RegisterService(&event_service);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return StartupError(absl::StrCat("cannot listen on ", config->listen,
                                     absl::GetFlag(FLAGS_tls_cert_file).empty()
                                         ? ""
                                         : " (or the TLS certificate and key do not match)"));
  }
  health.Start(server->GetHealthCheckService(), routes->ServiceNames());

  // The status page samples the counters once a second while the admin listener runs; it is
  // declared before `admin` so the listener stops first.
  gateway::service::StatusPage status_page([&metrics] { return metrics.Collect(); });
  std::unique_ptr<gateway::service::AdminServer> admin;
  if (!admin_listen.empty()) {
    status_page.Start();
    auto started = gateway::service::AdminServer::Start(
        admin_listen, {.metrics = [&metrics] { return metrics.Render(); },
                       .ready = [&health] { return health.Evaluate(); },
                       .status_page = [&status_page] { return status_page.Render(); },
                       .drift = [&drift] { return drift.ToJson(); }});
    if (!started.ok()) {
      server->Shutdown();
      return StartupError(started.status().message());
    }
    admin = *std::move(started);
    const std::string admin_host = admin_listen.substr(0, admin_listen.rfind(':'));
    std::cout << "admin listening on " << admin_host << ":" << admin->port() << std::endl;
  }
  reloader.Start();
  std::unique_ptr<gateway::events::WebhookServer> webhooks;
  if (const std::string listen = absl::GetFlag(FLAGS_webhook_listen); !listen.empty()) {
    auto started = gateway::events::WebhookServer::Start(
        listen, ingress_options.allow_unsigned, ingress->get());
    if (!started.ok()) {
      server->Shutdown();
      return StartupError(started.status().message());
    }
    webhooks = *std::move(started);
    std::cout << "webhooks listening on " << listen.substr(0, listen.rfind(':')) << ":"
              << webhooks->port() << std::endl;
  } else if (ingress_options.allow_unsigned) {
    server->Shutdown();
    return StartupError("--webhook_allow_unsigned needs --webhook_listen");
  }
  const std::string host = config->listen.substr(0, config->listen.rfind(':'));
  std::cout << "gateway listening on " << host << ":" << port << " (" << routes->routes().size()
            << " RPCs)" << std::endl;

  int signal_number = 0;
  while (sigwait(&termination, &signal_number) == 0 && signal_number == SIGHUP) {
    std::cout << "gateway: SIGHUP received, reloading" << std::endl;
    reloader.ReloadAll();
  }
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  std::cout << "gateway: " << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
            << " received, draining (grace " << absl::FormatDuration(grace) << ")" << std::endl;
  reloader.Stop();
  health.SetDraining();
  absl::SleepFor(absl::GetFlag(FLAGS_drain_delay));
  // Webhooks are refused from here on (the upstream retries, or Chatwoot's one attempt fails
  // rather than being answered 2xx without being stored).
  if (webhooks != nullptr) webhooks->Stop();
  // Calls still waiting on upstream work shortly before the grace ends are answered UNAVAILABLE
  // SHUTTING_DOWN by the pipeline (queued ones before their request exists, marked not_sent),
  // so none is answered by the server's cancellation and then sent anyway; the margin lets those
  // answers reach the callers before the server cancels what is left.
  const absl::Time grace_end = absl::Now() + grace;
  for (const auto& installed : workspaces.AllDispatchers()) {
    installed.dispatcher->Shutdown(grace_end - std::min(grace / 5, absl::Seconds(1)));
  }
  // Should anything still hold the process after the grace, do not let it linger.
  std::thread([grace] {
    absl::SleepFor(grace + absl::Seconds(5));
    std::cout << "gateway: in-flight calls did not finish after the grace; exiting" << std::endl;
    std::_Exit(0);
  }).detach();
  server->Shutdown(absl::ToChronoTime(grace_end));
  server->Wait();
  health.Stop();
  if (admin != nullptr) admin->Stop();
  std::cout << "gateway: stopped" << std::endl;
  return 0;
}
