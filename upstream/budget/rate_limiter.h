// The upstream's shared budget: a GCRA rate limiter per bucket, shared by every replica through
// Redis (optional), that queues a call until its turn instead of failing it.
//
//   TimerThreadScheduler scheduler;
//   RedisClient redis(*RedisClient::ParseUrl("redis://127.0.0.1:6379"));   // or no Redis at all
//   RateLimiter limiter({}, &scheduler, &redis);                           // `nullptr`: local only
//
//   limiter.Acquire({.bucket_key = "respondio:acct-1:contact",
//                    .config = {.rate_per_second = 5, .burst = 0},
//                    .caller = caller_from_metadata,          // `x-caller`, "" when unknown
//                    .deadline = call_deadline,
//                    .expected_latency = absl::Milliseconds(300)},
//                   [](absl::Status s) {
//                     if (!s.ok()) return Finish(s);          // RESOURCE_EXHAUSTED + details
//                     StartUpstreamRequest();                 // our turn: send now
//                   });
//   // From the upstream's response:
//   limiter.Pause(bucket, config, retry_after);                  // 429 + Retry-After
//   limiter.ObserveRemaining(bucket, config, limit, remaining);  // X-RateLimit-*
//
// ALGORITHM. GCRA (the generic cell rate algorithm, an exact token bucket without a refill
// timer). Per bucket: emission interval T = 1 / rate_per_second (rounded up to the nanosecond;
// to the microsecond in Redis), tolerance tau = burst * T, state TAT (theoretical arrival time).
// A call is admitted at time `now` iff max(TAT, now) - tau <= now, and then
// TAT = max(TAT, now) + T. So an idle bucket admits burst + 1 calls at once, then one every T;
// in ANY sliding one-second window [t, t + 1s) at most rate + burst calls are admitted (there
// are no window boundaries to burst across). `burst = 0` means evenly spaced calls.
//
// SHARED STATE: RESERVATIONS. With `redis`, each admission costs one EVALSHA of
// `RedisScript()` (atomic on the server, on the Redis server's TIME so replicas' clocks don't
// matter) that RESERVES a slot: slot = max(now, TAT - tau), TAT = max(TAT, now) + T, and the
// reply says when the slot is. The replica holds the slot and admits its next call (round-robin,
// below) when the slot's time comes, on a local timer; only then does it reserve the next one.
// So each replica holds at most one slot per bucket, a replica never re-asks for a token, and
// the Redis work per admitted call is one script call (O(1) commands) whatever the number of
// replicas or waiting calls. A reservation carries the latest cutoff of the replica's waiting
// calls: the script refuses (reserves nothing) when the slot would come later, and those calls
// fail at once. A slot whose calls all left before its time (Cancel, cutoff) is given back: one
// more script call, which returns the slot if no reservation followed it (otherwise it stays
// unused: moving TAT back under a later slot could let a sliding second hold one call too many).
// Slots are placed on the local clock at the reply's arrival (never earlier than Redis placed
// them). The windows bound above then holds for the sum of all replicas' admissions. Keys, with
// a Redis Cluster hash tag, expiring 2 s after TAT passes:
//   <redis_key_prefix>{<bucket_key>}       hash: `tat` = TAT in µs of Redis TIME, `chg` = the sum
//                                          of the log's counts
//   <redis_key_prefix>{<bucket_key>}:log   list of "µs:count" entries: tokens charged in the last
//                                          second (reservations, ObserveRemaining charges,
//                                          carried fallback admissions, -1 per slot given back)
// Without `redis` the same algorithm runs in-process (enough for one replica; N replicas without
// Redis would send N times the rate).
//
// QUEUEING AND FAIRNESS. Each bucket keeps one FIFO queue per caller, served round-robin: a
// caller with 100 queued calls delays another caller's single call by at most one interval per
// caller ahead of it in the rotation. Only the bucket's next call contends for a token (one
// outstanding Redis decision per bucket per replica); the others wait locally. When no token is
// free, a timer (no thread, no polling) fires at the time the token frees up — computed from TAT
// locally, or from the script's answer with Redis — and the bucket asks again.
//
// DEADLINES. The latest useful admission of a call is its cutoff:
//   cutoff = min(deadline - expected_latency, arrival + Options::max_queue_wait).
// At arrival the limiter estimates the call's turn: the time the k-th next token frees up,
// k = calls served before it in the round-robin order. If turn > cutoff the call fails at once
// with RESOURCE_EXHAUSTED, without asking Redis. With Redis the estimate starts at the held slot
// (or the shared TAT of the last answer) and counts one slot per observed gap between this
// replica's consecutive slots (about T times the number of busy replicas); a call is checked
// again by the next answer, and a refused reservation fails the calls it could not serve.
// A queued call that is still waiting at its cutoff (e.g. an upstream pause arrived, or new
// callers joined the rotation ahead of it) fails at its cutoff, never later.
// A call whose cutoff is already past fails, even if a token is free: it could not finish in time.
//
// ERRORS. Rejections are GatewayError(RESOURCE_EXHAUSTED) (upstream/errors.h) with
//   ErrorInfo{reason "RATE_LIMITED", domain "gateway", metadata {bucket, caller}},
//   RetryInfo{retry_delay = estimated turn - now: when coming back should find its turn},
//   QuotaFailure{subject = bucket_key}.
// A bucket whose rate is not a positive finite number fails its calls with FAILED_PRECONDITION
// (reason "RATE_LIMIT_MISCONFIGURED"); destroying the limiter fails waiting calls with CANCELLED.
//
// UPSTREAM FEEDBACK. Pause(): nothing is admitted from the bucket before now + retry_after, and
// the bucket then restarts with no burst (TAT = max(TAT, now + retry_after + tau)). With Redis
// the pause is written to the shared key, so every replica honours it.
// ObserveRemaining(): see the rule on the method. Whatever a header says, feedback is bounded:
// no pause or observation moves a bucket more than Options::max_pause (default 300 s) ahead,
// the script clamps it again on the server, and an observation costs O(1) Redis commands and
// one log entry however many calls it charges (the keys then expire with the capped TAT).
//
// REDIS DOWN. A failed or erroring Redis decision marks Redis unhealthy (one JSON line on
// stderr per transition), and every bucket falls back to a local GCRA at
// rate * redis_fallback_share and burst floor(burst * redis_fallback_share), starting with no
// burst, so N replicas together send at most about N * share * rate (choose share a little under
// 1/N for a hard bound: an even local schedule can fit one call more than its rate into a
// sliding second). Redis is probed (PING) every redis_probe_interval; when it answers, decisions go
// back to Redis, and each bucket's first shared decision carries the debt the replica ran up
// locally into the shared TAT (the fallback and the shared bucket don't add up to a burst).
//
// THREADS. Thread-safe. Never blocks the caller; holds no lock while calling Redis or a
// callback. `done` runs exactly once: on the scheduler's thread (timers, and decisions made
// inside Acquire, which are posted with Scheduler::RunAt(now) — never on Acquire's stack) or on
// a Redis worker thread (decisions from a Redis answer). The one exception is asked for:
// a Ticket with complete_inline whose call is admitted inside Acquire (a free token, no Redis
// decision needed) gets done(OkStatus()) on Acquire's stack, after the lock is released — the
// miss path then goes straight to its upstream request instead of through the scheduler's
// thread. Its rejections, and every other call's outcome, are still posted. `done` must not block, and must not
// destroy the RateLimiter. `scheduler` and `redis` must outlive the RateLimiter.
#ifndef GATEWAY_UPSTREAM_RATE_LIMITER_H_
#define GATEWAY_UPSTREAM_RATE_LIMITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "upstream/transport/redis_client.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {

