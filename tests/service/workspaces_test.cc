// WorkspaceSet and Workspaces: selecting a workspace, and what a rebuild keeps.
#include "service/workspaces.h"

#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.pb.h"
#include "service/route_table.h"
#include "upstream/errors.h"
#include "upstream/scheduler.h"
#include "upstream/transport/http_transport.h"

namespace gateway::service {
namespace {

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/workspaces_test_", name);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return path;
}

GatewayConfig Load(const std::string& name, const std::string& json) {
  auto config = LoadConfig({.config_file = WriteTemp(name, json)});
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : GatewayConfig();
}

constexpr char kTwo[] = R"({"workspaces": {
    "acme": {"respondio": {"token_file": "TOKEN_A"}},
    "globex": {"respondio": {"token_file": "TOKEN_B"},
               "rate_limits": {"buckets": {"respondio/contact_get": {"rate_per_second": 2}}}}}})";

std::string Two(const std::string& token_a, const std::string& token_b) {
  std::string json = kTwo;
  json.replace(json.find("TOKEN_A"), 7, token_a);
  json.replace(json.find("TOKEN_B"), 7, token_b);
  return json;
}

TEST(WorkspaceSet, SelectByMetadataWithTheReasonsOfTheErrorModel) {
  const GatewayConfig config =
      Load("two.json", Two(WriteTemp("a", "token-a-0123456789"), WriteTemp("b", "token-b-0123456789")));
  auto set = WorkspaceSet::Build(config, {}, nullptr);
  EXPECT_EQ(set->Names(), (std::vector<std::string>{"acme", "globex"}));

  auto acme = set->Select("acme", true);
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_EQ((*acme)->name, "acme");
  EXPECT_EQ((*acme)->config.upstreams.at("respondio").token, "token-a-0123456789");

  const absl::Status required = set->Select("", false).status();
  EXPECT_EQ(required.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(upstream::ErrorReasonOf(required), "WORKSPACE_REQUIRED");
  const absl::Status unknown = set->Select("initech", true).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(upstream::ErrorReasonOf(unknown), "UNKNOWN_WORKSPACE");

  // Without a workspaces map the top level is `default`, used by calls that name none.
  auto single = WorkspaceSet::Build(Load("single.json", "{}"), {}, nullptr);
  auto fallback = single->Select("", false);
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ((*fallback)->name, "default");
}

TEST(WorkspaceSet, ARebuildKeepsTheDispatchersOfUnchangedWorkspaces) {
  const std::string a = WriteTemp("ra", "token-a-0123456789");
  const std::string b = WriteTemp("rb", "token-b-0123456789");
  auto first = WorkspaceSet::Build(Load("r1.json", Two(a, b)), {}, nullptr);
  Workspaces workspaces(first);
  // Same files: every dispatcher carries on.
  auto same = WorkspaceSet::Build(Load("r2.json", Two(a, b)), {}, first.get());
  EXPECT_EQ(same->all().at("acme").dispatcher, first->all().at("acme").dispatcher);
  EXPECT_EQ(same->all().at("globex").dispatcher, first->all().at("globex").dispatcher);
  // A rotated token gives that workspace a new dispatcher; the other keeps its own.
  const std::string b2 = WriteTemp("rb2", "token-b-rotated-0123456789");
  auto rotated = WorkspaceSet::Build(Load("r3.json", Two(a, b2)), {}, same.get());
  EXPECT_EQ(rotated->all().at("acme").dispatcher, first->all().at("acme").dispatcher);
  EXPECT_NE(rotated->all().at("globex").dispatcher, first->all().at("globex").dispatcher);
  workspaces.Replace(rotated);
  EXPECT_EQ(workspaces.Current(), rotated);
  // The replaced dispatcher is still listed while a snapshot (a call) holds it.
  EXPECT_EQ(workspaces.AllDispatchers().size(), 3u);
  // A call that took the first snapshot still has it.
  EXPECT_EQ(first->all().at("globex").config.upstreams.at("respondio").token, "token-b-0123456789");
  // Once no snapshot holds it, it is released.
  std::weak_ptr<upstream::Dispatcher> replaced = first->all().at("globex").dispatcher;
  first.reset();
  same.reset();
  EXPECT_EQ(workspaces.Sweep(), 1);
  EXPECT_TRUE(replaced.expired());
  EXPECT_EQ(workspaces.AllDispatchers().size(), 2u);
}

// Holds every request until the test answers it.
class HeldTransport : public upstream::HttpTransport {
 public:
  RequestId Send(upstream::HttpRequest request, Done done) override {
    absl::MutexLock lock(&mu_);
    pending_.emplace_back(std::move(request), std::move(done));
    return ++sent_;
  }
  void Cancel(RequestId) override {}
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  // Answers the oldest pending request with 200 and `body`; returns its headers.
  std::vector<std::pair<std::string, std::string>> AnswerOldest(const std::string& body) {
    std::pair<upstream::HttpRequest, Done> held;
    {
      absl::MutexLock lock(&mu_);
      held = std::move(pending_.front());
      pending_.pop_front();
    }
    upstream::HttpResponse response;
    response.status = 200;
    response.body = body;
    std::move(held.second)(std::move(response));
    return held.first.headers;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<std::pair<upstream::HttpRequest, Done>> pending_ ABSL_GUARDED_BY(mu_);
  RequestId sent_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string AuthorizationOf(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (name == "Authorization") return value;
  }
  return "";
}

// The leak a reload used to leave: every replaced dispatcher was kept until exit. Now a call in
// flight keeps its dispatcher (and finishes with the token it started with) across any number
// of reloads, and the dispatcher is released once that call is done: after 20 reloads, each
// with a call in flight over it, the live dispatchers are the two current ones.
TEST(Workspaces, AReplacedDispatcherFinishesItsCallsInFlightThenIsReleased) {
  const std::string a = WriteTemp("la", "token-a-0123456789");
  const std::string b = WriteTemp("lb", "token-b-0-0123456789");
  HeldTransport http;
  upstream::TimerThreadScheduler scheduler;
  const upstream::Dispatcher::Components components{.http = &http, .scheduler = &scheduler};
  Workspaces workspaces(WorkspaceSet::Build(Load("l0.json", Two(a, b)), components, nullptr));
  auto routes = RouteTable::Build({}, {{"respondio", "live"}, {"chatwoot", "live"}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  const upstream::Route* route = routes->Find("/respondio.v2.ContactService/GetContact");
  ASSERT_NE(route, nullptr);
  respondio::v2::GetContactRequest request;
  request.set_identifier("id:12345");

  constexpr int kReloads = 20;
  int succeeded = 0;
  for (int i = 0; i < kReloads; ++i) {
    std::weak_ptr<upstream::Dispatcher> started_on;
    upstream::CallPtr call;
    {
      // A call selects globex from the current set; its request is in flight.
      std::shared_ptr<const WorkspaceSet> snapshot = workspaces.Current();
      auto ws = snapshot->Select("globex", true);
      ASSERT_TRUE(ws.ok());
      started_on = (*ws)->dispatcher;
      call = (*ws)->dispatcher->Call(*route, request, {},
                                     [&succeeded](absl::StatusOr<std::string> reply) {
                                       EXPECT_TRUE(reply.ok()) << reply.status();
                                       if (reply.ok()) ++succeeded;
                                     });
      // The snapshot goes before the call ends (the worst case): the Call alone holds its
      // dispatcher.
    }
    ASSERT_EQ(http.pending(), 1u);
    // Reload: globex's token rotates, so globex gets a new dispatcher.
    WriteTemp("lb", absl::StrCat("token-b-", i + 1, "-0123456789"));
    workspaces.Replace(WorkspaceSet::Build(Load(absl::StrCat("l", i + 1, ".json"), Two(a, b)),
                                           components, workspaces.Current().get()));
    EXPECT_EQ(workspaces.Sweep(), 0) << "released while its call is in flight";
    ASSERT_FALSE(started_on.expired());
    EXPECT_EQ(workspaces.AllDispatchers().size(), 3u);
    // The call finishes with the config it started with.
    EXPECT_EQ(AuthorizationOf(http.AnswerOldest(R"({"id": 12345, "firstName": "Ada"})")),
              absl::StrCat("Bearer token-b-", i, "-0123456789"));
    EXPECT_EQ(call->state(), upstream::Call::State::kDone);
    call.reset();  // the service drops the Call when the gRPC call ends
    EXPECT_EQ(workspaces.Sweep(), 1);
    EXPECT_TRUE(started_on.expired());
    EXPECT_EQ(workspaces.AllDispatchers().size(), 2u);
  }
  EXPECT_EQ(succeeded, kReloads);
  // Counters of the released dispatchers are kept (metrics count over the process' life).
  EXPECT_EQ(workspaces.released_counters().calls, kReloads);
  EXPECT_EQ(workspaces.released_counters().upstream_requests, kReloads);
}

TEST(WorkspaceSet, RatesAreTheWorkspaceOwn) {
  const GatewayConfig config =
      Load("rates.json", Two(WriteTemp("qa", "token-a-0123456789"), WriteTemp("qb", "token-b-0123456789")));
  EXPECT_EQ(config.workspaces.at("acme").buckets.at("respondio/contact_get").rate_per_second, 10);
  EXPECT_EQ(config.workspaces.at("globex").buckets.at("respondio/contact_get").rate_per_second, 2);
}

}  // namespace
}  // namespace gateway::service
