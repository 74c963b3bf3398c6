#include "service/metrics.h"

#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace gateway::service {
namespace {

std::string Escape(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrFormat("%.9g", value);
}

}  // namespace

void MetricsWriter::Sample(absl::string_view family, absl::string_view type,
                           absl::string_view help, absl::string_view name,
                           const MetricLabels& labels, double value) {
  Family& f = families_[std::string(family)];
  if (f.type.empty()) {
    f.type = std::string(type);
    f.help = std::string(help);
  }
  std::string line(name);
  if (!labels.empty()) {
    line += "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&line, i == 0 ? "" : ",", labels[i].first, "=\"", Escape(labels[i].second),
                      "\"");
    }
    line += "}";
  }
  absl::StrAppend(&line, " ", FormatValue(value));
  f.lines.push_back(std::move(line));
}

void MetricsWriter::Counter(absl::string_view name, absl::string_view help,
                            const MetricLabels& labels, double value) {
  Sample(name, "counter", help, name, labels, value);
}

void MetricsWriter::Gauge(absl::string_view name, absl::string_view help,
                          const MetricLabels& labels, double value) {
  Sample(name, "gauge", help, name, labels, value);
}

std::string MetricsWriter::Text() const {
  std::string out;
  for (const auto& [name, family] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", family.help, "\n# TYPE ", name, " ", family.type,
                    "\n");
    for (const std::string& line : family.lines) absl::StrAppend(&out, line, "\n");
  }
  return out;
}

void Metrics::RecordCall(const CallRecord& record) {
  const std::string rpc = record.known_rpc ? record.rpc : "unknown";
  const double seconds = absl::ToDoubleSeconds(record.latency);
  size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  absl::MutexLock lock(&mu_);
  RpcStats& stats = rpcs_[rpc];
  ++stats.calls[record.code];
  if (bucket < kLatencyBuckets.size()) ++stats.buckets[bucket];
  ++stats.count;
  stats.sum_seconds += seconds;
  if (record.upstream_status != 0) {
    ++upstream_[{record.upstream, record.bucket, record.upstream_status}];
  }
}

void Metrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Metrics::Render() const {
  MetricsWriter out;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
    for (const auto& [rpc, stats] : rpcs_) {
      for (const auto& [code, n] : stats.calls) {
        out.Counter("gateway_calls_total", "Finished gRPC calls by RPC and status code.",
                    {{"rpc", rpc}, {"code", StatusCodeName(code)}}, n);
      }
      constexpr char kFamily[] = "gateway_call_latency_seconds";
      constexpr char kHelp[] = "Latency of gRPC calls from arrival to status, by RPC.";
      int64_t cumulative = 0;
      for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
        cumulative += stats.buckets[i];
        out.Sample(kFamily, "histogram", kHelp, "gateway_call_latency_seconds_bucket",
                   {{"rpc", rpc}, {"le", FormatValue(kLatencyBuckets[i])}}, cumulative);
      }
      out.Sample(kFamily, "histogram", kHelp, "gateway_call_latency_seconds_bucket",
                 {{"rpc", rpc}, {"le", "+Inf"}}, stats.count);
      out.Sample(kFamily, "histogram", kHelp, "gateway_call_latency_seconds_sum", {{"rpc", rpc}},
                 stats.sum_seconds);
      out.Sample(kFamily, "histogram", kHelp, "gateway_call_latency_seconds_count",
                 {{"rpc", rpc}}, stats.count);
    }
    for (const auto& [key, n] : upstream_) {
      out.Counter("gateway_upstream_responses_total",
                  "Upstream HTTP responses by upstream, rate-limit bucket and HTTP status.",
                  {{"upstream", key.upstream}, {"bucket", key.bucket},
                   {"status", absl::StrCat(key.status)}},
                  n);
    }
  }
  // Collectors run without the lock: they may take their components' locks.
  for (const Collector& collector : collectors) collector(out);
  return out.Text();
}

}  // namespace gateway::service
