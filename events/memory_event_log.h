// The in-process event log (see event_log.h): a deque bounded by LogRetention, a dedupe table
// bounded by the dedupe window (and max_events * 2 keys), and groups with pending tables.
// Events live only as long as the process; use RedisEventLog for durability across restarts.
#ifndef GATEWAY_EVENTS_MEMORY_EVENT_LOG_H_
#define GATEWAY_EVENTS_MEMORY_EVENT_LOG_H_

#include <deque>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "events/event_log.h"
#include "upstream/scheduler.h"

namespace gateway::events {

class MemoryEventLog : public EventLog {
 public:
  // `clock` (ids, ages, visibility timeouts) must outlive the log.
  MemoryEventLog(LogRetention retention, const upstream::Scheduler* clock);

  absl::StatusOr<AppendResult> Append(const std::string& dedupe_key, LogEntry entry) override;
  absl::StatusOr<std::string> NewestPosition() override;
  absl::StatusOr<std::string> OldestPosition() override;
  absl::StatusOr<std::vector<LogEntry>> ReadAfter(const std::string& after, int max) override;
  absl::Status EnsureGroup(const std::string& group, bool from_oldest) override;
  absl::StatusOr<std::vector<LogEntry>> ReadGroup(const std::string& group,
                                                  const std::string& consumer, int max,
                                                  absl::Duration visibility_timeout) override;
  absl::Status SkipExpired(const std::string& group, const std::string& position) override;
  absl::StatusOr<int64_t> Ack(const std::string& group,
                              const std::vector<std::string>& ids) override;
  std::vector<GroupInfo> Groups() override;
  void WaitForAppend(absl::Duration timeout) override;

 private:
  using Id = std::pair<uint64_t, uint64_t>;
  struct Stored {
    Id id;
    LogEntry entry;
    absl::Time stored_at;
  };
  struct Pending {
    std::string consumer;
    absl::Time delivered_at;
    int64_t deliveries = 0;
  };
  struct Group {
    Id last_delivered{0, 0};
    std::map<Id, Pending> pending;
    int64_t expired_unacked = 0;  // see GroupInfo
  };
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Stored* FindLocked(Id id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LogRetention retention_;
  const upstream::Scheduler* const clock_;
  absl::Mutex mu_;
  std::deque<Stored> events_ ABSL_GUARDED_BY(mu_);
  Id last_id_ ABSL_GUARDED_BY(mu_){0, 0};
  Id trimmed_up_to_ ABSL_GUARDED_BY(mu_){0, 0};  // highest id trimmed
  absl::flat_hash_map<std::string, std::pair<std::string, absl::Time>> dedupe_
      ABSL_GUARDED_BY(mu_);  // key -> (id, expiry)
  std::deque<std::pair<std::string, absl::Time>> dedupe_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  uint64_t appends_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_MEMORY_EVENT_LOG_H_
