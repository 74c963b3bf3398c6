// Several workspaces behind one gateway, on one sandbox that accepts one respond.io token per
// workspace and logs which token each request carried.
//   - every request reaches the upstream with its workspace's token;
//   - cached replies never cross workspaces;
//   - a caller limited to one workspace is refused the other; selection errors;
//   - a flood on one workspace's bucket leaves the other's admissions unqueued (asserted on the
//     limiter's counters and queue, not on wall-clock speed);
//   - reload under load: add a workspace, rotate a token, tighten a rate, break the file, with
//     no failed call.
#include <stdio.h>

#include <atomic>
#include <functional>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

constexpr char kTokenA[] = "acme-respondio-token-0001";
constexpr char kTokenA2[] = "acme-respondio-token-0002";
constexpr char kTokenB[] = "globex-respondio-token-01";
constexpr char kAll[] = "all-workspaces-caller-0123";
constexpr char kAcmeOnly[] = "acme-only-caller-0123456789";

void Replace(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

// Series of one family on a /metrics scrape, by their label text ("bucket=\"...\"").
std::map<std::string, double> Series(const std::string& metrics, const std::string& family) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (!absl::StartsWith(line, family + "{")) continue;
    const size_t close = line.find("} ");
    double value = 0;
    if (close == absl::string_view::npos || !absl::SimpleAtod(line.substr(close + 2), &value)) continue;
    out[std::string(line.substr(family.size() + 1, close - family.size() - 1))] = value;
  }
  return out;
}

class WorkspacesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox_ = Sandbox::Start({"--rate_limits=false", "--respondio_dialect=openapi",
                               absl::StrCat("--respondio_token=", kTokenA, ",", kTokenA2, ",", kTokenB)});
    ASSERT_NE(sandbox_, nullptr);
    token_a_ = WriteTempFile(absl::StrCat("ws_token_a_", n_), kTokenA);
    token_b_ = WriteTempFile(absl::StrCat("ws_token_b_", n_), kTokenB);
    callers_ = WriteTempFile(absl::StrCat("ws_callers_", n_, ".json"), absl::StrCat(R"({"callers": [
      {"name": "all", "token": ")", kAll, R"(", "allow": ["*"]},
      {"name": "acme-only", "token": ")", kAcmeOnly, R"(", "allow": ["*"], "workspaces": ["acme"]}]})"));
    workspaces_file_ = WriteTempFile(absl::StrCat("ws_workspaces_", n_, ".json"), "{}");
    ++n_;
  }
  std::string Workspaces(bool with_globex, double acme_rate) {
    std::string json = absl::StrCat(R"({"workspaces": {
        "acme": {"respondio": {"token_file": ")", token_a_, R"("},
                 "rate_limits": {"buckets": {"respondio/contact_get": {"rate_per_second": )",
                                    acme_rate, "}}}}");
    if (with_globex) {
      absl::StrAppend(&json, R"(, "globex": {"respondio": {"token_file": ")", token_b_, R"("}})");
    }
    return json + "}}";
  }
  void StartGateway(bool with_globex, double acme_rate) {
    Replace(workspaces_file_, Workspaces(with_globex, acme_rate));
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--workspaces_file=" + workspaces_file_, "--callers_file=" + callers_,
                               "--admin_listen=127.0.0.1:0", "--reload_poll_interval=50ms"});
    ASSERT_NE(gateway_, nullptr);
    stub_ = rio::ContactService::NewStub(gateway_->channel());
  }
  grpc::Status Get(const std::string& caller, const std::string& workspace, bool no_cache = false,
                   absl::Duration timeout = absl::Seconds(10)) {
    auto context = Context(timeout);
    context->AddMetadata("authorization", absl::StrCat("Bearer ", caller));
    if (!workspace.empty()) context->AddMetadata("x-workspace", workspace);
    if (no_cache) context->AddMetadata("cache-control", "no-cache");
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    return stub_->GetContact(context.get(), request, &reply);
  }
  // The authorization header of each get_contact request the sandbox received, in order.
  std::vector<std::string> TokensSeen() {
    std::vector<std::string> out;
    for (const auto& r : sandbox_->Requests("get_contact")) {
      out.push_back(r["headers"].value("authorization", ""));
    }
    return out;
  }
  std::string Metrics() { return HttpCall(AdminPort(*gateway_), "GET", "/metrics").body; }

  static int n_;
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<rio::ContactService::Stub> stub_;
  std::string token_a_, token_b_, callers_, workspaces_file_;
};
int WorkspacesTest::n_ = 0;

