#include "upstream/pipeline/admission_stage.h"

#include <algorithm>
#include <utility>


namespace gateway::upstream {

RateLimiter::AcquireId AdmissionStage::Admit(const PreparedCall& prepared,
                                             const std::string& caller, absl::Time deadline,
                                             RateLimiter::Done done) {
  RateLimiter::Ticket ticket;
  ticket.bucket_key = prepared.bucket_key;
  ticket.config = prepared.bucket;
  ticket.caller = caller;
  ticket.deadline = deadline;
  // A free token admits the call on this stack: the exchange holds no lock here and sends at
  // once, instead of hopping through the scheduler's thread first.
  ticket.complete_inline = true;
  {
    absl::MutexLock lock(&mu_);
    if (!bucket_keys_.contains(prepared.bucket_key)) bucket_keys_.insert(prepared.bucket_key);
  }
  ticket.expected_latency = ExpectedLatency(prepared.bucket_key);
  return limiter_->Acquire(std::move(ticket), std::move(done));
}

absl::Duration AdmissionStage::ExpectedLatency(const std::string& bucket_key) const {
  // Beyond the upstream's own latency, the reply must still travel back to the caller before
  // its deadline: a call the limiter can only admit later than this is better answered now.
  constexpr absl::Duration kReplyMargin = absl::Milliseconds(50);
  absl::MutexLock lock(&mu_);
  auto it = latency_.find(bucket_key);
  return kReplyMargin + (it == latency_.end() ? absl::Milliseconds(50) : it->second);
}

std::vector<std::string> AdmissionStage::BucketKeys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys(bucket_keys_.begin(), bucket_keys_.end());
  std::sort(keys.begin(), keys.end());
  return keys;
}

void AdmissionStage::Feedback(const PreparedCall& prepared, absl::Duration elapsed,
                              const SendStage::Outcome& outcome) {
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = latency_.try_emplace(prepared.bucket_key, elapsed);
    if (!inserted) it->second = it->second * 0.8 + elapsed * 0.2;
  }
  if (limiter_ == nullptr) return;
  if (outcome.pause.has_value()) limiter_->Pause(prepared.bucket_key, prepared.bucket, *outcome.pause);
  if (outcome.rate_limit.has_value()) {
    limiter_->ObserveRemaining(prepared.bucket_key, prepared.bucket, outcome.rate_limit->limit,
                               outcome.rate_limit->remaining);
  }
}

}  // namespace gateway::upstream
