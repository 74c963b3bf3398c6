#include "upstream/budget/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

// One GCRA step on the shared state, atomic on the Redis server. All times are integers in µs
// of the server's TIME (or of ARGV[10] when given: tests pin the clock), so every replica decides
// on the same clock. Every call costs O(1) commands whatever its arguments say.
//   KEYS[1]  hash: `tat` the bucket's theoretical arrival time; `chg` the sum of the counts
//            in KEYS[2]
//   KEYS[2]  list of "stamp:count" entries: tokens charged in the last second (reservations,
//            foreign use charged by an observation, carried fallback admissions, minus slots
//            given back); entries older than a second are trimmed (amortised O(1): each entry
//            is pushed once and popped once)
//   ARGV[1]  T, the emission interval (µs)       ARGV[2]  tau = burst * T (µs)
//   ARGV[3]  floor (µs): TAT becomes at least now + floor first (0 for a plain decision;
//            retry_after + tau for a pause; tau after an outage: no burst)
//   ARGV[4]  op: 1 reserve a slot; 0 decide nothing (pause, observe); 2 give a slot back
//   ARGV[5]  reserve: the longest wait (µs) the caller accepts; no slot later than
//            now + ARGV[5] is reserved
//   ARGV[6]  observe: used, calls the upstream counted in its window (limit - remaining), -1:
//            none; give back: the TAT the reservation left (ARGV[4] = 2)
//   ARGV[7]  slack (calls) between the upstream's count and the log before charging
//   ARGV[8]  carried: calls this replica admitted locally in the last second (while Redis was
//            down), charged to the shared state on its first decision after the outage. They
//            add up over replicas, so the shared schedule resumes after everyone's local sends.
//   ARGV[9]  cap (µs): a pause or an observation never moves TAT beyond now + cap
//   ARGV[10] now (µs) to use instead of TIME, or "" (production)
// Returns {reserved|given back 0|1, slot - now (µs; reserve: when the reserved or refused
// slot is, else when the next slot would be), TAT - now (µs), tokens charged by the
// observation, TAT (µs, absolute; for giving the slot back), tokens charged in the last second
// (all replicas')}.
// Both keys expire 2 s after TAT passes: an idle key has no state worth keeping.
constexpr absl::string_view kScript = R"lua(
local now
if ARGV[10] ~= nil and ARGV[10] ~= '' then
  now = tonumber(ARGV[10])
else
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local floor = tonumber(ARGV[3])
local op = tonumber(ARGV[4])
local arg = tonumber(ARGV[6])
local slack = tonumber(ARGV[7])
local carried = tonumber(ARGV[8]) or 0
local cap = tonumber(ARGV[9])
local state = redis.call('HMGET', KEYS[1], 'tat', 'chg')
local tat = tonumber(state[1]) or 0
local chg = tonumber(state[2]) or 0
local horizon = now - 1000000
while true do
  local oldest = redis.call('LINDEX', KEYS[2], 0)
  if not oldest then chg = 0 break end
  local stamp, count = string.match(oldest, '^(%d+):(-?%d+)$')
  if stamp and tonumber(stamp) > horizon then break end
  redis.call('LPOP', KEYS[2])
  chg = chg - (tonumber(count) or 0)
end
local stamp = string.format('%.0f', now)
local function charge(n)
  chg = chg + n
  redis.call('RPUSH', KEYS[2], stamp .. ':' .. string.format('%.0f', n))
end
if floor > cap then floor = cap end
if tat < now + floor then tat = now + floor end
if carried > 0 then
  if tat < now then tat = now end
  tat = tat + carried * interval
  charge(carried)
end
local charged = 0
if op == 0 and arg >= 0 then
  local deficit = arg - chg - slack
  if deficit > 0 then
    charged = deficit
    if tat < now then tat = now end
    local limit = now + cap
    if tat < limit then tat = math.min(tat + deficit * interval, limit) end
    charge(deficit)
  end
end
local done = 0
local slot = tat - tau
if slot < now then slot = now end
if op == 1 and slot - now <= tonumber(ARGV[5]) then
  done = 1
  if tat < now then tat = now end
  tat = tat + interval
  charge(1)
elseif op == 2 and tat == arg then
  done = 1
  tat = tat - interval
  charge(-1)
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'chg', string.format('%.0f', chg))
local ttl = math.ceil((tat - now) / 1000) + 2000
if ttl < 2000 then ttl = 2000 end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if op ~= 1 then
  slot = tat - tau
  if slot < now then slot = now end
end
return {done, slot - now, tat - now, charged, tat, chg}
)lua";

constexpr absl::Duration kObservedWindow = absl::Seconds(1);

// Rates below one call in ~11.5 days, and bursts above a million, are treated as these limits
// (keeps every product of intervals within 64 bits).
constexpr double kMinRate = 1e-6;
constexpr int kMaxBurst = 1'000'000;

bool ValidRate(double rate) { return std::isfinite(rate) && rate > 0; }

// T rounded UP to the nanosecond, so that rate * T >= 1 s and rounding never lets a one-second
// window hold one call too many.
absl::Duration IntervalFor(double rate) {
  return absl::Nanoseconds(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1e9 / std::max(rate, kMinRate)))));
}

// The same, in µs (the script's unit), also rounded up.
int64_t IntervalMicros(double rate) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1e6 / std::max(rate, kMinRate))));
}

