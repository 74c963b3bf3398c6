// The replay stage alone (upstream/pipeline/replay_stage.h) over the in-process idempotency
// store on a manual clock: when it applies, first call, replay of the recorded result, reuse of
// an id for another request, a repeat while the first is in flight, and Abandon.
#include "upstream/pipeline/replay_stage.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/upstream/status_details.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::ErrorInfoOf;
using Outcome = IdempotencyStore::Outcome;

class ReplayStageTest : public ::testing::Test {
 protected:
  ReplayStageTest() : store_({}, &clock_, nullptr), replay_(&store_) {
    prepared_.idempotency_key = "acct|alice|respondio.v2.CommentService.CreateComment|id-1";
    prepared_.fingerprint = "fingerprint-a";
  }

  // Begin's answer, once it came (std::nullopt while it waits).
  std::optional<IdempotencyStore::BeginResult> Begin(const PreparedCall& prepared,
                                                     absl::Duration timeout = absl::Seconds(5)) {
    auto answer = std::make_shared<std::optional<IdempotencyStore::BeginResult>>();
    replay_.Begin(prepared, clock_.Now() + timeout,
                  [answer](IdempotencyStore::BeginResult r) { *answer = std::move(r); });
    clock_.RunDue();
    last_ = answer;
    return *answer;
  }

  ManualScheduler clock_;
  IdempotencyStore store_;
  ReplayStage replay_;
  PreparedCall prepared_;
  std::shared_ptr<std::optional<IdempotencyStore::BeginResult>> last_;
};

TEST_F(ReplayStageTest, AppliesOnlyWithAStoreAndAKey) {
  EXPECT_TRUE(replay_.Applies(prepared_));
  PreparedCall no_key = prepared_;
  no_key.idempotency_key.clear();
  EXPECT_FALSE(replay_.Applies(no_key));
  ReplayStage inactive(nullptr);
  EXPECT_FALSE(inactive.Applies(prepared_));
}

TEST_F(ReplayStageTest, TheFirstRunsARepeatReplaysItsResult) {
  auto first = Begin(prepared_);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->outcome, Outcome::kFirst);
  store_.Complete(prepared_.idempotency_key, std::string("reply bytes"));
  auto repeat = Begin(prepared_);
  ASSERT_TRUE(repeat.has_value());
  EXPECT_EQ(repeat->outcome, Outcome::kReplay);
  ASSERT_TRUE(repeat->result.ok());
  EXPECT_EQ(*repeat->result, "reply bytes");
  // The same id with another request is refused, not replayed.
  PreparedCall other = prepared_;
  other.fingerprint = "fingerprint-b";
  auto reused = Begin(other);
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(reused->outcome, Outcome::kRejected);
  EXPECT_EQ(ErrorInfoOf(reused->result.status()).reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(store_.counters().replays, 1);
  EXPECT_EQ(store_.counters().reused, 1);
}

TEST_F(ReplayStageTest, ARepeatWaitsForTheFirstInFlight) {
  ASSERT_EQ(Begin(prepared_)->outcome, Outcome::kFirst);
  EXPECT_FALSE(Begin(prepared_).has_value()) << "answered while the first is in flight";
  auto waiting = last_;
  store_.Complete(prepared_.idempotency_key, std::string("done"));
  clock_.RunDue();
  ASSERT_TRUE(waiting->has_value());
  EXPECT_EQ((*waiting)->outcome, Outcome::kReplay);
  EXPECT_EQ(*(*waiting)->result, "done");
}

// A call that ended before it started (cancelled while its record was being made) abandons the
// record: a retry runs again instead of waiting or replaying a cancellation.
TEST_F(ReplayStageTest, AbandonLetsARetryRunAgain) {
  ASSERT_EQ(Begin(prepared_)->outcome, Outcome::kFirst);
  replay_.Abandon(prepared_);
  auto retry = Begin(prepared_);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->outcome, Outcome::kFirst);
  EXPECT_EQ(store_.counters().abandons, 1);
  EXPECT_EQ(store_.counters().replays, 0);
}

}  // namespace
}  // namespace gateway::upstream
