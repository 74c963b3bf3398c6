// The cache and coalescing stage alone (upstream/pipeline/cache_stage.h), within one replica:
// lookups go to the reply cache, identical coalesced reads join the exchange in flight under
// their cache key, others always get their own, and an exchange leaves the table when it ends.
// (Across replicas, with Redis leases: tests/integration/coalescing_test.cc.)
#include "upstream/pipeline/cache_stage.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/exchange.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {
namespace {

class CacheStageTest : public ::testing::Test {
 protected:
  CacheStageTest() : cache_({}, &clock_, nullptr), stage_(&cache_) {
    stages_.scheduler = &clock_;
    stages_.cache = &stage_;
  }

  // A call that has been prepared as a read under `key`.
  std::shared_ptr<Call> Read(const std::string& key, bool coalesced = true) {
    auto call = std::make_shared<Call>(CallOptions{}, [](absl::StatusOr<std::string>) {});
    call->prepared().cache_key = key;
    call->prepared().coalesced = coalesced;
    call->prepared().cached = true;
    return call;
  }

  // JoinOrLead for `call`; counts how often a new exchange was made.
  std::pair<std::shared_ptr<Exchange>, bool> JoinOrLead(const std::shared_ptr<Call>& call) {
    return stage_.JoinOrLead(call, [&] {
      ++made_;
      return std::make_shared<Exchange>(&stages_, call, std::nullopt);
    });
  }

  ManualScheduler clock_;
  ResponseCache cache_;
  CacheStage stage_;
  ExchangeStages stages_;
  int made_ = 0;
};

TEST_F(CacheStageTest, LookupIsTheReplyCache) {
  std::optional<std::string> hit = std::string("unset");
  ResponseCache::ReadTicket ticket;
  PreparedCall prepared;
  prepared.cache_key = "acct|GetContact|7";
  stage_.Lookup(prepared, [&](std::optional<std::string> bytes, ResponseCache::ReadTicket t) {
    hit = std::move(bytes);
    ticket = t;
  });
  EXPECT_FALSE(hit.has_value());
  cache_.Store(ticket, prepared.cache_key, "reply", absl::Seconds(30), {}, {});
  stage_.Lookup(prepared, [&](std::optional<std::string> bytes, ResponseCache::ReadTicket) {
    hit = std::move(bytes);
  });
  EXPECT_EQ(hit, "reply");
}

TEST_F(CacheStageTest, IdenticalReadsJoinTheExchangeInFlight) {
  auto leader = Read("k");
  auto [first, leads] = JoinOrLead(leader);
  EXPECT_TRUE(leads);
  auto follower = Read("k");
  auto [joined, follower_leads] = JoinOrLead(follower);
  EXPECT_FALSE(follower_leads);
  EXPECT_EQ(joined, first);
  EXPECT_EQ(follower->state(), Call::State::kWaiting) << "the follower waits on the leader's";
  EXPECT_EQ(made_, 1);
  EXPECT_EQ(stage_.flights(), 1u);
  EXPECT_EQ(stage_.counters().joined, 1);
  // Another key is another exchange.
  auto other = Read("k2");
  EXPECT_TRUE(JoinOrLead(other).second);
  EXPECT_EQ(made_, 2);
  EXPECT_EQ(stage_.flights(), 2u);
}

TEST_F(CacheStageTest, ReadsThatMayNotCoalesceAlwaysGetTheirOwn) {
  auto a = Read("k", /*coalesced=*/false);
  auto b = Read("k", /*coalesced=*/false);
  auto [ea, la] = JoinOrLead(a);
  auto [eb, lb] = JoinOrLead(b);
  EXPECT_TRUE(la);
  EXPECT_TRUE(lb);
  EXPECT_NE(ea, eb);
  EXPECT_EQ(stage_.flights(), 0u) << "an uncoalesced read is not joinable";
  EXPECT_EQ(stage_.counters().joined, 0);
}

TEST_F(CacheStageTest, AnEndedExchangeLeavesTheTableOnlyItself) {
  auto [first, leads] = JoinOrLead(Read("k"));
  ASSERT_TRUE(leads);
  // A Remove by an exchange that is not the registered one (an older one) leaves it.
  auto stale = std::make_shared<Exchange>(&stages_, Read("k"), std::nullopt);
  stage_.Remove("k", stale.get());
  EXPECT_EQ(stage_.flights(), 1u);
  EXPECT_FALSE(JoinOrLead(Read("k")).second) << "still joinable";
  stage_.Remove("k", first.get());
  EXPECT_EQ(stage_.flights(), 0u);
  // The next identical read leads a new one.
  auto [next, next_leads] = JoinOrLead(Read("k"));
  EXPECT_TRUE(next_leads);
  EXPECT_NE(next, first);
}

}  // namespace
}  // namespace gateway::upstream
