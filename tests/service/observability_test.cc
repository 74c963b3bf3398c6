// Metrics exposition, component collectors and the call log line: exact text, zeros included.
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/call_log.h"
#include "service/component_metrics.h"
#include "service/metrics.h"
#include "nlohmann/json.hpp"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// `rpc` must outlive the record (CallRecord's text fields are views).
CallRecord Record(absl::string_view rpc, grpc::StatusCode code, absl::Duration latency,
                  int upstream_status) {
  CallRecord r;
  r.rpc = rpc;
  r.known_rpc = rpc != "/x.Y/Z";
  r.code = code;
  r.latency = latency;
  r.upstream = "respondio";
  r.bucket = "contact_get";
  r.upstream_status = upstream_status;
  return r;
}

TEST(MetricsTest, CallsHistogramAndUpstreamResponses) {
  Metrics metrics;
  const std::string rpc = "/respondio.v2.ContactService/GetContact";
  metrics.RecordCall(Record(rpc, grpc::StatusCode::OK, absl::Milliseconds(3), 200));
  metrics.RecordCall(Record(rpc, grpc::StatusCode::NOT_FOUND, absl::Milliseconds(40), 404));
  metrics.RecordCall(Record(rpc, grpc::StatusCode::INVALID_ARGUMENT, absl::Microseconds(10), 0));
  metrics.RecordCall(Record("/x.Y/Z", grpc::StatusCode::UNIMPLEMENTED, absl::Microseconds(5), 0));
  const std::string text = metrics.Render();
  const std::string l = "rpc=\"" + rpc + "\"";
  EXPECT_THAT(text, HasSubstr("# TYPE gateway_calls_total counter\n"));
  // prometheus-cpp writes labels sorted by name.
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{code=\"OK\"," + l + "} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{code=\"NOT_FOUND\"," + l + "} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{code=\"UNIMPLEMENTED\",rpc=\"unknown\"} 1\n"));
  // Cumulative buckets: 10us and 3ms and 40ms.
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.05\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_count{" + l + "} 3\n"));
  // A call that selected no workspace is counted with workspace "".
  EXPECT_THAT(text, HasSubstr("gateway_upstream_responses_total{bucket=\"contact_get\","
                              "status=\"404\",upstream=\"respondio\",workspace=\"\"} 1\n"));
  // Errors by reason; an error without one is counted as UNSPECIFIED.
  EXPECT_THAT(text, HasSubstr("gateway_call_errors_total{reason=\"UNSPECIFIED\"} 3\n"));
  // A call without an upstream response counts no upstream response.
  EXPECT_THAT(text, Not(HasSubstr("status=\"0\"")));
  // One HELP/TYPE per family.
  size_t types = 0;
  for (size_t at = text.find("# TYPE gateway_calls_total"); at != std::string::npos;
       at = text.find("# TYPE gateway_calls_total", at + 1)) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
  // Every family has HELP text.
  for (const auto& family : metrics.Collect()) EXPECT_FALSE(family.help.empty()) << family.name;
}

// A call of a workspace is counted in that workspace's series, resolved once
// (Metrics::ForWorkspace, as WorkspaceSet::Build does) and passed with the record.
TEST(MetricsTest, WorkspaceSeriesCarryTheWorkspaceLabel) {
  Metrics metrics;
  WorkspaceSeries* acme = metrics.ForWorkspace("acme");
  EXPECT_EQ(metrics.ForWorkspace("acme"), acme);
  CallRecord record;
  record.rpc = "/respondio.v2.ContactService/GetContact";
  record.known_rpc = true;
  record.workspace = "acme";
  record.workspace_series = acme;
  record.upstream = "respondio";
  record.bucket = "contact_get";
  record.upstream_status = 200;
  record.limited = true;
  record.queue_wait = absl::Milliseconds(7);
  metrics.RecordCall(record);
  record.workspace = "globex";
  record.workspace_series = nullptr;  // looked up by name
  metrics.RecordCall(record);
  const std::string text = metrics.Render();
  for (const char* ws : {"acme", "globex"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat(
                          "gateway_upstream_responses_total{bucket=\"contact_get\",status=\"200\","
                          "upstream=\"respondio\",workspace=\"", ws, "\"} 1\n")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat(
                          "gateway_limiter_queue_wait_seconds_count{bucket=\"contact_get\","
                          "upstream=\"respondio\",workspace=\"", ws, "\"} 1\n")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat("gateway_workspace_calls_total{code=\"OK\",workspace=\"",
                                             ws, "\"} 1\n")));
  }
}

