#include "service/metrics.h"

#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "prometheus/text_serializer.h"

namespace gateway::service {
namespace {

const char* TypeName(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter: return "counter";
    case prometheus::MetricType::Gauge: return "gauge";
    case prometheus::MetricType::Histogram: return "histogram";
    case prometheus::MetricType::Summary: return "summary";
    default: return "untyped";
  }
}

prometheus::ClientMetric WithLabels(const MetricLabels& labels) {
  prometheus::ClientMetric metric;
  metric.label.reserve(labels.size());
  for (const auto& [name, value] : labels) metric.label.push_back({name, value});
  return metric;
}

}  // namespace

prometheus::MetricFamily& MetricsWriter::Family(absl::string_view name,
                                                prometheus::MetricType type,
                                                absl::string_view help) {
  prometheus::MetricFamily& family = families_[std::string(name)];
  if (family.name.empty()) {
    family.name = std::string(name);
    family.help = std::string(help);
    family.type = type;
  }
  return family;
}

void MetricsWriter::Counter(absl::string_view name, absl::string_view help,
                            const MetricLabels& labels, double value) {
  prometheus::ClientMetric metric = WithLabels(labels);
  metric.counter.value = value;
  Family(name, prometheus::MetricType::Counter, help).metric.push_back(std::move(metric));
}

void MetricsWriter::Gauge(absl::string_view name, absl::string_view help,
                          const MetricLabels& labels, double value) {
  prometheus::ClientMetric metric = WithLabels(labels);
  metric.gauge.value = value;
  Family(name, prometheus::MetricType::Gauge, help).metric.push_back(std::move(metric));
}

void MetricsWriter::Histogram(absl::string_view name, absl::string_view help,
                              const MetricLabels& labels, const std::vector<double>& bounds,
                              const std::vector<uint64_t>& cumulative, double sum,
                              uint64_t count) {
  prometheus::ClientMetric metric = WithLabels(labels);
  for (size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i) {
    metric.histogram.bucket.push_back({cumulative[i], bounds[i]});
  }
  metric.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_sum = sum;
  metric.histogram.sample_count = count;
  Family(name, prometheus::MetricType::Histogram, help).metric.push_back(std::move(metric));
}

void MetricsWriter::Declare(absl::string_view name, prometheus::MetricType type,
                            absl::string_view help) {
  Family(name, type, help);
}

std::vector<prometheus::MetricFamily> MetricsWriter::Families() && {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (auto& [name, family] : families_) out.push_back(std::move(family));
  return out;
}

std::string MetricsWriter::Text() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& [name, family] : families_) families.push_back(family);
  return SerializeFamilies(families);
}

std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  const prometheus::TextSerializer serializer;
  for (const prometheus::MetricFamily& family : families) {
    if (family.metric.empty()) {
      // The serializer skips a family without series; keep it visible (alerts refer to it).
      out << "# HELP " << family.name << " " << family.help << "\n# TYPE " << family.name << " "
          << TypeName(family.type) << "\n";
    } else {
      serializer.Serialize(out, {family});
    }
  }
  return out.str();
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      calls_(&prometheus::BuildCounter()
                  .Name("gateway_calls_total")
                  .Help("Finished gRPC calls by RPC and status code.")
                  .Register(*registry_)),
      latency_(&prometheus::BuildHistogram()
                    .Name("gateway_call_latency_seconds")
                    .Help("Latency of gRPC calls from arrival to status, by RPC. Buckets 1 ms "
                          "to 30 s (the queue wait cap).")
                    .Register(*registry_)),
      upstream_(&prometheus::BuildCounter()
                     .Name("gateway_upstream_responses_total")
                     .Help("Upstream HTTP responses by upstream, rate-limit bucket, workspace "
                           "and HTTP status.")
                     .Register(*registry_)),
      errors_(&prometheus::BuildCounter()
                   .Name("gateway_call_errors_total")
                   .Help("Failed gRPC calls by ErrorInfo reason (the stable UPPER_SNAKE "
                         "reason of the error model).")
                   .Register(*registry_)),
      workspace_calls_(&prometheus::BuildCounter()
                            .Name("gateway_workspace_calls_total")
                            .Help("Finished gRPC calls by the workspace they used (x-workspace "
                                  "metadata, else default) and status code.")
                            .Register(*registry_)),
      queue_wait_(&prometheus::BuildHistogram()
                       .Name("gateway_limiter_queue_wait_seconds")
                       .Help("Time calls waited for rate-limit admission, by upstream, bucket "
                             "and workspace. Buckets 0 (a free token), 5 ms to 30 s (the queue "
                             "wait cap).")
                       .Register(*registry_)),
      upstream_latency_(&prometheus::BuildHistogram()
                             .Name("gateway_upstream_latency_seconds")
                             .Help("Latency of upstream HTTP requests that got a response, by "
                                   "upstream, bucket and workspace. Buckets 5 ms to 30 s.")
                             .Register(*registry_)) {}

