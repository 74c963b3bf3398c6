#include "upstream/pipeline/cache_stage.h"

#include "upstream/pipeline/exchange.h"

namespace gateway::upstream {

std::pair<std::shared_ptr<Exchange>, bool> CacheStage::JoinOrLead(
    const std::shared_ptr<Call>& call, absl::FunctionRef<std::shared_ptr<Exchange>()> make) {
  const PreparedCall& prepared = call->prepared();
  if (!prepared.coalesced) return {make(), true};
  absl::MutexLock lock(&mu_);
  auto it = flights_.find(prepared.cache_key);
  if (it != flights_.end()) {
    std::shared_ptr<Exchange> flight = it->second.lock();
    if (flight != nullptr && flight->Join(call)) return {flight, false};
  }
  std::shared_ptr<Exchange> exchange = make();
  flights_[prepared.cache_key] = exchange;
  return {exchange, true};
}

void CacheStage::Remove(const std::string& cache_key, const Exchange* exchange) {
  absl::MutexLock lock(&mu_);
  auto it = flights_.find(cache_key);
  if (it == flights_.end()) return;
  std::shared_ptr<Exchange> registered = it->second.lock();
  if (registered == nullptr || registered.get() == exchange) flights_.erase(it);
}

size_t CacheStage::flights() const {
  absl::MutexLock lock(&mu_);
  return flights_.size();
}

}  // namespace gateway::upstream
