// The generic upstream call: one compiled Route + one request message -> serialized reply bytes,
// spending the shared upstream budget carefully.
//
//   Dispatcher dispatcher(upstreams, {.http = &http, .scheduler = &timers, .limiter = &limiter,
//                                     .cache = &cache, .idempotency = &requests}, options);
//   std::shared_ptr<Call> call = dispatcher.Call(
//       route, request, {.deadline = deadline, .caller = "billing"},
//       [](absl::StatusOr<std::string> reply) { ... });
//   call->Cancel(Call::CancelReason::kCallerLeft);   // e.g. from gRPC's OnCancel
//
// The dispatcher only wires the pipeline's named stages; each has its own header and contract:
//
//   prepare_stage.h    validate and prepare (before any budget is spent)
//   replay_stage.h     writes with request_id: replay a recorded result of the same caller, or
//                      wait for its first call still in flight (on this or another replica)
//   cache_stage.h      reads: the reply cache (a hit is a copy of stored bytes), else join an
//                      identical read in flight, else lead one (with Redis: across replicas)
//   admission_stage.h  the shared rate limiter: a token per attempt, upstream feedback
//   send_stage.h       the HTTP request over the shared transport, retries when safe
//   commit_stage.h     decode; store the reply or invalidate what a write changed; record the
//                      request_id's result
//
// One call is a Call (call.h: state, Cancel, ends exactly once); the upstream work it waits on
// is an Exchange (exchange.h: admission -> send -> retry -> commit, shared by coalesced reads).
// No thread waits: each step continues from a callback (HTTP, Redis, timer threads).
//
// Thread-safe. The components must outlive every call. LIFETIME: a Dispatcher owned by a
// shared_ptr is kept alive by every Call it returned until that Call is destroyed, which is
// after the last callback of the call and of its exchange (each holds the call), so its owner
// may drop it while calls are in flight (a reload retires a workspace's dispatcher this way;
// service/workspaces.h). One not owned by a shared_ptr must outlive every call.
#ifndef GATEWAY_UPSTREAM_DISPATCHER_H_
#define GATEWAY_UPSTREAM_DISPATCHER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "upstream/binding/route.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/admission_stage.h"
#include "upstream/pipeline/cache_stage.h"
#include "upstream/pipeline/call.h"
#include "upstream/pipeline/commit_stage.h"
#include "upstream/pipeline/exchange.h"
#include "upstream/pipeline/prepare_stage.h"
#include "upstream/pipeline/replay_stage.h"
#include "upstream/pipeline/send_stage.h"
#include "upstream/binding/drift_report.h"
#include "upstream/scheduler.h"
#include "upstream/transport/http_transport.h"
#include "upstream/transport/redis_client.h"

namespace gateway::upstream {

using CallPtr = std::shared_ptr<Call>;
using CallDone = Call::Done;

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
 public:
  using Done = CallDone;

  // Collaborators. `http` and `scheduler` are required; the others may be null (no limiting,
  // no caching, no idempotency records). The scheduler is the pipeline's one clock: deadlines
  // in CallOptions are times on it.
  struct Components {
    HttpTransport* http = nullptr;
    Scheduler* scheduler = nullptr;
    // Its max_pause (rate_limits.max_pause_seconds) caps every wait an upstream's header
    // imposes: the bucket's pause, the retry backoff and the RetryInfo from Retry-After.
    RateLimiter* limiter = nullptr;
    ResponseCache* cache = nullptr;
    IdempotencyStore* idempotency = nullptr;
    // Coalescing across replicas (cache_stage.h): identical cached reads on replicas sharing
    // this Redis wait for one leader's fill. Null: coalescing within this process only.
    RedisClient* redis = nullptr;
    // Lease of a cross-replica coalescing leader (CacheStage::Sharing::lease).
    absl::Duration coalescing_lease = absl::Seconds(2);
    DriftReport* drift = nullptr;  // where reply drift is recorded; nullptr: nowhere
  };
  struct Options {
    RetryPolicy retry;
    // Bucket rates by "upstream/bucket" (e.g. "respondio/contact_get").
    absl::flat_hash_map<std::string, BucketConfig> buckets;
    BucketConfig default_bucket;  // buckets not listed (5 per second, as respond.io's guide says)
  };