TEST(MetricsTest, DeclaredFamiliesShowWithoutSeriesAndMergeWithRealOnes) {
  Metrics metrics;
  metrics.AddCollector([](MetricsWriter& out) {
    out.Declare("gateway_upstream_drift_total", prometheus::MetricType::Counter, "drift");
  });
  EXPECT_THAT(metrics.Render(), HasSubstr("# HELP gateway_upstream_drift_total drift\n"
                                          "# TYPE gateway_upstream_drift_total counter\n"));
  // A component that registers the same family on the hot path: one family, its series.
  prometheus::BuildCounter()
      .Name("gateway_upstream_drift_total")
      .Help("drift")
      .Register(metrics.registry())
      .Add({{"kind", "unknown_field"}})
      .Increment();
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("gateway_upstream_drift_total{kind=\"unknown_field\"} 1\n"));
  EXPECT_EQ(text.find("# TYPE gateway_upstream_drift_total"),
            text.rfind("# TYPE gateway_upstream_drift_total"));
}

TEST(MetricsTest, HistogramFromACollector) {
  MetricsWriter out;
  out.Histogram("w_seconds", "wait", {{"bucket", "b"}}, {0.1, 1}, {2, 3}, 1.5, 4);
  EXPECT_EQ(out.Text(),
            "# HELP w_seconds wait\n# TYPE w_seconds histogram\n"
            "w_seconds_count{bucket=\"b\"} 4\nw_seconds_sum{bucket=\"b\"} 1.5\n"
            "w_seconds_bucket{bucket=\"b\",le=\"0.1\"} 2\n"
            "w_seconds_bucket{bucket=\"b\",le=\"1\"} 3\n"
            "w_seconds_bucket{bucket=\"b\",le=\"+Inf\"} 4\n");
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  MetricsWriter out;
  out.Counter("x_total", "help", {{"a", "q\"b\\n\nl"}}, 2);
  EXPECT_EQ(out.Text(), "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"q\\\"b\\\\n\\nl\"} 2\n");
}

