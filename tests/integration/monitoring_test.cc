// /metrics of a busy gateway (shared state in Redis, hits, misses, upstream errors, unknown RPCs)
// passes `promtool check metrics`, and k8s/monitoring's alerts and dashboard pass promtool and
// name only metrics that scrape exposes (k8s/monitoring/check_monitoring.py). The scrape is kept
// as a test artifact (metrics.txt in the undeclared outputs).
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace rio = ::respondio::v2;

class MonitoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = RedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--chatwoot_base_url=" + sandbox_->base_url(),
                               "--redis_url=" + redis_->url(), "--admin_listen=127.0.0.1:0"});
    ASSERT_NE(gateway_, nullptr);
    admin_port_ = AdminPort(*gateway_);
    ASSERT_GT(admin_port_, 0) << gateway_->process().output();
  }

  // Concurrent calls with every kind of outcome, then the scrape, saved to a file.
  std::string BusyScrape() {
    sandbox_->AddFault({{"endpoint", "get_contact"}, {"path_regex", "id:67890"},
                        {"fault", "status"}, {"status", 503}, {"count", -1}});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([this, t] {
        auto stub = rio::ContactService::NewStub(gateway_->channel());
        for (int i = 0; i < 15; ++i) {
          for (const char* id : {"id:12345", "id:999999", "not-an-id", "id:67890"}) {
            rio::GetContactRequest request;
            request.set_identifier(id);
            rio::GetContactResponse reply;
            stub->GetContact(Context(absl::Seconds(5)).get(), request, &reply);
          }
          if (i % 5 == t) {
            std::string reply;
            RawCall(gateway_->channel(), "/x.Y/Unknown", "", &reply, *Context());
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    HttpResult metrics = HttpCall(admin_port_, "GET", "/metrics");
    EXPECT_EQ(metrics.status, 200);
    const std::string path = WriteTempFile("metrics.txt", metrics.body);
    if (const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR"); outputs != nullptr) {
      std::ofstream(std::string(outputs) + "/metrics.txt") << metrics.body;
    }
    scrape_ = metrics.body;
    return path;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  int admin_port_ = 0;
  std::string scrape_;
};

TEST_F(MonitoringTest, BusyScrapePassesPromtoolCheckMetrics) {
  const std::string path = BusyScrape();
  // The scrape really is busy: hits, upstream 404s and 503s, rejected input, unknown RPCs.
  EXPECT_THAT(scrape_, HasSubstr("status=\"503\""));
  EXPECT_THAT(scrape_, HasSubstr("status=\"404\""));
  EXPECT_THAT(scrape_, HasSubstr("code=\"INVALID_ARGUMENT\""));
  EXPECT_THAT(scrape_, HasSubstr("rpc=\"unknown\""));
  EXPECT_THAT(scrape_, Not(HasSubstr("gateway_cache_hits_total 0\n")));
  EXPECT_THAT(scrape_, HasSubstr("gateway_redis_up 1\n"));
  EXPECT_THAT(scrape_, HasSubstr("gateway_limiter_queue_wait_seconds_bucket{"));
  EXPECT_THAT(scrape_, HasSubstr("gateway_upstream_latency_seconds_bucket{"));
  CommandResult check = RunCommand({"/bin/sh", "-c", "promtool check metrics < " + path});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  // Every family has HELP text (promtool only lints its absence).
  std::string last_help;
  for (absl::string_view line : absl::StrSplit(scrape_, '\n')) {
    if (absl::StartsWith(line, "# HELP ")) {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      ASSERT_EQ(parts.size(), 4u) << line;
      EXPECT_FALSE(parts[3].empty()) << line;
      last_help = parts[2];
    } else if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      EXPECT_EQ(parts[2], last_help) << "no HELP before " << line;
    }
  }
}

TEST_F(MonitoringTest, AlertsAndDashboardPassPromtoolAndNameOnlyExposedMetrics) {
  const std::string path = BusyScrape();
  CommandResult check = RunCommand({"/usr/bin/python3",
                                    Runfile("k8s/monitoring/check_monitoring.py"), "--scrape",
                                    path});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, HasSubstr("PASSED: promtool check rules"));
  EXPECT_THAT(check.output, HasSubstr("PASSED: promtool test rules"));
  EXPECT_THAT(check.output, HasSubstr("PASSED: alerts and dashboard name only exposed metrics"));
  EXPECT_THAT(check.output, Not(HasSubstr("FAILED")));
}

}  // namespace
}  // namespace gateway::testing
