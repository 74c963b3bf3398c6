// The event log in Redis Streams (see event_log.h), shared by every replica on one Redis.
//
// Layout (P = Options::key_prefix; single instance, not Cluster):
//   P log          STREAM  one entry per event: u=<upstream> t=<type> p=<EventEnvelope bytes>
//   P floor        STRING  id of the newest trimmed entry (resume positions before it expired)
//   P seen:<key>   STRING  id stored under a delivery's dedupe key, EX = dedupe window
// Append is one Lua script: SET NX EX on the dedupe key, XADD, trim by count (MAXLEN) and age
// (MINID), record the floor; so a duplicate is never stored twice, even when two replicas receive
// it at once. Consumer groups are Redis' own (XGROUP CREATE, XREADGROUP, XACK); the visibility
// timeout is XAUTOCLAIM's min-idle-time, so a member that dies without acking loses its events to
// the next member that reads.
//
// Durability is Redis': run it with appendonly yes and appendfsync always, so that Redis has
// fsynced an append before it answers and an answered webhook survives a Redis crash or restart
// (everysec can lose about the last second on a machine crash). Across a restart on its
// append-only file the stream, the floor, the dedupe keys and the groups come back together.
#ifndef GATEWAY_EVENTS_REDIS_EVENT_LOG_H_
#define GATEWAY_EVENTS_REDIS_EVENT_LOG_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "events/event_log.h"
#include "upstream/scheduler.h"
#include "upstream/transport/redis_client.h"

namespace gateway::events {

class RedisEventLog : public EventLog {
 public:
  struct Options {
    std::string key_prefix = "gw:events:";
    LogRetention retention;
  };
  // `redis` and `clock` (for the age trim) must outlive the log. The log blocks on Redis
  // commands (CommandSync): give it a RedisClient of its own so that subscribers cannot delay
  // the rate limiter's and the cache's commands.
  RedisEventLog(Options options, upstream::RedisClient* redis, const upstream::Scheduler* clock);

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
  // Wakes at once for appends through this replica; events appended on other replicas are seen
  // when the caller reads again after `timeout` (subscribers poll every 50 ms).
  void WaitForAppend(absl::Duration timeout) override;

 private:
  absl::StatusOr<upstream::RedisReply> Run(std::vector<std::string> args);
  const Options options_;
  upstream::RedisClient* const redis_;
  const upstream::Scheduler* const clock_;
  const std::string stream_;
  const std::string floor_;
  absl::Mutex mu_;
  uint64_t appends_ ABSL_GUARDED_BY(mu_) = 0;
  // By group: pending events XAUTOCLAIM found trimmed (GroupInfo::expired_unacked).
  std::map<std::string, int64_t> expired_unacked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_REDIS_EVENT_LOG_H_
