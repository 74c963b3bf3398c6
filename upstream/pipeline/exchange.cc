#include "upstream/pipeline/exchange.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "upstream/errors.h"

namespace gateway::upstream {

Exchange::Exchange(const ExchangeStages* stages, std::shared_ptr<Call> first,
                   std::optional<ResponseCache::ReadTicket> ticket)
    : stages_(stages), owner_(std::move(first)), ticket_(ticket) {}

Exchange::~Exchange() {
  std::vector<std::shared_ptr<Call>> waiters;
  bool maybe_sent = false;
  bool maybe_processed = false;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(waiters_);
    maybe_sent = maybe_sent_;
    maybe_processed = maybe_processed_;
  }
  if (waiters.empty()) return;  // settled: the usual case
  // Dropped unsettled by a component (see the class comment). Nothing but the calls is touched:
  // the stages, the route and the upstream config may already be destroyed.
  ErrorDetails details{.reason = "SHUTTING_DOWN"};
  std::string message =
      "the gateway is stopping: the upstream work this call waited on was dropped unanswered";
  if (maybe_sent) {
    details.metadata["not_sent"] = "false";
    if (maybe_processed) details.metadata["upstream_may_have_processed"] = "true";
    absl::StrAppend(&message, "; the request was in flight and may have been processed");
  } else {
    details.metadata["not_sent"] = "true";
    absl::StrAppend(&message, "; the upstream request was not sent");
  }
  const absl::Status status = GatewayError(absl::StatusCode::kUnavailable, message, details);
  for (const std::shared_ptr<Call>& waiter : waiters) waiter->End(status);
}

Exchange::State Exchange::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

absl::Time Exchange::LatestDeadlineLocked() const {
  absl::Time latest = absl::InfinitePast();
  for (const auto& waiter : waiters_) latest = std::max(latest, waiter->options().deadline);
  return latest;
}

void Exchange::ArmDeadline(const std::shared_ptr<Call>& call) {
  const absl::Time deadline = call->options().deadline;
  if (deadline == absl::InfiniteFuture()) return;
  stages_->scheduler->RunAt(deadline, [weak = std::weak_ptr<Call>(call)] {
    if (std::shared_ptr<Call> c = weak.lock()) c->Cancel(Call::CancelReason::kDeadline);
  });
}

void Exchange::Start(bool wait_for_fill) {
  bool nobody_waits = false;
  {
    absl::MutexLock lock(&mu_);
    if (wait_for_fill) state_ = State::kWaitingForFill;
    if (owner_->Attach(shared_from_this())) {
      waiters_.push_back(owner_);
      ArmDeadline(owner_);
    }
    // The first call ended (was cancelled) before its exchange started; followers that joined
    // meanwhile still want the result.
    nobody_waits = waiters_.empty();
  }
  if (nobody_waits) {
    Finish(absl::CancelledError("the call ended before its upstream request started"),
           /*aborted=*/true);
    return;
  }
  // After shutdown began, nothing new is sent: the exchange aborts before its request exists.
  if (!stages_->registry->Add(shared_from_this())) Abort(Call::CancelReason::kShutdown);
  if (!wait_for_fill) Admit();
}

void Exchange::Proceed() { Admit(); }

void Exchange::Resolve(std::string reply) {
  Finish(std::move(reply), /*aborted=*/false, /*commit=*/false);
}

bool Exchange::Join(const std::shared_ptr<Call>& call) {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kDone || aborting_) return false;
  if (!call->Attach(shared_from_this())) return true;  // the call ended meanwhile
  waiters_.push_back(call);
  ArmDeadline(call);
  return true;
}

Exchange::AbortAction Exchange::BeginAbortLocked(Call::CancelReason reason) {
  aborting_ = true;
  abort_reason_ = reason;
  AbortAction action;
  switch (state_) {
    case State::kAdmitting:
      action.acquire = acquire_id_;  // 0: not stored yet; Admit cancels once it is
      break;
    case State::kSending:
      action.request = request_id_;  // 0: not stored yet; Send cancels once it is
      break;
    case State::kNew:
    case State::kWaitingForFill:
    case State::kBackingOff:
      action.finish_now = true;  // nothing outstanding; a pending retry timer will do nothing
      break;
    case State::kDone:
      break;
  }
  return action;
}

void Exchange::RunAbort(const AbortAction& action) {
  if (action.acquire != 0) stages_->admission->Cancel(action.acquire);
  if (action.request != 0) {
    stages_->counters->aborted_in_flight.fetch_add(1, std::memory_order_relaxed);
    stages_->send->Cancel(action.request);
  }
  if (action.finish_now) Finish(absl::CancelledError("aborted"), /*aborted=*/true);
}