int64_t CeilMicros(absl::Duration d) {
  return absl::ToInt64Microseconds(
      absl::Ceil(std::max(d, absl::ZeroDuration()), absl::Microseconds(1)));
}

std::string JsonLine(absl::string_view severity, absl::string_view event, absl::string_view message,
                     double share) {
  nlohmann::json line = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())},
      {"severity", std::string(severity)},
      {"component", "rate_limiter"},
      {"event", std::string(event)},
      {"message", std::string(message)},
      {"fallback_share", share},
  };
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

class RateLimiter::Impl : public std::enable_shared_from_this<RateLimiter::Impl> {
 public:
  Impl(Options options, Scheduler* scheduler, RedisClient* redis)
      : options_(std::move(options)), scheduler_(scheduler), redis_(redis) {
    double share = options_.redis_fallback_share;
    if (!std::isfinite(share)) share = 0.01;
    options_.redis_fallback_share = std::clamp(share, 0.01, 1.0);
    options_.redis_probe_interval = std::max(options_.redis_probe_interval, absl::Milliseconds(1));
    options_.max_queue_wait = std::max(options_.max_queue_wait, absl::ZeroDuration());
    options_.max_pause = std::clamp(options_.max_pause, absl::Milliseconds(1), absl::Hours(24));
    options_.remaining_slack = std::max(options_.remaining_slack, 0);
  }

