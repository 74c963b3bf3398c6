#include "events/memory_event_log.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

std::string IdText(std::pair<uint64_t, uint64_t> id) {
  return absl::StrCat(id.first, "-", id.second);
}

absl::Status MalformedPosition(absl::string_view position) {
  return upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                absl::StrCat("\"", position, "\" is not an event resume token"),
                                {.reason = "INVALID_RESUME_TOKEN"});
}

}  // namespace

bool ParseEventId(absl::string_view id, std::pair<uint64_t, uint64_t>* out) {
  std::vector<absl::string_view> parts = absl::StrSplit(id, '-');
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], &out->first) &&
         absl::SimpleAtoi(parts[1], &out->second);
}

absl::Status EventsExpired(absl::string_view position, absl::string_view oldest) {
  return upstream::GatewayError(
      absl::StatusCode::kOutOfRange,
      absl::StrCat("events after ", position,
                   " are no longer retained; resume from oldest_resume_token ", oldest,
                   " (events in between are lost to this subscriber)"),
      {.reason = "EVENTS_EXPIRED", .metadata = {{"oldest_resume_token", std::string(oldest)}}});
}

MemoryEventLog::MemoryEventLog(LogRetention retention, const upstream::Scheduler* clock)
    : retention_(retention), clock_(clock) {}

void MemoryEventLog::TrimLocked() {
  const absl::Time now = clock_->Now();
  while (!events_.empty() &&
         (static_cast<int64_t>(events_.size()) > retention_.max_events ||
          events_.front().stored_at < now - retention_.max_age)) {
    trimmed_up_to_ = events_.front().id;
    events_.pop_front();
  }
  // Dedupe keys: expired, or beyond twice the event budget (oldest first).
  while (!dedupe_order_.empty() &&
         (dedupe_order_.front().second <= now ||
          static_cast<int64_t>(dedupe_order_.size()) > 2 * retention_.max_events)) {
    auto it = dedupe_.find(dedupe_order_.front().first);
    if (it != dedupe_.end() && it->second.second == dedupe_order_.front().second) dedupe_.erase(it);
    dedupe_order_.pop_front();
  }
}

const MemoryEventLog::Stored* MemoryEventLog::FindLocked(Id id) const {
  auto it = std::lower_bound(events_.begin(), events_.end(), id,
                             [](const Stored& s, const Id& v) { return s.id < v; });
  return it != events_.end() && it->id == id ? &*it : nullptr;
}

absl::StatusOr<AppendResult> MemoryEventLog::Append(const std::string& dedupe_key,
                                                    LogEntry entry) {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  const absl::Time now = clock_->Now();
  if (!dedupe_key.empty()) {
    auto it = dedupe_.find(dedupe_key);
    if (it != dedupe_.end() && it->second.second > now) {
      return AppendResult{.id = it->second.first, .duplicate = true};
    }
  }
  const uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(now)));
  Id id = ms > last_id_.first ? Id{ms, 0} : Id{last_id_.first, last_id_.second + 1};
  last_id_ = id;
  entry.id = IdText(id);
  entry.delivery_count = 0;
  const std::string id_text = entry.id;
  events_.push_back({id, std::move(entry), now});
  if (!dedupe_key.empty()) {
    const absl::Time expiry = now + retention_.dedupe_window;
    dedupe_[dedupe_key] = {id_text, expiry};
    dedupe_order_.emplace_back(dedupe_key, expiry);
  }
  ++appends_;
  TrimLocked();
  return AppendResult{.id = id_text, .duplicate = false};
}

absl::StatusOr<std::string> MemoryEventLog::NewestPosition() {
  absl::MutexLock lock(&mu_);
  return IdText(last_id_);
}

absl::StatusOr<std::string> MemoryEventLog::OldestPosition() {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  return IdText(trimmed_up_to_);
}

absl::StatusOr<std::vector<LogEntry>> MemoryEventLog::ReadAfter(const std::string& after,
                                                               int max) {
  Id position;
  if (!ParseEventId(after, &position)) return MalformedPosition(after);
  absl::MutexLock lock(&mu_);
  TrimLocked();
  if (position < trimmed_up_to_) return EventsExpired(after, IdText(trimmed_up_to_));
  std::vector<LogEntry> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), position,
                             [](const Id& v, const Stored& s) { return v < s.id; });
  for (; it != events_.end() && static_cast<int>(out.size()) < max; ++it) {
    out.push_back(it->entry);
  }
  return out;
}

