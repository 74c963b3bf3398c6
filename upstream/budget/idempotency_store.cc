#include "upstream/budget/idempotency_store.h"

#include <list>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using Outcome = IdempotencyStore::Outcome;
using BeginResult = IdempotencyStore::BeginResult;
using BeginCallback = IdempotencyStore::BeginCallback;

// KEYS[1] record; ARGV[1] pending record, ARGV[2] retention ms.
// Returns "" when this caller now holds the key, else the existing record.
constexpr char kBeginScript[] = R"lua(
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ''
)lua";

// KEYS[1] record; ARGV[1] encoded result, ARGV[2] full record to write if the key is gone
// ("" to skip), ARGV[3] retention ms. A pending record keeps its fingerprint and TTL.
// Returns 1 completed, 2 recreated, 0 left alone (already complete, or gone and no record given).
constexpr char kCompleteScript[] = R"lua(
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, 1) ~= 'P' then return 0 end
  redis.call('SET', KEYS[1], 'D' .. string.sub(v, 2) .. ARGV[1], 'KEEPTTL')
  return 1
end
if ARGV[2] == '' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 2
)lua";

// KEYS[1] record. Deletes it if still pending. Returns 1 when deleted.
constexpr char kAbandonScript[] = R"lua(
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'P' then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// ---- Record encoding ----

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutBytes(std::string* out, absl::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes.data(), bytes.size());
}

bool GetU32(absl::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>((*in)[i])) << (8 * i);
  in->remove_prefix(4);
  return true;
}

bool GetBytes(absl::string_view* in, std::string* out) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || in->size() < n) return false;
  out->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

// "O<bytes>" or "E" + code + message + count + (type URL, value)*, lengths as u32 LE.
std::string EncodeResult(const absl::StatusOr<std::string>& result) {
  if (result.ok()) return absl::StrCat("O", *result);
  std::string out = "E";
  const absl::Status& status = result.status();
  PutU32(&out, static_cast<uint32_t>(status.code()));
  PutBytes(&out, status.message());
  std::vector<std::pair<std::string, std::string>> payloads;
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& value) {
    payloads.emplace_back(std::string(url), std::string(value));
  });
  PutU32(&out, static_cast<uint32_t>(payloads.size()));
  for (const auto& [url, value] : payloads) {
    PutBytes(&out, url);
    PutBytes(&out, value);
  }
  return out;
}

std::optional<absl::StatusOr<std::string>> DecodeResult(absl::string_view in) {
  if (in.empty()) return std::nullopt;
  const char kind = in[0];
  in.remove_prefix(1);
  if (kind == 'O') return absl::StatusOr<std::string>(std::string(in));
  if (kind != 'E') return std::nullopt;
  uint32_t code = 0, count = 0;
  std::string message;
  if (!GetU32(&in, &code) || code == 0 || code > 16 || !GetBytes(&in, &message) ||
      !GetU32(&in, &count)) {
    return std::nullopt;
  }
  absl::Status status(static_cast<absl::StatusCode>(code), message);
  for (uint32_t i = 0; i < count; ++i) {
    std::string url, value;
    if (!GetBytes(&in, &url) || !GetBytes(&in, &value)) return std::nullopt;
    status.SetPayload(url, absl::Cord(value));
  }
  if (!in.empty()) return std::nullopt;
  return absl::StatusOr<std::string>(std::move(status));
}

std::string FingerprintPart(absl::string_view fingerprint) {
  return absl::StrCat(fingerprint.size(), ":", fingerprint);
}

std::string PendingRecord(absl::string_view fingerprint) {
  return absl::StrCat("P", FingerprintPart(fingerprint));
}

std::string DoneRecord(absl::string_view fingerprint, const absl::StatusOr<std::string>& result) {
  return absl::StrCat("D", FingerprintPart(fingerprint), EncodeResult(result));
}

struct ParsedRecord {
  bool done = false;
  std::string fingerprint;
  absl::StatusOr<std::string> result;  // when done
};

std::optional<ParsedRecord> ParseRecord(absl::string_view in) {
  if (in.empty() || (in[0] != 'P' && in[0] != 'D')) return std::nullopt;
  ParsedRecord out;
  out.done = in[0] == 'D';
  in.remove_prefix(1);
  const size_t colon = in.find(':');
  size_t len = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(in.substr(0, colon), &len) ||
      in.size() - colon - 1 < len) {
    return std::nullopt;
  }
  out.fingerprint = std::string(in.substr(colon + 1, len));
  in.remove_prefix(colon + 1 + len);
  if (!out.done) return in.empty() ? std::optional<ParsedRecord>(std::move(out)) : std::nullopt;
  auto result = DecodeResult(in);
  if (!result.has_value()) return std::nullopt;
  out.result = *std::move(result);
  return out;
}

