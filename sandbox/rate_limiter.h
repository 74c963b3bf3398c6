// Exact sliding-window rate limiter (one second by default), one window per
// bucket name.
#ifndef SANDBOX_RATE_LIMITER_H_
#define SANDBOX_RATE_LIMITER_H_

#include <chrono>
#include <deque>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace sandbox {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Decision {
    bool allowed = true;
    int limit = 0;
    int remaining = 0;        // after this request (0 when rejected)
    int retry_after_s = 0;    // whole seconds, >= 1 when rejected
  };

  explicit RateLimiter(bool enabled) : enabled_(enabled) {}

  // Admits the request when fewer than `limit` requests were admitted for
  // `bucket` during the last `window` (one second unless given; a bucket must
  // always be used with the same window). Rejected requests are not recorded.
  Decision Acquire(const std::string& bucket, int limit,
                   Clock::duration window = std::chrono::seconds(1));

  void Reset();
  void set_enabled(bool enabled);
  bool enabled() const;

 private:
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<Clock::time_point>> windows_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace sandbox

#endif  // SANDBOX_RATE_LIMITER_H_