  // A snapshot of the pipeline's counters (the limiter, cache and store count their own).
  struct Counters {
    int64_t calls = 0;
    int64_t upstream_requests = 0;  // HTTP requests handed to the transport
    int64_t retries = 0;
    int64_t coalesced = 0;  // calls that joined an identical read in flight
    int64_t idempotent_replays = 0;
    int64_t cancelled = 0;          // calls ended by the caller leaving, its deadline or shutdown
    int64_t aborted_in_flight = 0;  // upstream requests cancelled after they were handed over
    CacheStage::Counters coalescing;  // within this replica and across replicas (cache_stage.h)
  };

  Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams, Components components,
             Options options = {});
  ~Dispatcher();

  // Serves one call; `done` runs exactly once (possibly before Call returns, e.g. a cache hit
  // or a validation error). `request` is only read during Call(). The returned Call may be
  // cancelled at any time (Call::Cancel). Errors: INVALID_ARGUMENT (validation, page token),
  // FAILED_PRECONDITION (the RPC's upstream is not configured), RESOURCE_EXHAUSTED (no token
  // before the deadline), DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE SHUTTING_DOWN, and the
  // upstream error model (error_mapping.h).
  CallPtr Call(const Route& route, const google::protobuf::Message& request,
               const CallOptions& options, Done done) const;

  // Shutdown: at `abort_at` (on the scheduler's clock) every call still waiting on upstream work
  // is ended with UNAVAILABLE, ErrorInfo SHUTTING_DOWN: a call whose request was never sent
  // (queued for a token, backing off) with metadata not_sent "true" and its request is never
  // created afterwards; one in flight is aborted (not_sent "false": a write may have been
  // processed). Calls that reach upstream work after `abort_at` end the same way at once.
  void Shutdown(absl::Time abort_at);

  // The hit fast path, before anything only a miss needs (parsing, validation, tags, the
  // upstream request): the cached reply of `route` for these serialized request bytes, shared
  // and immutable (write it without a copy), or null (then serve the call with Call()). A
  // cache-bypassing call must not ask. Counts as a call.
  std::shared_ptr<const std::string> CachedReply(const Route& route,
                                                 absl::string_view request_bytes) const;

  // Drops the cache entries of `upstream`'s account in this dispatcher's partition that carry
  // any of `tags` ∪ `aliases` (as a write of this dispatcher would; ResponseCache::Invalidate):
  // for events, which name the resources they changed. Entries of other partitions (other
  // workspaces) are untouched. No-op without a cache or for an upstream not configured here.
  void InvalidateTags(const std::string& upstream, const std::vector<std::string>& tags,
                      const std::vector<std::string>& aliases) const;

  Counters counters() const;

  // Rate-limit bucket keys ("upstream:account:bucket") that have asked the limiter for a token,
  // sorted.
  std::vector<std::string> BucketKeys() const;
  // The bucket key calls of `upstream` naming `bucket` use (PrepareStage::BucketKey), whether
  // or not one was made yet; nullopt when `upstream` is not configured here. For per-bucket
  // metrics from the configuration (RateLimiter::counters).
  std::optional<std::string> BucketKeyOf(const std::string& upstream,
                                         const std::string& bucket) const;

  // Exchanges not yet done (for tests).
  size_t live_exchanges() const { return registry_.size(); }

 private:
  void StartExchange(const CallPtr& call,
                     std::optional<ResponseCache::ReadTicket> ticket) const;

  const absl::flat_hash_map<std::string, UpstreamConfig> upstreams_;
  const Components components_;
  const PrepareStage prepare_;
  const ReplayStage replay_;
  mutable CacheStage cache_;
  mutable AdmissionStage admission_;
  const SendStage send_;
  const CommitStage commit_;
  mutable ExchangeRegistry registry_;
  mutable PipelineCounters counters_;
  ExchangeStages stages_;
};

// DecodeReply and DeterministicBytes: commit_stage.h, prepare_stage.h.

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_DISPATCHER_H_