// ---- Errors ----

absl::Status ReusedError() {
  return GatewayError(
      absl::StatusCode::kInvalidArgument,
      "request_id: already used with a different request; use a new request_id",
      {.reason = "REQUEST_ID_REUSED",
       .metadata = {{"field", "request_id"}},
       .field_violations = {{"request_id", "already used with a different request"}}});
}

absl::Status InFlightError(absl::Duration retry_delay) {
  return GatewayError(absl::StatusCode::kUnavailable,
                      "a call with this request_id is still in progress; retry with the same "
                      "request_id to get its result",
                      {.reason = "REQUEST_IN_FLIGHT", .retry_delay = retry_delay});
}

absl::Status ClosedError() {
  return GatewayError(absl::StatusCode::kUnavailable, "the gateway is shutting down",
                      {.reason = "IDEMPOTENCY_STORE_CLOSED"});
}

absl::Status CorruptError() {
  return GatewayError(absl::StatusCode::kInternal, "the stored idempotency record is unreadable",
                      {.reason = "IDEMPOTENCY_RECORD_CORRUPT"});
}

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

class IdempotencyStore::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(Options options, Scheduler* clock, RedisClient* redis)
      : options_(std::move(options)), clock_(clock), redis_(redis) {}

  void Begin(const std::string& key, const std::string& fingerprint, absl::Time deadline,
             BeginCallback done) ABSL_LOCKS_EXCLUDED(mu_);
  void Complete(const std::string& key, const absl::StatusOr<std::string>& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Abandon(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  Counters counters() const ABSL_LOCKS_EXCLUDED(mu_);
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    uint64_t id;
    BeginCallback done;
  };
  struct Record {
    std::string fingerprint;
    bool done = false;
    absl::StatusOr<std::string> result;
    absl::Time expires;
    std::list<std::string>::iterator age;
    std::vector<Waiter> waiters;
  };
  // A Begin waiting on Redis (the first call is in flight on some replica).
  struct Poll {
    std::string key;
    std::string fingerprint;
    absl::Time deadline;
    BeginCallback done;
    bool first_attempt = true;
  };
  // Answers to deliver once the lock is released.
  using Ready = std::vector<std::pair<BeginCallback, BeginResult>>;

  static void Deliver(Ready& ready) {
    for (auto& [done, result] : ready) std::move(done)(std::move(result));
  }
  BeginResult RejectedLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BeginResult FirstLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++counters_.firsts;
    return {Outcome::kFirst, std::string()};
  }
  BeginResult ReplayLocked(const absl::StatusOr<std::string>& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++counters_.replays;
    return {Outcome::kReplay, result};
  }
  void PurgeLocked(absl::Time now, Ready& ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Record& InsertLocked(const std::string& key, std::string fingerprint, absl::Time now,
                       Ready& ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(absl::flat_hash_map<std::string, Record>::iterator it, Ready& ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers `done` from the local record of `key` if there is one (or, when `create`, by
  // creating it: kFirst). Returns false, leaving `done` untouched, when there is no record and
  // `create` is false.
  bool BeginLocalLocked(const std::string& key, const std::string& fingerprint,
                        absl::Time deadline, absl::Time now, bool create, BeginCallback& done,
                        Ready& ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWaiterDeadline(const std::string& key, uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  void RedisBegin(std::unique_ptr<Poll> poll) ABSL_LOCKS_EXCLUDED(mu_);
  void OnRedisBegin(std::unique_ptr<Poll> poll, absl::StatusOr<RedisReply> reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SchedulePoll(std::unique_ptr<Poll> poll, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs a Complete or Abandon script, retrying every redis_retry_interval until `give_up`.
  void RedisWrite(const char* script, std::string key, std::vector<std::string> args,
                  absl::Time give_up) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  Scheduler* const clock_;
  RedisClient* const redis_;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> ages_ ABSL_GUARDED_BY(mu_);  // keys, oldest (= first to expire) first
};

IdempotencyStore::Counters IdempotencyStore::Core::counters() const {
  absl::MutexLock lock(&mu_);
  Counters c = counters_;
  c.entries = records_.size();
  return c;
}

BeginResult IdempotencyStore::Core::RejectedLocked(absl::Status status) {
  const std::string reason = ErrorReasonOf(status);
  if (reason == "REQUEST_ID_REUSED") {
    ++counters_.reused;
  } else if (reason == "REQUEST_IN_FLIGHT") {
    ++counters_.in_flight_timeouts;
  } else if (reason == "IDEMPOTENCY_STORE_CLOSED") {
    ++counters_.closed;
  } else {
    ++counters_.corrupt;
  }
  return {Outcome::kRejected, std::move(status)};
}

void IdempotencyStore::Core::Close() {
  Ready ready;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (auto& [key, record] : records_) {
      for (auto& w : record.waiters) {
        ready.emplace_back(std::move(w.done), RejectedLocked(ClosedError()));
      }
      record.waiters.clear();
    }
  }
  Deliver(ready);
}

void IdempotencyStore::Core::EraseLocked(absl::flat_hash_map<std::string, Record>::iterator it,
                                         Ready& ready) {
  for (auto& w : it->second.waiters) {
    ready.emplace_back(std::move(w.done), RejectedLocked(InFlightError(options_.in_flight_retry_delay)));
  }
  ages_.erase(it->second.age);
  records_.erase(it);
}

void IdempotencyStore::Core::PurgeLocked(absl::Time now, Ready& ready) {
  while (!ages_.empty()) {
    auto it = records_.find(ages_.front());
    if (it->second.expires > now) break;
    EraseLocked(it, ready);
  }
}

IdempotencyStore::Core::Record& IdempotencyStore::Core::InsertLocked(const std::string& key,
                                                                     std::string fingerprint,
                                                                     absl::Time now,
                                                                     Ready& ready) {
  ages_.push_back(key);
  Record& record = records_[key];
  record.fingerprint = std::move(fingerprint);
  record.expires = now + options_.retention;
  record.age = std::prev(ages_.end());
  while (records_.size() > std::max<size_t>(1, options_.max_entries)) {
    // The oldest completed record; the oldest of all if every record is in flight.
    auto victim = ages_.begin();
    for (auto a = ages_.begin(); a != ages_.end(); ++a) {
      if (records_.at(*a).done) {
        victim = a;
        break;
      }
    }
    if (*victim == key) victim = std::next(victim);  // never the record just made
    if (victim == ages_.end()) break;
    ++counters_.evictions;
    EraseLocked(records_.find(*victim), ready);
  }
  return records_.at(key);
}

bool IdempotencyStore::Core::BeginLocalLocked(const std::string& key,
                                              const std::string& fingerprint,
                                              absl::Time deadline, absl::Time now, bool create,
                                              BeginCallback& done, Ready& ready) {
  auto it = records_.find(key);
  if (it == records_.end()) {
    if (!create) return false;
    InsertLocked(key, fingerprint, now, ready);
    ready.emplace_back(std::move(done), FirstLocked());
    return true;
  }
  Record& record = it->second;
  if (record.fingerprint != fingerprint) {
    ready.emplace_back(std::move(done), RejectedLocked(ReusedError()));
  } else if (record.done) {
    ready.emplace_back(std::move(done), ReplayLocked(record.result));
  } else if (deadline <= now) {
    ready.emplace_back(std::move(done),
                       RejectedLocked(InFlightError(options_.in_flight_retry_delay)));
  } else {
    ++counters_.waits;
    const uint64_t id = ++next_waiter_id_;
    record.waiters.push_back({id, std::move(done)});
    // The scheduler never runs a task on this stack, so scheduling under the lock is safe.
    clock_->RunAt(deadline, [weak = weak_from_this(), key, id] {
      if (auto self = weak.lock()) self->OnWaiterDeadline(key, id);
    });
  }
  return true;
}

void IdempotencyStore::Core::OnWaiterDeadline(const std::string& key, uint64_t id) {
  Ready ready;
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(key);
    if (it == records_.end()) return;
    auto& waiters = it->second.waiters;
    for (auto w = waiters.begin(); w != waiters.end(); ++w) {
      if (w->id != id) continue;
      ready.emplace_back(std::move(w->done),
                         RejectedLocked(InFlightError(options_.in_flight_retry_delay)));
      waiters.erase(w);
      break;
    }
  }
  Deliver(ready);
}

void IdempotencyStore::Core::Begin(const std::string& key, const std::string& fingerprint,
                                   absl::Time deadline, BeginCallback done) {
  const absl::Time now = clock_->Now();
  Ready ready;
  bool answered = false;
  {
    absl::MutexLock lock(&mu_);
    PurgeLocked(now, ready);
    if (closed_) {
      ready.emplace_back(std::move(done), RejectedLocked(ClosedError()));
      answered = true;
    } else {
      answered = BeginLocalLocked(key, fingerprint, deadline, now,
                                  /*create=*/redis_ == nullptr, done, ready);
    }
  }
  Deliver(ready);
  if (answered) return;
  RedisBegin(std::make_unique<Poll>(Poll{key, fingerprint, deadline, std::move(done)}));
}

void IdempotencyStore::Core::RedisBegin(std::unique_ptr<Poll> poll) {
  const std::string redis_key = absl::StrCat(options_.redis_key_prefix, poll->key);
  std::string pending = PendingRecord(poll->fingerprint);
  redis_->Eval(kBeginScript, {redis_key},
               {std::move(pending),
                absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.retention)))},
               [self = shared_from_this(), poll = std::move(poll)](
                   absl::StatusOr<RedisReply> reply) mutable {
                 self->OnRedisBegin(std::move(poll), std::move(reply));
               });
}

void IdempotencyStore::Core::OnRedisBegin(std::unique_ptr<Poll> poll,
                                          absl::StatusOr<RedisReply> reply) {
  const absl::Time now = clock_->Now();
  Ready ready;
  bool wait = false;
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    const bool ok = reply.ok() && (reply->type == RedisReply::Type::kString ||
                                   reply->type == RedisReply::Type::kStatus);
    if (closed_) {
      ready.emplace_back(std::move(poll->done), RejectedLocked(ClosedError()));
    } else if (!ok) {
      ++counters_.redis_errors;
      if (poll->first_attempt) {
        // Fall back to this process (weaker guarantee, see the class comment).
        BeginLocalLocked(poll->key, poll->fingerprint, poll->deadline, now, /*create=*/true,
                         poll->done, ready);
      } else if (now >= poll->deadline) {
        ready.emplace_back(std::move(poll->done),
                           RejectedLocked(InFlightError(options_.in_flight_retry_delay)));
      } else {
        wait = true;  // the first call is in flight elsewhere: keep polling
      }
    } else if (reply->str.empty()) {
      // This caller now holds the key: record the call here too, so that local repeats wait
      // for the local Complete instead of polling. A local record made meanwhile (a fallback
      // while Redis was away) takes precedence; its Complete will fill the Redis record, unless
      // it is another request, in which case the key is released again.
      auto local = records_.find(poll->key);
      release = local != records_.end() && local->second.fingerprint != poll->fingerprint;
      BeginLocalLocked(poll->key, poll->fingerprint, poll->deadline, now, /*create=*/true,
                       poll->done, ready);
    } else if (auto record = ParseRecord(reply->str); !record.has_value()) {
      ready.emplace_back(std::move(poll->done), RejectedLocked(CorruptError()));
    } else if (record->fingerprint != poll->fingerprint) {
      ready.emplace_back(std::move(poll->done), RejectedLocked(ReusedError()));
    } else if (record->done) {
      if (!records_.contains(poll->key)) {
        Record& local = InsertLocked(poll->key, record->fingerprint, now, ready);
        local.done = true;
        local.result = record->result;
      }
      ready.emplace_back(std::move(poll->done), ReplayLocked(record->result));
    } else if (now >= poll->deadline) {
      ready.emplace_back(std::move(poll->done),
                         RejectedLocked(InFlightError(options_.in_flight_retry_delay)));
    } else {
      if (poll->first_attempt) ++counters_.waits;
      wait = true;
    }
  }
  Deliver(ready);
  if (release) RedisWrite(kAbandonScript, poll->key, {}, now + options_.retention);
  if (wait) {
    poll->first_attempt = false;
    SchedulePoll(std::move(poll), now);
  }
}

void IdempotencyStore::Core::SchedulePoll(std::unique_ptr<Poll> poll, absl::Time now) {
  const absl::Time at = std::min(now + options_.poll_interval, poll->deadline);
  clock_->RunAt(at, [weak = weak_from_this(), poll = std::move(poll)]() mutable {
    auto self = weak.lock();
    if (self == nullptr) {
      std::move(poll->done)({Outcome::kRejected, ClosedError()});
      return;
    }
    self->RedisBegin(std::move(poll));
  });
}

void IdempotencyStore::Core::Complete(const std::string& key,
                                      const absl::StatusOr<std::string>& result) {
  const absl::Time now = clock_->Now();
  Ready ready;
  std::string fallback_record;
  absl::Time give_up = now + options_.retention;
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(key);
    if (it != records_.end()) {
      Record& record = it->second;
      if (record.done) return;  // the first result stands
      record.done = true;
      record.result = result;
      ++counters_.completes;
      for (auto& w : record.waiters) ready.emplace_back(std::move(w.done), ReplayLocked(result));
      record.waiters.clear();
      fallback_record = DoneRecord(record.fingerprint, result);
      give_up = record.expires;
    } else {
      ++counters_.completes;  // evicted locally; Redis may still hold it
    }
  }
  Deliver(ready);
  if (redis_ == nullptr) return;
  RedisWrite(kCompleteScript, key,
             {EncodeResult(result), std::move(fallback_record),
              absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(give_up - now)))},
             give_up);
}

