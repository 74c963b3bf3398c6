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

#include <algorithm>
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
#include "chatwoot/v1/contact_service.grpc.pb.h"
#include "respondio/v2/comment_service.grpc.pb.h"
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
  // 2b. Rotate it back and forth: each reload retires acme's dispatcher, which is released
  // once the calls that started on it are done, so the live dispatchers stay bounded.
  double applied = Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"];
  double most_retired = 0;
  for (int i = 0; i < 6; ++i) {
    Replace(token_a_, i % 2 == 0 ? kTokenA : kTokenA2);
    EXPECT_TRUE(eventually([&] {
      return Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"] > applied;
    }));
    applied = Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"];
    most_retired = std::max(
        most_retired, Series(Metrics(), "gateway_workspace_dispatchers")[R"(state="retired")"]);
  }
  // Only dispatchers whose call (of the one load thread) straddled a recent reload are alive,
  // never one per reload (a slow call under load may keep one across the next reload too).
  EXPECT_LE(most_retired, 2);
  // 4. Break the file: rejected and counted, the previous workspaces keep serving.
  Replace(workspaces_file_, R"({"workspaces": {"acme": {"respondio": {"token_fil": "x"}}}})");
  EXPECT_TRUE(eventually([&] {
    return Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="rejected")"] == 1;
  }));
  EXPECT_EQ(Series(Metrics(), "gateway_config_last_reload_success")[R"(source="workspaces")"], 0);
  EXPECT_TRUE(Get(kAll, "globex").ok());
  EXPECT_EQ(HttpCall(AdminPort(*gateway_), "GET", "/readyz").status, 200);
  EXPECT_THAT(gateway_->process().output(), HasSubstr("unknown key 'token_fil'"));
  stop = true;
  load.join();
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(failures.load(), 0) << "of " << calls.load() << " calls";
  EXPECT_EQ(Series(Metrics(), "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"], 9);
  // Every retired dispatcher has been released; acme's and globex's serve.
  const auto dispatchers = Series(Metrics(), "gateway_workspace_dispatchers");
  EXPECT_EQ(dispatchers.at(R"(state="retired")"), 0);
  EXPECT_EQ(dispatchers.at(R"(state="current")"), 2);
}

