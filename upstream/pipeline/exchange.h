// One upstream exchange: admission, the HTTP request and its retries, and the commit of the
// result, shared by the calls waiting for it (one call for a write or an uncached read; a
// leader and its followers for a coalesced read).
//
//   auto exchange = std::make_shared<Exchange>(&stages, leader, ticket);
//   exchange->Start();                         // admission -> send -> (retry) -> commit
//   exchange->Start(/*wait_for_fill=*/true);   // or first wait: another replica leads the read
//   exchange->Resolve(bytes) / ->Proceed();    //   ... its reply arrived / send our own
//   exchange->Join(follower);                  // an identical read joins (false once ending)
//   follower->Cancel(kCallerLeft);             // the follower leaves; the exchange goes on
//
// States, forward only except the retry loop:
//
//   kNew ─▶ [kWaitingForFill] ─▶ kAdmitting ─▶ kSending ─▶ kDone
//              │                      ▲             │
//              └─▶ kDone (Resolve)    └─ kBackingOff ◀┘  (a retry the policy allows and the
//                                                        deadline fits)
//
// kWaitingForFill (cache_stage.h, coalescing across replicas): an identical read is led by
// another replica; the exchange waits for its cache fill (Resolve: answered without a request
// or a commit of its own) or for its lease to lapse (Proceed: admission as usual).
//
// CONTRACT
// - Each waiter keeps its own deadline: a timer per waiter cancels that waiter (kDeadline) at its
//   deadline. The exchange runs as long as at least one waiter is left, i.e. to the latest
//   deadline still waiting: admission asks for a token by the latest deadline of the waiters
//   (and asks again when it was refused for a deadline a later waiter outlives), and the HTTP
//   request of a coalesced read has no deadline of its own (its waiters' cancellations end it).
// - When the last waiter leaves (or Abort(), at shutdown) the exchange is aborted: queued for a
//   token, it leaves the limiter queue without spending one (RateLimiter::Cancel); backing off,
//   nothing more is sent; in flight, the request is cancelled (HttpTransport::Cancel). The
//   waiters still attached then end with Call::CancelStatus, not_sent true iff no request of
//   this exchange may have reached the upstream. Once aborted, no admission, request or retry
//   starts.
// - The result is committed exactly once (commit_stage.h), before any waiter is answered.
// - Ownership: the exchange holds its waiters; they hold it only weakly (call.h). It is kept
//   alive by the callbacks of the work it waits on (the limiter's `done`, the transport's
//   `done`, a retry timer, a coalescing wait, the commit's `settled`), each of which runs
//   exactly once by its component's contract. Should a component drop one unrun (a scheduler
//   destroyed with pending timers, a transport that loses a request), the exchange is destroyed
//   and ends every waiter still attached with UNAVAILABLE SHUTTING_DOWN (not_sent as above):
//   a call ends exactly once even then, and nothing of it stays alive. That answer touches
//   nothing but the calls (the Dispatcher and its stages may be gone); nothing is committed.
//
// Thread-safe. No lock is held while calling the limiter, the transport, the cache or a waiter.
#ifndef GATEWAY_UPSTREAM_PIPELINE_EXCHANGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_EXCHANGE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "upstream/binding/drift_report.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/admission_stage.h"
#include "upstream/pipeline/cache_stage.h"
#include "upstream/pipeline/call.h"
#include "upstream/pipeline/commit_stage.h"
#include "upstream/pipeline/send_stage.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {

// Counters of the pipeline itself (the limiter, cache and store count their own).
struct PipelineCounters {
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> upstream_requests{0};
  std::atomic<int64_t> retries{0};
  std::atomic<int64_t> coalesced{0};
  std::atomic<int64_t> idempotent_replays{0};
  // Calls ended by Cancel (caller left, deadline, shutdown).
  std::atomic<int64_t> cancelled{0};
  // Upstream requests aborted in flight (the upstream may have processed them).
  std::atomic<int64_t> aborted_in_flight{0};
};

class ExchangeRegistry;

