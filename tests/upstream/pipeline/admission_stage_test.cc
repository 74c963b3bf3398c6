// The admission stage alone (upstream/pipeline/admission_stage.h), on a manual clock with the
// in-process limiter: a call waits in the limiter for its turn, a cancelled one leaves the queue
// without spending a token, the deadline is asked minus the bucket's expected latency, and the
// upstream's feedback reaches the limiter only as the outcome says.
#include "upstream/pipeline/admission_stage.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/upstream/status_details.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/scheduler.h"
#include "upstream/transport/retry_after.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::ErrorInfoOf;
using ::testing::ElementsAre;

// What one Admit's `done` got, and how often it ran.
struct Admission {
  int runs = 0;
  absl::Status status = absl::UnknownError("not answered");
};

class AdmissionStageTest : public ::testing::Test {
 protected:
  AdmissionStageTest() : limiter_({}, &clock_, nullptr), admission_(&limiter_) {
    prepared_.bucket_key = "respondio:acct:contact_get";
    prepared_.bucket = {.rate_per_second = 1, .burst = 0};  // one call per second, no burst
  }

  // Asks for a token by `deadline` (from now).
  Admission* Admit(absl::Duration deadline, RateLimiter::AcquireId* id = nullptr,
                   const std::string& caller = "") {
    admissions_.push_back(std::make_unique<Admission>());
    Admission* a = admissions_.back().get();
    const RateLimiter::AcquireId got =
        admission_.Admit(prepared_, caller, clock_.Now() + deadline, [a](absl::Status s) {
          ++a->runs;
          a->status = std::move(s);
        });
    if (id != nullptr) *id = got;
    return a;
  }

  RateLimiter::Counters counters() const { return limiter_.counters(prepared_.bucket_key); }

  ManualScheduler clock_;
  RateLimiter limiter_;
  AdmissionStage admission_;
  PreparedCall prepared_;
  std::vector<std::unique_ptr<Admission>> admissions_;
};

TEST_F(AdmissionStageTest, CallWaitsInTheLimiterForItsTurn) {
  ASSERT_TRUE(admission_.Enabled());
  Admission* first = Admit(absl::Seconds(10));
  EXPECT_EQ(first->runs, 1) << "a free token admits on Admit's own stack";
  EXPECT_TRUE(first->status.ok()) << first->status;
  Admission* second = Admit(absl::Seconds(10));
  clock_.AdvanceBy(absl::Milliseconds(999));
  EXPECT_EQ(second->runs, 0) << "admitted before its turn";
  clock_.AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(second->runs, 1);
  EXPECT_TRUE(second->status.ok()) << second->status;
  const RateLimiter::Counters c = counters();
  EXPECT_EQ(c.total, 2);
  EXPECT_EQ(c.admitted, 2);
  EXPECT_EQ(c.admitted_after_wait, 1);
  EXPECT_EQ(c.queued, 0);
  EXPECT_EQ(c.rejected, 0);
  EXPECT_THAT(admission_.BucketKeys(), ElementsAre(prepared_.bucket_key));
}

TEST_F(AdmissionStageTest, CancelLeavesTheQueueWithoutSpendingAToken) {
  Admit(absl::Seconds(60));  // takes the free token
  RateLimiter::AcquireId id = 0;
  Admission* cancelled = Admit(absl::Seconds(60), &id);
  ASSERT_NE(id, 0u);
  clock_.AdvanceBy(absl::Milliseconds(500));
  EXPECT_EQ(counters().queued, 1);
  admission_.Cancel(id);
  clock_.RunDue();
  EXPECT_EQ(cancelled->runs, 1);
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled) << cancelled->status;
  // The token it did not spend goes to the next caller: admitted at 1 s, one interval after the
  // first call, not two.
  Admission* next = Admit(absl::Seconds(60));
  clock_.AdvanceBy(absl::Milliseconds(499));
  EXPECT_EQ(next->runs, 0);
  clock_.AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(next->runs, 1);
  EXPECT_TRUE(next->status.ok()) << next->status;
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(cancelled->runs, 1) << "done ran twice";
  const RateLimiter::Counters c = counters();
  EXPECT_EQ(c.total, 3);
  EXPECT_EQ(c.admitted, 2);
  EXPECT_EQ(c.cancelled, 1);
  EXPECT_EQ(c.rejected, 0);
  EXPECT_EQ(c.queued, 0);
}

TEST_F(AdmissionStageTest, CancelAfterAdmissionIsANoOp) {
  RateLimiter::AcquireId id = 0;
  Admission* admitted = Admit(absl::Seconds(10), &id);
  ASSERT_EQ(admitted->runs, 1);
  admission_.Cancel(id);
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(admitted->runs, 1);
  EXPECT_TRUE(admitted->status.ok());
  EXPECT_EQ(counters().cancelled, 0);
  EXPECT_EQ(counters().admitted, 1);
}

