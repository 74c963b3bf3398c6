#include "events/redis_event_log.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

using upstream::RedisReply;

// KEYS: stream, dedupe key, floor. ARGV: dedupe ttl s, max events, minid ("0": no age trim),
// upstream, type, payload, workspace. Returns {1, id} when stored, {0, first id} for a
// duplicate. Fields: u upstream, t type, p payload, w workspace (absent: "", entries stored
// before workspaces had none).
constexpr char kAppendScript[] = R"lua(
if not redis.call('SET', KEYS[2], '', 'NX', 'EX', ARGV[1]) then
  return {0, redis.call('GET', KEYS[2])}
end
local id
if ARGV[7] == '' then
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[4], 't', ARGV[5], 'p', ARGV[6])
else
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[4], 't', ARGV[5], 'p', ARGV[6], 'w', ARGV[7])
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
local floor = nil
local len = redis.call('XLEN', KEYS[1])
local maxlen = tonumber(ARGV[2])
if len > maxlen then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen)
  floor = old[#old][1]
  redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
end
if ARGV[3] ~= '0' then
  local last_old = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[3], '-', 'COUNT', 1)
  if #last_old > 0 then
    floor = last_old[1][1]
    redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
  end
end
if floor then redis.call('SET', KEYS[3], floor) end
return {1, id}
)lua";

// KEYS: stream, floor. ARGV: after (exclusive), count. Returns {floor, entries}.
constexpr char kReadScript[] = R"lua(
local floor = redis.call('GET', KEYS[2]) or '0-0'
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {floor, entries}
)lua";

// Lua helpers shared by the group scripts: stream id comparison (ms and seq fit a Lua double
// exactly) and a group's last-delivered-id from XINFO GROUPS (nil: no such group).
constexpr char kGroupLua[] = R"lua(
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function last_delivered(stream, group)
  if redis.call('EXISTS', stream) == 0 then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    if name == group then return last end
  end
  return nil
end
local floor = redis.call('GET', KEYS[2]) or '0-0'
)lua";

// KEYS: stream, floor. ARGV: group, from_oldest ("1"/"0"). Creates the group at the floor (the
// oldest retained event comes next) or at the newest event; an existing group is left as is.
constexpr char kEnsureGroupScript[] = R"lua(
local start = '$'
if ARGV[2] == '1' then start = floor end
local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], start, 'MKSTREAM')
if type(r) == 'table' and r.err and not string.find(r.err, '^BUSYGROUP') then return r end
return 'OK'
)lua";

// KEYS: stream, floor. ARGV: group, consumer, count. Returns {1, XREADGROUP reply} or, when
// the group's position is behind the floor (events it never got were trimmed), {0, floor,
// position}; one script so that no trim can slip between the check and the read.
constexpr char kReadGroupScript[] = R"lua(
local last = last_delivered(KEYS[1], ARGV[1])
if last == nil then return redis.error_reply('NOGROUP no consumer group ' .. ARGV[1]) end
if id_less(last, floor) then return {0, floor, last} end
return {1, redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS',
                      KEYS[1], '>')}
)lua";

// KEYS: stream, floor. ARGV: group, position. Returns {0, floor} when `position` is behind the
// floor, else moves a group that is behind the floor to `position` and returns {1, floor}.
constexpr char kSkipExpiredScript[] = R"lua(
if id_less(ARGV[2], floor) then return {0, floor} end
local last = last_delivered(KEYS[1], ARGV[1])
if last == nil then return redis.error_reply('NOGROUP no consumer group ' .. ARGV[1]) end
if id_less(last, floor) then redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[2]) end
return {1, floor}
)lua";

absl::Status ReplyError(const RedisReply& reply) {
  return absl::UnavailableError(absl::StrCat("redis: ", reply.str));
}

// One stream entry [id, [field, value, ...]] (fields nil when the entry was deleted).
bool ParseEntry(const RedisReply& reply, LogEntry* out) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2) return false;
  out->id = reply.elements[0].str;
  const RedisReply& fields = reply.elements[1];
  if (fields.type != RedisReply::Type::kArray) return false;
  for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    const std::string& key = fields.elements[i].str;
    const std::string& value = fields.elements[i + 1].str;
    if (key == "u") out->upstream = value;
    if (key == "t") out->type = value;
    if (key == "p") out->payload = value;
    if (key == "w") out->workspace = value;
  }
  return true;
}

std::vector<LogEntry> ParseEntries(const RedisReply& reply) {
  std::vector<LogEntry> out;
  if (reply.type != RedisReply::Type::kArray) return out;
  for (const RedisReply& element : reply.elements) {
    LogEntry entry;
    if (ParseEntry(element, &entry)) out.push_back(std::move(entry));
  }
  return out;
}

