// The gateway's metrics, kept in a prometheus-cpp registry and served as Prometheus text
// (exposition format 0.0.4, written by prometheus-cpp's TextSerializer) by the admin
// listener's /metrics.
//
// Every family has HELP text; counters end in `_total`. A component adds families in one of
// two ways:
//
// 1. Incremented on the hot path: register the family on registry() once at start-up, keep
//    the series handles (Family::Add takes a lock and looks the labels up: never per call),
//    and only increment them while serving (an atomic add; a histogram's Observe locks only
//    its own series):
//
//      auto& family = prometheus::BuildCounter()
//                         .Name("gateway_connections_refused_total")
//                         .Help("Connections refused by --max_connections.")
//                         .Register(metrics.registry());
//      prometheus::Counter& refused = family.Add({{"listener", "grpc"}});  // start-up
//      refused.Increment();                                                 // hot path
//
//    Label sets that appear while serving (e.g. per HTTP status) are resolved once and cached
//    by the component (see RecordCall's caches in metrics.cc).
//
// 2. Collected at scrape time, for components that keep their own counters (the rate
//    limiter, the reply cache, the dispatcher): a collector writes their current values, so
//    their hot paths never touch the registry:
//
//      metrics.AddCollector([&limiter](MetricsWriter& out) {
//        for (const std::string& bucket : buckets) {
//          out.Gauge("gateway_limiter_queued", "Calls waiting for a rate-limit token now.",
//                    {{"bucket", bucket}}, limiter.counters(bucket).queued);
//        }
//      });
//
//    A family that may have no series yet (e.g. before the first drift) is declared with
//    MetricsWriter::Declare or Metrics::Declare so its HELP and TYPE are always on /metrics:
//    alert rules and dashboards can then be checked against a scrape.
//
// Thread-safe. Collectors run on the scraping thread and must not block for long.
#ifndef GATEWAY_SERVICE_METRICS_H_
#define GATEWAY_SERVICE_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "service/call_record.h"

namespace gateway::service {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Collects the families of one scrape (scrape-time collectors write into it).
class MetricsWriter {
 public:
  void Counter(absl::string_view name, absl::string_view help, const MetricLabels& labels,
               double value);
  void Gauge(absl::string_view name, absl::string_view help, const MetricLabels& labels,
             double value);
  // One histogram series: `cumulative[i]` calls at or below `bounds[i]`; `count` includes the
  // calls above the last bound (+Inf).
  void Histogram(absl::string_view name, absl::string_view help, const MetricLabels& labels,
                 const std::vector<double>& bounds, const std::vector<uint64_t>& cumulative,
                 double sum, uint64_t count);
  // A family that is exposed (HELP and TYPE) even while it has no series.
  void Declare(absl::string_view name, prometheus::MetricType type, absl::string_view help);

  // The families written so far, by name.
  std::vector<prometheus::MetricFamily> Families() &&;
  // Prometheus text of what was written (for tests and for collectors' own use).
  std::string Text() const;

 private:
  prometheus::MetricFamily& Family(absl::string_view name, prometheus::MetricType type,
                                   absl::string_view help);
  std::map<std::string, prometheus::MetricFamily> families_;
};

// Serializes families with prometheus-cpp's TextSerializer; a family without series still gets
// its HELP and TYPE lines (the serializer alone would leave it out).
std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families);

// The series of one workspace's calls: gateway_workspace_calls_total and the per-bucket
// families (upstream responses, queue wait, upstream latency) with its `workspace` label. Made
// once per workspace (Metrics::ForWorkspace, when the workspace's dispatcher is built) and
// kept by the workspace, so a call only finds its bucket's handles in its own workspace's
// table (under that workspace's reader lock) and increments them. Node-stable; lives as long
// as the Metrics.
class WorkspaceSeries {
 public:
  const std::string& name() const { return name_; }

 private:
  friend class Metrics;
  struct Bucket {
    prometheus::Histogram* queue_wait = nullptr;
    prometheus::Histogram* upstream_latency = nullptr;
  };
  explicit WorkspaceSeries(std::string name) : name_(std::move(name)) {}
  const std::string name_;
  absl::Mutex mu_;
  // By grpc::StatusCode, made on first use (under mu_) and read without a lock.
  std::array<std::atomic<prometheus::Counter*>, 17> calls_{};
  // By upstream and bucket; node-stable.
  absl::flat_hash_map<std::string, std::unique_ptr<Bucket>> buckets_ ABSL_GUARDED_BY(mu_);
  // By upstream, bucket and HTTP status.
  absl::flat_hash_map<std::string, prometheus::Counter*> responses_ ABSL_GUARDED_BY(mu_);
};