void IdempotencyStore::Core::Abandon(const std::string& key) {
  const absl::Time now = clock_->Now();
  Ready ready;
  bool promoted = false;
  {
    absl::MutexLock lock(&mu_);
    ++counters_.abandons;
    auto it = records_.find(key);
    if (it != records_.end()) {
      Record& record = it->second;
      if (record.done) return;  // too late: the result is recorded
      if (!record.waiters.empty()) {
        // A repeat already waits here: it becomes the first caller, and the key stays taken
        // (in Redis too: same fingerprint, new owner).
        ready.emplace_back(std::move(record.waiters.front().done), FirstLocked());
        record.waiters.erase(record.waiters.begin());
        promoted = true;
      } else {
        EraseLocked(it, ready);
      }
    }
  }
  Deliver(ready);
  if (redis_ == nullptr || promoted) return;
  RedisWrite(kAbandonScript, key, {}, now + options_.retention);
}

void IdempotencyStore::Core::RedisWrite(const char* script, std::string key,
                                        std::vector<std::string> args, absl::Time give_up) {
  const std::string redis_key = absl::StrCat(options_.redis_key_prefix, key);
  redis_->Eval(
      script, {redis_key}, args,
      [self = shared_from_this(), script, key = std::move(key), args,
       give_up](absl::StatusOr<RedisReply> reply) mutable {
        if (reply.ok() && !reply->is_error()) return;
        {
          absl::MutexLock lock(&self->mu_);
          ++self->counters_.redis_errors;
          // Only unreachability is worth retrying; a script error would fail again.
          if (self->closed_ || reply.ok()) return;
        }
        if (self->clock_->Now() + self->options_.redis_retry_interval >= give_up) return;
        self->clock_->RunAfter(
            self->options_.redis_retry_interval,
            [weak = self->weak_from_this(), script, key = std::move(key), args = std::move(args),
             give_up]() mutable {
              if (auto s = weak.lock()) s->RedisWrite(script, std::move(key), std::move(args), give_up);
            });
      });
}