void Exchange::Leave(Call* call, Call::CancelReason reason) {
  std::shared_ptr<Call> leaving;
  AbortAction action;
  bool not_sent = true;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(waiters_.begin(), waiters_.end(),
                           [call](const std::shared_ptr<Call>& w) { return w.get() == call; });
    if (it == waiters_.end()) return;  // already answered, or being answered
    if (waiters_.size() > 1) {
      // Others still want the result: this call leaves alone.
      leaving = std::move(*it);
      waiters_.erase(it);
      not_sent = !maybe_sent_;
    } else {
      if (aborting_) return;  // ends when the abort is settled
      action = BeginAbortLocked(reason);
    }
  }
  if (leaving != nullptr) {
    stages_->counters->cancelled.fetch_add(1, std::memory_order_relaxed);
    FillStats(*leaving);
    leaving->End(Call::CancelStatus(reason, leaving->prepared(), not_sent));
    return;
  }
  RunAbort(action);
}

void Exchange::Abort(Call::CancelReason reason) {
  AbortAction action;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone || aborting_) return;
    action = BeginAbortLocked(reason);
  }
  RunAbort(action);
}

void Exchange::Admit() {
  int attempt = 0;
  absl::Time deadline;
  bool abort_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone) return;
    if (aborting_) {
      abort_now = true;
    } else if (stages_->admission->Enabled()) {
      state_ = State::kAdmitting;
      attempt = attempt_;
      deadline = admit_deadline_ = LatestDeadlineLocked();
      admit_asked_ = stages_->scheduler->Now();
      limited_ = true;
    }
  }
  if (abort_now) {
    Finish(absl::CancelledError("aborted"), /*aborted=*/true);
    return;
  }
  if (!stages_->admission->Enabled()) {
    Send();
    return;
  }
  std::weak_ptr<Exchange> weak = weak_from_this();
  const RateLimiter::AcquireId id = stages_->admission->Admit(
      prepared(), owner_->options().caller, deadline,
      [self = shared_from_this(), attempt](absl::Status admitted) {
        self->OnAdmitted(attempt, std::move(admitted));
      });
  bool cancel_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kAdmitting && attempt_ == attempt && acquire_id_ == 0) {
      acquire_id_ = id;
      cancel_now = aborting_;  // aborted before the id was known
    }
  }
  if (cancel_now) stages_->admission->Cancel(id);
}

void Exchange::OnAdmitted(int attempt, absl::Status admitted) {
  bool again = false;
  bool aborted = false;
  std::vector<std::shared_ptr<Call>> refused;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kAdmitting || attempt_ != attempt) return;
    acquire_id_ = 0;
    queue_wait_ += stages_->scheduler->Now() - admit_asked_;
    if (aborting_) {
      aborted = true;  // a token granted in the race with Cancel stays unused
    } else if (!admitted.ok()) {
      // Refused for the deadline it asked with: waiters that joined later with a later deadline
      // may still have time; the others get the refusal now.
      again = admitted.code() == absl::StatusCode::kResourceExhausted &&
              LatestDeadlineLocked() > admit_deadline_;
      if (again) {
        // A copy: the analysis cannot see that the lambda runs under mu_.
        const absl::Time asked = admit_deadline_;
        auto keep = std::partition(waiters_.begin(), waiters_.end(),
                                   [asked](const std::shared_ptr<Call>& w) {
                                     return w->options().deadline > asked;
                                   });
        refused.assign(std::make_move_iterator(keep), std::make_move_iterator(waiters_.end()));
        waiters_.erase(keep, waiters_.end());
      }
    } else {
      state_ = State::kSending;
    }
  }
  for (const auto& waiter : refused) {
    FillStats(*waiter);
    waiter->End(admitted);
  }
  if (aborted) {
    Finish(absl::CancelledError("aborted"), /*aborted=*/true);
  } else if (again) {
    Admit();
  } else if (!admitted.ok()) {
    Finish(std::move(admitted), /*aborted=*/false);
  } else {
    Send();
  }
}

void Exchange::Send() {
  int attempt = 0;
  absl::Time deadline;
  bool abort_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone) return;
    if (aborting_) {
      abort_now = true;
    } else {
      state_ = State::kSending;
      attempt = attempt_;
      // A coalesced read runs as long as any waiter is left (their timers cancel it); anything
      // else ends with its one caller's deadline.
      deadline = prepared().coalesced ? absl::InfiniteFuture() : LatestDeadlineLocked();
      sent_at_ = stages_->scheduler->Now();
    }
  }
  if (abort_now) {
    Finish(absl::CancelledError("aborted"), /*aborted=*/true);
    return;
  }
  stages_->counters->upstream_requests.fetch_add(1, std::memory_order_relaxed);
  const HttpTransport::RequestId id = stages_->send->Send(
      prepared(), owner_->options(), deadline,
      [self = shared_from_this(), attempt](absl::StatusOr<HttpResponse> response) {
        self->OnResponse(attempt, std::move(response));
      });
  bool cancel_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kSending && attempt_ == attempt && request_id_ == 0) {
      request_id_ = id;
      cancel_now = aborting_;
    }
  }
  if (cancel_now) {
    stages_->counters->aborted_in_flight.fetch_add(1, std::memory_order_relaxed);
    stages_->send->Cancel(id);
  }
}