// One bucket's limit. Passed with every call (the latest one wins), so configuration reloads
// need no registration step.
struct BucketConfig {
  // Sustained admissions per second; must be positive and finite. respond.io's default is 5.
  double rate_per_second = 5;
  // Extra calls an idle bucket admits at once, above the one every bucket admits. Negative
  // counts as 0. 0 (the default) spaces calls evenly, the safest for per-second upstream limits.
  int burst = 0;
};

// The per-bucket counters, declared once: X(name, description). Every call is counted once in
// `total` and is, at every instant, in exactly one of admitted, queued, rejected, cancelled.
#define GATEWAY_RATE_LIMITER_COUNTERS(X)                                                     \
  X(total, "calls that asked for a token")                                                   \
  X(admitted, "calls allowed to go upstream")                                                \
  X(admitted_after_wait, "admitted calls that had to wait for a token (subset of admitted)") \
  X(rejected, "calls failed: turn beyond the deadline, waited until the deadline, shutdown") \
  X(queued, "calls waiting now (a gauge)")                                                   \
  X(cancelled, "waiting calls their caller cancelled (Cancel): no token spent")              \
  X(paused_by_upstream, "Pause() calls (upstream 429s)")                                     \
  X(tightened_by_upstream, "ObserveRemaining() calls that charged tokens used by others")    \
  X(fallback_decisions, "admissions and rejections decided locally while Redis was down")   \
  X(redis_calls, "script calls sent to Redis (reservations, give-backs, pauses, observations)") \
  X(redis_answers, "script answers received, errors included")                               \
  X(slots_given_back, "reserved slots returned to the shared schedule unused (Cancel, cutoff)")

