// The gateway's metrics in Prometheus text format (exposition format 0.0.4), served by the
// admin listener's /metrics.
//
// The server records each finished call (RecordCall: calls per RPC and code, a latency
// histogram per RPC, upstream responses per upstream, bucket and HTTP status). Components that
// keep their own counters (the rate limiter, the reply cache, the dispatcher) are read at scrape
// time by collectors, so their hot paths never touch this registry:
//
//   metrics.AddCollector([&limiter](MetricsWriter& out) {
//     for (const std::string& bucket : buckets) {
//       limiter.counters(bucket).ForEach([&](absl::string_view name, int64_t value) {
//         out.Counter(absl::StrCat("gateway_limiter_", name, "_total"), "Rate limiter calls",
//                     {{"bucket", bucket}}, value);
//       });
//     }
//   });
//
// Thread-safe. Collectors run on the scraping thread and must not block for long.
#ifndef GATEWAY_SERVICE_METRICS_H_
#define GATEWAY_SERVICE_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/call_record.h"

namespace gateway::service {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Collects samples for one scrape, grouped into families (HELP and TYPE once per family).
class MetricsWriter {
 public:
  void Counter(absl::string_view name, absl::string_view help, const MetricLabels& labels,
               double value);
  void Gauge(absl::string_view name, absl::string_view help, const MetricLabels& labels,
             double value);
  // Adds every counter of a struct with ForEach(f(name, value)) as `<prefix><name>_total`.
  template <typename Counters>
  void CounterStruct(absl::string_view prefix, absl::string_view help,
                     const MetricLabels& labels, const Counters& counters) {
    counters.ForEach([&](absl::string_view name, int64_t value) {
      Counter(std::string(prefix) + std::string(name) + "_total", help, labels,
              static_cast<double>(value));
    });
  }
  // Low-level: one sample line of family `family` (`name` may add _bucket/_sum/_count).
  void Sample(absl::string_view family, absl::string_view type, absl::string_view help,
              absl::string_view name, const MetricLabels& labels, double value);
  std::string Text() const;

 private:
  struct Family {
    std::string type;
    std::string help;
    std::vector<std::string> lines;
  };
  std::map<std::string, Family> families_;
};

class Metrics {
 public:
  // Upper bounds (seconds) of the call latency histogram buckets; +Inf is implied.
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  using Collector = std::function<void(MetricsWriter&)>;

  // Counts one finished call. Unknown RPCs are counted under rpc="unknown", so callers cannot
  // create series at will.
  void RecordCall(const CallRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds a collector run at every scrape.
  void AddCollector(Collector collector) ABSL_LOCKS_EXCLUDED(mu_);
  // The whole exposition text.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct RpcStats {
    std::map<grpc::StatusCode, int64_t> calls;
    std::array<int64_t, kLatencyBuckets.size()> buckets{};  // non-cumulative
    int64_t count = 0;
    double sum_seconds = 0;
  };
  struct UpstreamKey {
    std::string upstream, bucket;
    int status;
    bool operator<(const UpstreamKey& o) const {
      return std::tie(upstream, bucket, status) < std::tie(o.upstream, o.bucket, o.status);
    }
  };
  mutable absl::Mutex mu_;
  std::map<std::string, RpcStats> rpcs_ ABSL_GUARDED_BY(mu_);
  std::map<UpstreamKey, int64_t> upstream_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_METRICS_H_
