#include "upstream/pipeline/cache_stage.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "upstream/pipeline/exchange.h"

namespace gateway::upstream {
namespace {

constexpr absl::Duration kFirstPoll = absl::Milliseconds(2);
constexpr absl::Duration kMaxPoll = absl::Milliseconds(50);

// Deletes the lease only while it still carries our token: a lease that lapsed and was taken by
// another replica is theirs.
constexpr char kReleaseScript[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

uint64_t RandomBase() {
  absl::BitGen gen;
  return absl::Uniform<uint64_t>(gen);
}

}  // namespace

// One exchange waiting for another replica's fill. Holds the exchange: between polls nothing
// else does (its waiters hold it weakly, exchange.h). Once it is done (answered, or every waiter
// left) the wait stops at its next step, touching nothing else.
struct CacheStage::Wait {
  std::shared_ptr<Exchange> exchange;
  std::string cache_key;
  std::string lease_key;
  std::string token;
  absl::Duration backoff = kFirstPoll;
  // Found another replica's lease at least once (one step of the wait runs at a time).
  bool waited = false;

  std::shared_ptr<Exchange> Live() const {
    if (exchange->state() == Exchange::State::kDone) return nullptr;
    return exchange;
  }
};

CacheStage::CacheStage(ResponseCache* cache) : CacheStage(cache, Sharing()) {}

CacheStage::CacheStage(ResponseCache* cache, Sharing sharing)
    : cache_(cache), sharing_(std::move(sharing)), token_base_(RandomBase()) {}

std::pair<std::shared_ptr<Exchange>, bool> CacheStage::JoinOrLead(
    const std::shared_ptr<Call>& call, absl::FunctionRef<std::shared_ptr<Exchange>()> make) {
  const PreparedCall& prepared = call->prepared();
  if (!prepared.coalesced) return {make(), true};
  absl::MutexLock lock(&mu_);
  auto it = flights_.find(prepared.cache_key);
  if (it != flights_.end()) {
    std::shared_ptr<Exchange> flight = it->second.lock();
    if (flight != nullptr && flight->Join(call)) {
      joined_.fetch_add(1, std::memory_order_relaxed);
      return {flight, false};
    }
  }
  std::shared_ptr<Exchange> exchange = make();
  flights_[prepared.cache_key] = exchange;
  return {exchange, true};
}

void CacheStage::Begin(const std::shared_ptr<Exchange>& exchange, bool stored) {
  const PreparedCall& prepared = exchange->prepared();
  if (sharing_.redis == nullptr || cache_ == nullptr || !stored || !prepared.coalesced) {
    exchange->Start();
    return;
  }
  auto wait = std::make_shared<Wait>();
  wait->exchange = exchange;
  wait->cache_key = prepared.cache_key;
  wait->lease_key = absl::StrCat(sharing_.key_prefix, prepared.cache_key);
  wait->token = absl::StrCat(token_base_, ".", next_token_.fetch_add(1, std::memory_order_relaxed));
  exchange->Start(/*wait_for_fill=*/true);
  TryLease(std::move(wait));
}

void CacheStage::TryLease(std::shared_ptr<Wait> wait) {
  if (wait->Live() == nullptr) return;
  const int64_t lease_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(sharing_.lease));
  sharing_.redis->Command(
      {"SET", wait->lease_key, wait->token, "NX", "PX", absl::StrCat(lease_ms)},
      [this, wait](absl::StatusOr<RedisReply> reply) mutable {
        std::shared_ptr<Exchange> exchange = wait->Live();
        if (exchange == nullptr) return;
        if (!reply.ok() || reply->is_error()) {
          redis_errors_.fetch_add(1, std::memory_order_relaxed);
          exchange->Proceed();  // Redis unreachable: our own request, never a failed call
          return;
        }
        if (reply->type != RedisReply::Type::kNil) {
          (wait->waited ? took_over_ : led_).fetch_add(1, std::memory_order_relaxed);
          OnLeaseTaken(std::move(wait), std::move(exchange));
          return;
        }
        // Another replica leads: look again after the backoff.
        if (!wait->waited) {
          wait->waited = true;
          followed_.fetch_add(1, std::memory_order_relaxed);
        }
        const absl::Duration delay = wait->backoff;
        wait->backoff = std::min(wait->backoff * 2, kMaxPoll);
        sharing_.scheduler->RunAfter(delay, [this, wait = std::move(wait)]() mutable {
          // The exchange (through its calls) keeps the dispatcher, and so this stage, alive
          // (Dispatcher's lifetime contract): look at it before touching the stage.
          std::shared_ptr<Exchange> live = wait->Live();
          if (live == nullptr) return;
          Poll(std::move(wait));
        });
      });
}

void CacheStage::Poll(std::shared_ptr<Wait> wait) {
  if (wait->Live() == nullptr) return;
  const std::string key = wait->cache_key;
  cache_->Lookup(key, [this, wait = std::move(wait)](std::optional<std::string> hit,
                                                     ResponseCache::ReadTicket) mutable {
    std::shared_ptr<Exchange> exchange = wait->Live();
    if (exchange == nullptr) return;
    if (hit.has_value()) {
      filled_by_replica_.fetch_add(1, std::memory_order_relaxed);
      exchange->Resolve(*std::move(hit));
      return;
    }
    TryLease(std::move(wait));
  });
}

void CacheStage::OnLeaseTaken(std::shared_ptr<Wait> wait, std::shared_ptr<Exchange> exchange) {
  {
    absl::MutexLock lock(&mu_);
    leases_[exchange.get()] = Lease{wait->lease_key, wait->token};
  }
  // The previous leader may have released its lease just after its fill: check once more, so
  // a fill on its way is not fetched a second time.
  const std::string key = wait->cache_key;
  cache_->Lookup(key, [this, wait = std::move(wait), exchange = std::move(exchange)](
                          std::optional<std::string> hit, ResponseCache::ReadTicket) mutable {
    if (hit.has_value()) {
      filled_by_replica_.fetch_add(1, std::memory_order_relaxed);
      exchange->Resolve(*std::move(hit));  // Remove releases the lease
    } else {
      exchange->Proceed();
    }
    // Ended before the lease was recorded (Remove found nothing): release it here.
    if (exchange->state() == Exchange::State::kDone) {
      bool held = false;
      {
        absl::MutexLock lock(&mu_);
        auto it = leases_.find(exchange.get());
        if (it != leases_.end()) {
          held = true;
          leases_.erase(it);
        }
      }
      if (held) Release(wait->lease_key, wait->token);
    }
  });
}

void CacheStage::Release(const std::string& lease_key, const std::string& token) {
  sharing_.redis->Eval(kReleaseScript, {lease_key}, {token}, [](absl::StatusOr<RedisReply>) {
    // Failed: the lease lapses by itself after Sharing.lease.
  });
}

void CacheStage::Remove(const std::string& cache_key, const Exchange* exchange) {
  std::optional<Lease> lease;
  {
    absl::MutexLock lock(&mu_);
    if (auto l = leases_.find(exchange); l != leases_.end()) {
      lease = std::move(l->second);
      leases_.erase(l);
    }
    auto it = flights_.find(cache_key);
    if (it != flights_.end()) {
      std::shared_ptr<Exchange> registered = it->second.lock();
      if (registered == nullptr || registered.get() == exchange) flights_.erase(it);
    }
  }
  if (lease.has_value()) Release(lease->key, lease->token);
}

CacheStage::Counters CacheStage::counters() const {
  return {joined_.load(std::memory_order_relaxed),   led_.load(std::memory_order_relaxed),
          followed_.load(std::memory_order_relaxed), filled_by_replica_.load(std::memory_order_relaxed),
          took_over_.load(std::memory_order_relaxed), redis_errors_.load(std::memory_order_relaxed)};
}

size_t CacheStage::flights() const {
  absl::MutexLock lock(&mu_);
  return flights_.size();
}

}  // namespace gateway::upstream