absl::Status MemoryEventLog::EnsureGroup(const std::string& group, bool from_oldest) {
  absl::MutexLock lock(&mu_);
  if (groups_.contains(group)) return absl::OkStatus();
  groups_[group].last_delivered = from_oldest ? trimmed_up_to_ : last_id_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LogEntry>> MemoryEventLog::ReadGroup(const std::string& group_name,
                                                               const std::string& consumer,
                                                               int max,
                                                               absl::Duration visibility_timeout) {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  auto group_it = groups_.find(group_name);
  if (group_it == groups_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("no consumer group \"", group_name, "\""));
  }
  Group& group = group_it->second;
  const absl::Time now = clock_->Now();
  std::vector<LogEntry> out;
  // Redeliveries first: pending longer than the visibility timeout, whoever had them.
  for (auto it = group.pending.begin();
       it != group.pending.end() && static_cast<int>(out.size()) < max;) {
    const Stored* stored = FindLocked(it->first);
    if (stored == nullptr) {
      // Trimmed while pending: it can never be redelivered. Counted as lost and dropped from
      // the pending list, as Redis' XAUTOCLAIM does (a late Ack of it acknowledges nothing).
      ++group.expired_unacked;
      it = group.pending.erase(it);
      continue;
    }
    if (it->second.delivered_at + visibility_timeout <= now) {
      it->second.consumer = consumer;
      it->second.delivered_at = now;
      ++it->second.deliveries;
      LogEntry entry = stored->entry;
      entry.delivery_count = it->second.deliveries;
      out.push_back(std::move(entry));
    }
    ++it;
  }
  if (group.last_delivered < trimmed_up_to_) {
    // Events the group was never given were trimmed: reported (after any redeliveries), on
    // every read until SkipExpired.
    if (!out.empty()) return out;
    return EventsExpired(IdText(group.last_delivered), IdText(trimmed_up_to_));
  }
  auto it = std::upper_bound(events_.begin(), events_.end(), group.last_delivered,
                             [](const Id& v, const Stored& s) { return v < s.id; });
  for (; it != events_.end() && static_cast<int>(out.size()) < max; ++it) {
    group.last_delivered = it->id;
    group.pending[it->id] = {consumer, now, 1};
    LogEntry entry = it->entry;
    entry.delivery_count = 1;
    out.push_back(std::move(entry));
  }
  return out;
}

absl::Status MemoryEventLog::SkipExpired(const std::string& group_name,
                                         const std::string& position) {
  Id id;
  if (!ParseEventId(position, &id)) return MalformedPosition(position);
  absl::MutexLock lock(&mu_);
  TrimLocked();
  auto group_it = groups_.find(group_name);
  if (group_it == groups_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("no consumer group \"", group_name, "\""));
  }
  if (id < trimmed_up_to_) return EventsExpired(position, IdText(trimmed_up_to_));
  Group& group = group_it->second;
  if (group.last_delivered < trimmed_up_to_) group.last_delivered = id;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MemoryEventLog::Ack(const std::string& group_name,
                                            const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  auto group_it = groups_.find(group_name);
  if (group_it == groups_.end()) return 0;
  int64_t acked = 0;
  for (const std::string& text : ids) {
    Id id;
    if (!ParseEventId(text, &id)) return MalformedPosition(text);
    acked += static_cast<int64_t>(group_it->second.pending.erase(id));
  }
  return acked;
}

std::vector<GroupInfo> MemoryEventLog::Groups() {
  absl::MutexLock lock(&mu_);
  std::vector<GroupInfo> out;
  for (const auto& [name, group] : groups_) {
    auto it = std::upper_bound(events_.begin(), events_.end(), group.last_delivered,
                               [](const Id& v, const Stored& s) { return v < s.id; });
    out.push_back({.name = name,
                   .pending = static_cast<int64_t>(group.pending.size()),
                   .lag = static_cast<int64_t>(events_.end() - it),
                   .expired_unacked = group.expired_unacked});
  }
  std::sort(out.begin(), out.end(),
            [](const GroupInfo& a, const GroupInfo& b) { return a.name < b.name; });
  return out;
}

void MemoryEventLog::WaitForAppend(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t seen = appends_;
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return appends_ != seen; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

}  // namespace gateway::events
