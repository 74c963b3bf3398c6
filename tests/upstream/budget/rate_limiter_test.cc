// RateLimiter: exact decisions on a simulated clock (ManualScheduler), then the Redis backend
// against a real redis-server started by the test on a free loopback port.
#include "upstream/budget/rate_limiter.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "upstream/errors.h"
#include "upstream/scheduler.h"
#include "upstream/transport/redis_client.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::FreePort;
using ::gateway::testing::Process;

constexpr char kBucket[] = "respondio:acct:contact";
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

// The google.rpc detail of type Proto carried by `status`, or nullopt.
template <typename Proto>
std::optional<Proto> DetailOf(const absl::Status& status) {
  const std::string url = absl::StrCat("type.googleapis.com/", Proto::descriptor()->full_name());
  for (const auto& any : ErrorDetailsOf(status)) {
    Proto proto;
    if (any.type_url() == url && any.UnpackTo(&proto)) return proto;
  }
  return std::nullopt;
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  auto retry = DetailOf<google::rpc::RetryInfo>(status);
  if (!retry.has_value()) return std::nullopt;
  return absl::Seconds(retry->retry_delay().seconds()) +
         absl::Nanoseconds(retry->retry_delay().nanos());
}

// "total=5 admitted=3 ..." for whole-struct comparisons with readable failures.
std::string Describe(const RateLimiter::Counters& c) {
  std::string out;
  c.ForEach([&](absl::string_view name, int64_t value) {
    absl::StrAppend(&out, out.empty() ? "" : " ", name, "=", value);
  });
  return out;
}

// Records every call's outcome and when (on the scheduler's clock) it arrived. Callbacks may
// come from Redis worker threads, hence the lock.
class Recorder {
 public:
  struct Call {
    std::string caller;
    absl::Time cutoff;
    int outcomes = 0;  // must end at exactly 1
    std::optional<absl::Time> at;
    absl::Status status;
  };

  explicit Recorder(const Scheduler* clock) : clock_(clock) {}

