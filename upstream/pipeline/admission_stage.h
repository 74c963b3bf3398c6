// Stage 4, admission: a token from the shared rate limiter before each upstream attempt, and the
// upstream's feedback to it.
//
//   AdmissionStage admission(&limiter);     // limiter may be null: no limiting
//   RateLimiter::AcquireId id = admission.Admit(prepared, caller, deadline, done);
//   admission.Cancel(id);                   // the call left: no token is spent
//   admission.Feedback(prepared, response.elapsed, send.Classify(prepared, response));
//
// CONTRACT. Admit asks for a token of prepared.bucket_key by `deadline`, minus the bucket's
// expected upstream latency (an exponentially weighted average of RecordLatency, plus a margin
// for the reply to travel back); `done` runs exactly once (RateLimiter::Acquire), on Admit's own
// stack when a token is free at once (Ticket::complete_inline: the caller must hold no lock
// `done` needs), else later on another thread. Cancel is
// RateLimiter::Cancel: a waiting call leaves the queue without spending a token and `done` gets
// CANCELLED; after admission, a no-op. Without a limiter Enabled() is false and nothing may be
// asked. Feedback applies what the one outcome table (error_mapping.h, through
// SendStage::Classify) read from a response, and decides nothing itself: the outcome's `pause`
// (a 429: its Retry-After, else 1 s) pauses the bucket (RateLimiter::Pause, which caps it at
// max_pause again), its `rate_limit` (X-RateLimit-Limit/Remaining) may tighten it
// (RateLimiter::ObserveRemaining); `elapsed` feeds the bucket's expected latency. max_pause()
// is the limiter's cap (rate_limits.max_pause_seconds; the default without a limiter), the
// one cap of every wait an upstream's header imposes. BucketKeys lists every bucket that
// asked for a token, for metrics. Thread-safe.
#ifndef GATEWAY_UPSTREAM_PIPELINE_ADMISSION_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_ADMISSION_STAGE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/pipeline/call.h"
#include "upstream/pipeline/send_stage.h"
#include "upstream/transport/retry_after.h"

namespace gateway::upstream {

class AdmissionStage {
 public:
  explicit AdmissionStage(RateLimiter* limiter) : limiter_(limiter) {}

  bool Enabled() const { return limiter_ != nullptr; }
  RateLimiter::AcquireId Admit(const PreparedCall& prepared, const std::string& caller,
                               absl::Time deadline, RateLimiter::Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Cancel(RateLimiter::AcquireId id) const { limiter_->Cancel(id); }

  void Feedback(const PreparedCall& prepared, absl::Duration elapsed,
                const SendStage::Outcome& outcome) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration max_pause() const {
    return limiter_ != nullptr ? limiter_->max_pause() : kDefaultRetryAfterCap;
  }
  absl::Duration ExpectedLatency(const std::string& bucket_key) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> BucketKeys() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  RateLimiter* limiter_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Duration> latency_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> bucket_keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_ADMISSION_STAGE_H_