// ---- Public wrapper ----

IdempotencyStore::IdempotencyStore(Options options, Scheduler* clock, RedisClient* redis)
    : core_(std::make_shared<Core>(std::move(options), clock, redis)) {}

IdempotencyStore::~IdempotencyStore() { core_->Close(); }

std::string IdempotencyStore::Key(absl::string_view rpc, absl::string_view request_id) {
  return absl::StrCat(rpc, "|", request_id);
}

std::string IdempotencyStore::Fingerprint(absl::string_view request_bytes) {
  // Two 64-bit lanes, each finished with splitmix64 (Mix): `a` is FNV-1a; `b` starts from another
  // basis mixed with the length and adds an xor-shift per byte, so the lanes do not collide
  // together. Stable everywhere (unlike absl::Hash, which is seeded per process).
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL ^ request_bytes.size();
  for (unsigned char c : request_bytes) {
    a = (a ^ c) * 0x100000001b3ULL;
    b = (b ^ c) * 0x100000001b3ULL;
    b ^= b >> 29;
  }
  return absl::StrFormat("%016x%016x", Mix(a), Mix(b ^ a));
}

void IdempotencyStore::Begin(const std::string& key, const std::string& fingerprint,
                             absl::Time deadline, BeginCallback done) {
  core_->Begin(key, fingerprint, deadline, std::move(done));
}

void IdempotencyStore::Complete(const std::string& key,
                                const absl::StatusOr<std::string>& result) {
  core_->Complete(key, result);
}

void IdempotencyStore::Abandon(const std::string& key) { core_->Abandon(key); }

IdempotencyStore::Counters IdempotencyStore::counters() const { return core_->counters(); }

}  // namespace gateway::upstream