TEST(ComponentMetricsTest, CacheLimiterAndIdempotencyCountersAppearWithZeros) {
  Metrics metrics;
  metrics.AddCollector([](MetricsWriter& out) {
    upstream::ResponseCache::Counters cache;
    cache.hits = 5;
    cache.misses = 2;
    cache.evictions = 1;
    cache.entries = 3;
    WriteCacheMetrics(cache, out);
    upstream::RateLimiter::Counters limiter;
    limiter.total = 4;
    limiter.admitted = 3;
    limiter.admitted_after_wait = 2;
    limiter.rejected = 1;
    limiter.queued = 0;
    WriteLimiterMetrics("respondio:contact_get", limiter, out);
    WriteIdempotencyMetrics(upstream::IdempotencyStore::Counters{}, out);
  });
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("gateway_cache_hits_total 5\n"));
  EXPECT_THAT(text, HasSubstr("gateway_cache_misses_total 2\n"));
  EXPECT_THAT(text, HasSubstr("gateway_cache_evictions_total 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_cache_invalidations_total 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE gateway_cache_entries gauge\ngateway_cache_entries 3\n"));
  const std::string b = "{bucket=\"respondio:contact_get\"}";
  EXPECT_THAT(text, HasSubstr("gateway_limiter_admitted_after_wait_total" + b + " 2\n"));
  EXPECT_THAT(text, HasSubstr("gateway_limiter_rejected_total" + b + " 1\n"));
  // The limiter's `total` counter is not gateway_limiter_total_total.
  EXPECT_THAT(text, HasSubstr("gateway_limiter_requests_total" + b + " 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("gateway_limiter_total_total")));
  EXPECT_THAT(text, HasSubstr("# TYPE gateway_limiter_queued gauge\ngateway_limiter_queued" + b + " 0\n"));
  EXPECT_THAT(text, HasSubstr("gateway_idempotency_replays_total 0\n"));
}

TEST(ComponentMetricsTest, HttpFairnessPerBucket) {
  MetricsWriter out;
  WriteHttpMetrics({{"respondio:a:slow", 8, 32, 8}, {"respondio:a:contact_get", 0, 0, 8}}, 2, out);
  const std::string text = out.Text();
  const std::string slow = "{bucket=\"respondio:a:slow\"}";
  EXPECT_THAT(text, HasSubstr("gateway_http_in_flight" + slow + " 8\n"));
  EXPECT_THAT(text, HasSubstr("gateway_http_queued" + slow + " 32\n"));
  EXPECT_THAT(text, HasSubstr("gateway_http_in_flight_limit" + slow + " 8\n"));
  EXPECT_THAT(text, HasSubstr("gateway_http_queued{bucket=\"respondio:a:contact_get\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("gateway_http_responses_too_large_total 2\n"));
}

TEST(CallLogTest, LineHasEveryFieldAndNoSecrets) {
  CallRecord r = Record("/respondio.v2.ContactService/GetContact", grpc::StatusCode::NOT_FOUND,
                        absl::Microseconds(12500), 404);
  r.caller = "crm-sync";
  r.reason = "UPSTREAM_NOT_FOUND";
  const std::string line = CallLogLine(r, absl::FromUnixMillis(1700000000123));
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["rpc"], "/respondio.v2.ContactService/GetContact");
  EXPECT_EQ(j["caller"], "crm-sync");
  EXPECT_EQ(j["code"], "NOT_FOUND");
  EXPECT_EQ(j["reason"], "UPSTREAM_NOT_FOUND");
  EXPECT_DOUBLE_EQ(j["latency_ms"].get<double>(), 12.5);
  EXPECT_EQ(j["upstream_status"], 404);
  EXPECT_EQ(j["cache_hit"], false);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(CallLogTest, HostileMethodNamesAreBoundedAndValidJson) {
  const std::string rpc = std::string("/\xff\xfe") + std::string(500, 'a');
  CallRecord r;
  r.rpc = rpc;
  const std::string line = CallLogLine(r, absl::UnixEpoch());
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_LE(j["rpc"].get<std::string>().size(), 210u);
}

TEST(CallLogTest, TraceIdsAndEscapesAndTheSameSecondTwice) {
  CallRecord r = Record("/respondio.v2.ContactService/GetContact", grpc::StatusCode::OK,
                        absl::Microseconds(999), 200);
  r.caller = "a\"b\\c\n\x01";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "00f067aa0ba902b7";
  const absl::Time t = absl::FromUnixMillis(1700000000123);
  const std::string first = CallLogLine(r, t);
  const std::string second = CallLogLine(r, t + absl::Milliseconds(500));
  const std::string next = CallLogLine(r, t + absl::Seconds(1));
  auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["caller"], "a\"b\\c\n\x01");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["span_id"], "00f067aa0ba902b7");
  EXPECT_DOUBLE_EQ(j["latency_ms"].get<double>(), 0.999);
  EXPECT_FALSE(j.contains("reason"));
  EXPECT_EQ(nlohmann::json::parse(second)["ts"], "2023-11-14T22:13:20.623Z");
  EXPECT_EQ(nlohmann::json::parse(next)["ts"], "2023-11-14T22:13:21.123Z");
  EXPECT_EQ(nlohmann::json::parse(CallLogLine(r, absl::FromUnixMillis(-1)))["ts"],
            "1969-12-31T23:59:59.999Z");
}

TEST(CallLogTest, EveryByteIsEscapedWhereverItSitsInALongValue) {
  // The writer skips plain bytes eight at a time: a byte that needs a look must be found at
  // every offset, before, inside and after a word.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\"", "\""}, {"\\", "\\"}, {"\n", "\n"}, {"\x01", "\x01"}, {"\x1f", "\x1f"},
      {"\x7f", "\x7f"}, {"\xc3\xa9", "\xc3\xa9"}, {"\xe2\x82\xac", "\xe2\x82\xac"},
      {"\xff", "\xef\xbf\xbd"}};
  for (size_t at = 0; at < 20; ++at) {
    for (const auto& [special, decoded] : cases) {
      CallRecord r = Record("/respondio.v2.ContactService/GetContact", grpc::StatusCode::OK,
                            absl::Microseconds(1), 200);
      r.caller = std::string(at, 'x') + special + std::string(17, 'y');
      const std::string line = CallLogLine(r, absl::UnixEpoch());
      auto j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_FALSE(j.is_discarded()) << line;
      EXPECT_EQ(j["caller"], std::string(at, 'x') + decoded + std::string(17, 'y'))
          << "at " << at << ": " << line;
    }
  }
}

