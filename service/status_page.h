// The admin listener's status page (GET /): one self-refreshing HTML page, no external assets,
// that tells an operator at a glance how the budget is being spent. Every number is read from
// the same families /metrics serves (Metrics::Collect), so the page and a scrape agree:
//
//   - per rate-limit bucket: the configured limit (gateway_limiter_rate_per_second), use of it
//     over the last minute (admitted calls in the window / (limit * window)), calls admitted in
//     the window, calls waiting now (gateway_limiter_queued), calls rejected (in the window and
//     in total, gateway_limiter_rejected_total);
//   - the reply cache: hit ratio (hits / (hits + misses), since start), entries and bytes;
//   - per upstream: responses in the window by class (2xx, 4xx, 429, 5xx) and a health word;
//   - Redis (up, down, not configured) and readiness;
//   - errors by ErrorInfo reason (in the window and in total).
//
// "The window" is the last minute: a background thread samples the counters every second and
// keeps a minute of samples; until the page has a minute of history the window is shorter and
// the page says how long it is.
//
//   StatusPage page([&metrics] { return metrics.Collect(); });
//   page.Start();                         // the sampler thread
//   admin handlers: .status_page = [&page] { return page.Render(); }
#ifndef GATEWAY_SERVICE_STATUS_PAGE_H_
#define GATEWAY_SERVICE_STATUS_PAGE_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "prometheus/metric_family.h"

namespace gateway::service {

class StatusPage {
 public:
  using Source = std::function<std::vector<prometheus::MetricFamily>()>;
  // Seconds between the page's own reloads.
  static constexpr int kRefreshSeconds = 5;

  explicit StatusPage(Source source);
  ~StatusPage();  // stops the sampler

  // Starts sampling once a second (takes a first sample now).
  void Start();
  // Records the counters as of `now` (the sampler calls it; tests call it with their clock).
  void Sample(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The page as of `now`.
  std::string Render(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  std::string Render() { return Render(absl::Now()); }

  static constexpr absl::Duration kWindow = absl::Minutes(1);

 private:
  // Counter values by "family\x1flabel=value,...".
  using Counters = std::map<std::string, double>;
  struct Snapshot {
    absl::Time at;
    Counters counters;
  };
  Counters Read() const;

  Source source_;
  absl::Mutex mu_;
  std::deque<Snapshot> history_ ABSL_GUARDED_BY(mu_);  // oldest first, within kWindow + 1 s
  absl::Notification stop_;
  std::thread sampler_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_STATUS_PAGE_H_
