#include "sandbox/rate_limiter.h"

#include <algorithm>

namespace sandbox {

RateLimiter::Decision RateLimiter::Acquire(const std::string& bucket,
                                           int limit, Clock::duration window) {
  Decision d;
  d.limit = limit;
  absl::MutexLock lock(&mu_);
  if (!enabled_) {
    d.remaining = limit;
    return d;
  }
  const Clock::time_point now = Clock::now();
  std::deque<Clock::time_point>& q = windows_[bucket];
  while (!q.empty() && now - q.front() >= window) q.pop_front();
  if (static_cast<int>(q.size()) >= limit) {
    d.allowed = false;
    d.remaining = 0;
    // The oldest admitted request leaves the window at q.front() + window.
    auto wait = q.front() + window - now;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait);
    d.retry_after_s =
        std::max<int>(1, static_cast<int>((ms.count() + 999) / 1000));
    return d;
  }
  q.push_back(now);
  d.remaining = limit - static_cast<int>(q.size());
  return d;
}

void RateLimiter::Reset() {
  absl::MutexLock lock(&mu_);
  windows_.clear();
}

void RateLimiter::set_enabled(bool enabled) {
  absl::MutexLock lock(&mu_);
  enabled_ = enabled;
  windows_.clear();
}

bool RateLimiter::enabled() const {
  absl::MutexLock lock(&mu_);
  return enabled_;
}

}  // namespace sandbox
