// Gateway configuration: flags, environment and an optional config file, merged and checked
// once at start-up (and again on reload). Anything invalid is an error naming the problem, never
// a crash later.
//
// The file is the JSON form of the proto `gateway.v1.Config` (proto/gateway/v1/config.proto
// documents every field), read with protobuf's JSON parser: an unknown key is an error naming
// its path (`workspaces.acme.respondio: unknown key 'token_fil'`), a mistyped value names the
// field. Precedence, highest first: command-line flags, environment (RESPONDIO_API_TOKEN,
// CHATWOOT_API_TOKEN), the --config file, the built-in defaults (service/default_config.json:
// the sandbox at http://127.0.0.1:8081, respond.io's per-endpoint rate table, Chatwoot's 50/s).
//
//   ConfigSources sources{.config_file = "/etc/gateway/config.json"};
//   absl::StatusOr<GatewayConfig> config = LoadConfig(sources);
//   std::cout << PrintConfig(*config);                 // --print_config: secrets redacted
//
// Route overrides take `binding` (method, path, body, response_body) and `policy` (bucket,
// cache_ttl_seconds); the flat form of earlier versions ({"method": ..., "cache_ttl_seconds":
// ...}) still parses to the same override.
#ifndef GATEWAY_SERVICE_CONFIG_H_
#define GATEWAY_SERVICE_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/v1/config.pb.h"
#include "upstream/pipeline/dispatcher.h"

namespace gateway::service {

// A configured change to one RPC's binding or policy. Unset fields keep the proto's value.
struct RouteOverride {
  std::optional<std::string> method;
  std::optional<std::string> path;
  std::optional<std::string> body;
  std::optional<std::string> response_body;
  std::optional<std::string> bucket;
  std::optional<int> cache_ttl_seconds;
};

// Rate of one upstream budget, before the headroom is applied.
struct BucketRate {
  double rate_per_second = 0;
  int burst = 0;
};

// One workspace: the upstream accounts it calls and the rates of its budgets.
struct WorkspaceConfig {
  std::string name;
  // Keyed by upstream name; only the upstreams the workspace configures (base URL and token
  // resolved). An upstream missing here answers FAILED_PRECONDITION UPSTREAM_NOT_CONFIGURED.
  absl::flat_hash_map<std::string, upstream::UpstreamConfig> upstreams;
  // The full rate table of this workspace ("upstream/bucket"): the top-level rates with the
  // workspace's own entries on top.
  absl::flat_hash_map<std::string, BucketRate> buckets;
  // The dialect this workspace speaks to each upstream ("live" or "openapi"): its own
  // `workspaces.<name>.<upstream>.dialect`, else the top-level one (GatewayConfig::dialects).
  // Only the upstreams the workspace configures; the others speak the top-level dialects.
  absl::flat_hash_map<std::string, std::string> dialects;
  // Webhook secrets by upstream name (`workspaces.<name>.<upstream>.webhook_secret_file`, read
  // at load and on reload); only the upstreams that set one. A secret: never logged.
  absl::flat_hash_map<std::string, std::string> webhook_secrets;
};

// The name of the workspace a call without `x-workspace` uses.
inline constexpr char kDefaultWorkspace[] = "default";

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";
  // Shared state across replicas (rate limits, cache, idempotency records); "" = in-process.
  std::string redis_url;
  // Upstream budgets by "upstream/bucket" (top level; workspaces may override). Every bucket a
  // route names must have a rate here (CheckBucketRates).
  absl::flat_hash_map<std::string, BucketRate> buckets;
  // Fraction of each budget the gateway plans to use. Upstreams count requests in sliding
  // windows on arrival, so a schedule at exactly the limit trips 429s on the slightest jitter
  // between the planned and the real arrival. Slots are reserved ahead and sent from a local
  // timer (not after a Redis round trip), so that jitter is small: 0.98 keeps ~20 ms of slack
  // over every run of `rate` calls (at any rate) while using 98% of the budget.
  double rate_headroom = 0.98;
  // Share of each budget one replica may use while Redis is unreachable: a little under
  // 1/replicas, because each replica's own even schedule can fit one call more than its rate
  // into a sliding second (0.3 keeps three replicas at <= 9 calls per second of a 10/s limit).
  double redis_fallback_share = 0.3;
  // Longest a call waits in the limiter's queue, whatever its deadline (bounds the queue of
  // calls without a deadline).
  absl::Duration max_queue_wait = absl::Seconds(30);
  // Longest the upstream's feedback (Retry-After, X-RateLimit-*) may hold a bucket: a hostile or
  // buggy header must not stop a bucket for years.
  absl::Duration max_pause = absl::Seconds(300);
  // Bytes of reply cache per replica.
  int64_t cache_max_bytes = 64 << 20;
  absl::Duration default_deadline = absl::Seconds(30);
  // The upstreams of the workspace `default` (or, when there is none, the top-level settings
  // without credentials), keyed by upstream name; an upstream without base_url is not
  // configured.
  absl::flat_hash_map<std::string, upstream::UpstreamConfig> upstreams;
  // Keyed by "/package.Service/Method".
  absl::flat_hash_map<std::string, RouteOverride> routes;
  // The dialect each upstream speaks ("live" or "openapi"), from --<name>_dialect or
  // upstreams.<name>.dialect; "live" by default.
  absl::flat_hash_map<std::string, std::string> dialects = {{"respondio", "live"},
                                                            {"chatwoot", "live"}};
  // Every workspace by name (sorted); contains kDefaultWorkspace unless the file lists
  // workspaces without one.
  std::map<std::string, WorkspaceConfig> workspaces;
  // The effective configuration as the proto (defaults, file and flags merged; tokens are not
  // in it, only their files), for --print_config.
  gateway::v1::Config effective;
  // Every file this configuration was read from: --config, --workspaces_file and the token
  // files read. A change of any of them is a reason to reload.
  std::vector<std::string> source_files;
};