  RateLimiter::Done Track(int index) {
    return [this, index](absl::Status status) {
      const absl::Time now = clock_->Now();
      absl::MutexLock lock(&mu_);
      Call& call = calls_[index];
      ++call.outcomes;
      call.at = now;
      call.status = std::move(status);
    };
  }
  int Add(const std::string& caller, absl::Time cutoff) {
    absl::MutexLock lock(&mu_);
    calls_.push_back({caller, cutoff});
    return static_cast<int>(calls_.size()) - 1;
  }
  Call Get(int index) const {
    absl::MutexLock lock(&mu_);
    return calls_[index];
  }
  std::vector<Call> All() const {
    absl::MutexLock lock(&mu_);
    return {calls_.begin(), calls_.end()};
  }
  // Waits (real time) until `n` calls have an outcome.
  bool AwaitOutcomes(int n, absl::Duration timeout = absl::Seconds(10)) const {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int done = 0;
      for (const Call& c : calls_) done += c.outcomes > 0;
      return done >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  const Scheduler* clock_;
  mutable absl::Mutex mu_;
  std::deque<Call> calls_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// In-process limiter on a simulated clock: every decision and time is exact.

class LocalRateLimiterTest : public ::testing::Test {
 protected:
  static constexpr BucketConfig kTenPerSecond{.rate_per_second = 10, .burst = 0};

  // Asks for a token; `deadline_in` from now, `latency` expected upstream latency.
  int Ask(const std::string& caller, absl::Duration deadline_in,
          absl::Duration latency = absl::ZeroDuration(), BucketConfig config = kTenPerSecond,
          const std::string& bucket = kBucket) {
    const absl::Time deadline = clock_.Now() + deadline_in;
    const int index = recorder_.Add(caller, deadline - latency);
    limiter_->Acquire({.bucket_key = bucket,
                       .config = config,
                       .caller = caller,
                       .deadline = deadline,
                       .expected_latency = latency},
                      recorder_.Track(index));
    ExpectConsistent();
    return index;
  }
  RateLimiter::Counters Counters(const std::string& bucket = kBucket) const {
    return limiter_->counters(bucket);
  }
  void ExpectConsistent(const std::string& bucket = kBucket) {
    const RateLimiter::Counters c = Counters(bucket);
    EXPECT_EQ(c.total, c.admitted + c.queued + c.rejected + c.cancelled) << Describe(c);
    EXPECT_LE(c.admitted_after_wait, c.admitted) << Describe(c);
  }
  void AdvanceTo(absl::Time t) {
    clock_.AdvanceTo(t);
    ExpectConsistent();
  }
  // Runs every timer in order, checking accounting after each one, up to `until`.
  void RunUntil(absl::Time until) {
    while (clock_.NextTaskTime() <= until) AdvanceTo(clock_.NextTaskTime());
    AdvanceTo(until);
  }
  std::optional<absl::Time> AdmittedAt(int index) const {
    const Recorder::Call call = recorder_.Get(index);
    if (call.outcomes != 1 || !call.status.ok()) return std::nullopt;
    return call.at;
  }

  ManualScheduler clock_{kT0};
  Recorder recorder_{&clock_};
  std::unique_ptr<RateLimiter> limiter_ =
      std::make_unique<RateLimiter>(RateLimiter::Options(), &clock_, nullptr);
};

TEST_F(LocalRateLimiterTest, FreshBucketCountsZero) {
  EXPECT_EQ(Describe(Counters()), Describe(RateLimiter::Counters{}));
  EXPECT_EQ(Describe(Counters()),
            "total=0 admitted=0 admitted_after_wait=0 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  EXPECT_TRUE(limiter_->redis_healthy());  // nothing to be unhealthy about without Redis
}

TEST_F(LocalRateLimiterTest, NeverCallsBackOnTheCallersStack) {
  const int a = Ask("", absl::Seconds(5));
  EXPECT_EQ(recorder_.Get(a).outcomes, 0);
  EXPECT_EQ(Describe(Counters()),
            "total=1 admitted=1 admitted_after_wait=0 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
}

TEST_F(LocalRateLimiterTest, CompleteInlineAdmitsAFreeTokenOnAcquiresStackOnly) {
  // A free token: admitted before Acquire returns, and counted like any admission.
  auto ask_inline = [&](const std::string& caller) {
    const absl::Time deadline = clock_.Now() + absl::Seconds(5);
    const int index = recorder_.Add(caller, deadline);
    limiter_->Acquire({.bucket_key = kBucket,
                       .config = kTenPerSecond,
                       .caller = caller,
                       .deadline = deadline,
                       .complete_inline = true},
                      recorder_.Track(index));
    ExpectConsistent();
    return index;
  };
  const int a = ask_inline("x");
  EXPECT_EQ(AdmittedAt(a), kT0);
  EXPECT_EQ(clock_.pending(), 0u);  // nothing was posted for it
  // No token free: the call waits and its admission comes from the timer, not from Acquire.
  const int b = ask_inline("x");
  EXPECT_EQ(recorder_.Get(b).outcomes, 0);
  // A rejection is still posted, never run on the caller's stack.
  const absl::Time soon = clock_.Now() + absl::Milliseconds(50);
  const int c = recorder_.Add("y", soon);
  limiter_->Acquire({.bucket_key = kBucket,
                     .config = kTenPerSecond,
                     .caller = "y",
                     .deadline = soon,
                     .complete_inline = true},
                    recorder_.Track(c));
  EXPECT_EQ(recorder_.Get(c).outcomes, 0);
  clock_.RunDue();
  EXPECT_EQ(recorder_.Get(c).outcomes, 1);
  EXPECT_EQ(recorder_.Get(c).status.code(), absl::StatusCode::kResourceExhausted);
  RunUntil(kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(b), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(Describe(Counters()),
            "total=3 admitted=2 admitted_after_wait=1 rejected=1 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
}

TEST_F(LocalRateLimiterTest, BurstIsAdmittedAtOnceThenOneEveryInterval) {
  const BucketConfig config{.rate_per_second = 10, .burst = 2};
  std::vector<int> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(Ask("", absl::Seconds(10), {}, config));
  clock_.RunDue();
  // burst + 1 = 3 at once; the other two wait.
  EXPECT_EQ(AdmittedAt(calls[0]), kT0);
  EXPECT_EQ(AdmittedAt(calls[1]), kT0);
  EXPECT_EQ(AdmittedAt(calls[2]), kT0);
  EXPECT_EQ(recorder_.Get(calls[3]).outcomes, 0);
  EXPECT_EQ(Describe(Counters()),
            "total=5 admitted=3 admitted_after_wait=0 rejected=0 queued=2 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  AdvanceTo(kT0 + absl::Milliseconds(99));
  EXPECT_EQ(recorder_.Get(calls[3]).outcomes, 0);
  AdvanceTo(kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(calls[3]), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(recorder_.Get(calls[4]).outcomes, 0);
  AdvanceTo(kT0 + absl::Milliseconds(200));
  EXPECT_EQ(AdmittedAt(calls[4]), kT0 + absl::Milliseconds(200));
  EXPECT_EQ(Describe(Counters()),
            "total=5 admitted=5 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  // Idle for a second: the whole burst is back, and no more.
  AdvanceTo(kT0 + absl::Seconds(2));
  for (int i = 0; i < 4; ++i) calls.push_back(Ask("", absl::Seconds(10), {}, config));
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(calls[7]), kT0 + absl::Seconds(2));
  EXPECT_EQ(recorder_.Get(calls[8]).outcomes, 0);
  RunUntil(kT0 + absl::Seconds(3));
  EXPECT_EQ(AdmittedAt(calls[8]), kT0 + absl::Milliseconds(2100));
}

TEST_F(LocalRateLimiterTest, QueuedCallsAreAdmittedExactlyOneIntervalApart) {
  std::vector<int> calls;
  for (int i = 0; i < 10; ++i) calls.push_back(Ask("", absl::Seconds(10)));
  EXPECT_EQ(Describe(Counters()),
            "total=10 admitted=1 admitted_after_wait=0 rejected=0 queued=9 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  RunUntil(kT0 + absl::Seconds(11));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(AdmittedAt(calls[i]), kT0 + i * absl::Milliseconds(100)) << "call " << i;
  }
  EXPECT_EQ(Describe(Counters()),
            "total=10 admitted=10 admitted_after_wait=9 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  EXPECT_EQ(clock_.pending(), 0u);  // every cutoff timer fired and found nothing to do
}

TEST_F(LocalRateLimiterTest, NonIntegralIntervalsNeverAdmitOneTooManyPerSecond) {
  // T = 1/3 s is rounded up to the nanosecond: the 4th call comes strictly after one second.
  const BucketConfig config{.rate_per_second = 3, .burst = 0};
  std::vector<int> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(Ask("", absl::Seconds(10), {}, config));
  RunUntil(kT0 + absl::Seconds(2));
  EXPECT_EQ(AdmittedAt(calls[3]), kT0 + 3 * absl::Nanoseconds(333'333'334));
  EXPECT_GT(*AdmittedAt(calls[3]), kT0 + absl::Seconds(1));
}

TEST_F(LocalRateLimiterTest, SlidingWindowsStayWithinRatePlusBurstAtTenfoldOverload) {
  const BucketConfig config{.rate_per_second = 10, .burst = 2};
  const absl::Duration run = absl::Seconds(120);
  const absl::Duration latency = absl::Milliseconds(100);
  // 100 calls per second from three callers, each with a 1 s deadline.
  const std::vector<std::string> callers = {"billing", "crm", ""};
  int n = 0;
  for (absl::Time t = kT0; t < kT0 + run; t += absl::Milliseconds(10)) {
    RunUntil(t);
    Ask(callers[n++ % callers.size()], absl::Seconds(1), latency, config);
  }
  RunUntil(kT0 + run + absl::Seconds(2));

  std::vector<absl::Time> admitted;
  int rejected = 0;
  for (const Recorder::Call& call : recorder_.All()) {
    ASSERT_EQ(call.outcomes, 1);
    // Nobody hears back after its cutoff (deadline - expected latency).
    EXPECT_LE(*call.at, call.cutoff);
    if (call.status.ok()) {
      admitted.push_back(*call.at);
    } else {
      ++rejected;
      EXPECT_EQ(call.status.code(), absl::StatusCode::kResourceExhausted);
      EXPECT_EQ(ErrorReasonOf(call.status), "RATE_LIMITED");
    }
  }
  std::sort(admitted.begin(), admitted.end());
  // Every window [t, t + 1s) that starts at an admission (the worst case).
  size_t worst = 0;
  for (size_t i = 0, j = 0; i < admitted.size(); ++i) {
    while (j < admitted.size() && admitted[j] < admitted[i] + absl::Seconds(1)) ++j;
    worst = std::max(worst, j - i);
  }
  EXPECT_LE(worst, 12u);  // rate + burst
  EXPECT_EQ(worst, 12u);  // ... and the burst is used
  // The budget over the run is rate * run + burst + 1; at least 95% of it is used. (Calls
  // queued at the end are admitted up to 0.9 s after the last arrival.)
  const double budget = 10 * absl::ToDoubleSeconds(run) + 3;
  EXPECT_GE(admitted.size(), 0.95 * budget) << admitted.size() << " of " << budget;
  EXPECT_LE(admitted.size(), budget + 10 * 0.9);
  const RateLimiter::Counters c = Counters();
  EXPECT_EQ(c.total, n);
  EXPECT_EQ(c.admitted, static_cast<int64_t>(admitted.size()));
  EXPECT_EQ(c.rejected, rejected);
  EXPECT_EQ(c.queued, 0);
  EXPECT_EQ(c.fallback_decisions, 0);
  EXPECT_EQ(c.paused_by_upstream, 0);
}

TEST_F(LocalRateLimiterTest, CallWhoseTurnIsPastItsDeadlineFailsAtOnceSayingWhenToComeBack) {
  const int a = Ask("", absl::Seconds(10));
  const int b = Ask("", absl::Seconds(10));
  const int c = Ask("", absl::Seconds(10));
  // Turns: a now, b at +100 ms, c at +200 ms; d would come at +300 ms, but must be admitted by
  // +250 ms - 100 ms = +150 ms.
  const int d = Ask("", absl::Milliseconds(250), absl::Milliseconds(100));
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  const Recorder::Call call = recorder_.Get(d);
  ASSERT_EQ(call.outcomes, 1);
  EXPECT_EQ(call.at, kT0);  // at once, not at its deadline
  EXPECT_EQ(call.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(call.status.message(), kBucket)) << call.status;
  EXPECT_EQ(RetryDelayOf(call.status), absl::Milliseconds(300));
  const auto info = DetailOf<google::rpc::ErrorInfo>(call.status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "RATE_LIMITED");
  EXPECT_EQ(info->domain(), "gateway");
  EXPECT_EQ(info->metadata().at("bucket"), kBucket);
  const auto quota = DetailOf<google::rpc::QuotaFailure>(call.status);
  ASSERT_TRUE(quota.has_value());
  ASSERT_EQ(quota->violations_size(), 1);
  EXPECT_EQ(quota->violations(0).subject(), kBucket);
  EXPECT_EQ(Describe(Counters()),
            "total=4 admitted=1 admitted_after_wait=0 rejected=1 queued=2 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  RunUntil(kT0 + absl::Seconds(1));
  EXPECT_EQ(AdmittedAt(b), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(c), kT0 + absl::Milliseconds(200));
}

TEST_F(LocalRateLimiterTest, WaitingCallIsAdmittedBeforeItsDeadline) {
  const int a = Ask("", absl::Seconds(10));
  const int b = Ask("", absl::Milliseconds(300), absl::Milliseconds(100));  // cutoff +200 ms
  // Cutoff exactly at its turn: still in time.
  const int c = Ask("", absl::Milliseconds(250), absl::Milliseconds(50));  // turn = cutoff +200
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  RunUntil(kT0 + absl::Seconds(1));
  EXPECT_EQ(AdmittedAt(b), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(c), kT0 + absl::Milliseconds(200));
  EXPECT_EQ(recorder_.Get(b).outcomes, 1);  // its cutoff timer did nothing
  EXPECT_EQ(recorder_.Get(c).outcomes, 1);
  EXPECT_EQ(Describe(Counters()),
            "total=3 admitted=3 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
}

TEST_F(LocalRateLimiterTest, CallWithoutDeadlineWaitsAtMostMaxQueueWait) {
  RateLimiter::Options options;
  options.max_queue_wait = absl::Seconds(1);
  limiter_ = std::make_unique<RateLimiter>(options, &clock_, nullptr);
  std::vector<int> calls;
  for (int i = 0; i < 12; ++i) calls.push_back(Ask("", absl::InfiniteDuration()));
  clock_.RunDue();
  // Turns at 0, 100, ..., 1000 ms are within a second; the 12th (1100 ms) is not.
  EXPECT_EQ(RetryDelayOf(recorder_.Get(calls[11]).status), absl::Milliseconds(1100));
  EXPECT_EQ(Describe(Counters()),
            "total=12 admitted=1 admitted_after_wait=0 rejected=1 queued=10 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  RunUntil(kT0 + absl::Seconds(2));
  EXPECT_EQ(AdmittedAt(calls[10]), kT0 + absl::Seconds(1));
}

TEST_F(LocalRateLimiterTest, FloodingCallerCannotStarveAnother) {
  std::vector<int> flood;
  for (int i = 0; i < 100; ++i) flood.push_back(Ask("flooder", absl::Seconds(60)));
  const int other = Ask("other", absl::Seconds(60));
  EXPECT_EQ(Describe(Counters()),
            "total=101 admitted=1 admitted_after_wait=0 rejected=0 queued=100 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  RunUntil(kT0 + absl::Seconds(11));
  // The flooder's first call went at once and its second was ahead in the rotation: the other
  // caller's single call is admitted two intervals later, not after 100 calls.
  EXPECT_EQ(AdmittedAt(flood[0]), kT0);
  EXPECT_EQ(AdmittedAt(flood[1]), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(other), kT0 + absl::Milliseconds(200));
  // The flooder's own calls stay in FIFO order, one interval apart.
  for (int i = 2; i < 100; ++i) {
    EXPECT_EQ(AdmittedAt(flood[i]), kT0 + (i + 1) * absl::Milliseconds(100)) << i;
  }
  EXPECT_EQ(Describe(Counters()),
            "total=101 admitted=101 admitted_after_wait=100 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
}

TEST_F(LocalRateLimiterTest, RoundRobinServesCallersAlternately) {
  std::vector<int> a, b;
  for (int i = 0; i < 3; ++i) a.push_back(Ask("a", absl::Seconds(10)));
  for (int i = 0; i < 3; ++i) b.push_back(Ask("b", absl::Seconds(10)));
  // The estimate at arrival knows the rotation: b's 4th call would be the 7th served (a1 went
  // at once, then a2 b1 a3 b2 b3 b4, one per 100 ms): too late for its cutoff (+450 ms), and
  // the rejection says +600 ms.
  const int late = Ask("b", absl::Milliseconds(550), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelayOf(recorder_.Get(late).status), std::nullopt);
  clock_.RunDue();
  EXPECT_EQ(RetryDelayOf(recorder_.Get(late).status), absl::Milliseconds(600));
  RunUntil(kT0 + absl::Seconds(1));
  EXPECT_EQ(AdmittedAt(a[0]), kT0);
  EXPECT_EQ(AdmittedAt(a[1]), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(b[0]), kT0 + absl::Milliseconds(200));
  EXPECT_EQ(AdmittedAt(a[2]), kT0 + absl::Milliseconds(300));
  EXPECT_EQ(AdmittedAt(b[1]), kT0 + absl::Milliseconds(400));
  EXPECT_EQ(AdmittedAt(b[2]), kT0 + absl::Milliseconds(500));
}

TEST_F(LocalRateLimiterTest, PauseHoldsEveryCallUntilRetryAfterAndFailsWaitersAtTheirDeadline) {
  const BucketConfig config{.rate_per_second = 10, .burst = 2};
  const int a = Ask("", absl::Seconds(10), {}, config);
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  // 429 with Retry-After: 3 s.
  limiter_->Pause(kBucket, config, absl::Seconds(3));
  EXPECT_EQ(Describe(Counters()),
            "total=1 admitted=1 admitted_after_wait=0 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=1 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  // A call that cannot wait 3 s fails at once and is told to come back in 3 s.
  const int hasty = Ask("", absl::Seconds(2), {}, config);
  // A call that can wait is admitted at +3 s exactly; after the pause no burst, one per T.
  const int patient1 = Ask("", absl::Seconds(10), {}, config);
  const int patient2 = Ask("", absl::Seconds(10), {}, config);
  clock_.RunDue();
  EXPECT_EQ(RetryDelayOf(recorder_.Get(hasty).status), absl::Seconds(3));
  EXPECT_EQ(recorder_.Get(hasty).at, kT0);
  EXPECT_EQ(Describe(Counters()),
            "total=4 admitted=1 admitted_after_wait=0 rejected=1 queued=2 cancelled=0 "
            "paused_by_upstream=1 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  RunUntil(kT0 + absl::Seconds(5));
  EXPECT_EQ(AdmittedAt(patient1), kT0 + absl::Seconds(3));
  EXPECT_EQ(AdmittedAt(patient2), kT0 + absl::Milliseconds(3100));

  // A call already waiting when a pause arrives fails at its cutoff, not later.
  AdvanceTo(kT0 + absl::Seconds(10));
  const int first = Ask("", absl::Seconds(10), {}, config);
  const int w1 = Ask("", absl::Seconds(10), {}, config);
  const int w2 = Ask("", absl::Seconds(10), {}, config);
  const int waiting = Ask("", absl::Seconds(1), absl::Milliseconds(200), config);  // turn +100ms
  limiter_->Pause(kBucket, config, absl::Seconds(2));
  RunUntil(kT0 + absl::Seconds(15));
  EXPECT_EQ(AdmittedAt(first), kT0 + absl::Seconds(10));
  EXPECT_EQ(AdmittedAt(w1), kT0 + absl::Seconds(10));
  EXPECT_EQ(AdmittedAt(w2), kT0 + absl::Seconds(10));
  const Recorder::Call call = recorder_.Get(waiting);
  EXPECT_EQ(call.outcomes, 1);
  EXPECT_EQ(call.at, kT0 + absl::Milliseconds(10'800));  // deadline - expected latency
  EXPECT_EQ(call.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelayOf(call.status), absl::Milliseconds(1200));  // pause ends at +12 s
  EXPECT_EQ(Describe(Counters()),
            "total=8 admitted=6 admitted_after_wait=2 rejected=2 queued=0 cancelled=0 "
            "paused_by_upstream=2 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
}

TEST_F(LocalRateLimiterTest, PauseWithoutRetryAfterHoldsOneInterval) {
  limiter_->Pause(kBucket, kTenPerSecond, absl::ZeroDuration());
  const int a = Ask("", absl::Seconds(1));
  RunUntil(kT0 + absl::Seconds(1));
  EXPECT_EQ(AdmittedAt(a), kT0 + absl::Milliseconds(100));
}

TEST_F(LocalRateLimiterTest, RemainingLowerThanExpectedChargesTheForeignUseOnce) {
  const int a = Ask("", absl::Seconds(10));
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  // The upstream counted 5 calls of 10 in its window; we sent 1; slack 1: 3 calls were someone
  // else's. TAT moves from +100 ms to +100 ms + 3 * 100 ms.
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, /*limit=*/10, /*remaining=*/5);
  EXPECT_EQ(Counters().tightened_by_upstream, 1);
  // The same foreign use, reported again by the next response, is not charged twice.
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 10, 5);
  // Remaining as expected, or invalid values: nothing.
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 10, 9);
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 10, 11);
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 0, 0);
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 10, -1);
  const int b = Ask("", absl::Seconds(10));
  const int c = Ask("", absl::Seconds(10));
  RunUntil(kT0 + absl::Seconds(1));
  EXPECT_EQ(AdmittedAt(b), kT0 + absl::Milliseconds(400));
  EXPECT_EQ(AdmittedAt(c), kT0 + absl::Milliseconds(500));
  EXPECT_EQ(Describe(Counters()),
            "total=3 admitted=3 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=1 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  // A second later the charges have left the window: a new deficit is charged again.
  AdvanceTo(kT0 + absl::Milliseconds(1600));
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 10, 7);  // used 3, charged 0: deficit 2
  const int d = Ask("", absl::Seconds(10));
  RunUntil(kT0 + absl::Seconds(3));
  EXPECT_EQ(AdmittedAt(d), kT0 + absl::Milliseconds(1800));
  EXPECT_EQ(Counters().tightened_by_upstream, 2);
}

TEST_F(LocalRateLimiterTest, CancelledWaiterLeavesWithoutATokenAndTheNextCallerGetsItsSlot) {
  const absl::Time deadline = kT0 + absl::Seconds(10);
  auto ask = [&](const std::string& caller) {
    const int index = recorder_.Add(caller, deadline);
    const RateLimiter::AcquireId id = limiter_->Acquire(
        {.bucket_key = kBucket, .config = kTenPerSecond, .caller = caller, .deadline = deadline},
        recorder_.Track(index));
    return std::make_pair(index, id);
  };
  const auto [a, a_id] = ask("x");
  const auto [b, b_id] = ask("x");  // turn +100 ms
  const auto [c, c_id] = ask("y");  // turn +200 ms
  EXPECT_NE(a_id, b_id);
  EXPECT_NE(b_id, c_id);
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  // b leaves while it waits: done runs once with CANCELLED, posted (not on Cancel's stack).
  limiter_->Cancel(b_id);
  EXPECT_EQ(recorder_.Get(b).outcomes, 0);
  EXPECT_EQ(Describe(Counters()),
            "total=3 admitted=1 admitted_after_wait=0 rejected=0 queued=1 cancelled=1 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  clock_.RunDue();
  EXPECT_EQ(recorder_.Get(b).outcomes, 1);
  EXPECT_EQ(recorder_.Get(b).status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(recorder_.Get(b).at, kT0);
  // Cancelling again, cancelling an admitted call, or an unknown id: nothing happens.
  limiter_->Cancel(b_id);
  limiter_->Cancel(a_id);
  limiter_->Cancel(987654);
  const auto [d, d_id] = ask("x");  // behind c now
  RunUntil(kT0 + absl::Seconds(11));
  // b's slot (+100 ms) went to c, the next caller, and d follows at +200 ms: no token was spent
  // on b.
  EXPECT_EQ(AdmittedAt(c), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(d), kT0 + absl::Milliseconds(200));
  limiter_->Cancel(c_id);  // after admission: a no-op
  limiter_->Cancel(d_id);
  clock_.RunDue();
  for (int i : {a, b, c, d}) EXPECT_EQ(recorder_.Get(i).outcomes, 1) << i;
  EXPECT_EQ(Describe(Counters()),
            "total=4 admitted=3 admitted_after_wait=2 rejected=0 queued=0 cancelled=1 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  EXPECT_EQ(clock_.pending(), 0u);
}

TEST_F(LocalRateLimiterTest, HostileFeedbackHoldsABucketAtMostMaxPause) {
  RateLimiter::Options options;
  options.max_queue_wait = absl::Hours(1);
  limiter_ = std::make_unique<RateLimiter>(options, &clock_, nullptr);
  // Retry-After: Fri, 31 Dec 9999 23:59:59 GMT, about 8,000 years from now.
  limiter_->Pause(
      kBucket, kTenPerSecond,
      absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone()) - kT0);
  const int a = Ask("", absl::Hours(2));
  RunUntil(kT0 + absl::Hours(2));
  EXPECT_EQ(AdmittedAt(a), kT0 + absl::Seconds(300));  // the documented default cap
  // X-RateLimit-Limit: 2147483647, Remaining: 0 claims 2^31 foreign calls (14.8 years at 5/s).
  limiter_->ObserveRemaining(kBucket, kTenPerSecond, 2147483647, 0);
  const int b = Ask("", absl::Hours(2));
  RunUntil(kT0 + absl::Hours(4));
  EXPECT_EQ(AdmittedAt(b), kT0 + absl::Hours(2) + absl::Seconds(300));
  EXPECT_EQ(Describe(Counters()),
            "total=2 admitted=2 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=1 tightened_by_upstream=1 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
  // The cap is configurable; an infinite Retry-After is clamped too.
  options.max_pause = absl::Seconds(10);
  limiter_ = std::make_unique<RateLimiter>(options, &clock_, nullptr);
  limiter_->Pause(kBucket, kTenPerSecond, absl::InfiniteDuration());
  const int c = Ask("", absl::Hours(2));
  RunUntil(clock_.Now() + absl::Hours(1));
  EXPECT_EQ(AdmittedAt(c), kT0 + absl::Hours(4) + absl::Seconds(10));
}

TEST_F(LocalRateLimiterTest, BucketsAreIndependent) {
  const int a = Ask("", absl::Seconds(1), {}, kTenPerSecond, "bucket-a");
  const int b = Ask("", absl::Seconds(1), {}, kTenPerSecond, "bucket-b");
  clock_.RunDue();
  EXPECT_EQ(AdmittedAt(a), kT0);
  EXPECT_EQ(AdmittedAt(b), kT0);
  EXPECT_EQ(Counters("bucket-a").admitted, 1);
  EXPECT_EQ(Counters("bucket-b").admitted, 1);
  EXPECT_EQ(Counters(kBucket).total, 0);
}

TEST_F(LocalRateLimiterTest, InvalidRateFailsWithFailedPrecondition) {
  const int a = Ask("", absl::Seconds(1), {}, {.rate_per_second = 0});
  const int b = Ask("", absl::Seconds(1), {}, {.rate_per_second = std::nan("")});
  clock_.RunDue();
  for (int i : {a, b}) {
    EXPECT_EQ(recorder_.Get(i).status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ErrorReasonOf(recorder_.Get(i).status), "RATE_LIMIT_MISCONFIGURED");
  }
  EXPECT_EQ(Describe(Counters()),
            "total=2 admitted=0 admitted_after_wait=0 rejected=2 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=0 redis_answers=0 slots_given_back=0");
}

TEST_F(LocalRateLimiterTest, DestructionCancelsWaitingCallsOnce) {
  const int a = Ask("", absl::Seconds(10));
  const int b = Ask("", absl::Seconds(10));
  clock_.RunDue();
  limiter_.reset();
  EXPECT_EQ(recorder_.Get(b).status.code(), absl::StatusCode::kCancelled);
  clock_.AdvanceTo(kT0 + absl::Seconds(20));  // later timers find no limiter and do nothing
  EXPECT_EQ(recorder_.Get(a).outcomes, 1);
  EXPECT_EQ(recorder_.Get(b).outcomes, 1);
}

// ---------------------------------------------------------------------------------------------
// Redis backend against a real redis-server.

class RedisServer {
 public:
  explicit RedisServer(int port) : port_(port) {}
  absl::Status Start() {
    auto process = Process::Start({"redis-server", "--port", absl::StrCat(port_), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no"},
                                  "Ready to accept connections");
    if (!process.ok()) return process.status();
    process_ = *std::move(process);
    return absl::OkStatus();
  }
  void Stop() { process_.reset(); }  // SIGTERM, waits
  int port() const { return port_; }

 private:
  const int port_;
  std::unique_ptr<Process> process_;
};

class RedisRateLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RedisServer>(FreePort());
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Stop(); }

  std::unique_ptr<RedisClient> NewClient() {
    RedisClient::Options options;
    options.port = server_->port();
    options.connections = 2;
    options.retry_interval = absl::Milliseconds(100);
    return std::make_unique<RedisClient>(options);
  }

  std::unique_ptr<RedisServer> server_;
};

// The script alone, driven by hand on a pinned clock (ARGV[10]): reservations, refusal,
// give-back, pause, observation, carried debt, caps, expiry.
TEST_F(RedisRateLimiterTest, ScriptReservesSlotsOnAPinnedClock) {
  auto redis = NewClient();
  const std::string script(RateLimiter::RedisScript());
  constexpr int64_t kNow = 1'700'000'000'000'000;
  // ARGV: T tau floor op max_wait arg slack carried cap now
  auto step = [&](int64_t now, const std::string& floor, const std::string& op,
                  const std::string& max_wait, const std::string& arg,
                  const std::string& carried = "0", const std::string& key = "t:{b}") {
    auto reply =
        redis->CommandSync({"EVAL", script, "2", key, key + ":log", "100000", "200000", floor, op,
                            max_wait, arg, "1", carried, "300200000", absl::StrCat(now)});
    EXPECT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->type, RedisReply::Type::kArray) << reply->str;
    std::vector<int64_t> out;
    for (const auto& e : reply->elements) out.push_back(e.integer);
    return out;
  };
  using V = std::vector<int64_t>;
  // 10/s, burst 2: three slots now, then one every 100 ms.
  EXPECT_EQ(step(kNow, "0", "1", "1000000", "-1"), (V{1, 0, 100'000, 0, kNow + 100'000, 1}));
  EXPECT_EQ(step(kNow, "0", "1", "1000000", "-1"), (V{1, 0, 200'000, 0, kNow + 200'000, 2}));
  EXPECT_EQ(step(kNow, "0", "1", "1000000", "-1"), (V{1, 0, 300'000, 0, kNow + 300'000, 3}));
  EXPECT_EQ(step(kNow, "0", "1", "1000000", "-1"), (V{1, 100'000, 400'000, 0, kNow + 400'000, 4}));
  // A caller that waits at most 150 ms is refused the slot at +200 ms: nothing reserved.
  EXPECT_EQ(step(kNow, "0", "1", "150000", "-1"), (V{0, 200'000, 400'000, 0, kNow + 400'000, 4}));
  EXPECT_EQ(redis->CommandSync({"LLEN", "t:{b}:log"})->integer, 4);
  EXPECT_EQ(redis->CommandSync({"HGET", "t:{b}", "chg"})->str, "4");
  // The last slot (+100 ms) goes back; giving back an older TAT does nothing.
  EXPECT_EQ(step(kNow, "0", "2", "0", absl::StrCat(kNow + 400'000)),
            (V{1, 100'000, 300'000, 0, kNow + 300'000, 3}));
  EXPECT_EQ(step(kNow, "0", "2", "0", absl::StrCat(kNow + 400'000)),
            (V{0, 100'000, 300'000, 0, kNow + 300'000, 3}));
  EXPECT_EQ(redis->CommandSync({"HGET", "t:{b}", "chg"})->str, "3");
  // Expiry 2 s after TAT (+300 ms): 2300 ms when set; a loaded machine may take a few ms more to
  // ask (PTTL counts down on Redis' real clock).
  const int64_t pttl = redis->CommandSync({"PTTL", "t:{b}"})->integer;
  EXPECT_LE(pttl, 2300);
  EXPECT_GE(pttl, 2200);
  // Pause for 3 s (floor = retry_after + tau): the next slot is at +3 s.
  EXPECT_EQ(step(kNow, "3200000", "0", "0", "-1"),
            (V{0, 3'000'000, 3'200'000, 0, kNow + 3'200'000, 3}));
  // Observation: the upstream counted 10; 3 logged + slack 1: 6 charged, and only once.
  EXPECT_EQ(step(kNow, "0", "0", "0", "10"), (V{0, 3'600'000, 3'800'000, 6, kNow + 3'800'000, 9}));
  EXPECT_EQ(step(kNow, "0", "0", "0", "10")[3], 0);
  EXPECT_EQ(redis->CommandSync({"HGET", "t:{b}", "chg"})->str, "9");
  // One second later the log is trimmed: every entry left it.
  EXPECT_EQ(step(kNow + 1'000'000, "0", "0", "0", "-1")[0], 0);
  EXPECT_EQ(redis->CommandSync({"LLEN", "t:{b}:log"})->integer, 0);
  EXPECT_EQ(redis->CommandSync({"HGET", "t:{b}", "chg"})->str, "0");
  // Hostile numbers cost O(1): 2,000,000 "used" calls are one log entry and move TAT by at most
  // the cap (300.2 s); a floor of 8,000 years is clamped to the cap as well.
  const V huge = step(kNow, "0", "0", "0", "2000000", "0", "h:{b}");
  EXPECT_EQ(huge, (V{0, 300'000'000, 300'200'000, 1'999'999, kNow + 300'200'000, 1'999'999}));
  EXPECT_EQ(redis->CommandSync({"LLEN", "h:{b}:log"})->integer, 1);
  EXPECT_LE(redis->CommandSync({"PTTL", "h:{b}"})->integer, 302'200);
  const V forever = step(kNow, "252455616000000000", "0", "0", "-1", "0", "p:{b}");
  EXPECT_EQ(forever, (V{0, 300'000'000, 300'200'000, 0, kNow + 300'200'000, 0}));
  EXPECT_LE(redis->CommandSync({"PTTL", "p:{b}"})->integer, 302'200);
  // Calls a replica admitted locally during an outage are charged on its first shared decision;
  // two replicas' charges add up (a max of their debts would undercount).
  EXPECT_EQ(step(kNow, "0", "0", "0", "-1", "3", "c:{b}")[2], 300'000);
  EXPECT_EQ(step(kNow, "0", "0", "0", "-1", "3", "c:{b}")[2], 600'000);
  EXPECT_EQ(redis->CommandSync({"LLEN", "c:{b}:log"})->integer, 2);
  EXPECT_EQ(redis->CommandSync({"HGET", "c:{b}", "chg"})->str, "6");
}

// The exact command a decision sends, seen by `redis-cli monitor`.
TEST_F(RedisRateLimiterTest, OneEvalshaPerDecisionWithTheDocumentedKeysAndArguments) {
  auto redis = NewClient();
  auto monitor =
      Process::Start({"redis-cli", "-p", absl::StrCat(server_->port()), "monitor"}, "OK");
  ASSERT_TRUE(monitor.ok()) << monitor.status();
  TimerThreadScheduler scheduler;
  Recorder recorder(&scheduler);
  {
    RateLimiter limiter({}, &scheduler, redis.get());
    const int a = recorder.Add("", absl::InfiniteFuture());
    limiter.Acquire({.bucket_key = "b1", .config = {.rate_per_second = 10, .burst = 2}},
                    recorder.Track(a));
    ASSERT_TRUE(recorder.AwaitOutcomes(1));
    EXPECT_TRUE(recorder.Get(a).status.ok()) << recorder.Get(a).status;
    EXPECT_EQ(Describe(limiter.counters("b1")),
              "total=1 admitted=1 admitted_after_wait=0 rejected=0 queued=0 cancelled=0 "
              "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
              "redis_calls=1 redis_answers=1 slots_given_back=0");
  }
  const std::string sha =
      redis->CommandSync({"SCRIPT", "LOAD", std::string(RateLimiter::RedisScript())})->str;
  const std::string expected =
      absl::StrCat("\"EVALSHA\" \"", sha,
                   "\" \"2\" \"gw:rl:{b1}\" \"gw:rl:{b1}:log\" \"100000\" \"200000\" \"0\" \"1\" "
                   "\"30000000\" \"-1\" \"1\" \"0\" \"300200000\" \"\"");
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!absl::StrContains((*monitor)->output(), expected) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(absl::StrContains((*monitor)->output(), expected)) << (*monitor)->output();
  EXPECT_EQ(redis->CommandSync({"EXISTS", "gw:rl:{b1}"})->integer, 1);
  EXPECT_GT(redis->CommandSync({"PTTL", "gw:rl:{b1}"})->integer, 0);
}

// Replicas on one simulated clock sharing a real redis-server whose script decides on that
// clock (Options::pin_redis_clock): every slot, counter and script call is exact.
class PinnedRedisRateLimiterTest : public RedisRateLimiterTest {
 protected:
  static constexpr BucketConfig kTenPerSecond{.rate_per_second = 10, .burst = 0};

  void SetUp() override {
    RedisRateLimiterTest::SetUp();
    redis_ = NewClient();
  }
  void TearDown() override {
    replicas_.clear();
    RedisRateLimiterTest::TearDown();
  }
  RateLimiter& AddReplica(RateLimiter::Options options = {}) {
    options.pin_redis_clock = true;
    replicas_.push_back(std::make_unique<RateLimiter>(options, &clock_, redis_.get()));
    return *replicas_.back();
  }
  // Waits (real time) until every script call was answered and due timers ran, until quiet.
  void Settle() {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      bool quiet = true;
      for (const auto& r : replicas_) {
        const RateLimiter::Counters c = r->counters(kBucket);
        // Answered, and the answer's effects (the admissions it decided) have run.
        quiet = quiet && c.redis_calls == c.redis_answers && r->Quiescent();
      }
      if (quiet && clock_.NextTaskTime() > clock_.Now()) return;
      if (quiet) clock_.RunDue();
      absl::SleepFor(absl::Milliseconds(1));
    }
    ADD_FAILURE() << "Redis did not answer";
  }
  void RunUntil(absl::Time until) {
    Settle();
    while (clock_.NextTaskTime() <= until) {
      clock_.AdvanceTo(clock_.NextTaskTime());
      Settle();
    }
    clock_.AdvanceTo(until);
    Settle();
  }
  int Ask(RateLimiter& replica, const std::string& caller, absl::Duration deadline_in,
          RateLimiter::AcquireId* id = nullptr) {
    const absl::Time deadline = clock_.Now() + deadline_in;
    const int index = recorder_.Add(caller, deadline);
    const RateLimiter::AcquireId got = replica.Acquire(
        {.bucket_key = kBucket, .config = kTenPerSecond, .caller = caller, .deadline = deadline},
        recorder_.Track(index));
    if (id != nullptr) *id = got;
    return index;
  }
  std::optional<absl::Time> AdmittedAt(int index) const {
    const Recorder::Call call = recorder_.Get(index);
    if (call.outcomes != 1 || !call.status.ok()) return std::nullopt;
    return call.at;
  }

  ManualScheduler clock_{kT0};
  Recorder recorder_{&clock_};
  std::unique_ptr<RedisClient> redis_;
  std::vector<std::unique_ptr<RateLimiter>> replicas_;
};

TEST_F(PinnedRedisRateLimiterTest, ReplicasReserveExactSlotsWithOneScriptCallPerAdmission) {
  RateLimiter& a = AddReplica();
  RateLimiter& b = AddReplica();
  std::vector<int> on_a, on_b;
  for (int i = 0; i < 3; ++i) on_a.push_back(Ask(a, "x", absl::Seconds(10)));
  Settle();
  for (int i = 0; i < 3; ++i) on_b.push_back(Ask(b, "y", absl::Seconds(10)));
  RunUntil(kT0 + absl::Seconds(11));
  // One shared schedule, 100 ms apart; each replica holds one slot at a time.
  EXPECT_EQ(AdmittedAt(on_a[0]), kT0);
  EXPECT_EQ(AdmittedAt(on_a[1]), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(AdmittedAt(on_b[0]), kT0 + absl::Milliseconds(200));
  EXPECT_EQ(AdmittedAt(on_a[2]), kT0 + absl::Milliseconds(300));
  EXPECT_EQ(AdmittedAt(on_b[1]), kT0 + absl::Milliseconds(400));
  EXPECT_EQ(AdmittedAt(on_b[2]), kT0 + absl::Milliseconds(500));
  // Exactly one script call per admitted call, on each replica.
  EXPECT_EQ(Describe(a.counters(kBucket)),
            "total=3 admitted=3 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=3 redis_answers=3 slots_given_back=0");
  EXPECT_EQ(Describe(b.counters(kBucket)),
            "total=3 admitted=3 admitted_after_wait=3 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=3 redis_answers=3 slots_given_back=0");
  // The shared state: TAT one interval after the last slot, one log entry per reservation.
  EXPECT_EQ(redis_->CommandSync({"HGET", "gw:rl:{respondio:acct:contact}", "tat"})->str,
            absl::StrCat(absl::ToUnixMicros(kT0 + absl::Milliseconds(600))));
}

TEST_F(PinnedRedisRateLimiterTest, CancelledWaiterGivesItsSlotBackToTheNextCaller) {
  RateLimiter& a = AddReplica();
  RateLimiter& b = AddReplica();
  RateLimiter::AcquireId waiting = 0;
  const int first = Ask(a, "x", absl::Seconds(10));
  const int second = Ask(a, "x", absl::Seconds(10), &waiting);
  Settle();
  EXPECT_EQ(AdmittedAt(first), kT0);
  // `second` holds the slot at +100 ms; it leaves before its time.
  a.Cancel(waiting);
  Settle();
  EXPECT_EQ(recorder_.Get(second).status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(Describe(a.counters(kBucket)),
            "total=2 admitted=1 admitted_after_wait=0 rejected=0 queued=0 cancelled=1 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=3 redis_answers=3 slots_given_back=1");
  // The slot is back in the shared schedule: the next caller, on another replica, gets it.
  const int next = Ask(b, "y", absl::Seconds(10));
  RunUntil(kT0 + absl::Seconds(11));
  EXPECT_EQ(AdmittedAt(next), kT0 + absl::Milliseconds(100));
  EXPECT_EQ(recorder_.Get(second).outcomes, 1);
  EXPECT_EQ(b.counters(kBucket).redis_calls, 1);
}

TEST_F(PinnedRedisRateLimiterTest, SlotPastTheCutoffIsRefusedAndTheCallFailsAtOnceWithRetryInfo) {
  RateLimiter& a = AddReplica();
  RateLimiter& b = AddReplica();
  for (int i = 0; i < 3; ++i) Ask(a, "x", absl::Seconds(10));
  Settle();  // a: one admitted, one slot held at +100 ms; the shared TAT is at +200 ms
  const int hasty = Ask(b, "y", absl::Milliseconds(150));
  Settle();
  const Recorder::Call call = recorder_.Get(hasty);
  ASSERT_EQ(call.outcomes, 1);
  EXPECT_EQ(call.at, kT0);
  EXPECT_EQ(call.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorReasonOf(call.status), "RATE_LIMITED");
  EXPECT_EQ(RetryDelayOf(call.status), absl::Milliseconds(200));
  EXPECT_EQ(Describe(b.counters(kBucket)),
            "total=1 admitted=0 admitted_after_wait=0 rejected=1 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=1 redis_answers=1 slots_given_back=0");
  // Now b knows the shared schedule: a second hasty call fails at once without asking Redis.
  const int again = Ask(b, "y", absl::Milliseconds(150));
  Settle();
  EXPECT_EQ(recorder_.Get(again).status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(b.counters(kBucket).redis_calls, 1);
  RunUntil(kT0 + absl::Seconds(11));
}

TEST_F(PinnedRedisRateLimiterTest, HostileFeedbackCostsRedisOneEntryAndHoldsAtMostMaxPause) {
  RateLimiter::Options options;
  options.max_queue_wait = absl::Hours(1);
  RateLimiter& a = AddReplica(options);
  const std::string key = "gw:rl:{respondio:acct:contact}";
  const int first = Ask(a, "", absl::Hours(1));
  Settle();
  EXPECT_EQ(AdmittedAt(first), kT0);
  // X-RateLimit-Limit: 2,000,000, Remaining: 0 (one list entry per "used" call blocked Redis for
  // seconds before): one entry, a few hundred bytes, TAT at most max_pause ahead.
  a.ObserveRemaining(kBucket, kTenPerSecond, 2'000'000, 0);
  Settle();
  EXPECT_EQ(redis_->CommandSync({"LLEN", key + ":log"})->integer, 2);
  EXPECT_LT(redis_->CommandSync({"MEMORY", "USAGE", key + ":log"})->integer, 1000);
  EXPECT_LE(redis_->CommandSync({"PTTL", key})->integer, 302'000);
  const int second = Ask(a, "", absl::Hours(1));
  RunUntil(kT0 + absl::Seconds(400));
  EXPECT_EQ(AdmittedAt(second), kT0 + absl::Seconds(300));
  // Retry-After in year 9999: the shared pause, and the key's life, are capped alike.
  a.Pause(kBucket, kTenPerSecond,
          absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone()) -
              clock_.Now());
  Settle();
  EXPECT_LE(redis_->CommandSync({"PTTL", key})->integer, 302'000);
  const int third = Ask(a, "", absl::Hours(1));
  RunUntil(kT0 + absl::Seconds(800));
  EXPECT_EQ(AdmittedAt(third), kT0 + absl::Seconds(700));
  EXPECT_EQ(Describe(a.counters(kBucket)),
            "total=3 admitted=3 admitted_after_wait=2 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=1 tightened_by_upstream=1 fallback_decisions=0 "
            "redis_calls=5 redis_answers=5 slots_given_back=0");
}

// Two replicas share one bucket through Redis, lose Redis, fall back, and recover.
TEST_F(RedisRateLimiterTest, TwoReplicasShareOneBudgetFallBackAndRecover) {
  constexpr double kRate = 10;
  constexpr int kBurst = 2;
  constexpr double kShare = 0.34;
  const BucketConfig config{.rate_per_second = kRate, .burst = kBurst};
  TimerThreadScheduler scheduler;
  RateLimiter::Options options;
  options.redis_fallback_share = kShare;
  options.redis_probe_interval = absl::Milliseconds(100);
  std::vector<std::unique_ptr<RedisClient>> clients;
  std::vector<std::unique_ptr<RateLimiter>> replicas;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(NewClient());
    replicas.push_back(std::make_unique<RateLimiter>(options, &scheduler, clients[i].get()));
  }

  // Each replica gets a call every 10 ms (100/s each: tenfold overload together), with a
  // 400 ms deadline. Admissions are timestamped on the real clock.
  absl::Mutex mu;
  std::vector<absl::Time> admitted[2];
  std::atomic<int> outstanding{0};
  std::atomic<bool> running{true};
  std::vector<std::thread> load;
  for (int r = 0; r < 2; ++r) {
    load.emplace_back([&, r] {
      int n = 0;
      while (running.load()) {
        ++outstanding;
        replicas[r]->Acquire({.bucket_key = "shared",
                              .config = config,
                              .caller = absl::StrCat("caller-", n++ % 3),
                              .deadline = absl::Now() + absl::Milliseconds(400)},
                             [&, r](absl::Status status) {
                               if (status.ok()) {
                                 absl::MutexLock lock(&mu);
                                 admitted[r].push_back(absl::Now());
                               }
                               --outstanding;
                             });
        absl::SleepFor(absl::Milliseconds(10));
      }
    });
  }
  auto count = [&](absl::Time from, absl::Time to) {
    absl::MutexLock lock(&mu);
    int64_t n = 0;
    for (const auto& times : admitted) {
      for (absl::Time t : times) n += t >= from && t < to;
    }
    return n;
  };
  auto per_replica = [&](int r, absl::Time from, absl::Time to) {
    absl::MutexLock lock(&mu);
    return std::count_if(admitted[r].begin(), admitted[r].end(),
                         [&](absl::Time t) { return t >= from && t < to; });
  };
  auto await = [&](bool healthy) {
    const absl::Time give_up = absl::Now() + absl::Seconds(15);
    while (absl::Now() < give_up) {
      if (replicas[0]->redis_healthy() == healthy && replicas[1]->redis_healthy() == healthy) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  };

  // Phase 1: shared through Redis, ~2 s.
  const absl::Time shared_from = absl::Now();
  absl::SleepFor(absl::Seconds(2));
  const absl::Time shared_to = absl::Now();
  const int64_t shared = count(shared_from, shared_to);
  const double shared_s = absl::ToDoubleSeconds(shared_to - shared_from);
  std::printf("shared: %lld admitted in %.3f s (bound %.1f)\n", static_cast<long long>(shared),
              shared_s, kRate * shared_s + kBurst + 1);
  EXPECT_LE(shared, kRate * shared_s + kBurst + 1) << "in " << shared_s << " s";
  EXPECT_GE(shared, 0.5 * kRate * shared_s) << "in " << shared_s << " s";  // generous
  EXPECT_TRUE(replicas[0]->redis_healthy());
  EXPECT_TRUE(replicas[1]->redis_healthy());
  EXPECT_EQ(replicas[0]->counters("shared").fallback_decisions, 0);

  // Phase 2: Redis stops. Both fall back to share * rate each and keep admitting.
  server_->Stop();
  ASSERT_TRUE(await(false));
  const int64_t fallback_before = replicas[0]->counters("shared").fallback_decisions +
                                  replicas[1]->counters("shared").fallback_decisions;
  const absl::Time down_from = absl::Now();
  absl::SleepFor(absl::Seconds(2));
  const absl::Time down_to = absl::Now();
  const double down_s = absl::ToDoubleSeconds(down_to - down_from);
  const int64_t down = count(down_from, down_to);
  const int fallback_burst = static_cast<int>(std::floor(kBurst * kShare));
  std::printf("fallback: %lld admitted (%ld + %ld) in %.3f s (bound %.1f)\n",
              static_cast<long long>(down), per_replica(0, down_from, down_to),
              per_replica(1, down_from, down_to), down_s,
              2 * (kRate * kShare * down_s + fallback_burst + 1));
  EXPECT_LE(down, 2 * (kRate * kShare * down_s + fallback_burst + 1)) << "in " << down_s << " s";
  EXPECT_GE(per_replica(0, down_from, down_to), 1);
  EXPECT_GE(per_replica(1, down_from, down_to), 1);
  EXPECT_FALSE(replicas[0]->redis_healthy());
  EXPECT_FALSE(replicas[1]->redis_healthy());
  EXPECT_GT(replicas[0]->counters("shared").fallback_decisions +
                replicas[1]->counters("shared").fallback_decisions,
            fallback_before);

  // Phase 3: Redis is back (empty); the probes find it and decisions are shared again.
  server_ = std::make_unique<RedisServer>(server_->port());
  ASSERT_TRUE(server_->Start().ok());
  ASSERT_TRUE(await(true));
  absl::SleepFor(absl::Milliseconds(500));  // decisions in flight during the switch settle
  const int64_t fallback_after = replicas[0]->counters("shared").fallback_decisions +
                                 replicas[1]->counters("shared").fallback_decisions;
  const absl::Time back_from = absl::Now();
  absl::SleepFor(absl::Seconds(1));
  const absl::Time back_to = absl::Now();
  const double back_s = absl::ToDoubleSeconds(back_to - back_from);
  const int64_t back = count(back_from, back_to);
  std::printf("recovered: %lld admitted in %.3f s (bound %.1f)\n", static_cast<long long>(back),
              back_s, kRate * back_s + kBurst + 1);
  EXPECT_LE(back, kRate * back_s + kBurst + 1) << "in " << back_s << " s";
  EXPECT_GE(back, 1);
  EXPECT_EQ(replicas[0]->counters("shared").fallback_decisions +
                replicas[1]->counters("shared").fallback_decisions,
            fallback_after);
  auto redis = NewClient();
  EXPECT_EQ(redis->CommandSync({"EXISTS", "gw:rl:{shared}"})->integer, 1);

  // Stop the load; every call gets exactly one outcome and the accounting adds up.
  running = false;
  for (auto& t : load) t.join();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (outstanding.load() > 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(outstanding.load(), 0);
  for (int r = 0; r < 2; ++r) {
    const RateLimiter::Counters c = replicas[r]->counters("shared");
    EXPECT_EQ(c.queued, 0) << Describe(c);
    EXPECT_EQ(c.total, c.admitted + c.rejected) << Describe(c);
    absl::MutexLock lock(&mu);
    EXPECT_EQ(c.admitted, static_cast<int64_t>(admitted[r].size())) << Describe(c);
  }
  replicas.clear();
  clients.clear();
}

// Redis unreachable from the start: the fallback rate is exact on a simulated clock.
TEST(RedisDownRateLimiterTest, FallsBackToTheShareOfTheRateWithoutABurst) {
  RedisClient::Options redis_options;
  redis_options.port = FreePort();  // nothing listens there
  RedisClient redis(redis_options);
  ManualScheduler clock(kT0);
  Recorder recorder(&clock);
  RateLimiter::Options options;
  options.redis_fallback_share = 0.5;  // 10/s -> 5/s: T = 200 ms; burst 3 -> 1
  RateLimiter limiter(options, &clock, &redis);
  const BucketConfig config{.rate_per_second = 10, .burst = 3};
  std::vector<int> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(recorder.Add("", kT0 + absl::Seconds(10)));
    limiter.Acquire({.bucket_key = kBucket, .config = config, .deadline = kT0 + absl::Seconds(10)},
                    recorder.Track(calls.back()));
  }
  // The first decision fails on a Redis worker; the fallback starts without burst and one
  // local interval later (other replicas may have just spent the shared tokens): nothing now.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (limiter.redis_healthy() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_FALSE(limiter.redis_healthy());
  clock.RunDue();
  EXPECT_EQ(Describe(limiter.counters(kBucket)),
            "total=4 admitted=0 admitted_after_wait=0 rejected=0 queued=4 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=0 "
            "redis_calls=1 redis_answers=1 slots_given_back=0");
  while (clock.NextTaskTime() <= kT0 + absl::Seconds(1)) clock.AdvanceTo(clock.NextTaskTime());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(recorder.Get(calls[i]).at, kT0 + (i + 1) * absl::Milliseconds(200)) << i;
    EXPECT_TRUE(recorder.Get(calls[i]).status.ok());
  }
  const RateLimiter::Counters c = limiter.counters(kBucket);
  EXPECT_EQ(Describe(c),
            "total=4 admitted=4 admitted_after_wait=4 rejected=0 queued=0 cancelled=0 "
            "paused_by_upstream=0 tightened_by_upstream=0 fallback_decisions=4 "
            "redis_calls=1 redis_answers=1 slots_given_back=0");
}

}  // namespace
}  // namespace gateway::upstream