  // Immutable after construction.
  absl::Duration max_pause() const { return options_.max_pause; }
  AcquireId Acquire(Ticket ticket, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  void Cancel(AcquireId id) ABSL_LOCKS_EXCLUDED(mu_);
  void Pause(const std::string& key, const BucketConfig& config, absl::Duration retry_after)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ObserveRemaining(const std::string& key, const BucketConfig& config, int limit,
                        int remaining) ABSL_LOCKS_EXCLUDED(mu_);
  bool redis_healthy() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return healthy_;
  }
  bool Quiescent() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return active_callbacks_ == 0;
  }
  Counters counters(const std::string& key) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = buckets_.find(key);
    return it == buckets_.end() ? Counters() : it->second->counters;
  }
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    std::string caller;
    Done done;
    absl::Time cutoff;
    uint64_t wait_epoch = 0;  // the bucket's wait_epoch at arrival
  };
  struct CallerQueue {
    std::deque<uint64_t> ids;  // FIFO; ids no longer in `waiters` are tombstones
    int64_t live = 0;
  };
  struct Bucket {
    std::string key;
    BucketConfig config;
    Counters counters;
    // Waiting calls: per-caller FIFO queues, and the callers with live calls in round-robin
    // order (the front is served next, then goes to the back if it has more).
    absl::flat_hash_map<uint64_t, Waiter> waiters;
    absl::flat_hash_map<std::string, CallerQueue> queues;
    std::deque<std::string> rotation;
    // Bumped whenever a call had to wait for a token (for admitted_after_wait).
    uint64_t wait_epoch = 0;
    // Local GCRA: in-process mode, or the fallback while Redis is down.
    absl::Time tat = absl::InfinitePast();
    // Tokens charged in the last second, in calls of the configured budget (ObserveRemaining).
    std::deque<std::pair<absl::Time, double>> charges;
    // The pump: the latest timer armed for this bucket, and whether a reservation is in flight
    // (at most one per bucket per replica).
    absl::Time timer_at = absl::InfinitePast();
    bool redis_in_flight = false;
    // Shared mode: the slot this replica reserved and has not used yet (at most one), on the
    // local clock, and the TAT its reservation left in Redis (to give it back).
    bool has_slot = false;
    absl::Time slot_at;
    int64_t slot_tat = 0;
    // Nothing is sent before this (the latest Pause); a slot reserved before it is dropped.
    absl::Time paused_until = absl::InfinitePast();
    // Estimated time between this replica's consecutive slots while its queue stays busy
    // (about T times the number of busy replicas), for estimating turns without asking Redis.
    absl::Duration slot_gap;
    absl::Time last_slot = absl::InfinitePast();
    bool busy = false;  // waiters were left when the last slot was used
    // Shared mode: tokens all replicas charged in the second before Redis' last answer (so an
    // observation that the shared log already explains costs no Redis call).
    double shared_charged = 0;
    absl::Time shared_charged_at = absl::InfinitePast();
    // Shared mode: TAT as of Redis' last answer, translated to the local clock.
    absl::Time shared_tat = absl::InfinitePast();
    // Calls accepted on a possibly stale shared estimate, checked again on the next answer.
    std::vector<uint64_t> unverified;
    // Whether the fallback admitted calls since the last shared decision (their debt goes
    // into the shared TAT on the next one).
    bool carry_debt = false;
  };
  // How one bucket limits right now.
  struct Mode {
    bool shared;              // decisions by Redis
    bool fallback;            // local, because Redis is down
    absl::Duration interval;  // T of the limiting in force
    absl::Duration tau;
    double weight;  // calls of the whole budget one local admission stands for
  };
  enum class RedisOp { kReserve, kPause, kObserve, kGiveBack };
  struct RedisCall {
    std::string bucket_key;
    RedisOp op;
    std::vector<std::string> args;
  };
  // What to do once the lock is released.
  struct Effects {
    std::vector<std::pair<Done, absl::Status>> completions;
    // Acquire with Ticket::complete_inline: the new call's id, and its admission when one was
    // decided inside Acquire (run on Acquire's stack, after the others are posted).
    uint64_t inline_id = 0;
    std::optional<Done> inline_admission;
    std::vector<RedisCall> redis_calls;
    std::vector<std::string> log_lines;
    bool probe = false;
  };
  struct ScriptResult {
    bool done;  // reserved, or given back
    absl::Duration slot;
    absl::Duration tat_ahead;
    int64_t charged;
    int64_t tat;
    int64_t charged_last_second;
  };

  // The bucket, created on first use with `config`, else updated to `config` when that is
  // valid. Null when `config` is invalid (the bucket, if any, keeps its last valid config).
  Bucket* BucketLocked(const std::string& key, const BucketConfig& config)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Mode ModeLocked(const Bucket& b) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SharedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return redis_ != nullptr && healthy_;
  }
  // Calls served before call number `position` (0-based, live calls) of `caller`'s queue.
  int64_t AheadLocked(const Bucket& b, const std::string& caller, int64_t position) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When the k-th next token (k = 0: the next) frees up, as far as this replica knows.
  absl::Time TokenTimeLocked(const Bucket& b, int64_t k, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Estimated turn of a queued call.
  absl::Time TurnOfLocked(const Bucket& b, uint64_t id, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t PopNextLocked(Bucket& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Waiter RemoveLocked(Bucket& b, uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AdmitNextLocked(Bucket& b, absl::Time now, Effects& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked(Bucket& b, uint64_t id, absl::Time now, absl::string_view why, Effects& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes waiting call `id` out of its caller's queue and the rotation (not the counters).
  Waiter DequeueLocked(Bucket& b, uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RateLimited(const Bucket& b, const std::string& caller, absl::Duration retry,
                           absl::string_view why) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked(Bucket& b, absl::Time now, Effects& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmTimerLocked(Bucket& b, absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void VerifyLocked(Bucket& b, absl::Time now, Effects& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimChargesLocked(Bucket& b, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkUnhealthyLocked(absl::string_view why, absl::Time now, Effects& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkHealthyLocked(absl::Time now, Effects& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RedisCall ScriptCallLocked(Bucket& b, RedisOp op, absl::Duration floor, int64_t arg,
                             int64_t carried = 0, absl::Duration max_wait = absl::ZeroDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void OnTimer(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  void OnCutoff(const std::string& key, uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void OnRedisReply(const std::string& key, RedisOp op, absl::StatusOr<RedisReply> reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Probe() ABSL_LOCKS_EXCLUDED(mu_);
  void OnProbeReply(absl::StatusOr<RedisReply> reply) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends a timer or Redis callback: runs `fx`, then lets Shutdown proceed.
  void Leave(Effects fx) ABSL_LOCKS_EXCLUDED(mu_) {
    Run(std::move(fx), /*on_callers_stack=*/false);
    absl::MutexLock lock(&mu_);
    --active_callbacks_;
  }
  // Runs `fx` without the lock. Completions go through the scheduler when we are on a caller's
  // stack (Acquire, Pause, ObserveRemaining), else run here.
  void Run(Effects fx, bool on_callers_stack) ABSL_LOCKS_EXCLUDED(mu_);
  static std::optional<ScriptResult> ParseScriptReply(const absl::StatusOr<RedisReply>& reply,
                                                      std::string* error);

  Options options_;
  Scheduler* const scheduler_;
  RedisClient* const redis_;
  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Timer and Redis callbacks running now; Shutdown waits for them (they use scheduler_ and
  // redis_, which only have to outlive the RateLimiter).
  int active_callbacks_ ABSL_GUARDED_BY(mu_) = 0;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // The bucket of every waiting call, for Cancel().
  absl::flat_hash_map<uint64_t, Bucket*> waiting_ ABSL_GUARDED_BY(mu_);
  // Buckets live as long as the limiter (their number is bounded by the configuration).
  absl::flat_hash_map<std::string, std::unique_ptr<Bucket>> buckets_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// Bookkeeping

RateLimiter::Impl::Bucket* RateLimiter::Impl::BucketLocked(const std::string& key,
                                                           const BucketConfig& config) {
  auto& slot = buckets_[key];
  if (slot == nullptr) {
    slot = std::make_unique<Bucket>();
    slot->key = key;
  }
  if (!ValidRate(config.rate_per_second)) return nullptr;
  slot->config = config;
  slot->config.burst = std::clamp(config.burst, 0, kMaxBurst);
  return slot.get();
}

RateLimiter::Impl::Mode RateLimiter::Impl::ModeLocked(const Bucket& b) const {
  const double rate = b.config.rate_per_second;
  if (SharedLocked() || redis_ == nullptr) {
    const absl::Duration t = IntervalFor(rate);
    return {SharedLocked(), false, t, b.config.burst * t, 1.0};
  }
  const double share = options_.redis_fallback_share;
  const absl::Duration t = IntervalFor(rate * share);
  const int burst = static_cast<int>(std::floor(b.config.burst * share));
  return {false, true, t, burst * t, 1.0 / share};
}

int64_t RateLimiter::Impl::AheadLocked(const Bucket& b, const std::string& caller,
                                       int64_t position) const {
  // Round r serves every caller with more than r live calls, in rotation order. Call number
  // `position` of `caller` is served in round `position`, after the callers before it.
  int64_t ahead = position;
  bool before = true;
  for (const std::string& other : b.rotation) {
    if (other == caller) {
      before = false;
      continue;
    }
    const int64_t live = b.queues.at(other).live;
    ahead += std::min(live, position);
    if (before && live > position) ++ahead;
  }
  return ahead;
}

absl::Time RateLimiter::Impl::TokenTimeLocked(const Bucket& b, int64_t k, absl::Time now) const {
  const Mode mode = ModeLocked(b);
  if (mode.shared) {
    // This replica's k-th next slot: the one it holds (or the shared schedule's next), then one
    // per gap (other replicas take the slots between). Redis has the last word: a reservation
    // is never later than the waiters' cutoffs.
    const absl::Duration gap = std::max(mode.interval, b.slot_gap);
    const absl::Time first =
        b.has_slot ? b.slot_at : std::max({now, b.shared_tat - mode.tau, b.paused_until});
    return std::max(now, first) + k * gap;
  }
  const absl::Time base = std::max(b.tat, now);
  return std::max(now, base + k * mode.interval - mode.tau);
}

absl::Time RateLimiter::Impl::TurnOfLocked(const Bucket& b, uint64_t id, absl::Time now) const {
  const Waiter& w = b.waiters.at(id);
  int64_t position = 0;
  for (uint64_t other : b.queues.at(w.caller).ids) {
    if (other == id) break;
    if (b.waiters.contains(other)) ++position;
  }
  return TokenTimeLocked(b, AheadLocked(b, w.caller, position), now);
}

uint64_t RateLimiter::Impl::PopNextLocked(Bucket& b) {
  const std::string caller = std::move(b.rotation.front());
  b.rotation.pop_front();
  CallerQueue& q = b.queues.at(caller);
  while (!b.waiters.contains(q.ids.front())) q.ids.pop_front();  // tombstones
  const uint64_t id = q.ids.front();
  q.ids.pop_front();
  if (--q.live > 0) {
    b.rotation.push_back(caller);
  } else {
    b.queues.erase(caller);
  }
  return id;
}

RateLimiter::Impl::Waiter RateLimiter::Impl::RemoveLocked(Bucket& b, uint64_t id) {
  auto it = b.waiters.find(id);
  Waiter w = std::move(it->second);
  b.waiters.erase(it);
  waiting_.erase(id);
  --b.counters.queued;
  return w;
}

void RateLimiter::Impl::AdmitNextLocked(Bucket& b, absl::Time now, Effects& fx) {
  const uint64_t id = PopNextLocked(b);
  Waiter w = RemoveLocked(b, id);
  ++b.counters.admitted;
  if (w.wait_epoch != b.wait_epoch) ++b.counters.admitted_after_wait;
  const Mode mode = ModeLocked(b);
  if (mode.fallback) {
    ++b.counters.fallback_decisions;
    b.carry_debt = true;
  }
  b.charges.emplace_back(now, mode.weight);
  if (id == fx.inline_id) {
    fx.inline_admission.emplace(std::move(w.done));
  } else {
    fx.completions.emplace_back(std::move(w.done), absl::OkStatus());
  }
}

void RateLimiter::Impl::ExpireLocked(Bucket& b, uint64_t id, absl::Time now, absl::string_view why,
                                     Effects& fx) {
  const absl::Duration retry = TurnOfLocked(b, id, now) - now;
  Waiter w = DequeueLocked(b, id);
  ++b.counters.rejected;
  if (ModeLocked(b).fallback) ++b.counters.fallback_decisions;
  fx.completions.emplace_back(std::move(w.done), RateLimited(b, w.caller, retry, why));
}

RateLimiter::Impl::Waiter RateLimiter::Impl::DequeueLocked(Bucket& b, uint64_t id) {
  Waiter w = RemoveLocked(b, id);
  CallerQueue& q = b.queues.at(w.caller);
  if (--q.live == 0) {
    b.queues.erase(w.caller);
    b.rotation.erase(std::find(b.rotation.begin(), b.rotation.end(), w.caller));
  }
  return w;
}

absl::Status RateLimiter::Impl::RateLimited(const Bucket& b, const std::string& caller,
                                            absl::Duration retry, absl::string_view why) const {
  retry = std::max(retry, absl::ZeroDuration());
  const Mode mode = ModeLocked(b);
  const std::string limit =
      absl::StrCat(b.config.rate_per_second, "/s, burst ", b.config.burst,
                   mode.fallback ? ", reduced while the shared limiter is unavailable" : "");
  return GatewayError(
      absl::StatusCode::kResourceExhausted,
      absl::StrCat("rate limit of upstream bucket \"", b.key, "\" (", limit, "): ", why,
                   "; retry in ", absl::FormatDuration(retry)),
      {.reason = "RATE_LIMITED",
       .metadata = {{"bucket", b.key}, {"caller", caller}},
       .retry_delay = retry,
       .quota_violations = {{b.key, absl::StrCat("upstream rate limit: ", limit)}}});
}

void RateLimiter::Impl::TrimChargesLocked(Bucket& b, absl::Time now) {
  while (!b.charges.empty() && b.charges.front().first <= now - kObservedWindow) {
    b.charges.pop_front();
  }
}

// ---------------------------------------------------------------------------------------------
// The pump: serves a bucket's queue, one token at a time.

void RateLimiter::Impl::ArmTimerLocked(Bucket& b, absl::Time when) {
  if (when == b.timer_at) return;
  b.timer_at = when;
  scheduler_->RunAt(when, [weak = weak_from_this(), key = b.key] {
    if (auto self = weak.lock()) self->OnTimer(key);
  });
}

void RateLimiter::Impl::PumpLocked(Bucket& b, absl::Time now, Effects& fx) {
  TrimChargesLocked(b, now);
  // A decision in flight admits the next call when it returns (also after a switch to the
  // fallback: deciding locally too could admit one call twice).
  if (b.redis_in_flight) return;
  const Mode mode = ModeLocked(b);
  if (mode.shared) {
    if (b.has_slot) {
      if (b.waiters.empty()) {
        // Nobody left for the slot: give it back if it is still to come (the shared schedule
        // then offers it to the next reservation, on any replica).
        b.has_slot = false;
        if (b.slot_at > now) {
          b.redis_in_flight = true;
          fx.redis_calls.push_back(
              ScriptCallLocked(b, RedisOp::kGiveBack, absl::ZeroDuration(), b.slot_tat));
        }
        return;
      }
      if (b.slot_at > now) {
        ArmTimerLocked(b, b.slot_at);
        return;
      }
      b.has_slot = false;
      AdmitNextLocked(b, now, fx);
      b.busy = !b.waiters.empty();
    }
    if (b.waiters.empty()) return;
    // One reservation for the next call, whoever it is when the slot comes (round-robin then):
    // no slot later than the latest cutoff of the waiting calls.
    absl::Time latest = absl::InfinitePast();
    for (const auto& [id, w] : b.waiters) latest = std::max(latest, w.cutoff);
    if (latest < now) return;  // their cutoff timers are due
    b.redis_in_flight = true;
    // After an outage: no burst, and the calls this replica admitted locally in the last
    // second are charged to the shared state (every replica adds its own, so the shared
    // schedule resumes only after all of them; a max of per-replica debts would undercount).
    const absl::Duration floor = b.carry_debt ? mode.tau : absl::ZeroDuration();
    const int64_t carried = b.carry_debt ? static_cast<int64_t>(b.charges.size()) : 0;
    fx.redis_calls.push_back(ScriptCallLocked(
        b, RedisOp::kReserve, floor, -1, carried,
        std::min(latest, now + options_.max_queue_wait + mode.interval) - now));
    return;
  }
  if (b.waiters.empty()) return;
  while (!b.waiters.empty()) {
    const absl::Time base = std::max(b.tat, now);
    if (base - mode.tau > now) {
      ++b.wait_epoch;
      ArmTimerLocked(b, base - mode.tau);
      return;
    }
    b.tat = base + mode.interval;
    AdmitNextLocked(b, now, fx);
  }
}

void RateLimiter::Impl::VerifyLocked(Bucket& b, absl::Time now, Effects& fx) {
  std::vector<uint64_t> ids = std::move(b.unverified);
  b.unverified.clear();
  for (uint64_t id : ids) {
    auto it = b.waiters.find(id);
    if (it == b.waiters.end()) continue;
    if (TurnOfLocked(b, id, now) > it->second.cutoff) {
      ExpireLocked(b, id, now, "its turn comes after its deadline", fx);
    }
  }
}

RateLimiter::Impl::RedisCall RateLimiter::Impl::ScriptCallLocked(Bucket& b, RedisOp op,
                                                                 absl::Duration floor,
                                                                 int64_t arg, int64_t carried,
                                                                 absl::Duration max_wait) {
  ++b.counters.redis_calls;
  const int64_t interval = IntervalMicros(b.config.rate_per_second);
  const int64_t tau = interval * b.config.burst;
  const int64_t op_code = op == RedisOp::kReserve ? 1 : op == RedisOp::kGiveBack ? 2 : 0;
  return {b.key,
          op,
          {absl::StrCat(interval), absl::StrCat(tau), absl::StrCat(CeilMicros(floor)),
           absl::StrCat(op_code), absl::StrCat(CeilMicros(max_wait)), absl::StrCat(arg),
           absl::StrCat(options_.remaining_slack), absl::StrCat(carried),
           absl::StrCat(CeilMicros(options_.max_pause) + tau),
           options_.pin_redis_clock
               ? absl::StrCat(absl::ToUnixMicros(scheduler_->Now()))
               : std::string()}};
}

// ---------------------------------------------------------------------------------------------
// Public operations

RateLimiter::AcquireId RateLimiter::Impl::Acquire(Ticket ticket, Done done) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    if (ticket.complete_inline) fx.inline_id = id;
    if (shutdown_) {
      fx.completions.emplace_back(std::move(done),
                                  absl::CancelledError("rate limiter is shutting down"));
    } else {
      Bucket* bucket = BucketLocked(ticket.bucket_key, ticket.config);
      if (bucket == nullptr) {
        Counters& counters = buckets_.at(ticket.bucket_key)->counters;
        ++counters.total;
        ++counters.rejected;
        fx.completions.emplace_back(
            std::move(done),
            GatewayError(
                absl::StatusCode::kFailedPrecondition,
                absl::StrCat("upstream bucket \"", ticket.bucket_key, "\" has no valid rate (",
                             ticket.config.rate_per_second, " per second)"),
                {.reason = "RATE_LIMIT_MISCONFIGURED",
                 .metadata = {{"bucket", ticket.bucket_key}}}));
      } else {
        Bucket& b = *bucket;
        ++b.counters.total;
        const absl::Time cutoff =
            std::min(ticket.deadline - std::max(ticket.expected_latency, absl::ZeroDuration()),
                     now + options_.max_queue_wait);
        auto q = b.queues.find(ticket.caller);
        const int64_t position = q == b.queues.end() ? 0 : q->second.live;
        const absl::Time turn = TokenTimeLocked(b, AheadLocked(b, ticket.caller, position), now);
        if (turn > cutoff) {
          ++b.counters.rejected;
          if (ModeLocked(b).fallback) ++b.counters.fallback_decisions;
          fx.completions.emplace_back(
              std::move(done),
              RateLimited(b, ticket.caller, turn - now,
                          cutoff < now ? "the call's deadline leaves no time for the upstream call"
                                       : "its turn would come after its deadline"));
        } else {
          b.waiters.emplace(id, Waiter{ticket.caller, std::move(done), cutoff, b.wait_epoch});
          waiting_.emplace(id, &b);
          CallerQueue& queue = b.queues[ticket.caller];
          if (queue.live++ == 0) b.rotation.push_back(ticket.caller);
          queue.ids.push_back(id);
          ++b.counters.queued;
          if (ModeLocked(b).shared) b.unverified.push_back(id);
          PumpLocked(b, now, fx);
          // Only a call that waits needs its cutoff timer (at a tie with the pump's timer,
          // either order admits it: OnCutoff pumps first).
          if (b.waiters.contains(id) && cutoff < absl::InfiniteFuture()) {
            scheduler_->RunAt(cutoff, [weak = weak_from_this(), key = b.key, id] {
              if (auto self = weak.lock()) self->OnCutoff(key, id);
            });
          }
        }
      }
    }
  }
  Run(std::move(fx), /*on_callers_stack=*/true);
  return id;
}

void RateLimiter::Impl::Cancel(AcquireId id) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiting_.find(id);
    if (shutdown_ || it == waiting_.end()) return;
    Bucket& b = *it->second;
    Waiter w = DequeueLocked(b, id);
    ++b.counters.cancelled;
    fx.completions.emplace_back(std::move(w.done),
                                absl::CancelledError("the call was cancelled while it waited "
                                                     "for its turn; no token was spent"));
    // The calls behind it move up: the next one may be due now.
    PumpLocked(b, now, fx);
  }
  Run(std::move(fx), /*on_callers_stack=*/true);
}

void RateLimiter::Impl::Pause(const std::string& key, const BucketConfig& config,
                              absl::Duration retry_after) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    Bucket* bucket = BucketLocked(key, config);
    if (bucket == nullptr) return;
    Bucket& b = *bucket;
    ++b.counters.paused_by_upstream;
    const Mode mode = ModeLocked(b);
    // A header may say anything (a date in year 9999): no pause is longer than max_pause.
    if (retry_after <= absl::ZeroDuration()) retry_after = mode.interval;
    retry_after = std::min(retry_after, options_.max_pause);
    b.paused_until = std::max(b.paused_until, now + retry_after);
    // Locally always (the fallback honours it too), and in Redis for every replica.
    if (redis_ == nullptr) {
      b.tat = std::max(b.tat, now + retry_after + mode.tau);
    } else {
      const absl::Duration fallback_tau =
          std::floor(b.config.burst * options_.redis_fallback_share) *
          IntervalFor(b.config.rate_per_second * options_.redis_fallback_share);
      b.tat = std::max(b.tat, now + retry_after + fallback_tau);
    }
    if (mode.shared) {
      b.shared_tat = std::max(b.shared_tat, now + retry_after + mode.tau);
      // A slot reserved before the pause would be sent into it: drop it (not given back; the
      // pause moves the shared TAT past it anyway).
      if (b.has_slot && b.slot_at < b.paused_until) b.has_slot = false;
      fx.redis_calls.push_back(ScriptCallLocked(b, RedisOp::kPause, retry_after + mode.tau, -1));
      PumpLocked(b, now, fx);
    }
    // Local mode: the pump's timer fires at the old time and re-arms for the new one.
  }
  Run(std::move(fx), /*on_callers_stack=*/true);
}

void RateLimiter::Impl::ObserveRemaining(const std::string& key, const BucketConfig& config,
                                         int limit, int remaining) {
  if (limit <= 0 || remaining < 0 || remaining > limit) return;
  const int64_t used = limit - remaining;
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    Bucket* bucket = BucketLocked(key, config);
    if (bucket == nullptr) return;
    Bucket& b = *bucket;
    TrimChargesLocked(b, now);
    double charged = 0;
    for (const auto& [when, weight] : b.charges) charged += weight;
    // With Redis, the shared log holds every replica's charges: the last answer's count (plus
    // this replica's admissions since) stands for it while that answer is under a second old.
    if (ModeLocked(b).shared && now - b.shared_charged_at < kObservedWindow) {
      double since = 0;
      for (const auto& [when, weight] : b.charges) since += when > b.shared_charged_at ? weight : 0;
      charged = std::max(charged, b.shared_charged + since);
    }
    const double deficit = used - charged - options_.remaining_slack;
    // Redis' log holds at least this replica's charges: no local deficit, no shared one.
    if (deficit <= 0) return;
    if (ModeLocked(b).shared) {
      fx.redis_calls.push_back(ScriptCallLocked(b, RedisOp::kObserve, absl::ZeroDuration(), used));
      // Until the answer, this replica counts the charge as done: another response in the
      // meantime sends no second observation for the same foreign use.
      b.charges.emplace_back(now, deficit);
    } else {
      ++b.counters.tightened_by_upstream;
      // However many calls the header claims, the bucket waits at most max_pause for them.
      const absl::Time limit = now + options_.max_pause;
      if (b.tat < limit) {
        b.tat = std::min(limit, std::max(b.tat, now) +
                                    std::min(deficit, 1e9) * IntervalFor(b.config.rate_per_second));
      }
      b.charges.emplace_back(now, deficit);
    }
  }
  Run(std::move(fx), /*on_callers_stack=*/true);
}

// ---------------------------------------------------------------------------------------------
// Timers and answers

void RateLimiter::Impl::OnTimer(const std::string& key) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    ++active_callbacks_;
    Bucket& b = *buckets_.at(key);
    if (b.timer_at <= now) b.timer_at = absl::InfinitePast();
    PumpLocked(b, now, fx);
  }
  Leave(std::move(fx));
}

void RateLimiter::Impl::OnCutoff(const std::string& key, uint64_t id) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ || !buckets_.at(key)->waiters.contains(id)) return;
    ++active_callbacks_;
    Bucket& b = *buckets_.at(key);
    // A token or slot due at this very instant still counts as in time.
    PumpLocked(b, now, fx);
    if (b.waiters.contains(id)) {
      ExpireLocked(b, id, now, "waited until its deadline without its turn coming", fx);
      PumpLocked(b, now, fx);  // the last waiter gone: its slot goes back
    }
  }
  Leave(std::move(fx));
}

std::optional<RateLimiter::Impl::ScriptResult> RateLimiter::Impl::ParseScriptReply(
    const absl::StatusOr<RedisReply>& reply, std::string* error) {
  if (!reply.ok()) {
    *error = reply.status().ToString();
    return std::nullopt;
  }
  if (reply->is_error()) {
    *error = absl::StrCat("redis error: ", reply->str);
    return std::nullopt;
  }
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 6) {
    *error = "unexpected reply from the rate limit script";
    return std::nullopt;
  }
  for (const RedisReply& e : reply->elements) {
    if (e.type != RedisReply::Type::kInteger) {
      *error = "unexpected reply from the rate limit script";
      return std::nullopt;
    }
  }
  return ScriptResult{reply->elements[0].integer == 1,
                      absl::Microseconds(reply->elements[1].integer),
                      absl::Microseconds(reply->elements[2].integer), reply->elements[3].integer,
                      reply->elements[4].integer, reply->elements[5].integer};
}

void RateLimiter::Impl::OnRedisReply(const std::string& key, RedisOp op,
                                     absl::StatusOr<RedisReply> reply) {
  std::string error;
  const std::optional<ScriptResult> result = ParseScriptReply(reply, &error);
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    ++active_callbacks_;
    Bucket& b = *buckets_.at(key);
    ++b.counters.redis_answers;
    if (op == RedisOp::kReserve || op == RedisOp::kGiveBack) b.redis_in_flight = false;
    if (!result.has_value()) {
      MarkUnhealthyLocked(error, now, fx);  // pumps every bucket, this one included
    } else {
      // Redis' times are offsets from its now; on this clock they count from the answer's
      // arrival, so a slot is never placed earlier than Redis placed it.
      b.shared_tat = std::max(b.shared_tat, now + result->tat_ahead);
      b.shared_charged = static_cast<double>(result->charged_last_second);
      b.shared_charged_at = now;
      if (op == RedisOp::kReserve) {
        b.carry_debt = false;
        const absl::Time slot = now + result->slot;
        if (!result->done) {
          // No slot before the latest cutoff: every waiting call would miss its turn.
          ++b.wait_epoch;
          std::vector<uint64_t> late;
          for (const auto& [id, w] : b.waiters) {
            if (w.cutoff < slot) late.push_back(id);
          }
          for (uint64_t id : late) {
            ExpireLocked(b, id, now, "its turn comes after its deadline", fx);
          }
        } else if (!ModeLocked(b).shared || slot < b.paused_until) {
          // Redis went away meanwhile, or a pause arrived: the slot is not used.
        } else {
          if (slot > now) ++b.wait_epoch;
          if (b.busy && b.last_slot > absl::InfinitePast() && slot > b.last_slot) {
            const absl::Duration sample = slot - b.last_slot;
            b.slot_gap = b.slot_gap == absl::ZeroDuration() ? sample
                                                            : b.slot_gap * 0.75 + sample * 0.25;
          }
          b.last_slot = slot;
          b.has_slot = true;
          b.slot_at = slot;
          b.slot_tat = result->tat;
        }
      }
      if (op == RedisOp::kGiveBack && result->done) ++b.counters.slots_given_back;
      if (op == RedisOp::kObserve && result->charged > 0) ++b.counters.tightened_by_upstream;
      VerifyLocked(b, now, fx);
      PumpLocked(b, now, fx);
    }
  }
  Leave(std::move(fx));
}

void RateLimiter::Impl::MarkUnhealthyLocked(absl::string_view why, absl::Time now, Effects& fx) {
  if (!healthy_) return;
  healthy_ = false;
  fx.log_lines.push_back(JsonLine(
      "WARNING", "redis_unavailable",
      absl::StrCat("rate limiter: Redis failed (", why, "); each bucket now limits locally at ",
                   options_.redis_fallback_share, " of its rate until Redis answers again"),
      options_.redis_fallback_share));
  fx.probe = true;
  for (auto& [key, bucket] : buckets_) {
    Bucket& b = *bucket;
    // The fallback starts with no burst and one full local interval from now (or after the
    // last shared TAT this replica saw, if later): the other replicas may have just spent the
    // shared tokens, so the switch itself must add nothing to the upstream's window.
    const Mode mode = ModeLocked(b);
    b.tat = std::max({b.tat, b.shared_tat + mode.interval, now + mode.tau + mode.interval});
    b.timer_at = absl::InfinitePast();
    b.has_slot = false;  // its TAT is in shared_tat: the fallback starts after it
    VerifyLocked(b, now, fx);
    PumpLocked(b, now, fx);
  }
}

void RateLimiter::Impl::MarkHealthyLocked(absl::Time now, Effects& fx) {
  if (healthy_) return;
  healthy_ = true;
  fx.log_lines.push_back(JsonLine("INFO", "redis_recovered",
                                  "rate limiter: Redis answers again; limits are shared again",
                                  options_.redis_fallback_share));
  for (auto& [key, bucket] : buckets_) {
    Bucket& b = *bucket;
    b.shared_tat = absl::InfinitePast();
    b.slot_gap = absl::ZeroDuration();
    b.last_slot = absl::InfinitePast();
    b.busy = false;
    for (const auto& [id, w] : b.waiters) b.unverified.push_back(id);
    PumpLocked(b, now, fx);
  }
}

void RateLimiter::Impl::Probe() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ || healthy_) return;
    ++active_callbacks_;
  }
  redis_->Command({"PING"}, [weak = weak_from_this()](absl::StatusOr<RedisReply> reply) {
    if (auto self = weak.lock()) self->OnProbeReply(std::move(reply));
  });
  Leave(Effects());
}

void RateLimiter::Impl::OnProbeReply(absl::StatusOr<RedisReply> reply) {
  const absl::Time now = scheduler_->Now();
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ || healthy_) return;
    ++active_callbacks_;
    if (reply.ok() && !reply->is_error()) {
      MarkHealthyLocked(now, fx);
    } else {
      fx.probe = true;
    }
  }
  Leave(std::move(fx));
}