bool Less(const std::string& a, const std::string& b) {
  std::pair<uint64_t, uint64_t> x, y;
  ParseEventId(a, &x);
  ParseEventId(b, &y);
  return x < y;
}

}  // namespace

RedisEventLog::RedisEventLog(Options options, upstream::RedisClient* redis,
                             const upstream::Scheduler* clock)
    : options_(std::move(options)),
      redis_(redis),
      clock_(clock),
      stream_(options_.key_prefix + "log"),
      floor_(options_.key_prefix + "floor") {}

absl::StatusOr<RedisReply> RedisEventLog::Run(std::vector<std::string> args) {
  absl::StatusOr<RedisReply> reply = redis_->CommandSync(std::move(args));
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return ReplyError(*reply);
  return reply;
}

absl::StatusOr<AppendResult> RedisEventLog::Append(const std::string& dedupe_key,
                                                   LogEntry entry) {
  const LogRetention& r = options_.retention;
  std::string minid = "0";
  if (r.max_age > absl::ZeroDuration()) {
    minid = absl::StrCat(std::max<int64_t>(0, absl::ToUnixMillis(clock_->Now() - r.max_age)));
  }
  auto reply = Run({"EVAL", kAppendScript, "3", stream_,
                    options_.key_prefix + "seen:" + dedupe_key, floor_,
                    absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(r.dedupe_window))),
                    absl::StrCat(std::max<int64_t>(1, r.max_events)), minid, entry.upstream,
                    entry.type, entry.payload, entry.workspace});
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) {
    return absl::InternalError("redis: unexpected reply to the event append script");
  }
  AppendResult result{.id = reply->elements[1].str, .duplicate = reply->elements[0].integer == 0};
  if (!result.duplicate) {
    absl::MutexLock lock(&mu_);
    ++appends_;
  }
  return result;
}

absl::StatusOr<std::string> RedisEventLog::NewestPosition() {
  auto exists = Run({"EXISTS", stream_});
  if (!exists.ok()) return exists.status();
  if (exists->integer == 0) return OldestPosition();
  auto info = Run({"XINFO", "STREAM", stream_});
  if (!info.ok()) return info.status();
  for (size_t i = 0; i + 1 < info->elements.size(); i += 2) {
    if (info->elements[i].str == "last-generated-id") return info->elements[i + 1].str;
  }
  return absl::InternalError("redis: XINFO STREAM without last-generated-id");
}

absl::StatusOr<std::string> RedisEventLog::OldestPosition() {
  auto floor = Run({"GET", floor_});
  if (!floor.ok()) return floor.status();
  return floor->type == RedisReply::Type::kNil ? "0-0" : floor->str;
}

absl::StatusOr<std::vector<LogEntry>> RedisEventLog::ReadAfter(const std::string& after,
                                                              int max) {
  std::pair<uint64_t, uint64_t> parsed;
  if (!ParseEventId(after, &parsed)) {
    return upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                  absl::StrCat("\"", after, "\" is not an event resume token"),
                                  {.reason = "INVALID_RESUME_TOKEN"});
  }
  auto reply = Run({"EVAL", kReadScript, "2", stream_, floor_, after, absl::StrCat(max)});
  if (!reply.ok()) return reply.status();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) {
    return absl::InternalError("redis: unexpected reply to the event read script");
  }
  const std::string& floor = reply->elements[0].str;
  if (Less(after, floor)) return EventsExpired(after, floor);
  return ParseEntries(reply->elements[1]);
}

absl::Status RedisEventLog::EnsureGroup(const std::string& group, bool from_oldest) {
  return Run({"EVAL", absl::StrCat(kGroupLua, kEnsureGroupScript), "2", stream_, floor_, group,
              from_oldest ? "1" : "0"})
      .status();
}

