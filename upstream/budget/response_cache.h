// A cache of serialized replies of read RPCs, bounded by bytes, with tag and alias invalidation,
// optionally shared across replicas through Redis.
//
// A hit costs one hash lookup and one copy of the stored bytes: values are the serialized reply,
// so nothing is parsed or encoded on the hit path. Reads look up, and on a miss call the upstream
// and store the reply with the ticket their miss returned; writes invalidate tags:
//
//   ResponseCache cache({}, &scheduler, /*redis=*/nullptr);
//   cache.Lookup(key, [&](std::optional<std::string> bytes, ResponseCache::ReadTicket ticket) {
//     if (bytes.has_value()) return Reply(*std::move(bytes));
//     CallUpstream(..., [&, ticket](std::string reply) {
//       cache.Store(ticket, key, reply, absl::Seconds(30), {"contact:email:a@b.c"},
//                   {"contact:id:12", "contact:email:a@b.c", "contact:phone:+6012"});
//     });
//   });
//   ...
//   cache.Invalidate({"contact:id:12", "contacts"});  // after a successful write
//
// Tags and aliases. Every entry carries tags (e.g. "contact:email:a@b.c", or "contacts" on list
// replies); invalidating a tag drops every entry carrying it. Aliases are tags that name the same
// resource under other identifiers. Storing an entry with non-empty `aliases` links every tag of
// tags ∪ aliases into one group; invalidation follows links transitively, so an update addressed
// by "contact:id:12" also drops the reply cached under "contact:email:a@b.c". Links are learned
// from Store (they expire with the entry that taught them) and from the `aliases` argument of
// Invalidate (they expire after Options::link_ttl); all links share a byte budget with LRU
// eviction, so they cannot grow without limit. A stale link only over-invalidates. Put list tags
// ("contacts") on list replies, which have no aliases: a list tag on an entry with aliases would
// be linked to that resource and over-invalidate (safe, but wasteful).
//
// Reads racing writes. Lookup's miss returns a ReadTicket: a snapshot of the invalidation
// generation. Every invalidation advances the generation and records it against each tag it
// reached (its closure over links). Store refuses the reply when any tag in the closure of its
// tags ∪ aliases was invalidated after the ticket was taken, so a reply fetched before a write
// can never be stored after that write's invalidation. The record of recent invalidations is
// bounded (Options::max_tracked_invalidations); a ticket older than the oldest record kept is
// refused too. With Redis the same check runs inside the store script against a shared
// generation counter, so it also holds across replicas.
//
// Expiry. Entries are served while `now < stored_at + ttl` (Scheduler::Now(), so tests pin it);
// expired entries are never served and are removed lazily (when looked up or reached by
// eviction).
//
// Redis (optional; `redis` may be null). Lookup tries the local LRU first, then Redis; Redis hits
// are copied into the local LRU for their remaining TTL. Store writes Redis first (its script
// performs the ticket check) and the local LRU after. Invalidate drops local entries at once and
// deletes across replicas in Redis (one Lua script). Other replicas drop their local copies when
// they next poll the shared invalidation log (every Options::redis_sync_interval), so a local
// copy on another replica may be served for at most that long after an invalidation. When Redis
// is unreachable the cache behaves as a local-only cache and never fails a call: lookups miss
// through, stores stay local, and invalidations are queued (bounded) and replayed into Redis when
// it returns. Redis data layout (P = Options::redis_key_prefix; single instance, not Cluster):
//   P v:<key>  STRING  "<n>;" + n × "<len>:<tag>" + reply bytes, PX = ttl
//   P t:<tag>  ZSET    cache keys carrying <tag>, score = expiry (ms since epoch); PEXPIRE'd
//   P l:<tag>  ZSET    tags linked to <tag> (aliases), score = link expiry (ms); PEXPIRE'd
//   P seq      STRING  invalidation generation (INCR per invalidation)
//   P inv      ZSET    tag -> generation of its last invalidation, newest
//                      max_tracked_invalidations kept
//   P floor    STRING  highest generation trimmed from P inv
//
// Scripts follow links up to 4096 tags per call; links are kept in Redis as in process.
//
// Thread safety: thread-safe. One absl::Mutex guards the local state; it is never held during
// Redis I/O or while calling a callback. `done` callbacks run on the calling thread (local
// answers) or on a RedisClient worker thread (answers that needed Redis); they must not block.
// `clock` and `redis` must outlive the cache. Redis replies arriving after the cache is destroyed
// are handled harmlessly (internal state is shared with them), but they read `clock`: destroy
// the RedisClient (which answers its pending commands) before the Scheduler.
#ifndef GATEWAY_UPSTREAM_RESPONSE_CACHE_H_
#define GATEWAY_UPSTREAM_RESPONSE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "upstream/transport/redis_client.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {

class ResponseCache {
 public:
  struct Options {
    // Local budget for entries: key + value + tags + kEntryOverhead each. 64 MiB holds about
    // 30k typical 2 KiB replies per replica.
    size_t max_bytes = 64 << 20;
    // Local budget for alias links (see the class comment), counted as kLinkOverhead per group
    // plus twice the bytes of its tags.
    size_t max_link_bytes = 4 << 20;
    // How long a link learned from Invalidate's `aliases` (a write's reply) is kept. Links
    // learned from Store expire with their entry.
    absl::Duration link_ttl = absl::Hours(1);
    // Recent invalidations remembered for the ticket check; a ticket older than all of them is
    // refused by Store. 64k covers minutes of writes, far longer than any upstream read lasts.
    size_t max_tracked_invalidations = 1 << 16;
    // Prefix of every Redis key (see the layout in the class comment).
    std::string redis_key_prefix = "gw:cache:";
    // How often the shared invalidation log is polled to drop local copies that another replica
    // invalidated: the longest a local copy outlives a remote invalidation.
    absl::Duration redis_sync_interval = absl::Milliseconds(100);
    // Invalidations kept for replay while Redis is unreachable (oldest dropped beyond this).
    size_t max_queued_invalidations = 1024;
  };

  // Per-entry bookkeeping counted against Options::max_bytes besides key, value and tags.
  static constexpr size_t kEntryOverhead = 128;
  // Per-group bookkeeping counted against Options::max_link_bytes.
  static constexpr size_t kLinkOverhead = 64;

  // A snapshot of the invalidation generation, taken by a Lookup that missed. Pass it to the
  // Store of the reply fetched after that miss. Treat as opaque. A default ticket is as old as
  // the cache (safe, but refused after any overlapping invalidation and never stored in Redis).
  struct ReadTicket {
    uint64_t local_generation = 0;
    // Absent when Redis was not asked or not reachable: the Store then stays local.
    std::optional<int64_t> redis_generation;
  };

  // Monotonic counters and current sizes. Accounting:
  //   Lookups          = hits + misses                 (redis_hits is a subset of hits)
  //   Store calls      = stores + stale_rejected + too_large (ttl <= 0 counts nowhere)
  //   entries          = stores + fills - replaced - evictions - invalidations - expirations
  struct Counters {
    int64_t hits = 0;            // Lookups answered with bytes (locally or from Redis)
    int64_t redis_hits = 0;      // of which answered by Redis
    int64_t misses = 0;          // Lookups answered with nullopt
    int64_t stores = 0;          // entries inserted locally by Store
    int64_t fills = 0;           // entries inserted locally from a Redis hit
    int64_t replaced = 0;        // entries overwritten by a newer one under the same key
    int64_t stale_rejected = 0;  // Stores (or fills) refused: an invalidation overlapped the read
    int64_t too_large = 0;       // Stores refused: one entry larger than max_bytes
    int64_t evictions = 0;       // entries dropped to stay within max_bytes (LRU)
    int64_t invalidations = 0;   // entries dropped by invalidation (local or synced from Redis)
    int64_t expirations = 0;     // expired entries removed (on lookup or when reached by LRU)
    int64_t redis_errors = 0;    // Redis commands that failed (the call went on without Redis)
    size_t bytes = 0;            // current local bytes (as counted against max_bytes)
    size_t entries = 0;          // current local entries
    size_t link_groups = 0;      // current alias link groups
    size_t link_bytes = 0;       // current bytes counted against max_link_bytes
  };

  using LookupCallback =
      absl::AnyInvocable<void(std::optional<std::string> bytes, ReadTicket ticket) &&>;
  using DoneCallback = absl::AnyInvocable<void() &&>;

  // `clock` is required. `redis` may be null (in-process cache only).
  ResponseCache(Options options, Scheduler* clock, RedisClient* redis);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // Calls `done` exactly once: with the stored bytes on a hit, with nullopt and a ticket on a
  // miss (or an expired entry). Local hits and all answers without Redis are synchronous (before
  // Lookup returns); with Redis a local miss asks Redis and answers asynchronously. A Redis
  // failure is a miss.
  void Lookup(const std::string& key, LookupCallback done);

  // The fast path of a hit: the locally stored bytes under `key` (shared, immutable: the caller
  // may keep them and write them without a copy), or null. Synchronous, never asks Redis. A hit
  // counts in `hits`; a null answer counts nothing (the caller then does a full Lookup).
  std::shared_ptr<const std::string> Peek(const std::string& key);

  // Stores `bytes` under `key` for `ttl`, replacing any entry with that key, unless an
  // invalidation that reached `tags` ∪ `aliases` (or a tag linked to them) happened after
  // `ticket` was taken. `ttl <= 0` stores nothing. `tags` are the entry's invalidation tags;
  // `aliases` are the other names of the same resource (links, see the class comment).
  // An entry larger than max_bytes is not stored. Least recently used entries are evicted to
  // make room. `done`, if given, runs once the store is settled (with Redis: after its reply).
  void Store(const ReadTicket& ticket, const std::string& key, std::string bytes,
             absl::Duration ttl, std::vector<std::string> tags,
             std::vector<std::string> aliases, DoneCallback done = nullptr);

  // Drops every entry carrying any of `tags` ∪ `aliases`, or any tag linked to them
  // (transitively), locally at once and in Redis. Non-empty `aliases` (the names of one
  // resource, learned from a write's reply) are also recorded as a link group for
  // Options::link_ttl. `done`, if given, runs once Redis has answered (at once without Redis).
  void Invalidate(const std::vector<std::string>& tags,
                  const std::vector<std::string>& aliases = {}, DoneCallback done = nullptr);

  Counters counters() const;

 private:
  class Core;
  std::shared_ptr<Core> core_;  // shared with in-flight Redis callbacks
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_RESPONSE_CACHE_H_
