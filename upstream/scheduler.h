// Time and deferred work, injectable so that time-dependent logic (rate limiter, retries,
// idempotency polling) is tested on a simulated clock with exact decisions.
//
//   Scheduler* s = ...;                       // TimerThreadScheduler in production
//   s->RunAt(s->Now() + absl::Milliseconds(100), [] { ... });
//
// Callbacks never run while the scheduler holds its lock, and never on the caller's stack of
// RunAt (even when `when` is already past): callers may hold their own locks while scheduling.
#ifndef GATEWAY_UPSTREAM_SCHEDULER_H_
#define GATEWAY_UPSTREAM_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gateway::upstream {

class Scheduler {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  virtual ~Scheduler() = default;
  virtual absl::Time Now() const = 0;
  // Runs `task` once, at or after `when`, on the scheduler's thread.
  virtual void RunAt(absl::Time when, Task task) = 0;
  void RunAfter(absl::Duration delay, Task task) { RunAt(Now() + delay, std::move(task)); }
};

// One timer thread with an ordered queue of tasks. Thread-safe. Pending tasks are dropped
// (not run) on destruction.
class TimerThreadScheduler : public Scheduler {
 public:
  TimerThreadScheduler();
  ~TimerThreadScheduler() override;
  absl::Time Now() const override { return absl::Now(); }
  void RunAt(absl::Time when, Task task) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  absl::Mutex mu_;
  std::multimap<absl::Time, Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A simulated clock for tests: time moves only in AdvanceTo/AdvanceBy, which run due tasks in
// time order (tasks scheduled by tasks run too, if due). Thread-safe.
class ManualScheduler : public Scheduler {
 public:
  explicit ManualScheduler(absl::Time start = absl::FromUnixSeconds(1'700'000'000))
      : now_(start) {}
  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);
  void RunAt(absl::Time when, Task task) override ABSL_LOCKS_EXCLUDED(mu_);
  void AdvanceBy(absl::Duration d) { AdvanceTo(Now() + d); }
  void AdvanceTo(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs tasks that are due now (e.g. ones scheduled for the past).
  void RunDue() { AdvanceTo(Now()); }
  size_t pending() const ABSL_LOCKS_EXCLUDED(mu_);
  // Time of the earliest pending task, or InfiniteFuture.
  absl::Time NextTaskTime() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, Task> tasks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_SCHEDULER_H_