void Exchange::OnResponse(int attempt, absl::StatusOr<HttpResponse> response) {
  const SendStage::Outcome outcome = stages_->send->Classify(prepared(), response);
  if (response.ok()) stages_->admission->Feedback(prepared(), response->elapsed, outcome);
  std::optional<absl::Duration> retry;
  bool aborted = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kSending || attempt_ != attempt) return;
    request_id_ = 0;
    upstream_latency_ = stages_->scheduler->Now() - sent_at_;
    if (!outcome.not_sent) maybe_sent_ = true;
    if (!outcome.not_processed) maybe_processed_ = true;
    last_http_status_ = outcome.http_status;
    // An answer that raced the abort is still the answer; only a cancelled transfer is not.
    aborted = aborting_ && !response.ok();
    if (!aborted && !outcome.status.ok()) {
      retry = stages_->send->RetryDelay(prepared(), outcome, attempt_, LatestDeadlineLocked(),
                                        stages_->admission->ExpectedLatency(prepared().bucket_key));
      if (retry.has_value() && aborting_) {
        retry.reset();
        aborted = true;
      }
      if (retry.has_value()) {
        ++attempt_;
        state_ = State::kBackingOff;
      }
    }
  }
  if (aborted) {
    Finish(absl::CancelledError("aborted"), /*aborted=*/true);
    return;
  }
  if (retry.has_value()) {
    stages_->counters->retries.fetch_add(1, std::memory_order_relaxed);
    stages_->scheduler->RunAfter(*retry, [self = shared_from_this()] { self->Admit(); });
    return;
  }
  if (!outcome.status.ok()) {
    Finish(outcome.status, /*aborted=*/false);
    return;
  }
  const PreparedCall& p = prepared();
  Finish(DecodeReply(*p.route, p.upstream->name, p.cursor, p.page_size, response->body,
                     stages_->drift),
         /*aborted=*/false);
}

void Exchange::Finish(absl::StatusOr<std::string> result, bool aborted, bool commit) {
  std::vector<std::shared_ptr<Call>> waiters;
  Call::CancelReason reason;
  bool maybe_sent, maybe_processed;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    state_ = State::kDone;
    waiters = std::move(waiters_);
    waiters_.clear();
    reason = abort_reason_;
    maybe_sent = maybe_sent_;
    maybe_processed = maybe_processed_;
  }
  const PreparedCall& p = prepared();
  stages_->registry->Remove(this);
  const std::shared_ptr<Exchange> keep_alive = shared_from_this();  // `settled` may run first
  // Callers are answered once the commit is settled (a write's invalidation has reached the
  // shared cache), so a caller's next read cannot be served what its write replaced.
  auto answer = std::make_shared<absl::StatusOr<std::string>>(
      aborted ? absl::StatusOr<std::string>(Call::CancelStatus(reason, p, !maybe_sent))
              : std::move(result));
  if (aborted && !waiters.empty()) {
    stages_->counters->cancelled.fetch_add(static_cast<int64_t>(waiters.size()),
                                           std::memory_order_relaxed);
  }
  CommitStage::Settled answer_waiters = [self = keep_alive, waiters = std::move(waiters),
                                         answer]() mutable {
    for (const std::shared_ptr<Call>& waiter : waiters) {
      self->FillStats(*waiter);
      waiter->End(*answer);
    }
  };
  if (!commit) {
    if (p.coalesced) stages_->cache->Remove(p.cache_key, this);
    std::move(answer_waiters)();
    return;
  }
  stages_->commit->Commit(p, ticket_.has_value() && !aborted ? &*ticket_ : nullptr, *answer,
                          maybe_sent, maybe_processed, std::move(answer_waiters));
  // After the commit: a cross-replica lease is released once the fill is on its way to Redis.
  if (p.coalesced) stages_->cache->Remove(p.cache_key, this);
}

void Exchange::FillStats(const Call& call) const {
  CallStats* stats = call.options().stats;
  if (stats == nullptr) return;
  absl::MutexLock lock(&mu_);
  stats->upstream_status = last_http_status_;
  stats->limited = limited_;
  stats->queue_wait = queue_wait_;
  stats->upstream_latency = upstream_latency_;
}

bool ExchangeRegistry::Add(const std::shared_ptr<Exchange>& exchange) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  live_[exchange.get()] = exchange;
  return true;
}

void ExchangeRegistry::Remove(const Exchange* exchange) {
  absl::MutexLock lock(&mu_);
  live_.erase(exchange);
}

void ExchangeRegistry::AbortAll(Call::CancelReason reason) {
  std::vector<std::shared_ptr<Exchange>> live;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (const auto& [ptr, weak] : live_) {
      if (auto e = weak.lock()) live.push_back(std::move(e));
    }
  }
  for (const auto& e : live) e->Abort(reason);
}

size_t ExchangeRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return live_.size();
}

}  // namespace gateway::upstream