absl::StatusOr<std::vector<LogEntry>> RedisEventLog::ReadGroup(const std::string& group,
                                                              const std::string& consumer,
                                                              int max,
                                                              absl::Duration visibility_timeout) {
  const std::string count = absl::StrCat(max);
  // Redeliveries first: entries idle in the group's pending list longer than the timeout.
  auto claimed = redis_->CommandSync(
      {"XAUTOCLAIM", stream_, group, consumer,
       absl::StrCat(std::max<int64_t>(0, absl::ToInt64Milliseconds(visibility_timeout))), "0-0",
       "COUNT", count});
  if (!claimed.ok()) return claimed.status();
  if (claimed->is_error()) {
    if (claimed->str.rfind("NOGROUP", 0) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("no consumer group \"", group, "\""));
    }
    return ReplyError(*claimed);
  }
  std::vector<LogEntry> out;
  if (claimed->elements.size() >= 2) out = ParseEntries(claimed->elements[1]);
  // Redis 7 lists the pending ids whose entries were trimmed (and drops them from the pending
  // list): delivered, never acknowledged, and now beyond redelivery.
  if (claimed->elements.size() >= 3 && claimed->elements[2].type == RedisReply::Type::kArray &&
      !claimed->elements[2].elements.empty()) {
    absl::MutexLock lock(&mu_);
    expired_unacked_[group] += static_cast<int64_t>(claimed->elements[2].elements.size());
  }
  if (!out.empty()) {
    // Delivery counts of the claimed entries (XAUTOCLAIM has incremented them).
    auto pending = Run({"XPENDING", stream_, group, out.front().id, out.back().id,
                        absl::StrCat(out.size() * 2), consumer});
    std::map<std::string, int64_t> counts;
    if (pending.ok()) {
      for (const RedisReply& p : pending->elements) {
        if (p.elements.size() == 4) counts[p.elements[0].str] = p.elements[3].integer;
      }
    }
    for (LogEntry& e : out) e.delivery_count = counts.count(e.id) ? counts[e.id] : 2;
    return out;
  }
  auto fresh = redis_->CommandSync({"EVAL", absl::StrCat(kGroupLua, kReadGroupScript), "2",
                                    stream_, floor_, group, consumer, count});
  if (!fresh.ok()) return fresh.status();
  if (fresh->is_error()) {
    if (fresh->str.find("NOGROUP") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat("no consumer group \"", group, "\""));
    }
    return ReplyError(*fresh);
  }
  if (fresh->type != RedisReply::Type::kArray || fresh->elements.size() < 2) {
    return absl::InternalError("redis: unexpected reply to the group read script");
  }
  if (fresh->elements[0].integer == 0 && fresh->elements.size() == 3) {
    return EventsExpired(fresh->elements[2].str, fresh->elements[1].str);
  }
  const RedisReply& streams = fresh->elements[1];
  if (streams.type == RedisReply::Type::kArray && !streams.elements.empty() &&
      streams.elements[0].elements.size() == 2) {
    out = ParseEntries(streams.elements[0].elements[1]);
  }
  for (LogEntry& e : out) e.delivery_count = 1;
  return out;
}

absl::Status RedisEventLog::SkipExpired(const std::string& group, const std::string& position) {
  std::pair<uint64_t, uint64_t> parsed;
  if (!ParseEventId(position, &parsed)) {
    return upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                  absl::StrCat("\"", position, "\" is not an event resume token"),
                                  {.reason = "INVALID_RESUME_TOKEN"});
  }
  auto reply = redis_->CommandSync({"EVAL", absl::StrCat(kGroupLua, kSkipExpiredScript), "2",
                                    stream_, floor_, group, position});
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) {
    if (reply->str.find("NOGROUP") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat("no consumer group \"", group, "\""));
    }
    return ReplyError(*reply);
  }
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) {
    return absl::InternalError("redis: unexpected reply to the group skip script");
  }
  if (reply->elements[0].integer == 0) return EventsExpired(position, reply->elements[1].str);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RedisEventLog::Ack(const std::string& group,
                                           const std::vector<std::string>& ids) {
  if (ids.empty()) return 0;
  std::vector<std::string> args = {"XACK", stream_, group};
  for (const std::string& id : ids) {
    std::pair<uint64_t, uint64_t> parsed;
    if (!ParseEventId(id, &parsed)) {
      return upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                    absl::StrCat("\"", id, "\" is not an event id"),
                                    {.reason = "INVALID_EVENT_ID"});
    }
    args.push_back(id);
  }
  auto reply = Run(std::move(args));
  if (!reply.ok()) return reply.status();
  return reply->integer;
}

std::vector<GroupInfo> RedisEventLog::Groups() {
  std::vector<GroupInfo> out;
  auto reply = redis_->CommandSync({"XINFO", "GROUPS", stream_});
  if (!reply.ok() || reply->type != RedisReply::Type::kArray) return out;
  for (const RedisReply& group : reply->elements) {
    GroupInfo info;
    for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
      const std::string& key = group.elements[i].str;
      const RedisReply& value = group.elements[i + 1];
      if (key == "name") info.name = value.str;
      if (key == "pending") info.pending = value.integer;
      if (key == "lag") info.lag = value.integer;  // nil (unknown after trims) counts as 0
    }
    {
      absl::MutexLock lock(&mu_);
      auto it = expired_unacked_.find(info.name);
      if (it != expired_unacked_.end()) info.expired_unacked = it->second;
    }
    out.push_back(std::move(info));
  }
  return out;
}

void RedisEventLog::WaitForAppend(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t seen = appends_;
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return appends_ != seen; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
}

}  // namespace gateway::events