void RateLimiter::Impl::Run(Effects fx, bool on_callers_stack) {
  for (const std::string& line : fx.log_lines) std::fputs(line.c_str(), stderr);
  if (fx.probe) {
    scheduler_->RunAfter(options_.redis_probe_interval, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->Probe();
    });
  }
  for (RedisCall& call : fx.redis_calls) {
    const std::string state_key =
        absl::StrCat(options_.redis_key_prefix, "{", call.bucket_key, "}");
    redis_->Eval(std::string(kScript), {state_key, absl::StrCat(state_key, ":log")},
                 std::move(call.args),
                 [weak = weak_from_this(), key = call.bucket_key,
                  op = call.op](absl::StatusOr<RedisReply> reply) {
                   if (auto self = weak.lock()) self->OnRedisReply(key, op, std::move(reply));
                 });
  }
  // The caller asked for it (Ticket::complete_inline) and a token was free: its own admission
  // runs here, on Acquire's stack (no lock held), saving a hop through the scheduler's thread.
  // Everything else keeps the rule: never on the caller's stack.
  std::optional<Done> inline_admission = std::move(fx.inline_admission);
  if (fx.completions.empty()) {
    // nothing to post
  } else if (on_callers_stack) {
    const absl::Time now = scheduler_->Now();
    for (auto& [done, status] : fx.completions) {
      scheduler_->RunAt(now, [done = std::move(done), status = std::move(status)]() mutable {
        std::move(done)(std::move(status));
      });
    }
  } else {
    for (auto& [done, status] : fx.completions) std::move(done)(std::move(status));
  }
  if (inline_admission.has_value()) std::move(*inline_admission)(absl::OkStatus());
}

