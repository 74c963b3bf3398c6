// Changes without a restart, on a live gateway under load: the callers file is rotated,
// broken and fixed while a steady caller keeps calling, and no call of it fails. Changes are
// picked up by polling (file content) and by SIGHUP.
#include <signal.h>
#include <stdio.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
namespace rio = ::respondio::v2;

constexpr char kSteady[] = "steady-token-0123456789abcdef";
constexpr char kOld[] = "rotating-old-token-0123456789";
constexpr char kNew[] = "rotating-new-token-0123456789";

std::string Callers(const std::string& rotating_token) {
  return absl::StrCat(R"({"callers": [
    {"name": "steady", "token": ")", kSteady, R"(", "allow": ["*"]},
    {"name": "rotating", "token": ")", rotating_token, R"(", "allow": ["@read"]}]})");
}

// Replaces `path` atomically (write a sibling, rename over), as a ConfigMap update does.
void Replace(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

class ReloadTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& extra) {
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
    callers_ = WriteTempFile(absl::StrCat("reload_callers_", counter_++, ".json"), Callers(kOld));
    std::vector<std::string> args = {"--respondio_base_url=" + sandbox_->base_url(),
                                     "--callers_file=" + callers_,
                                     "--admin_listen=127.0.0.1:0", "--log_calls=false"};
    args.insert(args.end(), extra.begin(), extra.end());
    gateway_ = Gateway::Start(args);
    ASSERT_NE(gateway_, nullptr);
    stub_ = rio::ContactService::NewStub(gateway_->channel());
  }
  grpc::Status Get(const std::string& token) {
    auto context = Context();
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    return stub_->GetContact(context.get(), request, &reply);
  }
  // Waits (bounded) until `token` gets `code`.
  bool EventuallyGets(const std::string& token, grpc::StatusCode code) {
    for (int i = 0; i < 400; ++i) {
      if (Get(token).error_code() == code) return true;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return false;
  }
  // The value of one series on /metrics ("" when absent), e.g. Reloads("applied").
  std::string Reloads(const std::string& result) {
    const std::string body = HttpCall(AdminPort(*gateway_), "GET", "/metrics").body;
    const std::string series =
        absl::StrCat("gateway_config_reloads_total{source=\"callers\",result=\"", result, "\"} ");
    const size_t at = body.find(series);
    if (at == std::string::npos) return "";
    const size_t start = at + series.size();
    return body.substr(start, body.find('\n', start) - start);
  }
  // A caller that keeps calling in the background; every failure is counted.
  void StartLoad() {
    load_ = std::thread([this] {
      auto stub = rio::ContactService::NewStub(gateway_->channel());
      while (!stop_.load()) {
        auto context = Context();
        context->AddMetadata("authorization", absl::StrCat("Bearer ", kSteady));
        context->AddMetadata("cache-control", "no-cache");
        rio::GetContactRequest request;
        request.set_identifier("id:12345");
        rio::GetContactResponse reply;
        const grpc::Status status = stub->GetContact(context.get(), request, &reply);
        ++calls_;
        if (!status.ok()) ++failures_;
      }
    });
  }
  void StopLoad() {
    stop_ = true;
    if (load_.joinable()) load_.join();
  }
  void TearDown() override { StopLoad(); }

  static int counter_;
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<rio::ContactService::Stub> stub_;
  std::string callers_;
  std::thread load_;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0}, failures_{0};
};
int ReloadTest::counter_ = 0;

TEST_F(ReloadTest, CallersFileChangesApplyWithoutARestartAndABrokenFileIsRejected) {
  Start({"--reload_poll_interval=50ms"});
  ASSERT_TRUE(Get(kOld).ok());
  StartLoad();

  // Rotate the rotating caller's token.
  Replace(callers_, Callers(kNew));
  ASSERT_TRUE(EventuallyGets(kNew, grpc::StatusCode::OK));
  EXPECT_EQ(Get(kOld).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reloads("applied"), "1");
  EXPECT_EQ(Reloads("rejected"), "0");

  // Break the file: rejected, logged and counted; the previous callers keep serving.
  Replace(callers_, R"({"callers": [{"name": "x"}]})");
  for (int i = 0; i < 400 && Reloads("rejected") != "1"; ++i) absl::SleepFor(absl::Milliseconds(25));
  EXPECT_EQ(Reloads("rejected"), "1");
  EXPECT_EQ(Reloads("applied"), "1");
  EXPECT_THAT(gateway_->process().output(), HasSubstr("callers reload rejected, still serving the previous one"));
  EXPECT_TRUE(Get(kNew).ok());
  EXPECT_EQ(HttpCall(AdminPort(*gateway_), "GET", "/readyz").status, 200);

  // A fixed file is picked up.
  Replace(callers_, Callers(kOld));
  ASSERT_TRUE(EventuallyGets(kOld, grpc::StatusCode::OK));
  EXPECT_EQ(Get(kNew).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  StopLoad();
  EXPECT_GT(calls_.load(), 0);
  EXPECT_EQ(failures_.load(), 0) << "of " << calls_.load() << " calls";
}

TEST_F(ReloadTest, SighupReloadsWithoutPolling) {
  Start({"--reload_poll_interval=0"});  // SIGHUP only
  StartLoad();
  Replace(callers_, Callers(kNew));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(Get(kOld).ok());  // no polling: nothing changed yet
  gateway_->process().Signal(SIGHUP);
  ASSERT_TRUE(EventuallyGets(kNew, grpc::StatusCode::OK));
  EXPECT_EQ(Get(kOld).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(gateway_->process().output(), HasSubstr("SIGHUP received, reloading"));
  StopLoad();
  EXPECT_EQ(failures_.load(), 0) << "of " << calls_.load() << " calls";
}

}  // namespace
}  // namespace gateway::testing