class Metrics {
 public:
  // Upper bounds (seconds) of the call latency histogram gateway_call_latency_seconds; +Inf is
  // implied. 1 ms .. 30 s: a cache hit lands in the first buckets, an upstream call in the
  // middle, a call that waited for its rate-limit turn (up to the 30 s queue cap) at the top.
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  // Upper bounds (seconds) of gateway_limiter_queue_wait_seconds, the time a call waited for
  // its rate-limit turn: 0 for a free token, then 5 ms .. 30 s (the queue wait cap).
  static constexpr std::array<double, 14> kQueueWaitBuckets = {
      0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30};

  // Upper bounds (seconds) of gateway_upstream_latency_seconds, one upstream HTTP request from
  // the transport's queue to its outcome: 5 ms .. 30 s.
  static constexpr std::array<double, 12> kUpstreamLatencyBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  using Collector = std::function<void(MetricsWriter&)>;

  Metrics();

  // The registry for families incremented on the hot path (see the file comment).
  prometheus::Registry& registry() { return *registry_; }

  // Counts one finished call: gateway_calls_total{rpc,code}, gateway_call_latency_seconds{rpc},
  // gateway_upstream_responses_total{upstream,bucket,workspace,status} when an upstream
  // answered, gateway_call_errors_total{reason} for errors,
  // gateway_workspace_calls_total{workspace,code} for calls that selected a workspace,
  // gateway_limiter_queue_wait_seconds{upstream,bucket,workspace} for calls that asked the
  // limiter, and gateway_upstream_latency_seconds{upstream,bucket,workspace} for calls that got
  // an upstream response (workspace "" for a call that selected none). Unknown RPCs are counted
  // under rpc="unknown", so callers cannot create series at will. Only increments: label sets
  // seen before are looked up under a reader lock, a workspace's in its own WorkspaceSeries
  // (record.workspace_series); the per-code call counters of a series are read without one.
  void RecordCall(const CallRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // The series of workspace `name`, made on first use; the same object for the same name.
  WorkspaceSeries* ForWorkspace(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds a collector run at every scrape.
  void AddCollector(Collector collector) ABSL_LOCKS_EXCLUDED(mu_);
  // Every family: the registry's and the collectors'.
  std::vector<prometheus::MetricFamily> Collect() const ABSL_LOCKS_EXCLUDED(mu_);
  // The whole exposition text.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct RpcSeries {
    prometheus::Histogram* latency = nullptr;
    // By grpc::StatusCode, made on first use (under mu_) and read without a lock.
    std::array<std::atomic<prometheus::Counter*>, 17> calls{};
  };
  RpcSeries& Rpc(absl::string_view rpc) ABSL_LOCKS_EXCLUDED(mu_);
  prometheus::Counter& CallsCounter(absl::string_view rpc, RpcSeries& series, int code)
      ABSL_LOCKS_EXCLUDED(mu_);
  prometheus::Counter& UpstreamCounter(WorkspaceSeries& ws, const CallRecord& record);
  prometheus::Counter& ErrorCounter(const std::string& reason) ABSL_LOCKS_EXCLUDED(mu_);
  prometheus::Counter& WorkspaceCounter(WorkspaceSeries& ws, int code);
  WorkspaceSeries::Bucket& Bucket(WorkspaceSeries& ws, const CallRecord& record);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* calls_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* upstream_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Counter>* workspace_calls_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Family<prometheus::Histogram>* upstream_latency_;

  mutable absl::Mutex mu_;
  // Series handles by label values; node-stable (the handles are kept by callers).
  absl::flat_hash_map<std::string, std::unique_ptr<RpcSeries>> rpcs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, prometheus::Counter*> error_series_ ABSL_GUARDED_BY(mu_);
  // By workspace name (configured workspaces, and "" for calls that selected none: unknown
  // names are refused before a call is counted); node-stable.
  absl::flat_hash_map<std::string, std::unique_ptr<WorkspaceSeries>> workspace_series_
      ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_METRICS_H_
