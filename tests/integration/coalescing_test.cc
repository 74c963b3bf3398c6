// Coalescing across replicas end to end: three gateway replicas sharing one redis-server, in
// front of the sandbox with an injected upstream delay. What the upstream received is read back
// from the sandbox's request log.
#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using nlohmann::json;
namespace rio = ::respondio::v2;

int GetContactRequests(Sandbox& sandbox) {
  int n = 0;
  for (const auto& r : sandbox.Requests()) {
    if (r.value("endpoint", "") == "get_contact") ++n;
  }
  return n;
}

// gateway_coalescing_total{outcome="<outcome>"} summed over `gateways`' /metrics.
int64_t CoalescingTotal(const std::vector<int>& admin_ports, const std::string& outcome) {
  const std::string series = absl::StrCat("gateway_coalescing_total{outcome=\"", outcome, "\"} ");
  int64_t total = 0;
  for (int port : admin_ports) {
    const HttpResult metrics = HttpCall(port, "GET", "/metrics");
    EXPECT_EQ(metrics.status, 200);
    const size_t at = metrics.body.find(series);
    EXPECT_NE(at, std::string::npos) << series << " missing";
    if (at == std::string::npos) continue;
    double value = 0;
    const size_t start = at + series.size();
    EXPECT_TRUE(absl::SimpleAtod(metrics.body.substr(start, metrics.body.find('\n', start) - start),
                                 &value));
    total += static_cast<int64_t>(value);
  }
  return total;
}

struct Results {
  int ok = 0;
  std::vector<std::string> replies;  // serialized, of the OK calls
  std::string first_error;
};

// `calls` concurrent GetContact(identifier) calls, call i on stubs[i % stubs.size()].
Results ConcurrentReads(const std::vector<std::unique_ptr<rio::ContactService::Stub>>& stubs,
                        int calls, const std::string& identifier) {
  absl::BlockingCounter done(calls);
  absl::Mutex mu;
  Results results;
  struct Call {
    grpc::ClientContext context;
    rio::GetContactRequest request;
    rio::GetContactResponse reply;
  };
  for (int i = 0; i < calls; ++i) {
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    call->request.set_identifier(identifier);
    stubs[i % stubs.size()]->async()->GetContact(
        &call->context, &call->request, &call->reply, [&, call](grpc::Status status) {
          {
            absl::MutexLock lock(&mu);
            if (status.ok()) {
              ++results.ok;
              results.replies.push_back(call->reply.SerializeAsString());
            } else if (results.first_error.empty()) {
              results.first_error = absl::StrCat(status.error_code(), " ", status.error_message());
            }
          }
          delete call;
          done.DecrementCount();
        });
  }
  done.Wait();
  return results;
}

class CoalescingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = RedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
    for (int i = 0; i < 3; ++i) {
      auto g = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--redis_url=" + redis_->url(), "--coalescing_lease=500ms",
                               "--admin_listen=127.0.0.1:0"});
      ASSERT_NE(g, nullptr);
      admin_ports_.push_back(AdminPort(*g));
      ASSERT_GT(admin_ports_.back(), 0) << g->process().output();
      stubs_.push_back(rio::ContactService::NewStub(g->channel()));
      gateways_.push_back(std::move(g));
    }
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Sandbox> sandbox_;
  std::vector<std::unique_ptr<Gateway>> gateways_;
  std::vector<std::unique_ptr<rio::ContactService::Stub>> stubs_;
  std::vector<int> admin_ports_;
};

TEST_F(CoalescingTest, HundredIdenticalColdReadsOverThreeReplicasMakeOneUpstreamRequest) {
  sandbox_->AddFault({{"fault", "delay"}, {"delay_ms", 200}, {"endpoint", "get_contact"},
                      {"count", -1}});
  const Results results = ConcurrentReads(stubs_, 100, "id:67890");
  EXPECT_EQ(results.ok, 100) << results.first_error;
  ASSERT_FALSE(results.replies.empty());
  rio::GetContactResponse first;
  ASSERT_TRUE(first.ParseFromString(results.replies[0]));
  EXPECT_EQ(first.contact().id(), 67890);
  for (const std::string& reply : results.replies) EXPECT_EQ(reply, results.replies[0]);
  EXPECT_EQ(GetContactRequests(*sandbox_), 1);
  // The metrics say how: one replica led, the two others waited for its fill and were
  // answered by it; the other calls on each replica joined its exchange (or, late, hit).
  EXPECT_EQ(CoalescingTotal(admin_ports_, "led"), 1);
  EXPECT_EQ(CoalescingTotal(admin_ports_, "followed"), 2);
  EXPECT_EQ(CoalescingTotal(admin_ports_, "filled_by_replica"), 2);
  EXPECT_EQ(CoalescingTotal(admin_ports_, "took_over"), 0);
  EXPECT_EQ(CoalescingTotal(admin_ports_, "redis_errors"), 0);
  const int64_t joined = CoalescingTotal(admin_ports_, "joined");
  EXPECT_GT(joined, 0);
  EXPECT_LE(joined, 97);
}

TEST_F(CoalescingTest, FollowersSendTheirOwnRequestWhenTheLeaderDies) {
  sandbox_->AddFault({{"fault", "delay"}, {"delay_ms", 300}, {"endpoint", "get_contact"},
                      {"count", -1}});
  // Replica 0 leads: its request is at the upstream before the others ask.
  auto leader_context = Context(absl::Seconds(20));
  rio::GetContactRequest request;
  request.set_identifier("id:67890");
  rio::GetContactResponse leader_reply;
  std::atomic<bool> leader_done{false};
  stubs_[0]->async()->GetContact(leader_context.get(), &request, &leader_reply,
                                 [&](grpc::Status) { leader_done = true; });
  for (int i = 0; i < 200 && GetContactRequests(*sandbox_) == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(GetContactRequests(*sandbox_), 1);
  std::vector<std::unique_ptr<rio::ContactService::Stub>> followers;
  followers.push_back(rio::ContactService::NewStub(gateways_[1]->channel()));
  followers.push_back(rio::ContactService::NewStub(gateways_[2]->channel()));
  Results results;
  std::thread load([&] { results = ConcurrentReads(followers, 40, "id:67890"); });
  absl::SleepFor(absl::Milliseconds(50));  // the followers are waiting on the leader's lease
  gateways_[0]->process().Signal(SIGKILL);
  load.join();
  EXPECT_EQ(results.ok, 40) << results.first_error;
  for (const std::string& reply : results.replies) EXPECT_EQ(reply, results.replies[0]);
  // The leader's request and the followers' own (one: they coalesce again among themselves).
  EXPECT_GE(GetContactRequests(*sandbox_), 2);
  // The surviving replicas waited on the dead leader's lease, then one took it over.
  const std::vector<int> survivors = {admin_ports_[1], admin_ports_[2]};
  EXPECT_GE(CoalescingTotal(survivors, "followed"), 1);
  EXPECT_GE(CoalescingTotal(survivors, "took_over"), 1);
  leader_context->TryCancel();
  while (!leader_done) absl::SleepFor(absl::Milliseconds(10));
}

}  // namespace
}  // namespace gateway::testing
