// Stage 3, cache and coalescing: answer a read from the reply cache, else join an identical
// read in flight, else lead a new exchange that others may join — on this replica, and with
// Redis across replicas.
//
//   CacheStage cache(&response_cache, {.redis = &redis, .scheduler = &timers});  // both optional
//   cache.Lookup(prepared, [](std::optional<std::string> hit, ResponseCache::ReadTicket t) {});
//   auto [exchange, leads] = cache.JoinOrLead(call, [&] { return NewExchange(call, ticket); });
//   if (leads) cache.Begin(exchange, /*stored=*/ticket.has_value());
//
// CONTRACT.
// - Lookup: only for prepared.cached reads; a hit is a copy of the stored reply bytes; a miss
//   returns the ticket the reply must later be stored with (ResponseCache::Store).
// - JoinOrLead: for prepared.coalesced reads, joins the exchange in flight under the same cache
//   key (Exchange::Join), or creates one with `make` and registers it; not coalesced: always
//   `make`. A follower keeps its own deadline and can leave without ending the exchange.
// - Begin starts a leading exchange. Across replicas (Sharing.redis set, and the read's reply is
//   stored in the shared cache): the exchange first takes the key's lease in Redis (SET NX PX
//   Sharing.lease, key Sharing.key_prefix + cache key). Taken: it checks the cache once more
//   (a leader may just have released it after its fill) and sends its request. Held by another
//   replica: it waits (Exchange kWaitingForFill) and polls the shared cache, then the lease,
//   on the scheduler's timers with a backoff from 2 ms doubling to 50 ms: a fill answers
//   every local waiter without a request; a lease that lapsed (its leader died or is slower
//   than the lease) is taken and the request is sent here. Waiters keep their own deadlines
//   while waiting; no thread waits. Redis unreachable: the request is sent (no coalescing
//   across replicas, never a failed call). Otherwise Begin is Exchange::Start.
// - Remove: an exchange leaves the table when it ends (only if it is still the registered one),
//   after its commit; a lease it holds is released then (compare-and-delete on its token).
// Redis work per cross-replica wait: one GET of the cache entry and one SET NX per poll, for
// the exchange (all local waiters of the key share it), not per call.
// Thread-safe; one mutex, held while joining (lock order: this table, then the exchange).
#ifndef GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/call.h"
#include "upstream/scheduler.h"
#include "upstream/transport/redis_client.h"

namespace gateway::upstream {

class Exchange;

class CacheStage {
 public:
  // Coalescing across replicas; off when `redis` is null.
  struct Sharing {
    RedisClient* redis = nullptr;
    Scheduler* scheduler = nullptr;  // required with redis
    // How long a leader's lease lasts: followers on other replicas send their own request
    // after this when no fill came (the leader died, or its request outlasted the lease).
    absl::Duration lease = absl::Seconds(2);
    std::string key_prefix = "gw:coalesce:";
  };

  explicit CacheStage(ResponseCache* cache);
  CacheStage(ResponseCache* cache, Sharing sharing);

  void Lookup(const PreparedCall& prepared, ResponseCache::LookupCallback done) const {
    cache_->Lookup(prepared.cache_key, std::move(done));
  }

  // Returns the exchange `call` now waits on, and whether it was created by `make` (the caller
  // must Start it).
  std::pair<std::shared_ptr<Exchange>, bool> JoinOrLead(
      const std::shared_ptr<Call>& call, absl::FunctionRef<std::shared_ptr<Exchange>()> make)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Starts `exchange`, which `call` leads (JoinOrLead said so). `stored`: its reply will be
  // stored in the cache (a cached read with a miss ticket). See the contract.
  void Begin(const std::shared_ptr<Exchange>& exchange, bool stored) ABSL_LOCKS_EXCLUDED(mu_);

  void Remove(const std::string& cache_key, const Exchange* exchange) ABSL_LOCKS_EXCLUDED(mu_);

  size_t flights() const ABSL_LOCKS_EXCLUDED(mu_);

  // What coalescing did, counted where it happens (atomics: the hot path only increments);
  // /metrics shows them as gateway_coalescing_total{outcome} (service/component_metrics.h).
  struct Counters {
    int64_t joined = 0;             // calls that joined an identical read in flight here
    int64_t led = 0;                // exchanges that took the Redis lease at once: the leader
    int64_t followed = 0;           // exchanges that found another replica's lease and waited
    int64_t filled_by_replica = 0;  // waits answered by another replica's fill, no request
    int64_t took_over = 0;          // waits whose lease lapsed unfilled: took it, sent our own
    int64_t redis_errors = 0;       // lease commands that failed: sent our own (no coalescing)
  };
  Counters counters() const;
  // Exchanges answered by another replica's fill, and leases taken (led + took_over).
  int64_t remote_fills() const { return filled_by_replica_.load(std::memory_order_relaxed); }
  int64_t leases_taken() const {
    return led_.load(std::memory_order_relaxed) + took_over_.load(std::memory_order_relaxed);
  }

 private:
  struct Wait;
  void TryLease(std::shared_ptr<Wait> wait) ABSL_LOCKS_EXCLUDED(mu_);
  void Poll(std::shared_ptr<Wait> wait) ABSL_LOCKS_EXCLUDED(mu_);
  void OnLeaseTaken(std::shared_ptr<Wait> wait, std::shared_ptr<Exchange> exchange)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Release(const std::string& lease_key, const std::string& token);

  ResponseCache* cache_;
  const Sharing sharing_;
  const uint64_t token_base_;  // random per process: lease tokens never collide across replicas
  std::atomic<uint64_t> next_token_{0};
  std::atomic<int64_t> joined_{0};
  std::atomic<int64_t> led_{0};
  std::atomic<int64_t> followed_{0};
  std::atomic<int64_t> filled_by_replica_{0};
  std::atomic<int64_t> took_over_{0};
  std::atomic<int64_t> redis_errors_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<Exchange>> flights_ ABSL_GUARDED_BY(mu_);
  struct Lease {
    std::string key;
    std::string token;
  };
  // Leases this replica holds, by the exchange holding them.
  absl::flat_hash_map<const Exchange*, Lease> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_
