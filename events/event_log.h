// The event log: webhook events stored once, read in order by any number of subscribers, and
// shared by consumer groups. Two implementations with the same semantics:
//   MemoryEventLog  bounded in-process log (one replica; without --redis_url)
//   RedisEventLog   Redis Streams (every replica sees every event; with --redis_url)
//
// Ids are "<ms>-<seq>" (Redis Streams' own format), growing in log order; a resume token is the
// id of the last event seen. Retention is bounded by count and age; reading after a position
// whose successors were trimmed fails with OUT_OF_RANGE (ErrorInfo reason EVENTS_EXPIRED,
// metadata oldest_resume_token: the position from which the oldest retained event is read),
// never with a silent gap.
//
// Consumer groups: each event goes to one member; an event not acknowledged within the
// visibility timeout passed to ReadGroup is handed to the next member that reads (at-least-once;
// LogEntry::delivery_count counts the deliveries). An event delivered but not acknowledged when
// retention trims it can never be redelivered: it is counted in GroupInfo::expired_unacked
// (gateway_event_group_expired_unacked_total), never dropped unseen. A group whose delivery position fell behind
// retention (events it was never given were trimmed) gets the same OUT_OF_RANGE as a plain
// reader, on every read, until a member moves it on with SkipExpired: the gap is reported, never
// skipped silently.
//
// The calls block (at most the Redis command timeout) and are thread-safe: the webhook handler
// and each subscriber's delivery thread call them directly.
#ifndef GATEWAY_EVENTS_EVENT_LOG_H_
#define GATEWAY_EVENTS_EVENT_LOG_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway::events {

struct LogEntry {
  std::string id;        // set by the log
  std::string upstream;  // "respondio", "chatwoot"
  std::string type;      // the upstream's event type name
  // The workspace the webhook was addressed to ("" for the default workspace); kept beside the
  // payload so that subscribers filter on it without parsing.
  std::string workspace;
  std::string payload;   // serialized gateway.v1.EventEnvelope (without id and resume token)
  int64_t delivery_count = 0;  // ReadGroup only: deliveries to the group so far, this one included
};

struct AppendResult {
  std::string id;          // the stored event (for a duplicate: the first one's id)
  bool duplicate = false;  // `dedupe_key` was already stored: nothing new was written
};

struct GroupInfo {
  std::string name;
  int64_t pending = 0;  // delivered, not yet acknowledged
  int64_t lag = 0;      // retained events not yet delivered to the group
  // Events delivered to a member and trimmed by retention before they were acknowledged: they
  // can never be redelivered, so they may be lost to the group. Found (and dropped from the
  // pending list; a later Ack of one acknowledges nothing) by the group's next read, and counted
  // once, by the replica that made it (with Redis: sum over replicas).
  int64_t expired_unacked = 0;
};

struct LogRetention {
  int64_t max_events = 100000;                 // oldest trimmed beyond this
  absl::Duration max_age = absl::Hours(24);    // older trimmed (checked on append)
  absl::Duration dedupe_window = absl::Hours(24);  // how long a delivery id is remembered
};

class EventLog {
 public:
  virtual ~EventLog() = default;

  // Stores `entry` unless `dedupe_key` was stored within the dedupe window. Returns once the
  // entry is stored (Redis: acknowledged by Redis). Errors: UNAVAILABLE when Redis is down.
  virtual absl::StatusOr<AppendResult> Append(const std::string& dedupe_key, LogEntry entry) = 0;

  // Position of the newest event ("0-0" when empty): reading after it yields only new events.
  virtual absl::StatusOr<std::string> NewestPosition() = 0;
  // Position right before the oldest retained event.
  virtual absl::StatusOr<std::string> OldestPosition() = 0;
  // Up to `max` events with ids greater than `after`, oldest first. Errors: OUT_OF_RANGE
  // (EVENTS_EXPIRED) when events after `after` were trimmed; INVALID_ARGUMENT for a malformed id.
  virtual absl::StatusOr<std::vector<LogEntry>> ReadAfter(const std::string& after, int max) = 0;

  // Creates `group` (no-op when it exists) positioned at the newest event or before the oldest
  // retained one.
  virtual absl::Status EnsureGroup(const std::string& group, bool from_oldest) = 0;
  // Up to `max` events for `consumer`: first events delivered (to anyone) longer than
  // `visibility_timeout` ago and not acknowledged, else events never delivered to the group.
  // Errors: OUT_OF_RANGE (EVENTS_EXPIRED, oldest_resume_token) when events after the group's
  // delivery position were trimmed; FAILED_PRECONDITION for an unknown group.
  virtual absl::StatusOr<std::vector<LogEntry>> ReadGroup(const std::string& group,
                                                          const std::string& consumer, int max,
                                                          absl::Duration visibility_timeout) = 0;
  // Accepts a group's gap: when `group` fell behind retention, moves its delivery position to
  // `position` (normally the oldest_resume_token of the OUT_OF_RANGE; the trimmed events are
  // lost to the group). A no-op when the group is not behind (e.g. another member moved it
  // first), so members may all call it. Errors: OUT_OF_RANGE when `position` is itself behind
  // retention; INVALID_ARGUMENT for a malformed position; FAILED_PRECONDITION for an unknown
  // group.
  virtual absl::Status SkipExpired(const std::string& group, const std::string& position) = 0;
  // Acknowledges `ids` in `group`; returns how many were pending.
  virtual absl::StatusOr<int64_t> Ack(const std::string& group,
                                      const std::vector<std::string>& ids) = 0;
  virtual std::vector<GroupInfo> Groups() = 0;

  // Blocks until an event may have been appended (on any replica) or `timeout` passed.
  virtual void WaitForAppend(absl::Duration timeout) = 0;
};

// "<ms>-<seq>" parsed; false when malformed.
bool ParseEventId(absl::string_view id, std::pair<uint64_t, uint64_t>* out);

// OUT_OF_RANGE, reason EVENTS_EXPIRED, metadata {oldest_resume_token}.
absl::Status EventsExpired(absl::string_view position, absl::string_view oldest);

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_EVENT_LOG_H_
