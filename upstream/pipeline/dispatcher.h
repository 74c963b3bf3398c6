// The generic upstream call: one compiled Route + one request message -> serialized reply bytes,
// spending the shared upstream budget carefully.
//
//   Dispatcher dispatcher(upstreams, {.http = &http, .scheduler = &timers, .limiter = &limiter,
//                                     .cache = &cache, .idempotency = &requests}, options);
//   dispatcher.Call(route, request, {.deadline = deadline, .caller = "billing"},
//                   [](absl::StatusOr<std::string> reply) { ... });
//
// One call's journey:
//   validate (before any budget is spent) -> expand path/query/body and the page token
//   -> writes with request_id: idempotency store (replay a recorded result, or wait for the
//      first call still in flight, on this or another replica)
//   -> reads: cache (a hit is a copy of stored reply bytes) -> join an identical read in flight
//   -> rate limiter: wait for a token, up to the deadline minus the expected upstream latency
//   -> HTTP over the shared keep-alive client, timeout = the caller's remaining deadline
//   -> upstream feedback to the limiter (429 Retry-After pauses the bucket, X-RateLimit-Remaining)
//   -> retry with exponential backoff and jitter when safe (reads: 429, 449, 502, 503, 504,
//      connection failures; writes: only 429 and 449, which mean "not processed"), within the
//      deadline
//   -> decode JSON into the reply; store it (reads) or invalidate what the write changed
//   -> record the outcome for request_id; answer every coalesced caller.
// No thread waits: each step continues from a callback (HTTP, Redis, timer threads).
//
// Thread-safe. The Dispatcher and its components must outlive every call's `done`.
#ifndef GATEWAY_UPSTREAM_DISPATCHER_H_
#define GATEWAY_UPSTREAM_DISPATCHER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "upstream/transport/http_transport.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/budget/response_cache.h"
#include "upstream/binding/route.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {

// How the gateway reaches one upstream. `token` is a secret: never logged or returned.
struct UpstreamConfig {
  std::string name;      // "respondio", "chatwoot"
  std::string base_url;  // without trailing '/', e.g. "https://api.respond.io/v2"
  std::string token;
  // Header that carries the token: "Authorization" sends "Bearer <token>"; any other header
  // name (Chatwoot's "api_access_token") sends the bare token.
  std::string auth_header = "Authorization";
  PathDefaults path_defaults;  // e.g. {"account_id": "1"}
  // Whose budget the rate limits count: respond.io limits per organization (its token),
  // Chatwoot per client IP (all tokens behind one egress share it).
  enum class LimitScope { kToken, kHost };
  LimitScope limit_scope = LimitScope::kToken;
  // Largest response body accepted from this upstream, in bytes (config key
  // upstreams.<name>.max_response_bytes); 0 means the HTTP client's default, 8 MiB. A larger
  // reply is INTERNAL UPSTREAM_RESPONSE_TOO_LARGE, read no further and never cached.
  int64_t max_response_bytes = 0;
};

// What happened on the way to the reply, for the per-call log and metrics. Filled before
// `done` runs; owned by the caller and kept alive until then.
struct CallStats {
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none arrived
  bool cache_hit = false;   // answered from the reply cache
  // Time spent waiting for rate-limit admission (summed over attempts); `limited` says whether
  // the call asked the limiter at all (a cache hit does not).
  absl::Duration queue_wait;
  bool limited = false;
  // Time from handing the last HTTP request to the transport to its outcome; 0 when none was sent.
  absl::Duration upstream_latency;
};

struct CallOptions {
  absl::Time deadline = absl::InfiniteFuture();
  // Who is calling: the authenticated caller's name (or the `x-caller` metadata when the gateway
  // runs without caller authentication); "" when unknown. The rate limiter's fairness class.
  std::string caller;
  // Skip the cache (metadata `cache-control: no-cache`): neither read nor joined to an identical
  // read in flight; the reply is not stored either.
  bool bypass_cache = false;
  // Optional; see CallStats.
  CallStats* stats = nullptr;
  // Headers copied into every upstream request of the call: the W3C trace context
  // (`traceparent`, `tracestate`; service/trace_context.h).
  std::vector<std::pair<std::string, std::string>> trace_headers;
};