// What an exchange uses; owned by the Dispatcher.
struct ExchangeStages {
  Scheduler* scheduler = nullptr;
  AdmissionStage* admission = nullptr;
  const SendStage* send = nullptr;
  const CommitStage* commit = nullptr;
  CacheStage* cache = nullptr;  // coalescing table
  ExchangeRegistry* registry = nullptr;
  PipelineCounters* counters = nullptr;
  DriftReport* drift = nullptr;  // where reply drift is recorded; nullptr: nowhere
};

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  enum class State { kNew, kWaitingForFill, kAdmitting, kSending, kBackingOff, kDone };

  // `first` is the first waiter (its PreparedCall describes the request). `ticket`: the cache
  // miss of `first`, when the reply is to be stored.
  Exchange(const ExchangeStages* stages, std::shared_ptr<Call> first,
           std::optional<ResponseCache::ReadTicket> ticket);
  // Ends the waiters still attached (see Ownership in the class comment). Touches no stage.
  ~Exchange();

  // Attaches `first` and starts admission. Call once. `wait_for_fill`: attach only and wait in
  // kWaitingForFill for Resolve or Proceed (waiters' deadlines and Abort apply while waiting).
  void Start(bool wait_for_fill = false) ABSL_LOCKS_EXCLUDED(mu_);

  // From kWaitingForFill: starts admission (no-op once done or aborted).
  void Proceed() ABSL_LOCKS_EXCLUDED(mu_);

  // Answers every waiter with `reply`, obtained elsewhere (another replica's cache fill):
  // nothing is sent or committed. No-op once done.
  void Resolve(std::string reply) ABSL_LOCKS_EXCLUDED(mu_);

  // Adds a follower (an identical read). False when the exchange is ending (aborted or done):
  // the caller should start its own. True also when `call` had already ended (nothing to do).
  bool Join(const std::shared_ptr<Call>& call) ABSL_LOCKS_EXCLUDED(mu_);

  // `call` leaves (Call::Cancel). See the class comment.
  void Leave(Call* call, Call::CancelReason reason) ABSL_LOCKS_EXCLUDED(mu_);

  // Aborts for every waiter (shutdown). No-op once done.
  void Abort(Call::CancelReason reason) ABSL_LOCKS_EXCLUDED(mu_);

  State state() const ABSL_LOCKS_EXCLUDED(mu_);
  const PreparedCall& prepared() const { return owner_->prepared(); }

 private:
  void Admit() ABSL_LOCKS_EXCLUDED(mu_);
  void OnAdmitted(int attempt, absl::Status admitted) ABSL_LOCKS_EXCLUDED(mu_);
  void Send() ABSL_LOCKS_EXCLUDED(mu_);
  void OnResponse(int attempt, absl::StatusOr<HttpResponse> response) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits (unless `commit` is false) and answers every waiter; `aborted`: answer with the
  // abort reason. Once.
  void Finish(absl::StatusOr<std::string> result, bool aborted, bool commit = true)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the abort of the current step (the caller then runs `action`). Requires aborting_.
  struct AbortAction {
    RateLimiter::AcquireId acquire = 0;
    HttpTransport::RequestId request = 0;
    bool finish_now = false;
  };
  AbortAction BeginAbortLocked(Call::CancelReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunAbort(const AbortAction& action) ABSL_LOCKS_EXCLUDED(mu_);
  void ArmDeadline(const std::shared_ptr<Call>& call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time LatestDeadlineLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies what the exchange saw (upstream status, queue wait, upstream latency) into the
  // waiter's CallStats; called just before the waiter is ended, while its stats are alive.
  void FillStats(const Call& call) const ABSL_LOCKS_EXCLUDED(mu_);

  const ExchangeStages* const stages_;
  const std::shared_ptr<Call> owner_;  // keeps the PreparedCall alive
  const std::optional<ResponseCache::ReadTicket> ticket_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  std::vector<std::shared_ptr<Call>> waiters_ ABSL_GUARDED_BY(mu_);
  bool aborting_ ABSL_GUARDED_BY(mu_) = false;
  Call::CancelReason abort_reason_ ABSL_GUARDED_BY(mu_) = Call::CancelReason::kCallerLeft;
  int attempt_ ABSL_GUARDED_BY(mu_) = 0;  // retries so far; names the current step's callbacks
  absl::Time admit_deadline_ ABSL_GUARDED_BY(mu_);  // the deadline admission was asked for
  RateLimiter::AcquireId acquire_id_ ABSL_GUARDED_BY(mu_) = 0;    // while kAdmitting
  HttpTransport::RequestId request_id_ ABSL_GUARDED_BY(mu_) = 0;  // while kSending
  bool maybe_sent_ ABSL_GUARDED_BY(mu_) = false;       // a request may have reached the upstream
  bool maybe_processed_ ABSL_GUARDED_BY(mu_) = false;  // ... and the upstream may have acted on it
  int last_http_status_ ABSL_GUARDED_BY(mu_) = 0;
  // For CallStats, on the scheduler's clock.
  bool limited_ ABSL_GUARDED_BY(mu_) = false;  // asked the limiter at least once
  absl::Time admit_asked_ ABSL_GUARDED_BY(mu_);
  absl::Duration queue_wait_ ABSL_GUARDED_BY(mu_);  // summed over attempts
  absl::Time sent_at_ ABSL_GUARDED_BY(mu_);
  absl::Duration upstream_latency_ ABSL_GUARDED_BY(mu_);  // of the last request
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish ran (once)
};

// The exchanges not yet done, so that shutdown can abort them. Thread-safe.
class ExchangeRegistry {
 public:
  // False once AbortAll ran (shutdown): the exchange must not start.
  bool Add(const std::shared_ptr<Exchange>& exchange) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(const Exchange* exchange) ABSL_LOCKS_EXCLUDED(mu_);
  // Aborts every registered exchange with `reason`, and refuses later ones.
  void AbortAll(Call::CancelReason reason) ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const Exchange*, std::weak_ptr<Exchange>> live_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_EXCHANGE_H_
