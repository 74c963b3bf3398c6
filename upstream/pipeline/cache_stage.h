// Stage 3, cache and coalescing: answer a read from the reply cache, else join an identical
// read in flight, else lead a new exchange that others may join.
//
//   CacheStage cache(&response_cache);          // may be null: no cache, coalescing still works
//   cache.Lookup(prepared, [](std::optional<std::string> hit, ResponseCache::ReadTicket t) {});
//   auto [exchange, leads] = cache.JoinOrLead(call, [&] { return NewExchange(call, ticket); });
//
// CONTRACT.
// - Lookup: only for prepared.cached reads; a hit is a copy of the stored reply bytes; a miss
//   returns the ticket the reply must later be stored with (ResponseCache::Store).
// - JoinOrLead: for prepared.coalesced reads, joins the exchange in flight under the same cache
//   key (Exchange::Join), or creates one with `make` and registers it; not coalesced: always
//   `make`. A follower keeps its own deadline and can leave without ending the exchange.
// - Remove: an exchange leaves the table when it ends (only if it is still the registered one).
// Thread-safe; one mutex, held while joining (lock order: this table, then the exchange).
#ifndef GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_

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

namespace gateway::upstream {

class Exchange;

class CacheStage {
 public:
  explicit CacheStage(ResponseCache* cache) : cache_(cache) {}

  void Lookup(const PreparedCall& prepared, ResponseCache::LookupCallback done) const {
    cache_->Lookup(prepared.cache_key, std::move(done));
  }

  // Returns the exchange `call` now waits on, and whether it was created by `make` (the caller
  // must Start it).
  std::pair<std::shared_ptr<Exchange>, bool> JoinOrLead(
      const std::shared_ptr<Call>& call, absl::FunctionRef<std::shared_ptr<Exchange>()> make)
      ABSL_LOCKS_EXCLUDED(mu_);

  void Remove(const std::string& cache_key, const Exchange* exchange) ABSL_LOCKS_EXCLUDED(mu_);

  size_t flights() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ResponseCache* cache_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<Exchange>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_CACHE_STAGE_H_