struct RetryPolicy {
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

class Dispatcher {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  // Collaborators. `http` and `scheduler` are required; the others may be null (no limiting,
  // no caching, no idempotency records).
  struct Components {
    HttpTransport* http = nullptr;
    Scheduler* scheduler = nullptr;
    RateLimiter* limiter = nullptr;
    ResponseCache* cache = nullptr;
    IdempotencyStore* idempotency = nullptr;
  };
  struct Options {
    RetryPolicy retry;
    // Bucket rates by "upstream/bucket" (e.g. "respondio/contact_get").
    absl::flat_hash_map<std::string, BucketConfig> buckets;
    BucketConfig default_bucket;  // buckets not listed (5 per second, as respond.io's guide says)
  };

  // Counters of the dispatcher itself (the limiter, cache and store count their own).
  struct Counters {
    int64_t calls = 0;
    int64_t upstream_requests = 0;
    int64_t retries = 0;
    int64_t coalesced = 0;
    int64_t idempotent_replays = 0;
  };

  Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams, Components components,
             Options options = {});
  ~Dispatcher();

  // Serves one call. `request` is only read during Call(). Errors: INVALID_ARGUMENT (validation,
  // page token), FAILED_PRECONDITION (the RPC's upstream is not configured), RESOURCE_EXHAUSTED
  // (no token before the deadline), DEADLINE_EXCEEDED, and the upstream error model
  // (error_mapping.h).
  void Call(const Route& route, const google::protobuf::Message& request,
            const CallOptions& options, Done done) const;

  // Whether `upstream` is configured (has a base URL).
  bool HasUpstream(absl::string_view upstream) const;

  Counters counters() const;

  // Rate-limit bucket keys ("upstream:account:bucket") that have asked the limiter for a token,
  // sorted; for per-bucket limiter metrics (RateLimiter::counters).
  std::vector<std::string> BucketKeys() const;

  struct CallState;  // one call in flight (dispatcher.cc)

 private:
  void Start(std::shared_ptr<CallState> call) const;
  void LookupThenRun(std::shared_ptr<CallState> call) const;
  void JoinOrLead(std::shared_ptr<CallState> call) const;
  void Attempt(std::shared_ptr<CallState> call) const;
  void Send(std::shared_ptr<CallState> call) const;
  void OnResponse(std::shared_ptr<CallState> call, absl::StatusOr<HttpResponse> response) const;
  void Finish(std::shared_ptr<CallState> call, absl::StatusOr<std::string> result) const;
  absl::Duration ExpectedLatency(const std::string& bucket_key) const;
  void RecordLatency(const std::string& bucket_key, absl::Duration elapsed) const;

  absl::flat_hash_map<std::string, UpstreamConfig> upstreams_;
  absl::flat_hash_map<std::string, std::string> limit_accounts_;  // upstream -> limiter scope
  absl::flat_hash_map<std::string, std::string> cache_accounts_;  // upstream -> cache partition
  Components components_;
  Options options_;

  mutable absl::Mutex mu_;
  // Identical reads in flight: cache key -> callers waiting for the leader's result.
  mutable absl::flat_hash_map<std::string, std::vector<Done>> flights_ ABSL_GUARDED_BY(mu_);
  // Exponentially weighted upstream latency per bucket key.
  mutable absl::flat_hash_map<std::string, absl::Duration> latency_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_set<std::string> bucket_keys_ ABSL_GUARDED_BY(mu_);

  mutable std::atomic<int64_t> calls_{0};
  mutable std::atomic<int64_t> upstream_requests_{0};
  mutable std::atomic<int64_t> retries_{0};
  mutable std::atomic<int64_t> coalesced_{0};
  mutable std::atomic<int64_t> idempotent_replays_{0};
};

// Decodes a 2xx upstream `body` into a serialized reply of `route` (exposed for tests).
// `cursor` is the current page's cursor. Errors: INTERNAL when the body is not JSON of the
// reply's shape.
absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body);

// Deterministic serialization of `message` (map order fixed), for cache keys and fingerprints.
std::string DeterministicBytes(const google::protobuf::Message& message);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_DISPATCHER_H_
