// Metrics exposition, component collectors and the call log line: exact text, zeros included.
#include <string>

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

CallRecord Record(const std::string& rpc, grpc::StatusCode code, absl::Duration latency,
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
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{" + l + ",code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{" + l + ",code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_calls_total{rpc=\"unknown\",code=\"UNIMPLEMENTED\"} 1\n"));
  // Cumulative buckets: 10us and 3ms and 40ms.
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"0.05\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_bucket{" + l + ",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gateway_call_latency_seconds_count{" + l + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("gateway_upstream_responses_total{upstream=\"respondio\","
                              "bucket=\"contact_get\",status=\"404\"} 1\n"));
  // A call without an upstream response counts no upstream response.
  EXPECT_THAT(text, Not(HasSubstr("status=\"0\"")));
  // One HELP/TYPE per family.
  size_t types = 0;
  for (size_t at = text.find("# TYPE gateway_calls_total"); at != std::string::npos;
       at = text.find("# TYPE gateway_calls_total", at + 1)) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
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
  EXPECT_THAT(text, HasSubstr("# TYPE gateway_limiter_queued gauge\ngateway_limiter_queued" + b + " 0\n"));
  EXPECT_THAT(text, HasSubstr("gateway_idempotency_replays_total 0\n"));
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
  CallRecord r;
  r.rpc = std::string("/\xff\xfe") + std::string(500, 'a');
  const std::string line = CallLogLine(r, absl::UnixEpoch());
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_LE(j["rpc"].get<std::string>().size(), 210u);
}

}  // namespace
}  // namespace gateway::service