// The deadline is asked for minus the bucket's expected latency (50 ms before any feedback) and
// a 50 ms margin for the reply: a call whose turn (1 s) leaves it less than that is refused at
// once, RESOURCE_EXHAUSTED RATE_LIMITED, without waiting; one with a little more is admitted.
TEST_F(AdmissionStageTest, DeadlineIsAskedForMinusTheExpectedLatency) {
  EXPECT_EQ(admission_.ExpectedLatency(prepared_.bucket_key), absl::Milliseconds(100));
  Admit(absl::Seconds(60));
  Admission* too_late = Admit(absl::Milliseconds(1050));
  clock_.RunDue();
  EXPECT_EQ(too_late->runs, 1) << "refused at once, not at its deadline";
  EXPECT_EQ(too_late->status.code(), absl::StatusCode::kResourceExhausted) << too_late->status;
  EXPECT_EQ(ErrorInfoOf(too_late->status).reason(), "RATE_LIMITED");
  Admission* in_time = Admit(absl::Milliseconds(1150));
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(in_time->runs, 1);
  EXPECT_TRUE(in_time->status.ok()) << in_time->status;
  EXPECT_EQ(counters().rejected, 1);
  EXPECT_EQ(counters().admitted, 2);
}

// The expected latency is an exponentially weighted average of the elapsed times fed back.
TEST_F(AdmissionStageTest, FeedbackTeachesTheExpectedLatency) {
  admission_.Feedback(prepared_, absl::Milliseconds(200), SendStage::Outcome{});
  EXPECT_EQ(admission_.ExpectedLatency(prepared_.bucket_key), absl::Milliseconds(250));
  admission_.Feedback(prepared_, absl::Milliseconds(100), SendStage::Outcome{});
  // 0.8 * 200 + 0.2 * 100 = 180 ms, plus the 50 ms margin.
  EXPECT_EQ(admission_.ExpectedLatency(prepared_.bucket_key), absl::Milliseconds(230));
  EXPECT_EQ(admission_.ExpectedLatency("respondio:acct:other"), absl::Milliseconds(100));
}

// Feedback decides nothing itself: the outcome's pause holds the bucket, capped again by the
// limiter; an outcome without one leaves the bucket alone.
TEST_F(AdmissionStageTest, FeedbackPausesTheBucketOnlyAsTheOutcomeSays) {
  SendStage::Outcome no_pause;
  no_pause.status = absl::NotFoundError("404");
  no_pause.http_status = 404;
  admission_.Feedback(prepared_, absl::Milliseconds(10), no_pause);
  Admission* unpaused = Admit(absl::Seconds(10));
  EXPECT_EQ(unpaused->runs, 1);

  SendStage::Outcome pause;
  pause.status = absl::ResourceExhaustedError("429");
  pause.http_status = 429;
  pause.pause = absl::Seconds(3);
  admission_.Feedback(prepared_, absl::Milliseconds(10), pause);
  Admission* paused = Admit(absl::Seconds(10));
  clock_.AdvanceBy(absl::Milliseconds(2999));
  EXPECT_EQ(paused->runs, 0) << "admitted during the upstream's pause";
  clock_.AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(paused->runs, 1);
  EXPECT_TRUE(paused->status.ok()) << paused->status;
  EXPECT_EQ(counters().paused_by_upstream, 1);
}

// The limiter's max_pause is the one cap: a pause beyond it holds the bucket no longer.
TEST(AdmissionStageCapTest, PauseIsCappedByTheLimitersMaxPause) {
  ManualScheduler clock;
  RateLimiter limiter({.max_pause = absl::Seconds(10)}, &clock, nullptr);
  AdmissionStage admission(&limiter);
  EXPECT_EQ(admission.max_pause(), absl::Seconds(10));
  PreparedCall prepared;
  prepared.bucket_key = "respondio:acct:contact_get";
  prepared.bucket = {.rate_per_second = 100, .burst = 0};
  SendStage::Outcome pause;
  pause.status = absl::ResourceExhaustedError("429");
  pause.pause = absl::Hours(24 * 365);
  admission.Feedback(prepared, absl::Milliseconds(10), pause);
  int runs = 0;
  absl::Status status;
  admission.Admit(prepared, "", clock.Now() + absl::Seconds(60), [&](absl::Status s) {
    ++runs;
    status = std::move(s);
  });
  clock.AdvanceBy(absl::Milliseconds(9999));
  EXPECT_EQ(runs, 0);
  clock.AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(AdmissionStageCapTest, WithoutALimiterNothingIsAskedAndTheDefaultCapApplies) {
  AdmissionStage admission(nullptr);
  EXPECT_FALSE(admission.Enabled());
  EXPECT_EQ(admission.max_pause(), kDefaultRetryAfterCap);
  PreparedCall prepared;
  prepared.bucket_key = "respondio:acct:contact_get";
  SendStage::Outcome pause;
  pause.pause = absl::Seconds(5);
  admission.Feedback(prepared, absl::Milliseconds(40), pause);  // latency only; no crash
  EXPECT_EQ(admission.ExpectedLatency(prepared.bucket_key), absl::Milliseconds(90));
}

}  // namespace
}  // namespace gateway::upstream