class RateLimiter {
 public:
  struct Options {
    // Share of each bucket's rate (and burst, rounded down) one replica uses while Redis is
    // down. Clamped to [0.01, 1]. The default suits three replicas: 3 * 0.3 = 0.9 x rate, which
    // leaves room for the extra call each replica's even schedule can fit into a sliding second.
    double redis_fallback_share = 0.3;
    // Prefix of every Redis key this limiter touches.
    std::string redis_key_prefix = "gw:rl:";
    // While Redis is down, how often to PING it to go back to shared limits. Minimum 1 ms.
    absl::Duration redis_probe_interval = absl::Seconds(1);
    // Longest a call may wait for its turn, whatever its deadline (bounds the queue of calls
    // that have no deadline: at most rate * max_queue_wait + burst + 1 per bucket). Config key
    // rate_limits.max_queue_wait_seconds.
    absl::Duration max_queue_wait = absl::Seconds(30);
    // Longest an upstream's feedback can hold a bucket: a Retry-After (seconds or HTTP-date) or
    // the calls an X-RateLimit-* header claims. Longer claims are clamped to it (an upstream
    // bug or a hostile header must not stop a bucket for years). Clamped to [1 ms, 24 h].
    // Config key rate_limits.max_pause_seconds.
    absl::Duration max_pause = absl::Seconds(300);
    // Tests only: the script decides on the scheduler's clock (passed as ARGV[10]) instead of
    // Redis TIME, so decisions on a ManualScheduler are exact. Never in production: replicas'
    // clocks would then disagree.
    bool pin_redis_clock = false;
    // Calls of difference ObserveRemaining() tolerates between the upstream's count and the
    // limiter's before charging (absorbs the lag between admitting a call and the upstream
    // counting it).
    int remaining_slack = 1;
  };

  // `redis` may be null: in-process state only (one replica needs nothing else).
  RateLimiter(Options options, Scheduler* scheduler, RedisClient* redis);
  // Fails every waiting call with CANCELLED (on the destroying thread) and drops later timers
  // and Redis answers.
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  struct Ticket {
    std::string bucket_key;  // e.g. "respondio:<account>:<endpoint group>"
    BucketConfig config;
    std::string caller;  // fairness class (metadata `x-caller`); "" = the shared class
    absl::Time deadline = absl::InfiniteFuture();  // the call's deadline
    absl::Duration expected_latency;               // of the upstream call (< 0 counts as 0)
    // The caller can take its admission on Acquire's own stack (it holds no lock Done needs):
    // a call admitted at once runs done(OkStatus()) before Acquire returns. See THREADS.
    bool complete_inline = false;
  };
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  // Names one Acquire() for Cancel(). Unique over the limiter's life; never 0.
  using AcquireId = uint64_t;

  // Calls done(OkStatus()) when the call may go upstream now — at once when a token is free,
  // else as soon as its turn comes (before its cutoff). Calls done(RESOURCE_EXHAUSTED, details
  // above) at once when its estimated turn is after its cutoff, or at its cutoff when it is still
  // waiting then. Never calls `done` on the caller's stack (unless ticket.complete_inline and
  // admitted at once; see THREADS); waiting holds no thread.
  AcquireId Acquire(Ticket ticket, Done done);

