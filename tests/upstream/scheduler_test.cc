// The two schedulers' contracts (upstream/scheduler.h): time order, tasks scheduled by tasks,
// never on RunAt's stack, pending tasks dropped (not run) on destruction. The timer thread is
// checked for order and "at or after", never for how soon.
#include "upstream/scheduler.h"

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gateway::upstream {
namespace {

TEST(ManualScheduler, RunsDueTasksInTimeOrderIncludingTasksScheduledByTasks) {
  ManualScheduler clock;
  const absl::Time t0 = clock.Now();
  std::vector<int> ran;
  clock.RunAt(t0 + absl::Seconds(3), [&] { ran.push_back(3); });
  clock.RunAt(t0 + absl::Seconds(1), [&] {
    ran.push_back(1);
    // Due within the same advance: runs in it, before the task at +3 s.
    clock.RunAt(t0 + absl::Seconds(2), [&] { ran.push_back(2); });
    // Not due yet: stays pending.
    clock.RunAt(t0 + absl::Seconds(10), [&] { ran.push_back(10); });
  });
  EXPECT_EQ(clock.pending(), 2u);
  EXPECT_EQ(clock.NextTaskTime(), t0 + absl::Seconds(1));

  clock.AdvanceTo(t0 + absl::Milliseconds(999));
  EXPECT_TRUE(ran.empty());
  clock.AdvanceTo(t0 + absl::Seconds(5));
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(5));
  EXPECT_EQ(clock.pending(), 1u);
  EXPECT_EQ(clock.NextTaskTime(), t0 + absl::Seconds(10));
}

TEST(ManualScheduler, APastTaskWaitsForRunDueAndTimeNeverGoesBack) {
  ManualScheduler clock;
  const absl::Time t0 = clock.Now();
  bool ran = false;
  clock.RunAt(t0 - absl::Seconds(1), [&] { ran = true; });
  EXPECT_FALSE(ran);  // never on RunAt's stack
  clock.RunDue();
  EXPECT_TRUE(ran);
  clock.AdvanceTo(t0 - absl::Seconds(5));
  EXPECT_EQ(clock.Now(), t0);
  EXPECT_EQ(clock.NextTaskTime(), absl::InfiniteFuture());
}

TEST(TimerThreadScheduler, RunsTasksInTimeOrderAtOrAfterTheirTime) {
  TimerThreadScheduler scheduler;
  absl::Mutex mu;
  std::vector<int> ran;
  std::vector<absl::Time> at;
  absl::Notification last;
  const absl::Time t0 = scheduler.Now();
  const absl::Time when[] = {t0 + absl::Milliseconds(30), t0 + absl::Milliseconds(10),
                             t0 + absl::Milliseconds(20)};
  for (int i : {0, 1, 2}) {
    scheduler.RunAt(when[i], [&, i] {
      absl::MutexLock lock(&mu);
      ran.push_back(i);
      at.push_back(absl::Now());
      if (ran.size() == 3) last.Notify();
    });
  }
  last.WaitForNotification();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 0}));
  for (size_t k = 0; k < ran.size(); ++k) EXPECT_GE(at[k], when[ran[k]]);
}

TEST(TimerThreadScheduler, NeverRunsATaskOnRunAtsStackSoCallersMayHoldTheirLocks) {
  TimerThreadScheduler scheduler;
  absl::Mutex mu;
  absl::Notification ran;
  {
    absl::MutexLock lock(&mu);
    // Already due, and it takes the lock the caller holds: it must wait for the timer thread.
    scheduler.RunAt(absl::InfinitePast(), [&] {
      absl::MutexLock task_lock(&mu);
      ran.Notify();
    });
    EXPECT_FALSE(ran.HasBeenNotified());
  }
  ran.WaitForNotification();
}

TEST(TimerThreadScheduler, PendingTasksAreDroppedNotRunOnDestruction) {
  auto captured = std::make_shared<int>(0);
  bool ran = false;
  {
    TimerThreadScheduler scheduler;
    scheduler.RunAfter(absl::Hours(1), [&ran, captured] { ran = true; });
    EXPECT_EQ(captured.use_count(), 2);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(captured.use_count(), 1);  // the dropped task and what it held are freed
}

}  // namespace
}  // namespace gateway::upstream