Metrics::RpcSeries& Metrics::Rpc(absl::string_view rpc) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = rpcs_.find(rpc);
    if (it != rpcs_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<RpcSeries>& series = rpcs_[rpc];
  if (series == nullptr) {
    series = std::make_unique<RpcSeries>();
    series->latency = &latency_->Add(
        {{"rpc", std::string(rpc)}},
        prometheus::Histogram::BucketBoundaries(kLatencyBuckets.begin(), kLatencyBuckets.end()));
  }
  return *series;
}

prometheus::Counter& Metrics::CallsCounter(absl::string_view rpc, RpcSeries& series, int code) {
  if (prometheus::Counter* counter = series.calls[code].load(std::memory_order_acquire)) {
    return *counter;
  }
  absl::MutexLock lock(&mu_);
  prometheus::Counter* counter = series.calls[code].load(std::memory_order_relaxed);
  if (counter == nullptr) {
    counter = &calls_->Add({{"rpc", std::string(rpc)},
                            {"code", StatusCodeName(static_cast<grpc::StatusCode>(code))}});
    series.calls[code].store(counter, std::memory_order_release);
  }
  return *counter;
}

WorkspaceSeries* Metrics::ForWorkspace(const std::string& name) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = workspace_series_.find(name);
    if (it != workspace_series_.end()) return it->second.get();
  }
  absl::MutexLock lock(&mu_);
  std::unique_ptr<WorkspaceSeries>& series = workspace_series_[name];
  if (series == nullptr) series.reset(new WorkspaceSeries(name));
  return series.get();
}

prometheus::Counter& Metrics::UpstreamCounter(WorkspaceSeries& ws, const CallRecord& record) {
  // Key: upstream, bucket and status joined by NULs (none of them contains one).
  std::string key = absl::StrCat(record.upstream, absl::string_view("\0", 1), record.bucket,
                                 absl::string_view("\0", 1), record.upstream_status);
  {
    absl::ReaderMutexLock lock(&ws.mu_);
    auto it = ws.responses_.find(key);
    if (it != ws.responses_.end()) return *it->second;
  }
  absl::MutexLock lock(&ws.mu_);
  prometheus::Counter*& counter = ws.responses_[key];
  if (counter == nullptr) {
    counter = &upstream_->Add({{"upstream", std::string(record.upstream)},
                               {"bucket", std::string(record.bucket)},
                               {"workspace", ws.name()},
                               {"status", absl::StrCat(record.upstream_status)}});
  }
  return *counter;
}

prometheus::Counter& Metrics::ErrorCounter(const std::string& reason) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = error_series_.find(reason);
    if (it != error_series_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  prometheus::Counter*& counter = error_series_[reason];
  if (counter == nullptr) counter = &errors_->Add({{"reason", reason}});
  return *counter;
}

prometheus::Counter& Metrics::WorkspaceCounter(WorkspaceSeries& ws, int code) {
  if (prometheus::Counter* counter = ws.calls_[code].load(std::memory_order_acquire)) {
    return *counter;
  }
  absl::MutexLock lock(&ws.mu_);
  prometheus::Counter* counter = ws.calls_[code].load(std::memory_order_relaxed);
  if (counter == nullptr) {
    counter = &workspace_calls_->Add(
        {{"workspace", ws.name()},
         {"code", StatusCodeName(static_cast<grpc::StatusCode>(code))}});
    ws.calls_[code].store(counter, std::memory_order_release);
  }
  return *counter;
}