void RateLimiter::Impl::Shutdown() {
  Effects fx;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    for (auto& [key, bucket] : buckets_) {
      Bucket& b = *bucket;
      for (auto& [id, w] : b.waiters) {
        --b.counters.queued;
        ++b.counters.rejected;
        fx.completions.emplace_back(std::move(w.done),
                                    absl::CancelledError("rate limiter is shutting down"));
      }
      b.waiters.clear();
      waiting_.clear();
      b.queues.clear();
      b.rotation.clear();
    }
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_callbacks_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }
  for (auto& [done, status] : fx.completions) std::move(done)(std::move(status));
}

// ---------------------------------------------------------------------------------------------

RateLimiter::RateLimiter(Options options, Scheduler* scheduler, RedisClient* redis)
    : impl_(std::make_shared<Impl>(std::move(options), scheduler, redis)) {}

RateLimiter::~RateLimiter() { impl_->Shutdown(); }

RateLimiter::AcquireId RateLimiter::Acquire(Ticket ticket, Done done) {
  return impl_->Acquire(std::move(ticket), std::move(done));
}

void RateLimiter::Cancel(AcquireId id) { impl_->Cancel(id); }

void RateLimiter::Pause(const std::string& bucket_key, const BucketConfig& config,
                        absl::Duration retry_after) {
  impl_->Pause(bucket_key, config, retry_after);
}

void RateLimiter::ObserveRemaining(const std::string& bucket_key, const BucketConfig& config,
                                   int limit, int remaining) {
  impl_->ObserveRemaining(bucket_key, config, limit, remaining);
}

bool RateLimiter::redis_healthy() const { return impl_->redis_healthy(); }

absl::Duration RateLimiter::max_pause() const { return impl_->max_pause(); }

RateLimiter::Counters RateLimiter::counters(const std::string& bucket_key) const {
  return impl_->counters(bucket_key);
}

bool RateLimiter::Quiescent() const { return impl_->Quiescent(); }

absl::string_view RateLimiter::RedisScript() { return kScript; }

}  // namespace gateway::upstream