// Chatwoot limits per client IP: every account of one installation behind the gateway's egress
// shares that installation's budget. acme and globex use one installation (one sandbox), initech
// another: a flood through acme queues globex's call behind it in the one shared bucket, while
// initech's bucket stays unqueued. respond.io's budgets are per organization (token): acme's and
// globex's are two buckets. Asserted on the limiter's counters and queue, per workspace, not on
// wall-clock speed.
TEST(WorkspacesBudgetTest, ChatwootWorkspacesOnOneInstallationShareItsBudget) {
  auto shared = Sandbox::Start({"--rate_limits=false",
                                absl::StrCat("--respondio_token=", kTokenA, ",", kTokenB)});
  auto other = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(shared, nullptr);
  ASSERT_NE(other, nullptr);
  const std::string token_a = WriteTempFile("budget_token_a", kTokenA);
  const std::string token_b = WriteTempFile("budget_token_b", kTokenB);
  const std::string config = WriteTempFile(
      "budget_workspaces.json",
      absl::StrCat(R"({"rate_limits": {"buckets": {"chatwoot/chatwoot": {"rate_per_second": 2}}},
        "workspaces": {
          "acme": {"chatwoot": {"base_url": ")", shared->base_url(), R"(", "account_id": 1},
                   "respondio": {"base_url": ")", shared->base_url(), R"(", "token_file": ")",
                   token_a, R"("}},
          "globex": {"chatwoot": {"base_url": ")", shared->base_url(), R"(", "account_id": 2},
                     "respondio": {"base_url": ")", shared->base_url(), R"(", "token_file": ")",
                     token_b, R"("}},
          "initech": {"chatwoot": {"base_url": ")", other->base_url(), R"(", "account_id": 1}}}})"));
  auto gateway = Gateway::Start({"--config=" + config, "--admin_listen=127.0.0.1:0",
                                 "--log_calls=false"});
  ASSERT_NE(gateway, nullptr);
  auto chatwoot = chatwoot::v1::ContactService::NewStub(gateway->channel());
  // One uncached Chatwoot call (its answer does not matter: account 2 does not exist upstream,
  // a 404 is still a request the installation counts).
  auto call = [&](const std::string& workspace) {
    auto context = Context(absl::Seconds(20));
    context->AddMetadata("x-workspace", workspace);
    context->AddMetadata("cache-control", "no-cache");
    chatwoot::v1::ListContactsRequest request;
    chatwoot::v1::ListContactsResponse reply;
    return chatwoot->ListContacts(context.get(), request, &reply);
  };
  auto metrics = [&] { return HttpCall(AdminPort(*gateway), "GET", "/metrics").body; };
  auto bucket_of = [](const std::map<std::string, double>& series, const std::string& part) {
    for (const auto& [labels, value] : series) {
      if (absl::StrContains(labels, part)) return labels;
    }
    return std::string();
  };
  const std::string shared_host = shared->base_url().substr(std::string("http://").size());
  const std::string other_host = other->base_url().substr(std::string("http://").size());
  // Before any call, the buckets are there as configured: the installation's one bucket is
  // labelled with both workspaces that share it (not with whichever used it first), the other
  // installation's with its own.
  {
    const auto rates = Series(metrics(), "gateway_limiter_rate_per_second");
    const std::string shared_rate = bucket_of(rates, absl::StrCat("chatwoot:", shared_host, ":"));
    const std::string other_rate = bucket_of(rates, absl::StrCat("chatwoot:", other_host, ":"));
    EXPECT_TRUE(absl::StrContains(shared_rate, R"(workspace="acme,globex")")) << shared_rate;
    EXPECT_TRUE(absl::StrContains(other_rate, R"(workspace="initech")")) << other_rate;
    if (!shared_rate.empty()) EXPECT_EQ(rates.at(shared_rate), 2);
  }

  // Six calls through acme at 2/s: the first goes at once, the others queue.
  std::vector<std::thread> flood;
  std::atomic<int> flood_answered{0};
  for (int i = 0; i < 6; ++i) {
    flood.emplace_back([&] {
      const grpc::Status s = call("acme");
      if (s.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) ++flood_answered;
    });
  }
  std::string shared_bucket;
  for (int i = 0; i < 400 && shared_bucket.empty(); ++i) {
    const auto queued = Series(metrics(), "gateway_limiter_queued");
    const std::string b = bucket_of(queued, absl::StrCat("chatwoot:", shared_host, ":"));
    if (!b.empty() && queued.at(b) >= 2) shared_bucket = b;
    if (shared_bucket.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(shared_bucket.empty()) << "acme's calls never queued";
  // globex, on the same installation, waits its turn in the same bucket; initech, on another
  // installation, does not.
  std::thread globex([&] { EXPECT_TRUE(call("globex").error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED); });
  EXPECT_TRUE(call("initech").ok());
  globex.join();
  for (auto& t : flood) t.join();
  EXPECT_EQ(flood_answered.load(), 6);  // the flood waited its turn, it did not fail

  const std::string text = metrics();
  const auto requests = Series(text, "gateway_limiter_requests_total");
  const auto waited = Series(text, "gateway_limiter_admitted_after_wait_total");
  // The bucket's workspace label lists every workspace that has used it: now globex too.
  shared_bucket = bucket_of(requests, absl::StrCat("chatwoot:", shared_host, ":"));
  const std::string other_bucket = bucket_of(requests, absl::StrCat("chatwoot:", other_host, ":"));
  ASSERT_FALSE(other_bucket.empty());
  // One bucket for the installation, labelled with both workspaces that use it.
  EXPECT_TRUE(absl::StrContains(shared_bucket, R"(workspace="acme,globex")")) << shared_bucket;
  EXPECT_EQ(requests.at(shared_bucket), 7);
  EXPECT_EQ(waited.at(shared_bucket), 6);  // all but acme's first, globex's included
  EXPECT_TRUE(absl::StrContains(other_bucket, R"(workspace="initech")")) << other_bucket;
  EXPECT_EQ(requests.at(other_bucket), 1);
  EXPECT_EQ(waited.at(other_bucket), 0);
  // Per workspace (the queue wait histogram): globex waited behind acme's flood, at least one
  // slot of the shared 2/s schedule; initech's one call is there too (its bucket admitted it
  // without waiting, above).
  const auto wait_count = Series(text, "gateway_limiter_queue_wait_seconds_count");
  const auto wait_sum = Series(text, "gateway_limiter_queue_wait_seconds_sum");
  const std::string globex_wait = bucket_of(wait_count, R"(workspace="globex")");
  const std::string initech_wait = bucket_of(wait_count, R"(workspace="initech")");
  ASSERT_FALSE(globex_wait.empty());
  ASSERT_FALSE(initech_wait.empty());
  EXPECT_EQ(wait_count.at(globex_wait), 1);
  EXPECT_GT(wait_sum.at(globex_wait), 0.25);
  EXPECT_EQ(wait_count.at(initech_wait), 1);

  // respond.io: each organization (token) has its own buckets.
  auto respondio = rio::ContactService::NewStub(gateway->channel());
  for (const char* workspace : {"acme", "globex"}) {
    auto context = Context();
    context->AddMetadata("x-workspace", workspace);
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    ASSERT_TRUE(respondio->GetContact(context.get(), request, &reply).ok()) << workspace;
  }
  std::vector<std::string> contact_buckets;
  for (const auto& [labels, n] : Series(metrics(), "gateway_limiter_requests_total")) {
    if (absl::StrContains(labels, "respondio:") && absl::StrContains(labels, ":contact_get")) {
      EXPECT_EQ(n, 1) << labels;
      contact_buckets.push_back(labels);
    }
  }
  ASSERT_EQ(contact_buckets.size(), 2u);
  EXPECT_TRUE(absl::StrContains(contact_buckets[0] + contact_buckets[1], R"(workspace="acme")"));
  EXPECT_TRUE(absl::StrContains(contact_buckets[0] + contact_buckets[1], R"(workspace="globex")"));
}

}  // namespace
}  // namespace gateway::testing