// A pipe: what the writer thread wrote, read back.
class Pipe {
 public:
  Pipe() { EXPECT_EQ(pipe(fds_), 0); }
  ~Pipe() {
    close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  int write_fd() const { return fds_[1]; }
  void CloseWrite() {
    close(fds_[1]);
    fds_[1] = -1;
  }
  std::string ReadAll() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = read(fds_[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST(CallLogTest, BatchesFromManyThreadsAreWholeLinesAndFlushedOnDestruction) {
  Pipe pipe;
  std::string out;
  std::thread reader([&] { out = pipe.ReadAll(); });
  {
    CallLog log(pipe.write_fd());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < 500; ++i) {
          CallRecord r = Record("/respondio.v2.ContactService/GetContact", grpc::StatusCode::OK,
                                absl::Microseconds(i), 200);
          r.caller = "thread" + std::to_string(t);
          log.Write(r);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(log.dropped(), 0);
  }  // the destructor writes what is left
  pipe.CloseWrite();
  reader.join();
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 2000);
}

TEST(CallLogTest, AFullBufferDropsAndCountsInsteadOfBlocking) {
  Pipe pipe;  // nobody reads: the writer blocks once the pipe is full
  CallLog log(pipe.write_fd(), {.max_buffered_bytes = 64 << 10});
  CallRecord r = Record("/respondio.v2.ContactService/GetContact", grpc::StatusCode::OK,
                        absl::Microseconds(1), 200);
  for (int i = 0; i < 20000; ++i) log.Write(r);  // ~5 MB: far more than pipe + buffer
  EXPECT_GT(log.dropped(), 0);
  EXPECT_LT(log.dropped(), 20000);
  // Let the writer finish: drain the pipe, then the destructor flushes the rest.
  std::thread reader([&] { pipe.ReadAll(); });
  log.Flush();
  EXPECT_EQ(log.written() + log.dropped(), 20000);
  pipe.CloseWrite();
  reader.join();
}

TEST(CallLogTest, FlushWritesEverythingAccepted) {
  Pipe pipe;
  CallLog log(pipe.write_fd(), {.flush_interval = absl::Hours(1)});
  CallRecord r = Record("/a.B/C", grpc::StatusCode::OK, absl::Microseconds(1), 0);
  log.Write(r);
  log.Write(r);
  log.Flush();  // does not wait for the (hour-long) interval
  EXPECT_EQ(log.written(), 2);
}

}  // namespace
}  // namespace gateway::service