TEST_F(WorkspacesTest, EachRequestCarriesItsWorkspacesTokenAndCachedRepliesNeverCross) {
  StartGateway(/*with_globex=*/true, /*acme_rate=*/10);
  ASSERT_TRUE(Get(kAll, "acme").ok());
  ASSERT_TRUE(Get(kAll, "globex").ok());  // the same read: not answered from acme's cache
  ASSERT_TRUE(Get(kAll, "acme").ok());    // acme's own cache entry
  ASSERT_TRUE(Get(kAll, "globex").ok());  // and globex's
  EXPECT_EQ(TokensSeen(), (std::vector<std::string>{absl::StrCat("Bearer ", kTokenA),
                                                    absl::StrCat("Bearer ", kTokenB)}));
  const auto calls = Series(Metrics(), "gateway_workspace_calls_total");
  EXPECT_EQ(calls.at(R"(code="OK",workspace="acme")"), 2);
  EXPECT_EQ(calls.at(R"(code="OK",workspace="globex")"), 2);
  // The call log names the workspace (lines are written in batches: wait, bounded).
  bool logged = false;
  for (int i = 0; i < 200 && !logged; ++i) {
    for (const auto& line : CallLogLines(gateway_->process().output())) {
      logged = logged || line.value("workspace", "") == "globex";
    }
    if (!logged) absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_TRUE(logged);
}

TEST_F(WorkspacesTest, SelectionErrorsAndACallerLimitedToOneWorkspace) {
  StartGateway(/*with_globex=*/true, /*acme_rate=*/10);
  EXPECT_TRUE(Get(kAcmeOnly, "acme").ok());
  const grpc::Status refused = Get(kAcmeOnly, "globex");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ErrorInfoOf(refused).reason(), "WORKSPACE_NOT_ALLOWED");
  const grpc::Status unknown = Get(kAll, "initech");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ErrorInfoOf(unknown).reason(), "UNKNOWN_WORKSPACE");
  // No `default` workspace is configured: a call must name one.
  const grpc::Status required = Get(kAll, "");
  EXPECT_EQ(required.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(required).reason(), "WORKSPACE_REQUIRED");
  // None of them reached the upstream.
  EXPECT_EQ(TokensSeen().size(), 1u);
}