namespace gateway::testing {
namespace {

// Each workspace speaks its own respond.io dialect: acme the live API, globex an upstream that
// follows the OpenAPI document (two sandboxes, one per dialect). The same RPC reaches each
// upstream in its own dialect's verb and path, and both answer.
TEST(WorkspacesDialectTest, TwoWorkspacesSpeakDifferentDialects) {
  auto live = Sandbox::Start({"--rate_limits=false", "--respondio_dialect=live"});
  auto openapi = Sandbox::Start({"--rate_limits=false", "--respondio_dialect=openapi"});
  ASSERT_NE(live, nullptr);
  ASSERT_NE(openapi, nullptr);
  const std::string config = WriteTempFile(
      "dialect_workspaces.json",
      absl::StrCat(R"({"workspaces": {
          "acme": {"respondio": {"base_url": ")", live->base_url(), R"(/v2", "dialect": "live"}},
          "globex": {"respondio": {"base_url": ")", openapi->base_url(),
                   R"(", "dialect": "openapi"}}}})"));
  auto gateway = Gateway::Start({"--config=" + config, "--log_calls=false"});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::ContactService::NewStub(gateway->channel());
  for (const char* workspace : {"acme", "globex"}) {
    auto context = Context();
    context->AddMetadata("x-workspace", workspace);
    rio::ListContactChannelsRequest request;
    request.set_identifier("id:12345");
    request.set_page_size(10);
    rio::ListContactChannelsResponse reply;
    const grpc::Status status = stub->ListContactChannels(context.get(), request, &reply);
    EXPECT_TRUE(status.ok()) << workspace << ": " << status.error_message();
  }
  const nlohmann::json live_seen = live->Requests();
  const nlohmann::json openapi_seen = openapi->Requests();
  ASSERT_EQ(live_seen.size(), 1u) << live_seen.dump();
  ASSERT_EQ(openapi_seen.size(), 1u) << openapi_seen.dump();
  EXPECT_EQ(live_seen[0]["path"], "/v2/contact/id:12345/channels");
  EXPECT_EQ(openapi_seen[0]["path"], "/contact/id:12345/channel");
}

// request_id records are per workspace, even for two workspaces on one respond.io organization
// (one token): the same request_id in the other workspace is a new write, not a replay of the
// first workspace's; in the same workspace it is replayed without a second request.
TEST(WorkspacesRequestIdTest, RequestIdRecordsAreKeptPerWorkspace) {
  auto sandbox = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(sandbox, nullptr);
  const std::string config = WriteTempFile(
      "request_id_workspaces.json",
      absl::StrCat(R"({"workspaces": {
          "acme": {"respondio": {"base_url": ")", sandbox->base_url(), R"(/v2"}},
          "globex": {"respondio": {"base_url": ")", sandbox->base_url(), R"(/v2"}}}})"));
  auto gateway = Gateway::Start({"--config=" + config, "--log_calls=false"});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::CommentService::NewStub(gateway->channel());
  auto comment = [&](const std::string& workspace) {
    auto context = Context();
    context->AddMetadata("x-workspace", workspace);
    rio::CreateCommentRequest request;
    request.set_identifier("id:12345");
    request.set_text("called back");
    request.set_request_id("7d1c4a52-2f1e-4b0e-9a55-0f3f5c1d2e9a");
    rio::CreateCommentResponse reply;
    return stub->CreateComment(context.get(), request, &reply);
  };
  auto sent = [&] { return sandbox->Requests("create_comment").size(); };
  const grpc::Status first = comment("acme");
  ASSERT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(sent(), 1u);
  const grpc::Status replayed = comment("acme");
  EXPECT_TRUE(replayed.ok()) << replayed.error_message();
  EXPECT_EQ(sent(), 1u) << "the same workspace's request_id is replayed";
  const grpc::Status other = comment("globex");
  EXPECT_TRUE(other.ok()) << other.error_message();
  EXPECT_EQ(sent(), 2u) << "another workspace's request_id is its own write";
}

}  // namespace
}  // namespace gateway::testing

