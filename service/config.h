// Gateway configuration: flags, environment and an optional JSON config file, merged and checked
// once at start-up. Anything invalid is an error naming the problem, never a crash later.
//
// Precedence, highest first: command-line flags, environment (RESPONDIO_API_TOKEN,
// CHATWOOT_API_TOKEN), the --config file, built-in defaults (respond.io at the bundled sandbox,
// http://127.0.0.1:8081, so `make run` works with no token).
//
// Config file (JSON; unknown keys are errors, so typos do not pass silently):
//
//   {
//     "listen": "127.0.0.1:8080",
//     "default_deadline_seconds": 30,
//     "upstreams": {
//       "respondio": {"base_url": "https://api.respond.io/v2", "token_file": "/run/secrets/respondio"},
//       "chatwoot":  {"base_url": "https://chatwoot.example.com", "token_file": "...",
//                     "default_account_id": 1, "max_response_bytes": 8388608}
//     },
//     "redis_url": "redis://redis:6379",
//     "rate_limits": {"headroom": 0.98, "redis_fallback_share": 0.3,
//                     "max_queue_wait_seconds": 30, "max_pause_seconds": 300,
//                     "buckets": {"respondio/contact_get": {"rate_per_second": 10, "burst": 0}}},
//     "cache": {"max_bytes": 67108864},
//     "routes": {
//       "respondio.v2.ContactService.ListContactChannels":
//           {"method": "GET", "path": "/contact/{identifier}/channels"}
//     }
//   }
//
// A route override may set method, path, body, response_body, bucket and cache_ttl_seconds;
// RPCs are named "package.Service.Method" or "/package.Service/Method".
#ifndef GATEWAY_SERVICE_CONFIG_H_
#define GATEWAY_SERVICE_CONFIG_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  double rate_per_second = 5;
  int burst = 0;
};

struct GatewayConfig {
  std::string listen = "127.0.0.1:8080";
  // Shared state across replicas (rate limits, cache, idempotency records); "" = in-process.
  std::string redis_url;
  // Upstream budgets by "upstream/bucket", from respond.io's guide (5/s where it is silent) and
  // Chatwoot's default 3000 requests per minute; the config file can change any of them.
  absl::flat_hash_map<std::string, BucketRate> buckets;
  // Buckets not listed above.
  BucketRate default_bucket;
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
  // Keyed by upstream name; an upstream without base_url is not configured.
  absl::flat_hash_map<std::string, upstream::UpstreamConfig> upstreams;
  // Keyed by "/package.Service/Method".
  absl::flat_hash_map<std::string, RouteOverride> routes;
};

// Inputs that do not come from the file.
struct ConfigSources {
  std::string config_file;  // --config; "" for none
  // Flag values; "" means "not given on the command line".
  std::string listen;
  std::string respondio_base_url;
  std::string respondio_token_file;
  std::string chatwoot_base_url;
  std::string chatwoot_token_file;
  int64_t chatwoot_account_id = 0;
  std::string redis_url;
  // Environment tokens ("" when unset).
  std::string respondio_token_env;
  std::string chatwoot_token_env;
};

// The sandbox the built-in defaults point at, and the token it accepts by default.
inline constexpr char kSandboxRespondioUrl[] = "http://127.0.0.1:8081";
inline constexpr char kSandboxChatwootUrl[] = "http://127.0.0.1:8081";
inline constexpr char kSandboxToken[] = "sandbox-token";

// Merges the sources. Errors (INVALID_ARGUMENT, naming the file/key/flag): unreadable file,
// malformed JSON, unknown keys, a token file that cannot be read or is empty, a base URL that is
// not http(s), a remote upstream without a token.
absl::StatusOr<GatewayConfig> LoadConfig(const ConfigSources& sources);

// Parses the JSON text of a config file into `config` (exposed for tests).
absl::Status ApplyConfigJson(absl::string_view text, absl::string_view origin,
                             GatewayConfig* config,
                             absl::flat_hash_map<std::string, std::string>* token_files);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CONFIG_H_
