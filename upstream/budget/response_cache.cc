#include "upstream/budget/response_cache.h"

#include <algorithm>
#include <deque>
#include <list>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace gateway::upstream {
namespace {

// Redis scripts. Keys are derived from the prefix in ARGV[1] (single-instance Redis; not
// Cluster-safe by design). Times are milliseconds since the epoch from the caller's clock; an
// entry or link is live while its expiry score is greater than now.

// Shared helpers prepended to the scripts that follow links.
constexpr absl::string_view kLuaCommon = R"lua(
local p = ARGV[1]
local function closure(start, now, limit)
  local seen, queue = {}, {}
  local function push(t)
    if not seen[t] then seen[t] = true; queue[#queue + 1] = t end
  end
  for _, t in ipairs(start) do push(t) end
  local i = 1
  while i <= #queue and #queue < limit do
    local t = queue[i]
    i = i + 1
    for _, n in ipairs(redis.call('ZRANGEBYSCORE', p .. 'l:' .. t, '(' .. now, '+inf')) do
      push(n)
    end
  end
  return queue
end
local function link(group, now, expires)
  local uniq, seen = {}, {}
  for _, t in ipairs(group) do
    if not seen[t] then seen[t] = true; uniq[#uniq + 1] = t end
  end
  if #uniq < 2 then return end
  for _, a in ipairs(uniq) do
    local k = p .. 'l:' .. a
    for _, b in ipairs(uniq) do
      if a ~= b then
        local old = redis.call('ZSCORE', k, b)
        if not old or tonumber(old) < expires then redis.call('ZADD', k, expires, b) end
      end
    end
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    if redis.call('PTTL', k) < expires - now then redis.call('PEXPIRE', k, expires - now) end
  end
end
)lua";

// KEYS[1] value key, KEYS[2] generation counter.
// Returns {found (0/1), value, pttl ms, generation}.
constexpr absl::string_view kLookupScript = R"lua(
local v = redis.call('GET', KEYS[1])
local gen = tonumber(redis.call('GET', KEYS[2]) or '0')
if not v then return {0, '', 0, gen} end
return {1, v, redis.call('PTTL', KEYS[1]), gen}
)lua";

// ARGV: prefix, key, value, ttl ms, now ms, ticket generation, #tags, tags..., aliases...
// Returns 1 when stored, 0 when refused by the ticket check.
constexpr absl::string_view kStoreScript = R"lua(
local key, value = ARGV[2], ARGV[3]
local ttl, now, ticket = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ntags = tonumber(ARGV[7])
local tags, group = {}, {}
for i = 8, 7 + ntags do tags[#tags + 1] = ARGV[i]; group[#group + 1] = ARGV[i] end
for i = 8 + ntags, #ARGV do group[#group + 1] = ARGV[i] end
if tonumber(redis.call('GET', p .. 'floor') or '0') > ticket then return 0 end
for _, t in ipairs(closure(group, now, 4096)) do
  local gen = redis.call('ZSCORE', p .. 'inv', t)
  if gen and tonumber(gen) > ticket then return 0 end
end
redis.call('SET', p .. 'v:' .. key, value, 'PX', ttl)
local expires = now + ttl
for _, t in ipairs(tags) do
  local k = p .. 't:' .. t
  redis.call('ZADD', k, expires, key)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
if #group > ntags then link(group, now, expires) end
return 1
)lua";

// ARGV: prefix, now ms, link ttl ms, max tracked invalidations, #tags, tags..., aliases...
// Returns {generation, values deleted, closure tags...}.
constexpr absl::string_view kInvalidateScript = R"lua(
local now, link_ttl, max_log = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ntags = tonumber(ARGV[5])
local start, aliases = {}, {}
for i = 6, 5 + ntags do start[#start + 1] = ARGV[i] end
for i = 6 + ntags, #ARGV do start[#start + 1] = ARGV[i]; aliases[#aliases + 1] = ARGV[i] end
local reached = closure(start, now, 4096)
local gen = redis.call('INCR', p .. 'seq')
local deleted = 0
for _, t in ipairs(reached) do
  local k = p .. 't:' .. t
  for _, key in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    deleted = deleted + redis.call('DEL', p .. 'v:' .. key)
  end
  redis.call('DEL', k)
  redis.call('ZADD', p .. 'inv', gen, t)
end
local n = redis.call('ZCARD', p .. 'inv')
if n > max_log then
  local old = redis.call('ZRANGE', p .. 'inv', 0, n - max_log - 1, 'WITHSCORES')
  redis.call('SET', p .. 'floor', old[#old])
  redis.call('ZREMRANGEBYRANK', p .. 'inv', 0, n - max_log - 1)
end
if #aliases > 0 then link(aliases, now, now + link_ttl) end
local out = {gen, deleted}
for _, t in ipairs(reached) do out[#out + 1] = t end
return out
)lua";

// ARGV: prefix, last generation seen. Returns {generation, floor, tag, gen, tag, gen, ...} with
// the tags invalidated after the last generation seen.
constexpr absl::string_view kSyncScript = R"lua(
local last = tonumber(ARGV[2])
local gen = tonumber(redis.call('GET', p .. 'seq') or '0')
local floor = tonumber(redis.call('GET', p .. 'floor') or '0')
local out = {gen, floor}
if gen > last then
  for _, x in ipairs(redis.call('ZRANGEBYSCORE', p .. 'inv', '(' .. last, '+inf', 'WITHSCORES')) do
    out[#out + 1] = x
  end
end
return out
)lua";

// Full script texts, built once (the scripts that follow links share kLuaCommon).
const std::string& LookupScript() {
  static const auto* script = new std::string(kLookupScript);
  return *script;
}
const std::string& StoreScript() {
  static const auto* script = new std::string(absl::StrCat(kLuaCommon, kStoreScript));
  return *script;
}
const std::string& InvalidateScript() {
  static const auto* script = new std::string(absl::StrCat(kLuaCommon, kInvalidateScript));
  return *script;
}
const std::string& SyncScript() {
  static const auto* script = new std::string(absl::StrCat(kLuaCommon, kSyncScript));
  return *script;
}

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

int64_t Millis(absl::Duration d) { return std::max<int64_t>(1, absl::ToInt64Milliseconds(d)); }

// Value stored in Redis: "<n>;" then "<len>:<tag>" n times, then the reply bytes. The tags let a
// replica that copies a Redis hit locally drop it when one of them is invalidated.
std::string EncodeValue(const std::vector<std::string>& tags, absl::string_view bytes) {
  std::string out = absl::StrCat(tags.size(), ";");
  for (const auto& t : tags) absl::StrAppend(&out, t.size(), ":", t);
  out.append(bytes.data(), bytes.size());
  return out;
}

bool ReadNumber(absl::string_view& in, char end, size_t* n) {
  const size_t pos = in.find(end);
  if (pos == absl::string_view::npos || !absl::SimpleAtoi(in.substr(0, pos), n)) return false;
  in.remove_prefix(pos + 1);
  return true;
}

bool DecodeValue(absl::string_view in, std::vector<std::string>* tags, std::string* bytes) {
  size_t n = 0;
  if (!ReadNumber(in, ';', &n) || n > in.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    size_t len = 0;
    if (!ReadNumber(in, ':', &len) || len > in.size()) return false;
    tags->emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  bytes->assign(in.data(), in.size());
  return true;
}

bool ToInt(const RedisReply& r, int64_t* out) {
  if (r.type == RedisReply::Type::kInteger) {
    *out = r.integer;
    return true;
  }
  return r.type == RedisReply::Type::kString && absl::SimpleAtoi(r.str, out);
}

}  // namespace

class ResponseCache::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(Options options, Scheduler* clock, RedisClient* redis)
      : options_(std::move(options)), clock_(clock), redis_(redis) {}

  void Lookup(const std::string& key, LookupCallback done) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const std::string> Peek(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  void Store(const ReadTicket& ticket, const std::string& key, std::string bytes,
             absl::Duration ttl, std::vector<std::string> tags, std::vector<std::string> aliases,
             DoneCallback done) ABSL_LOCKS_EXCLUDED(mu_);
  void Invalidate(const std::vector<std::string>& tags, const std::vector<std::string>& aliases,
                  DoneCallback done) ABSL_LOCKS_EXCLUDED(mu_);
  Counters counters() const ABSL_LOCKS_EXCLUDED(mu_);

  // Polls the shared invalidation log now and every redis_sync_interval until Close().
  void StartSync() ABSL_LOCKS_EXCLUDED(mu_);
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const std::string> bytes;
    absl::Time expires;
    std::vector<std::string> tags;
    size_t size = 0;
  };
  using EntryList = std::list<Entry>;  // most recently used first

  struct LinkGroup {
    std::string id;  // sorted, deduplicated tags joined by '\0'
    std::vector<std::string> tags;
    absl::Time expires;
    size_t size = 0;
  };
  using LinkList = std::list<LinkGroup>;  // most recently used first

  struct QueuedInvalidation {
    std::vector<std::string> tags;
    std::vector<std::string> aliases;
  };

  // Local state.
  absl::flat_hash_set<std::string> ClosureLocked(const std::vector<std::string>& a,
                                                 const std::vector<std::string>& b,
                                                 absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AdmitLocked(const ReadTicket& ticket, const absl::flat_hash_set<std::string>& closure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertLocked(const std::string& key, std::shared_ptr<const std::string> bytes,
                    absl::Time expires, std::vector<std::string> tags, size_t size, bool fill,
                    absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(EntryList::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LinkLocked(const std::vector<std::string>& a, const std::vector<std::string>& b,
                  absl::Time expires, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLinkLocked(LinkList::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops entries carrying any tag of `closure` and records the invalidation of every one.
  void InvalidateClosureLocked(const absl::flat_hash_set<std::string>& closure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops everything and refuses every ticket taken so far.
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static size_t EntrySize(const std::string& key, size_t bytes,
                          const std::vector<std::string>& tags);

  // Redis.
  void SendInvalidation(QueuedInvalidation inv, DoneCallback done) ABSL_LOCKS_EXCLUDED(mu_);
  void SyncRound() ABSL_LOCKS_EXCLUDED(mu_);
  void ScheduleSync() ABSL_LOCKS_EXCLUDED(mu_);
  void ApplySync(const absl::StatusOr<RedisReply>& reply) ABSL_LOCKS_EXCLUDED(mu_);
  void NoteGenerationLocked(int64_t generation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Scheduler* const clock_;
  RedisClient* const redis_;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Counters counters_ ABSL_GUARDED_BY(mu_);

  EntryList lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<absl::string_view, EntryList::iterator> index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<Entry*>> by_tag_ ABSL_GUARDED_BY(mu_);

  LinkList links_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<absl::string_view, LinkList::iterator> link_index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<LinkGroup*>> links_by_tag_
      ABSL_GUARDED_BY(mu_);

  // Invalidation generations (local): the last generation that reached each tag, in order.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, uint64_t> invalidated_at_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, std::string>> invalidation_log_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_floor_ ABSL_GUARDED_BY(mu_) = 0;  // tickets older than this are refused

  // Redis sync state.
  int64_t redis_seen_ ABSL_GUARDED_BY(mu_) = -1;  // last shared generation applied; -1: none yet
  absl::flat_hash_set<int64_t> own_generations_ ABSL_GUARDED_BY(mu_);  // already applied here
  std::deque<QueuedInvalidation> queued_ ABSL_GUARDED_BY(mu_);  // to replay into Redis
};

size_t ResponseCache::Core::EntrySize(const std::string& key, size_t bytes,
                                      const std::vector<std::string>& tags) {
  size_t size = kEntryOverhead + key.size() + bytes;
  for (const auto& t : tags) size += t.size();
  return size;
}

ResponseCache::Counters ResponseCache::Core::counters() const {
  absl::MutexLock lock(&mu_);
  Counters c = counters_;
  c.entries = lru_.size();
  c.link_groups = links_.size();
  return c;
}

void ResponseCache::Core::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

// ---- Local state ----

absl::flat_hash_set<std::string> ResponseCache::Core::ClosureLocked(
    const std::vector<std::string>& a, const std::vector<std::string>& b, absl::Time now) {
  absl::flat_hash_set<std::string> seen;
  std::vector<std::string> queue;
  for (const auto* list : {&a, &b}) {
    for (const auto& t : *list) {
      if (seen.insert(t).second) queue.push_back(t);
    }
  }
  std::vector<LinkList::iterator> expired;
  absl::flat_hash_set<const LinkGroup*> visited;
  for (size_t i = 0; i < queue.size(); ++i) {
    auto it = links_by_tag_.find(queue[i]);
    if (it == links_by_tag_.end()) continue;
    for (LinkGroup* group : it->second) {
      if (!visited.insert(group).second) continue;
      if (group->expires <= now) {
        expired.push_back(link_index_.at(group->id));
        continue;
      }
      for (const auto& t : group->tags) {
        if (seen.insert(t).second) queue.push_back(t);
      }
    }
  }
  for (auto it : expired) RemoveLinkLocked(it);
  return seen;
}

bool ResponseCache::Core::AdmitLocked(const ReadTicket& ticket,
                                      const absl::flat_hash_set<std::string>& closure) {
  if (ticket.local_generation < generation_floor_) return false;
  for (const auto& t : closure) {
    auto it = invalidated_at_.find(t);
    if (it != invalidated_at_.end() && it->second > ticket.local_generation) return false;
  }
  return true;
}

void ResponseCache::Core::RemoveLocked(EntryList::iterator it) {
  for (const auto& t : it->tags) {
    auto tag = by_tag_.find(t);
    if (tag == by_tag_.end()) continue;
    tag->second.erase(&*it);
    if (tag->second.empty()) by_tag_.erase(tag);
  }
  counters_.bytes -= it->size;
  index_.erase(it->key);
  lru_.erase(it);
}

void ResponseCache::Core::InsertLocked(const std::string& key,
                                       std::shared_ptr<const std::string> bytes,
                                       absl::Time expires, std::vector<std::string> tags,
                                       size_t size, bool fill, absl::Time now) {
  if (auto old = index_.find(key); old != index_.end()) {
    RemoveLocked(old->second);
    ++counters_.replaced;
  }
  // Deduplicate tags so that each is indexed once.
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  lru_.push_front(Entry{key, std::move(bytes), expires, std::move(tags), size});
  Entry& entry = lru_.front();
  index_.emplace(entry.key, lru_.begin());
  for (const auto& t : entry.tags) by_tag_[t].insert(&entry);
  counters_.bytes += size;
  ++(fill ? counters_.fills : counters_.stores);
  while (counters_.bytes > options_.max_bytes && lru_.size() > 1) {
    auto victim = std::prev(lru_.end());
    ++(victim->expires <= now ? counters_.expirations : counters_.evictions);
    RemoveLocked(victim);
  }
}

void ResponseCache::Core::RemoveLinkLocked(LinkList::iterator it) {
  for (const auto& t : it->tags) {
    auto tag = links_by_tag_.find(t);
    if (tag == links_by_tag_.end()) continue;
    tag->second.erase(&*it);
    if (tag->second.empty()) links_by_tag_.erase(tag);
  }
  counters_.link_bytes -= it->size;
  link_index_.erase(it->id);
  links_.erase(it);
}

void ResponseCache::Core::LinkLocked(const std::vector<std::string>& a,
                                     const std::vector<std::string>& b, absl::Time expires,
                                     absl::Time now) {
  std::vector<std::string> tags(a.begin(), a.end());
  tags.insert(tags.end(), b.begin(), b.end());
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  if (tags.size() < 2) return;
  std::string id = absl::StrJoin(tags, absl::string_view("\0", 1));
  if (auto found = link_index_.find(id); found != link_index_.end()) {
    LinkList::iterator it = found->second;
    it->expires = std::max(it->expires, expires);
    links_.splice(links_.begin(), links_, it);
    return;
  }
  const size_t size = kLinkOverhead + 2 * (id.size() + 1);
  if (size > options_.max_link_bytes) return;
  links_.push_front(LinkGroup{std::move(id), std::move(tags), expires, size});
  LinkGroup& group = links_.front();
  link_index_.emplace(group.id, links_.begin());
  for (const auto& t : group.tags) links_by_tag_[t].insert(&group);
  counters_.link_bytes += size;
  while (counters_.link_bytes > options_.max_link_bytes ||
         (links_.size() > 1 && links_.back().expires <= now)) {
    RemoveLinkLocked(std::prev(links_.end()));
  }
}

void ResponseCache::Core::InvalidateClosureLocked(
    const absl::flat_hash_set<std::string>& closure) {
  std::vector<EntryList::iterator> victims;
  absl::flat_hash_set<const Entry*> seen;
  for (const auto& t : closure) {
    auto it = by_tag_.find(t);
    if (it == by_tag_.end()) continue;
    for (Entry* e : it->second) {
      if (seen.insert(e).second) victims.push_back(index_.at(e->key));
    }
  }
  for (auto it : victims) RemoveLocked(it);
  counters_.invalidations += static_cast<int64_t>(victims.size());
  if (closure.empty()) return;
  const uint64_t generation = ++generation_;
  for (const auto& t : closure) {
    invalidated_at_[t] = generation;
    invalidation_log_.emplace_back(generation, t);
  }
  while (invalidation_log_.size() > options_.max_tracked_invalidations) {
    auto& [gen, tag] = invalidation_log_.front();
    if (auto it = invalidated_at_.find(tag); it != invalidated_at_.end() && it->second == gen) {
      invalidated_at_.erase(it);
    }
    generation_floor_ = std::max(generation_floor_, gen);
    invalidation_log_.pop_front();
  }
}

void ResponseCache::Core::ClearLocked() {
  counters_.invalidations += static_cast<int64_t>(lru_.size());
  while (!lru_.empty()) RemoveLocked(lru_.begin());
  generation_floor_ = ++generation_;
  invalidated_at_.clear();
  invalidation_log_.clear();
}

// ---- Operations ----

std::shared_ptr<const std::string> ResponseCache::Core::Peek(const std::string& key) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found == index_.end() || found->second->expires <= now) return nullptr;  // Lookup decides
  lru_.splice(lru_.begin(), lru_, found->second);
  ++counters_.hits;
  return found->second->bytes;
}

void ResponseCache::Core::Lookup(const std::string& key, LookupCallback done) {
  const absl::Time now = clock_->Now();
  ReadTicket ticket;
  std::shared_ptr<const std::string> hit;
  {
    absl::MutexLock lock(&mu_);
    if (auto found = index_.find(key); found != index_.end()) {
      EntryList::iterator it = found->second;
      if (it->expires > now) {
        lru_.splice(lru_.begin(), lru_, it);
        ++counters_.hits;
        hit = it->bytes;
      } else {
        RemoveLocked(it);
        ++counters_.expirations;
      }
    }
    if (hit == nullptr) {
      ticket.local_generation = generation_;
      if (redis_ == nullptr) ++counters_.misses;
    }
  }
  // The copy of a hit happens outside the lock: entries hold immutable shared bytes.
  if (hit != nullptr) return std::move(done)(std::string(*hit), ReadTicket{});
  if (redis_ == nullptr) return std::move(done)(std::nullopt, ticket);
  redis_->Eval(
      LookupScript(),
      {absl::StrCat(options_.redis_key_prefix, "v:", key),
       absl::StrCat(options_.redis_key_prefix, "seq")},
      {},
      [self = shared_from_this(), key, ticket,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        int64_t found = 0, pttl = 0, generation = 0;
        const bool ok = reply.ok() && reply->type == RedisReply::Type::kArray &&
                        reply->elements.size() == 4 && ToInt(reply->elements[0], &found) &&
                        ToInt(reply->elements[2], &pttl) &&
                        ToInt(reply->elements[3], &generation);
        std::vector<std::string> tags;
        std::string bytes;
        if (ok && found == 1 && DecodeValue(reply->elements[1].str, &tags, &bytes)) {
          const absl::Time now = self->clock_->Now();
          {
            absl::MutexLock lock(&self->mu_);
            ++self->counters_.hits;
            ++self->counters_.redis_hits;
            self->NoteGenerationLocked(generation);
            const size_t size = EntrySize(key, bytes.size(), tags);
            if (pttl > 0 && size <= self->options_.max_bytes) {
              if (self->AdmitLocked(ticket, self->ClosureLocked(tags, {}, now))) {
                self->InsertLocked(key, std::make_shared<const std::string>(bytes),
                                   now + absl::Milliseconds(pttl), std::move(tags), size,
                                   /*fill=*/true, now);
              } else {
                ++self->counters_.stale_rejected;
              }
            }
          }
          std::move(done)(std::move(bytes), ReadTicket{});
          return;
        }
        ReadTicket miss = ticket;
        {
          absl::MutexLock lock(&self->mu_);
          ++self->counters_.misses;
          if (ok && found == 0) {
            miss.redis_generation = generation;
            self->NoteGenerationLocked(generation);
          } else {
            ++self->counters_.redis_errors;
          }
        }
        std::move(done)(std::nullopt, miss);
      });
}

void ResponseCache::Core::Store(const ReadTicket& ticket, const std::string& key,
                                std::string bytes, absl::Duration ttl,
                                std::vector<std::string> tags, std::vector<std::string> aliases,
                                DoneCallback done) {
  auto finish = [](DoneCallback& d) {
    if (d != nullptr) std::move(d)();
  };
  if (ttl <= absl::ZeroDuration()) return finish(done);
  const absl::Time now = clock_->Now();
  const absl::Time expires = now + ttl;
  const size_t size = EntrySize(key, bytes.size(), tags);
  auto value = std::make_shared<const std::string>(std::move(bytes));
  const bool use_redis = redis_ != nullptr && ticket.redis_generation.has_value();
  {
    absl::MutexLock lock(&mu_);
    if (size > options_.max_bytes) {
      ++counters_.too_large;
      value = nullptr;
    } else if (!AdmitLocked(ticket, ClosureLocked(tags, aliases, now))) {
      ++counters_.stale_rejected;
      value = nullptr;
    } else if (!use_redis) {
      if (!aliases.empty()) LinkLocked(tags, aliases, expires, now);
      InsertLocked(key, std::move(value), expires, std::move(tags), size, /*fill=*/false, now);
    }
  }
  if (value == nullptr) return finish(done);  // refused, or stored locally
  std::vector<std::string> args = {options_.redis_key_prefix,
                                   key,
                                   EncodeValue(tags, *value),
                                   absl::StrCat(Millis(ttl)),
                                   absl::StrCat(UnixMillis(now)),
                                   absl::StrCat(*ticket.redis_generation),
                                   absl::StrCat(tags.size())};
  args.insert(args.end(), tags.begin(), tags.end());
  args.insert(args.end(), aliases.begin(), aliases.end());
  redis_->Eval(
      StoreScript(), {}, std::move(args),
      [self = shared_from_this(), ticket, key, value = std::move(value), expires, size,
       tags = std::move(tags), aliases = std::move(aliases), done = std::move(done),
       finish](absl::StatusOr<RedisReply> reply) mutable {
        const absl::Time now = self->clock_->Now();
        {
          absl::MutexLock lock(&self->mu_);
          const bool redis_ok = reply.ok() && reply->type == RedisReply::Type::kInteger;
          if (!redis_ok) ++self->counters_.redis_errors;
          // Refused by Redis (another replica invalidated), or by a local invalidation that
          // happened during the round trip.
          if ((redis_ok && reply->integer != 1) ||
              !self->AdmitLocked(ticket, self->ClosureLocked(tags, aliases, now))) {
            ++self->counters_.stale_rejected;
          } else {
            if (!aliases.empty()) self->LinkLocked(tags, aliases, expires, now);
            self->InsertLocked(key, std::move(value), expires, std::move(tags), size,
                               /*fill=*/false, now);
          }
        }
        finish(done);
      });
}

void ResponseCache::Core::Invalidate(const std::vector<std::string>& tags,
                                     const std::vector<std::string>& aliases,
                                     DoneCallback done) {
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    InvalidateClosureLocked(ClosureLocked(tags, aliases, now));
    LinkLocked(aliases, {}, now + options_.link_ttl, now);
  }
  if (redis_ == nullptr) {
    if (done != nullptr) std::move(done)();
    return;
  }
  SendInvalidation({tags, aliases}, std::move(done));
}

// ---- Redis ----

void ResponseCache::Core::SendInvalidation(QueuedInvalidation inv, DoneCallback done) {
  std::vector<std::string> args = {
      options_.redis_key_prefix, absl::StrCat(UnixMillis(clock_->Now())),
      absl::StrCat(Millis(options_.link_ttl)),
      absl::StrCat(std::max<size_t>(1, options_.max_tracked_invalidations)),
      absl::StrCat(inv.tags.size())};
  args.insert(args.end(), inv.tags.begin(), inv.tags.end());
  args.insert(args.end(), inv.aliases.begin(), inv.aliases.end());
  redis_->Eval(
      InvalidateScript(), {}, std::move(args),
      [self = shared_from_this(), inv = std::move(inv),
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        int64_t generation = 0;
        const bool ok = reply.ok() && reply->type == RedisReply::Type::kArray &&
                        reply->elements.size() >= 2 && ToInt(reply->elements[0], &generation);
        {
          absl::MutexLock lock(&self->mu_);
          if (!ok) {
            // Replayed by the next sync round that reaches Redis.
            ++self->counters_.redis_errors;
            self->queued_.push_back(std::move(inv));
            while (self->queued_.size() > self->options_.max_queued_invalidations) {
              self->queued_.pop_front();
            }
          } else {
            // Redis may know links this replica does not: apply its closure here too, and
            // skip this generation when it comes back through the sync.
            absl::flat_hash_set<std::string> reached;
            for (size_t i = 2; i < reply->elements.size(); ++i) {
              reached.insert(reply->elements[i].str);
            }
            self->InvalidateClosureLocked(reached);
            self->own_generations_.insert(generation);
          }
        }
        if (done != nullptr) std::move(done)();
      });
}

void ResponseCache::Core::NoteGenerationLocked(int64_t generation) {
  if (redis_seen_ >= 0) return;
  // First contact with the shared log: later invalidations are applied from here on. Local
  // entries made before (Redis unreachable until now) may have missed earlier ones: drop them.
  redis_seen_ = generation;
  if (!lru_.empty()) ClearLocked();
}

void ResponseCache::Core::StartSync() { SyncRound(); }

void ResponseCache::Core::ScheduleSync() {
  std::weak_ptr<Core> weak = weak_from_this();
  clock_->RunAfter(options_.redis_sync_interval, [weak] {
    if (auto self = weak.lock()) self->SyncRound();
  });
}

void ResponseCache::Core::SyncRound() {
  std::deque<QueuedInvalidation> queued;
  int64_t seen = 0;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    queued.swap(queued_);
    seen = redis_seen_;
  }
  for (auto& inv : queued) SendInvalidation(std::move(inv), nullptr);
  redis_->Eval(SyncScript(), {},
               {options_.redis_key_prefix, absl::StrCat(std::max<int64_t>(seen, 0))},
               [self = shared_from_this()](absl::StatusOr<RedisReply> reply) {
                 self->ApplySync(reply);
                 {
                   absl::MutexLock lock(&self->mu_);
                   if (self->closed_) return;
                 }
                 self->ScheduleSync();
               });
}

void ResponseCache::Core::ApplySync(const absl::StatusOr<RedisReply>& reply) {
  int64_t generation = 0, floor = 0;
  const bool ok = reply.ok() && reply->type == RedisReply::Type::kArray &&
                  reply->elements.size() >= 2 && reply->elements.size() % 2 == 0 &&
                  ToInt(reply->elements[0], &generation) && ToInt(reply->elements[1], &floor);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (!ok) {
    ++counters_.redis_errors;
    return;
  }
  if (redis_seen_ < 0) {
    NoteGenerationLocked(generation);
    return;
  }
  if (generation < redis_seen_ || floor > redis_seen_) {
    // Missed part of the log (trimmed), or Redis lost its data: start over.
    ClearLocked();
  } else {
    std::vector<std::string> tags;
    for (size_t i = 2; i + 1 < reply->elements.size(); i += 2) {
      int64_t at = 0;
      if (ToInt(reply->elements[i + 1], &at) && own_generations_.contains(at)) continue;
      tags.push_back(reply->elements[i].str);
    }
    if (!tags.empty()) InvalidateClosureLocked(ClosureLocked(tags, {}, now));
  }
  redis_seen_ = generation;
  absl::erase_if(own_generations_, [&](int64_t g) { return g <= generation; });
}

// ---- Public wrapper ----

ResponseCache::ResponseCache(Options options, Scheduler* clock, RedisClient* redis)
    : core_(std::make_shared<Core>(std::move(options), clock, redis)) {
  if (redis != nullptr) core_->StartSync();
}

ResponseCache::~ResponseCache() { core_->Close(); }

void ResponseCache::Lookup(const std::string& key, LookupCallback done) {
  core_->Lookup(key, std::move(done));
}

std::shared_ptr<const std::string> ResponseCache::Peek(const std::string& key) {
  return core_->Peek(key);
}

void ResponseCache::Store(const ReadTicket& ticket, const std::string& key, std::string bytes,
                          absl::Duration ttl, std::vector<std::string> tags,
                          std::vector<std::string> aliases, DoneCallback done) {
  core_->Store(ticket, key, std::move(bytes), ttl, std::move(tags), std::move(aliases),
               std::move(done));
}

void ResponseCache::Invalidate(const std::vector<std::string>& tags,
                               const std::vector<std::string>& aliases, DoneCallback done) {
  core_->Invalidate(tags, aliases, std::move(done));
}

ResponseCache::Counters ResponseCache::counters() const { return core_->counters(); }

}  // namespace gateway::upstream
