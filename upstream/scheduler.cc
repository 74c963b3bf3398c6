#include "upstream/scheduler.h"

namespace gateway::upstream {

TimerThreadScheduler::TimerThreadScheduler() : thread_([this] { Loop(); }) {}

TimerThreadScheduler::~TimerThreadScheduler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void TimerThreadScheduler::RunAt(absl::Time when, Task task) {
  absl::MutexLock lock(&mu_);
  tasks_.emplace(when, std::move(task));
}

void TimerThreadScheduler::Loop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;
        if (!tasks_.empty() && tasks_.begin()->first <= absl::Now()) break;
        const absl::Time wake =
            tasks_.empty() ? absl::Now() + absl::Milliseconds(100) : tasks_.begin()->first;
        // Wakes early when a task is added (the condition sees a new earlier head).
        const absl::Time head = tasks_.empty() ? absl::InfiniteFuture() : tasks_.begin()->first;
        auto changed = [this, head]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || (!tasks_.empty() && tasks_.begin()->first < head);
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
      }
      task = std::move(tasks_.begin()->second);
      tasks_.erase(tasks_.begin());
    }
    std::move(task)();
  }
}

absl::Time ManualScheduler::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void ManualScheduler::RunAt(absl::Time when, Task task) {
  absl::MutexLock lock(&mu_);
  tasks_.emplace(when, std::move(task));
}

void ManualScheduler::AdvanceTo(absl::Time t) {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      if (tasks_.empty() || tasks_.begin()->first > t) {
        if (t > now_) now_ = t;
        return;
      }
      if (tasks_.begin()->first > now_) now_ = tasks_.begin()->first;
      task = std::move(tasks_.begin()->second);
      tasks_.erase(tasks_.begin());
    }
    std::move(task)();
  }
}

size_t ManualScheduler::pending() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

absl::Time ManualScheduler::NextTaskTime() const {
  absl::MutexLock lock(&mu_);
  return tasks_.empty() ? absl::InfiniteFuture() : tasks_.begin()->first;
}

}  // namespace gateway::upstream