namespace gateway::testing {
namespace {

// Route overrides reload with the workspaces: a cache TTL set to 0 in the config file stops
// caching GetContact without a restart.
TEST(WorkspacesReloadRoutesTest, ACacheTtlChangeAppliesWithoutARestart) {
  auto sandbox = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(sandbox, nullptr);
  auto config_with_ttl = [&](int ttl) {
    return absl::StrCat(R"({"upstreams": {"respondio": {"base_url": ")", sandbox->base_url(),
                        R"(/v2"}}, "routes": {"/respondio.v2.ContactService/GetContact":
                            {"policy": {"cache_ttl_seconds": )", ttl, "}}}}");
  };
  const std::string config = WriteTempFile("reload_routes.json", config_with_ttl(60));
  auto gateway = Gateway::Start({"--config=" + config, "--admin_listen=127.0.0.1:0",
                                 "--reload_poll_interval=50ms", "--log_calls=false"});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::ContactService::NewStub(gateway->channel());
  auto get = [&] {
    auto context = Context();
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    return stub->GetContact(context.get(), request, &reply);
  };
  auto sent = [&] { return sandbox->Requests("get_contact").size(); };
  ASSERT_TRUE(get().ok());
  ASSERT_TRUE(get().ok());
  EXPECT_EQ(sent(), 1u) << "cached for 60 s";

  Replace(config, config_with_ttl(0));
  bool applied = false;
  for (int i = 0; i < 400 && !applied; ++i) {
    applied = Series(HttpCall(AdminPort(*gateway), "GET", "/metrics").body,
                     "gateway_config_reloads_total")[R"(source="workspaces",result="applied")"] == 1;
    if (!applied) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(applied) << gateway->process().output();
  ASSERT_TRUE(get().ok());
  ASSERT_TRUE(get().ok());
  EXPECT_EQ(sent(), 3u) << "not cached any more";
  EXPECT_THAT(gateway->process().output(), ::testing::Not(HasSubstr("apply only at start-up")));
}

}  // namespace
}  // namespace gateway::testing