// Inputs that do not come from the file.
struct ConfigSources {
  std::string config_file;  // --config; "" for none
  // --workspaces_file: a gateway.v1.Config JSON that sets only `workspaces`, merged over the
  // --config file's (an entry of the same name replaces it). Kept apart so that a Kubernetes
  // ConfigMap of workspaces can change, and reload, without a rollout. "" for none.
  std::string workspaces_file;
  // Flag values; "" means "not given on the command line".
  std::string listen;
  std::string respondio_base_url;
  std::string respondio_token_file;
  std::string chatwoot_base_url;
  std::string chatwoot_token_file;
  int64_t chatwoot_account_id = 0;
  std::string redis_url;
  std::string respondio_dialect;  // --respondio_dialect
  std::string chatwoot_dialect;   // --chatwoot_dialect
  int64_t cache_max_bytes = -1;   // --cache_max_bytes; -1 = not given
  // Environment tokens ("" when unset).
  std::string respondio_token_env;
  std::string chatwoot_token_env;
  // False for --check_config and --print_config: tokens are neither read nor required (CI and
  // admission webhooks do not have the Secrets; flags or the environment may supply them).
  bool read_secrets = true;
};

// The sandbox the built-in defaults point at, and the token it accepts by default.
inline constexpr char kSandboxRespondioUrl[] = "http://127.0.0.1:8081";
inline constexpr char kSandboxChatwootUrl[] = "http://127.0.0.1:8081";
inline constexpr char kSandboxToken[] = "sandbox-token";

// Merges the sources. Errors (INVALID_ARGUMENT, naming the file, key path or flag): unreadable
// file, malformed JSON, unknown keys, mistyped or out-of-range values, a token file that cannot
// be read or is empty, a base URL that is not http(s), a remote upstream without a token, a bad
// workspace name or workspace upstream.
absl::StatusOr<GatewayConfig> LoadConfig(const ConfigSources& sources);

// Parses the JSON text of a config file (exposed for tests and reload). `origin` prefixes every
// error. Route overrides are returned apart because which fields a file sets (cache_ttl_seconds
// 0 included) is more than the proto records.
struct ParsedConfig {
  gateway::v1::Config proto;
  absl::flat_hash_map<std::string, RouteOverride> routes;  // by "/package.Service/Method"
};
absl::StatusOr<ParsedConfig> ParseConfigJson(absl::string_view text, absl::string_view origin);

// The effective configuration as pretty JSON (gateway.v1.Config), for --print_config: token
// values never appear (only token_file paths), and passwords in URLs (redis://:secret@host)
// are replaced by [REDACTED].
std::string PrintConfig(const GatewayConfig& config);

// One RPC's budget, for CheckBucketRates.
struct BucketUse {
  std::string rpc;  // "/package.Service/Method"
  std::string key;  // "upstream/bucket"
};

// A bucket some route names must have a rate (top level, or in every workspace that overrides
// it): otherwise INVALID_ARGUMENT naming the RPC and the bucket.
absl::Status CheckBucketRates(const GatewayConfig& config, const std::vector<BucketUse>& uses);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CONFIG_H_