WorkspaceSeries::Bucket& Metrics::Bucket(WorkspaceSeries& ws, const CallRecord& record) {
  std::string key = absl::StrCat(record.upstream, absl::string_view("\0", 1), record.bucket);
  {
    absl::ReaderMutexLock lock(&ws.mu_);
    auto it = ws.buckets_.find(key);
    if (it != ws.buckets_.end()) return *it->second;
  }
  absl::MutexLock lock(&ws.mu_);
  std::unique_ptr<WorkspaceSeries::Bucket>& series = ws.buckets_[key];
  if (series == nullptr) {
    series = std::make_unique<WorkspaceSeries::Bucket>();
    const prometheus::Labels labels = {
        {"upstream", std::string(record.upstream)},
        {"bucket", std::string(record.bucket)},
        {"workspace", ws.name()}};
    series->queue_wait = &queue_wait_->Add(
        labels, prometheus::Histogram::BucketBoundaries(kQueueWaitBuckets.begin(),
                                                        kQueueWaitBuckets.end()));
    series->upstream_latency = &upstream_latency_->Add(
        labels, prometheus::Histogram::BucketBoundaries(kUpstreamLatencyBuckets.begin(),
                                                        kUpstreamLatencyBuckets.end()));
  }
  return *series;
}

void Metrics::RecordCall(const CallRecord& record) {
  const absl::string_view rpc = record.known_rpc ? record.rpc : absl::string_view("unknown");
  RpcSeries& series = Rpc(rpc);
  int code = static_cast<int>(record.code);
  if (code < 0 || code >= static_cast<int>(series.calls.size())) code = grpc::StatusCode::UNKNOWN;
  CallsCounter(rpc, series, code).Increment();
  series.latency->Observe(absl::ToDoubleSeconds(record.latency));
  const bool upstream_work = record.limited || record.upstream_status != 0;
  if (!record.workspace.empty() || upstream_work) {
    WorkspaceSeries& ws = record.workspace_series != nullptr
                              ? *record.workspace_series
                              : *ForWorkspace(std::string(record.workspace));
    if (!record.workspace.empty()) WorkspaceCounter(ws, code).Increment();
    if (record.upstream_status != 0) UpstreamCounter(ws, record).Increment();
    if (upstream_work) {
      WorkspaceSeries::Bucket& bucket = Bucket(ws, record);
      if (record.limited) bucket.queue_wait->Observe(absl::ToDoubleSeconds(record.queue_wait));
      if (record.upstream_status != 0) {
        bucket.upstream_latency->Observe(absl::ToDoubleSeconds(record.upstream_latency));
      }
    }
  }
  if (record.code != grpc::StatusCode::OK) {
    // Every gateway error carries a reason; "UNSPECIFIED" would show one that does not.
    static const std::string kUnspecified = "UNSPECIFIED";
    ErrorCounter(record.reason.empty() ? kUnspecified : record.reason).Increment();
  }
}

void Metrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  // Collectors run without the lock: they may take their components' locks.
  MetricsWriter out;
  for (const Collector& collector : collectors) collector(out);
  for (prometheus::MetricFamily& family : std::move(out).Families()) {
    families.push_back(std::move(family));
  }
  // One family per name: a family declared without series (MetricsWriter::Declare) and the
  // same family registered or written elsewhere become one (the first HELP and TYPE win).
  std::vector<prometheus::MetricFamily> merged;
  std::map<std::string, size_t> index;
  for (prometheus::MetricFamily& family : families) {
    auto [it, inserted] = index.emplace(family.name, merged.size());
    if (inserted) {
      merged.push_back(std::move(family));
      continue;
    }
    std::vector<prometheus::ClientMetric>& into = merged[it->second].metric;
    for (prometheus::ClientMetric& metric : family.metric) into.push_back(std::move(metric));
  }
  return merged;
}

std::string Metrics::Render() const { return SerializeFamilies(Collect()); }

}  // namespace gateway::service