  // The caller no longer wants the call `id` (its caller cancelled, its deadline passed). If the
  // call is still waiting, it leaves the queue without spending a token (a slot reserved for it
  // is given back, so the next caller gets it) and its `done` runs once with CANCELLED, never on
  // Cancel's stack. After admission or rejection, or for an unknown id: a no-op (an admitted
  // call's token is spent; the upstream request is the caller's to cancel). Thread-safe.
  void Cancel(AcquireId id);

  // Upstream feedback: a 429 with Retry-After. Nothing more is admitted from the bucket before
  // now + retry_after (for every replica when on Redis); it then resumes at one call per T,
  // without burst. retry_after <= 0 (a 429 without Retry-After) pauses for one interval T;
  // retry_after > Options::max_pause (a Retry-After date in year 9999) pauses for max_pause.
  void Pause(const std::string& bucket_key, const BucketConfig& config, absl::Duration retry_after);

  // Upstream feedback: X-RateLimit-Limit / X-RateLimit-Remaining of a response, assumed to
  // describe a window of at most one second (respond.io's per-second limits). The rule:
  //   used    = limit - remaining              (calls the upstream counted in its window)
  //   charged = tokens this bucket charged in the last second: its admissions plus earlier
  //             charges of this rule — all replicas' when on Redis (the `:log` key); while
  //             falling back, this replica's admissions count 1/share each (it assumes the
  //             others use their shares alike)
  //   deficit = used - charged - remaining_slack
  // If deficit > 0, someone outside this gateway spent `deficit` calls of the budget: the bucket
  // is charged for them, TAT = min(max(TAT, now) + deficit * T, now + Options::max_pause), and
  // the charge is logged (one entry, whatever the deficit) so the same foreign use is not
  // charged twice by later responses. Our own calls still in flight only make `charged` larger,
  // so the rule errs towards not tightening. Invalid values are ignored.
  void ObserveRemaining(const std::string& bucket_key, const BucketConfig& config, int limit,
                        int remaining);

  // Options::max_pause after clamping: the longest any upstream feedback holds a bucket. The
  // pipeline caps every Retry-After it honours (backoff, RetryInfo) at it too.
  absl::Duration max_pause() const;

  // False while falling back to local limiting because Redis failed (true without Redis).
  bool redis_healthy() const;

  struct Counters {
#define GATEWAY_RATE_LIMITER_DECLARE_COUNTER(name, description) int64_t name = 0;
    GATEWAY_RATE_LIMITER_COUNTERS(GATEWAY_RATE_LIMITER_DECLARE_COUNTER)
#undef GATEWAY_RATE_LIMITER_DECLARE_COUNTER
    // Calls f(absl::string_view name, int64_t value) for each counter, in declaration order.
    template <typename F>
    void ForEach(F&& f) const {
#define GATEWAY_RATE_LIMITER_VISIT_COUNTER(name, description) f(#name, name);
      GATEWAY_RATE_LIMITER_COUNTERS(GATEWAY_RATE_LIMITER_VISIT_COUNTER)
#undef GATEWAY_RATE_LIMITER_VISIT_COUNTER
    }
  };
  // A consistent snapshot of one bucket's counters (all zeros for a bucket never seen):
  // total == admitted + queued + rejected + cancelled holds in every snapshot.
  Counters counters(const std::string& bucket_key) const;

  // True when none of the limiter's timer or Redis callbacks is running. A Redis reply is
  // counted (redis_answers) before its effects run: the admissions it decides complete after
  // that, on the Redis client's thread. So a limiter has settled only when redis_calls ==
  // redis_answers, read first, and then Quiescent().
  bool Quiescent() const;

  // The Lua script behind every Redis decision (documented in rate_limiter.cc), for operators
  // and tests. KEYS: the two keys above. ARGV: T µs, tau µs, floor µs, op (1 reserve, 2 give
  // back, 0 neither), longest wait µs, used (-1: no observation) or the TAT to give back,
  // slack, carried calls, cap µs, now µs ("" = Redis TIME). Returns {reserved/given back 0|1,
  // slot - now µs, TAT - now µs, tokens charged by the observation, TAT µs}.
  static absl::string_view RedisScript();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with timers and Redis callbacks (as weak_ptr)
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_RATE_LIMITER_H_