TEST_F(WorkspacesTest, AFloodOnOneWorkspaceLeavesTheOthersBucketUnqueued) {
  StartGateway(/*with_globex=*/true, /*acme_rate=*/1);
  // Five uncached reads on acme at 1/s: the first goes at once, the others queue.
  std::vector<std::thread> flood;
  std::atomic<int> flood_ok{0};
  for (int i = 0; i < 5; ++i) {
    flood.emplace_back([&] {
      if (Get(kAll, "acme", /*no_cache=*/true, absl::Seconds(20)).ok()) ++flood_ok;
    });
  }
  // Wait (bounded) until acme's queue holds calls.
  std::string acme_bucket;
  for (int i = 0; i < 400 && acme_bucket.empty(); ++i) {
    const std::string metrics = Metrics();
    const auto rates = Series(metrics, "gateway_limiter_rate_per_second");
    const auto queued = Series(metrics, "gateway_limiter_queued");
    for (const auto& [labels, rate] : rates) {
      if (rate == 1 && queued.count(labels) && queued.at(labels) >= 2) acme_bucket = labels;
    }
    if (acme_bucket.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(acme_bucket.empty()) << "acme's calls never queued";
  // Meanwhile globex's reads, each after its own bucket's interval (10/s), are admitted without
  // waiting: acme's queue does not hold them.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Get(kAll, "globex", /*no_cache=*/true).ok());
    absl::SleepFor(absl::Milliseconds(150));
  }
  const std::string metrics = Metrics();
  const auto rates = Series(metrics, "gateway_limiter_rate_per_second");
  std::string globex_bucket;
  for (const auto& [labels, rate] : rates) {
    if (rate == 10 && absl::StrContains(labels, "contact_get")) globex_bucket = labels;
  }
  ASSERT_FALSE(globex_bucket.empty());
  EXPECT_NE(globex_bucket, acme_bucket);
  EXPECT_EQ(Series(metrics, "gateway_limiter_admitted_total").at(globex_bucket), 3);
  EXPECT_EQ(Series(metrics, "gateway_limiter_admitted_after_wait_total").at(globex_bucket), 0);
  EXPECT_EQ(Series(metrics, "gateway_limiter_queued").at(globex_bucket), 0);
  EXPECT_GE(Series(metrics, "gateway_limiter_queued").at(acme_bucket), 1);  // acme still waits
  for (auto& t : flood) t.join();
  EXPECT_EQ(flood_ok.load(), 5);  // the flood waited its turn, it did not fail
}

TEST_F(WorkspacesTest, ReloadUnderLoadAddRotateTightenAndBreak) {
  StartGateway(/*with_globex=*/false, /*acme_rate=*/10);
  EXPECT_EQ(ErrorInfoOf(Get(kAll, "globex")).reason(), "UNKNOWN_WORKSPACE");
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::thread load([&] {
    while (!stop.load()) {
      ++calls;
      if (!Get(kAll, "acme", /*no_cache=*/true, absl::Seconds(20)).ok()) ++failures;
    }
  });
  auto eventually = [](const std::function<bool()>& done) {
    for (int i = 0; i < 400; ++i) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return false;
  };
  // 1. Add a workspace.
  Replace(workspaces_file_, Workspaces(/*with_globex=*/true, 10));
  EXPECT_TRUE(eventually([&] { return Get(kAll, "globex").ok(); }));
  // 2. Rotate acme's token (the Secret's file changes; the config does not).
  Replace(token_a_, kTokenA2);
  EXPECT_TRUE(eventually([&] {
    const auto seen = TokensSeen();
    return !seen.empty() && seen.back() == absl::StrCat("Bearer ", kTokenA2);
  }));
  // 3. Tighten acme's rate.
  Replace(workspaces_file_, Workspaces(/*with_globex=*/true, 2));
  EXPECT_TRUE(eventually([&] {
    for (const auto& [labels, rate] : Series(Metrics(), "gateway_limiter_rate_per_second")) {
      if (rate == 2) return true;
    }
    return false;
  }));
  // 4. Break the file: rejected and counted, the previous workspaces keep serving.
  Replace(workspaces_file_, R"({"workspaces": {"acme": {"respondio": {"token_fil": "x"}}}})");
  EXPECT_TRUE(eventually([&] {
    return Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="rejected")"] == 1;
  }));
  EXPECT_TRUE(Get(kAll, "globex").ok());
  EXPECT_EQ(HttpCall(AdminPort(*gateway_), "GET", "/readyz").status, 200);
  EXPECT_THAT(gateway_->process().output(), HasSubstr("unknown key 'token_fil'"));
  stop = true;
  load.join();
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(failures.load(), 0) << "of " << calls.load() << " calls";
  EXPECT_EQ(Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"], 3);
}

}  // namespace
}  // namespace gateway::testing
