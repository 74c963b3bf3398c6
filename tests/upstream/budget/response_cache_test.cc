#include "upstream/budget/response_cache.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/upstream/redis_process.h"
#include "upstream/transport/redis_client.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {
namespace {

using Counters = ResponseCache::Counters;
using Ticket = ResponseCache::ReadTicket;

std::string Describe(const Counters& c) {
  return absl::StrCat("hits=", c.hits, " redis_hits=", c.redis_hits, " misses=", c.misses,
                      " stores=", c.stores, " fills=", c.fills, " replaced=", c.replaced,
                      " stale_rejected=", c.stale_rejected, " too_large=", c.too_large,
                      " evictions=", c.evictions, " invalidations=", c.invalidations,
                      " expirations=", c.expirations, " redis_errors=", c.redis_errors,
                      " bytes=", c.bytes, " entries=", c.entries, " link_groups=", c.link_groups);
}

// Every counter, zeros included (link_bytes is checked where it matters).
#define EXPECT_COUNTERS(cache, ...)                                 \
  do {                                                              \
    Counters want_ __VA_ARGS__;                                     \
    EXPECT_EQ(Describe((cache).counters()), Describe(want_));       \
  } while (0)

// The accounting identities of the header.
void ExpectAddsUp(const Counters& c, int64_t lookups, int64_t store_calls) {
  EXPECT_EQ(c.hits + c.misses, lookups) << Describe(c);
  EXPECT_EQ(c.stores + c.stale_rejected + c.too_large, store_calls) << Describe(c);
  EXPECT_EQ(static_cast<int64_t>(c.entries), c.stores + c.fills - c.replaced - c.evictions -
                                                  c.invalidations - c.expirations)
      << Describe(c);
}

size_t EntrySize(const std::string& key, const std::string& bytes,
                 const std::vector<std::string>& tags) {
  size_t size = ResponseCache::kEntryOverhead + key.size() + bytes.size();
  for (const auto& t : tags) size += t.size();
  return size;
}

struct Looked {
  bool called = false;
  std::optional<std::string> bytes;
  Ticket ticket;
};

// Local-only lookups answer before Lookup returns.
Looked LookupNow(ResponseCache& cache, const std::string& key) {
  Looked out;
  cache.Lookup(key, [&](std::optional<std::string> bytes, Ticket ticket) {
    out.called = true;
    out.bytes = std::move(bytes);
    out.ticket = ticket;
  });
  EXPECT_TRUE(out.called) << "a local lookup must answer synchronously";
  return out;
}

// Looks up (a miss), then stores with the miss's ticket: the normal read path.
void Fill(ResponseCache& cache, const std::string& key, const std::string& bytes,
          absl::Duration ttl, std::vector<std::string> tags,
          std::vector<std::string> aliases = {}) {
  Looked miss = LookupNow(cache, key);
  ASSERT_FALSE(miss.bytes.has_value()) << key;
  cache.Store(miss.ticket, key, bytes, ttl, std::move(tags), std::move(aliases));
}

bool Cached(ResponseCache& cache, const std::string& key) {
  return LookupNow(cache, key).bytes.has_value();
}

class ResponseCacheTest : public ::testing::Test {
 protected:
  ManualScheduler clock_;
};

TEST_F(ResponseCacheTest, MissThenStoreThenHitReturnsTheStoredBytes) {
  ResponseCache cache({}, &clock_, nullptr);
  Looked miss = LookupNow(cache, "GetContact|id:12");
  EXPECT_FALSE(miss.bytes.has_value());
  cache.Store(miss.ticket, "GetContact|id:12", "reply-bytes", absl::Seconds(30),
              {"contact:id:12"}, {});
  Looked hit = LookupNow(cache, "GetContact|id:12");
  ASSERT_TRUE(hit.bytes.has_value());
  EXPECT_EQ(*hit.bytes, "reply-bytes");
  EXPECT_FALSE(Cached(cache, "GetContact|id:13"));
  EXPECT_COUNTERS(cache, {.hits = 1,
                          .misses = 2,
                          .stores = 1,
                          .bytes = EntrySize("GetContact|id:12", "reply-bytes",
                                             {"contact:id:12"}),
                          .entries = 1});
  ExpectAddsUp(cache.counters(), 3, 1);
}

TEST_F(ResponseCacheTest, PeekSharesTheStoredBytesAndNeverCountsAMiss) {
  ResponseCache cache({}, &clock_, nullptr);
  EXPECT_EQ(cache.Peek("k"), nullptr);  // nothing stored: null, and no miss counted
  Fill(cache, "k", "reply-bytes", absl::Seconds(30), {"t"});
  std::shared_ptr<const std::string> a = cache.Peek("k");
  std::shared_ptr<const std::string> b = cache.Peek("k");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, "reply-bytes");
  EXPECT_EQ(a.get(), b.get());  // the entry's own bytes, not a copy
  clock_.AdvanceBy(absl::Seconds(30));
  EXPECT_EQ(cache.Peek("k"), nullptr);  // expired: never served
  EXPECT_EQ(*a, "reply-bytes");         // a reference taken before stays valid
  EXPECT_COUNTERS(cache, {.hits = 2, .misses = 1, .stores = 1, .bytes = EntrySize("k", "reply-bytes", {"t"}), .entries = 1});
}

TEST_F(ResponseCacheTest, ZeroOrNegativeTtlStoresNothing) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "k", "v", absl::ZeroDuration(), {"t"});
  Fill(cache, "k", "v", -absl::Seconds(1), {"t"});
  EXPECT_FALSE(Cached(cache, "k"));
  EXPECT_COUNTERS(cache, {.misses = 3});
}

TEST_F(ResponseCacheTest, EntryExpiresExactlyAtItsTtl) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "k", "v", absl::Seconds(30), {"t"});
  clock_.AdvanceBy(absl::Seconds(30) - absl::Nanoseconds(1));
  EXPECT_TRUE(Cached(cache, "k"));  // 1 ns before the boundary: still served
  clock_.AdvanceBy(absl::Nanoseconds(1));
  EXPECT_FALSE(Cached(cache, "k"));  // at the boundary: expired, removed on lookup
  EXPECT_COUNTERS(cache, {.hits = 1, .misses = 2, .stores = 1, .expirations = 1});
  ExpectAddsUp(cache.counters(), 3, 1);
}

TEST_F(ResponseCacheTest, RestoringAKeyReplacesItsEntry) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "k", "old", absl::Seconds(30), {"t"});
  clock_.AdvanceBy(absl::Seconds(29));
  cache.Store(Ticket{}, "k", "new!", absl::Seconds(30), {"t"}, {});
  clock_.AdvanceBy(absl::Seconds(2));  // past the first entry's expiry, not the second's
  Looked hit = LookupNow(cache, "k");
  ASSERT_TRUE(hit.bytes.has_value());
  EXPECT_EQ(*hit.bytes, "new!");
  EXPECT_COUNTERS(cache, {.hits = 1,
                          .misses = 1,
                          .stores = 2,
                          .replaced = 1,
                          .bytes = EntrySize("k", "new!", {"t"}),
                          .entries = 1});
  ExpectAddsUp(cache.counters(), 2, 2);
}

TEST_F(ResponseCacheTest, EvictsLeastRecentlyUsedByBytes) {
  const size_t one = EntrySize("k1", "0123456789", {"t"});  // all entries are this size
  ResponseCache::Options options;
  options.max_bytes = 3 * one;
  ResponseCache cache(options, &clock_, nullptr);
  Fill(cache, "k1", "0123456789", absl::Seconds(60), {"t"});
  Fill(cache, "k2", "0123456789", absl::Seconds(60), {"t"});
  Fill(cache, "k3", "0123456789", absl::Seconds(60), {"t"});
  EXPECT_COUNTERS(cache, {.misses = 3, .stores = 3, .bytes = 3 * one, .entries = 3});

  EXPECT_TRUE(Cached(cache, "k1"));  // k1 is now the most recently used; k2 the least
  Fill(cache, "k4", "0123456789", absl::Seconds(60), {"t"});
  EXPECT_COUNTERS(cache,
                  {.hits = 1, .misses = 4, .stores = 4, .evictions = 1, .bytes = 3 * one,
                   .entries = 3});
  EXPECT_FALSE(Cached(cache, "k2"));
  EXPECT_TRUE(Cached(cache, "k1"));
  EXPECT_TRUE(Cached(cache, "k3"));
  EXPECT_TRUE(Cached(cache, "k4"));

  // One byte more than the budget: never stored, nothing evicted for it.
  cache.Store(Ticket{}, "k5", std::string(3 * one, 'x'), absl::Seconds(60), {}, {});
  EXPECT_COUNTERS(cache, {.hits = 4,
                          .misses = 5,
                          .stores = 4,
                          .too_large = 1,
                          .evictions = 1,
                          .bytes = 3 * one,
                          .entries = 3});
  ExpectAddsUp(cache.counters(), 9, 5);
}

TEST_F(ResponseCacheTest, EvictingAnExpiredEntryCountsAsAnExpiration) {
  const size_t one = EntrySize("k1", "0123456789", {});
  ResponseCache::Options options;
  options.max_bytes = 2 * one;
  ResponseCache cache(options, &clock_, nullptr);
  Fill(cache, "k1", "0123456789", absl::Seconds(10), {});
  Fill(cache, "k2", "0123456789", absl::Seconds(60), {});
  clock_.AdvanceBy(absl::Seconds(10));
  Fill(cache, "k3", "0123456789", absl::Seconds(60), {});  // k1 is the LRU victim, expired
  EXPECT_COUNTERS(cache, {.misses = 3, .stores = 3, .expirations = 1, .bytes = 2 * one,
                          .entries = 2});
}

TEST_F(ResponseCacheTest, InvalidatingATagDropsOnlyTheEntriesCarryingIt) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "GetContact|id:1", "one", absl::Seconds(60), {"contact:id:1"});
  Fill(cache, "ListMessages|id:1", "msgs", absl::Seconds(60), {"contact:id:1"});
  Fill(cache, "GetContact|id:2", "two", absl::Seconds(60), {"contact:id:2"});
  cache.Invalidate({"contact:id:1"});
  EXPECT_FALSE(Cached(cache, "GetContact|id:1"));
  EXPECT_FALSE(Cached(cache, "ListMessages|id:1"));
  EXPECT_TRUE(Cached(cache, "GetContact|id:2"));
  EXPECT_COUNTERS(cache, {.hits = 1,
                          .misses = 5,
                          .stores = 3,
                          .invalidations = 2,
                          .bytes = EntrySize("GetContact|id:2", "two", {"contact:id:2"}),
                          .entries = 1});
  ExpectAddsUp(cache.counters(), 6, 3);
}

TEST_F(ResponseCacheTest, InvalidatingAnAliasDropsTheResourceCachedUnderAnotherIdentifier) {
  ResponseCache cache({}, &clock_, nullptr);
  const std::vector<std::string> contact12 = {"contact:id:12", "contact:email:a@b.c",
                                              "contact:phone:+6012"};
  Fill(cache, "GetContact|id:12", "c12", absl::Seconds(60), {"contact:id:12"}, contact12);
  Fill(cache, "GetContact|id:13", "c13", absl::Seconds(60), {"contact:id:13"},
       {"contact:id:13", "contact:email:x@y.z"});
  // Cached under the phone number, by an RPC whose reply names no aliases.
  Fill(cache, "ListMessages|phone:+6012", "msgs", absl::Seconds(60), {"contact:phone:+6012"});
  EXPECT_EQ(cache.counters().link_groups, 2u);

  cache.Invalidate({"contact:email:a@b.c"});
  EXPECT_FALSE(Cached(cache, "GetContact|id:12"));
  EXPECT_FALSE(Cached(cache, "ListMessages|phone:+6012"));  // reached through the links
  EXPECT_TRUE(Cached(cache, "GetContact|id:13"));           // an unrelated contact is kept
  EXPECT_COUNTERS(cache, {.hits = 1,
                          .misses = 5,
                          .stores = 3,
                          .invalidations = 2,
                          .bytes = EntrySize("GetContact|id:13", "c13", {"contact:id:13"}),
                          .entries = 1,
                          .link_groups = 2});
}

TEST_F(ResponseCacheTest, AliasesLearnedFromAWriteReplyLinkLaterInvalidations) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "ListMessages|email:a@b.c", "msgs", absl::Seconds(60), {"contact:email:a@b.c"});
  // An update addressed by id whose reply names the contact's email: the write's own
  // invalidation reaches the email entry through the aliases it passes...
  cache.Invalidate({"contact:id:12", "contacts"},
                   {"contact:id:12", "contact:email:a@b.c", "contact:phone:+6012"});
  EXPECT_FALSE(Cached(cache, "ListMessages|email:a@b.c"));
  // ...and the link is remembered: a later write by phone whose reply names nothing.
  Fill(cache, "ListMessages|email:a@b.c", "msgs", absl::Seconds(60), {"contact:email:a@b.c"});
  cache.Invalidate({"contact:phone:+6012"});
  EXPECT_FALSE(Cached(cache, "ListMessages|email:a@b.c"));
  // The link expires after link_ttl (1 h by default).
  clock_.AdvanceBy(absl::Hours(1));
  Fill(cache, "ListMessages|email:a@b.c", "msgs", absl::Seconds(60), {"contact:email:a@b.c"});
  cache.Invalidate({"contact:phone:+6012"});
  EXPECT_TRUE(Cached(cache, "ListMessages|email:a@b.c"));
  EXPECT_EQ(cache.counters().link_groups, 0u);
  EXPECT_EQ(cache.counters().invalidations, 2);
}

TEST_F(ResponseCacheTest, LinksExpireWithTheEntryThatTaughtThem) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "GetContact|id:12", "c12", absl::Seconds(10), {"contact:id:12"},
       {"contact:id:12", "contact:email:a@b.c"});
  clock_.AdvanceBy(absl::Seconds(10));
  Fill(cache, "ListMessages|email:a@b.c", "msgs", absl::Seconds(60), {"contact:email:a@b.c"});
  cache.Invalidate({"contact:id:12"});  // the link died with the 10 s entry
  EXPECT_TRUE(Cached(cache, "ListMessages|email:a@b.c"));
  EXPECT_EQ(cache.counters().link_groups, 0u);
}

TEST_F(ResponseCacheTest, LinksAreBoundedByBytes) {
  ResponseCache::Options options;
  options.max_link_bytes = 4 * (ResponseCache::kLinkOverhead + 64);
  ResponseCache cache(options, &clock_, nullptr);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = absl::StrCat("contact:id:", i);
    cache.Invalidate({id}, {id, absl::StrCat("contact:email:", i, "@x.y")});
  }
  const Counters c = cache.counters();
  EXPECT_LE(c.link_bytes, options.max_link_bytes);
  EXPECT_GE(c.link_groups, 1u);
  EXPECT_LE(c.link_groups, 4u);
  // The most recent link survived; the oldest was evicted.
  Fill(cache, "a", "x", absl::Seconds(60), {"contact:email:999@x.y"});
  Fill(cache, "b", "x", absl::Seconds(60), {"contact:email:0@x.y"});
  cache.Invalidate({"contact:id:999"});
  cache.Invalidate({"contact:id:0"});
  EXPECT_FALSE(Cached(cache, "a"));
  EXPECT_TRUE(Cached(cache, "b"));
}

TEST_F(ResponseCacheTest, ListTagInvalidationDropsEveryList) {
  ResponseCache cache({}, &clock_, nullptr);
  Fill(cache, "ListContacts|page=1", "p1", absl::Seconds(60), {"contacts"});
  Fill(cache, "ListContacts|page=2", "p2", absl::Seconds(60), {"contacts"});
  Fill(cache, "GetContact|id:12", "c12", absl::Seconds(60), {"contact:id:12"},
       {"contact:id:12", "contact:email:a@b.c"});
  Fill(cache, "GetContact|id:13", "c13", absl::Seconds(60), {"contact:id:13"});
  Fill(cache, "ListCustomFields", "cf", absl::Seconds(60), {"custom_fields"});
  // UpdateContact by email: invalidates "contact:{identifier}" and "contacts".
  cache.Invalidate({"contact:email:a@b.c", "contacts"});
  EXPECT_FALSE(Cached(cache, "ListContacts|page=1"));
  EXPECT_FALSE(Cached(cache, "ListContacts|page=2"));
  EXPECT_FALSE(Cached(cache, "GetContact|id:12"));
  EXPECT_TRUE(Cached(cache, "GetContact|id:13"));
  EXPECT_TRUE(Cached(cache, "ListCustomFields"));
  EXPECT_EQ(cache.counters().invalidations, 3);
}

TEST_F(ResponseCacheTest, InvalidationDuringAnInFlightMissKeepsTheOldReplyOut) {
  ResponseCache cache({}, &clock_, nullptr);
  Looked miss = LookupNow(cache, "GetContact|id:12");  // the read goes upstream...
  cache.Invalidate({"contact:id:12"});                  // ...a write lands meanwhile...
  cache.Store(miss.ticket, "GetContact|id:12", "old", absl::Seconds(60), {"contact:id:12"},
              {});                                      // ...the old reply comes back
  EXPECT_FALSE(Cached(cache, "GetContact|id:12"));

  // Same, with the write addressed by an alias the read's own reply reveals.
  Looked miss2 = LookupNow(cache, "GetContact|id:12");
  cache.Invalidate({"contact:email:a@b.c"});
  cache.Store(miss2.ticket, "GetContact|id:12", "old", absl::Seconds(60), {"contact:id:12"},
              {"contact:id:12", "contact:email:a@b.c"});
  EXPECT_FALSE(Cached(cache, "GetContact|id:12"));

  // An unrelated invalidation does not block the store, nor does one before the miss.
  Looked miss3 = LookupNow(cache, "GetContact|id:12");
  cache.Invalidate({"contact:id:99", "custom_fields"});
  cache.Store(miss3.ticket, "GetContact|id:12", "fresh", absl::Seconds(60), {"contact:id:12"},
              {});
  EXPECT_TRUE(Cached(cache, "GetContact|id:12"));
  EXPECT_COUNTERS(cache, {.hits = 1,
                          .misses = 5,
                          .stores = 1,
                          .stale_rejected = 2,
                          .bytes = EntrySize("GetContact|id:12", "fresh", {"contact:id:12"}),
                          .entries = 1});
  ExpectAddsUp(cache.counters(), 6, 3);
}

TEST_F(ResponseCacheTest, TicketsOlderThanTheTrackedInvalidationsAreRefused) {
  ResponseCache::Options options;
  options.max_tracked_invalidations = 2;
  ResponseCache cache(options, &clock_, nullptr);
  Looked miss = LookupNow(cache, "k");
  cache.Invalidate({"a"});
  cache.Invalidate({"b"});
  cache.Invalidate({"c"});  // "a" is forgotten: the ticket can no longer be checked
  cache.Store(miss.ticket, "k", "v", absl::Seconds(60), {"unrelated"}, {});
  EXPECT_FALSE(Cached(cache, "k"));
  Fill(cache, "k", "v", absl::Seconds(60), {"unrelated"});  // a fresh ticket is fine
  EXPECT_TRUE(Cached(cache, "k"));
  EXPECT_EQ(cache.counters().stale_rejected, 1);
}

TEST_F(ResponseCacheTest, CountersAddUpOverAMixedRun) {
  const size_t one = EntrySize("k0", "vvvvvvvv", {"t0"});
  ResponseCache::Options options;
  options.max_bytes = 4 * one;
  ResponseCache cache(options, &clock_, nullptr);
  EXPECT_COUNTERS(cache, {});  // all zeros
  int64_t lookups = 0, stores = 0;
  for (int i = 0; i < 10; ++i) {
    const std::string key = absl::StrCat("k", i);
    Looked m = LookupNow(cache, key);
    ++lookups;
    if (i == 5) cache.Invalidate({absl::StrCat("t", i)});  // races this read: refused
    cache.Store(m.ticket, key, "vvvvvvvv", absl::Seconds(10 + i), {absl::StrCat("t", i)}, {});
    ++stores;
  }
  for (int i = 0; i < 10; ++i, ++lookups) Cached(cache, absl::StrCat("k", i));
  cache.Invalidate({"t9"});
  clock_.AdvanceBy(absl::Seconds(17));  // k6, k7 expire (ttl 16, 17: at the boundary); k8 lives
  for (int i = 0; i < 10; ++i, ++lookups) Cached(cache, absl::StrCat("k", i));
  // Stores 9 of 10 (k5 refused); 4 fit: k0..k4 evicted in turn, k6..k9 remain.
  // First pass: k6..k9 hit (4). Then t9 drops k9; after 17 s k6 and k7 expire, k8 hits.
  EXPECT_COUNTERS(cache, {.hits = 5,
                          .misses = 25,
                          .stores = 9,
                          .stale_rejected = 1,
                          .evictions = 5,
                          .invalidations = 1,
                          .expirations = 2,
                          .bytes = one,
                          .entries = 1});
  ExpectAddsUp(cache.counters(), lookups, stores);
}

// ---- Redis: two replicas sharing one redis-server ----

class ResponseCacheRedisTest : public testing::TwoRedisClientsTest {
 protected:
  void SetUp() override {
    testing::TwoRedisClientsTest::SetUp();
    if (HasFatalFailure()) return;
    options_.redis_sync_interval = absl::Milliseconds(20);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    testing::TwoRedisClientsTest::TearDown();
  }
  void MakeReplicas() {
    a_ = std::make_unique<ResponseCache>(options_, &clock_, redis_a_.get());
    b_ = std::make_unique<ResponseCache>(options_, &clock_, redis_b_.get());
  }

  static Looked LookupWait(ResponseCache& cache, const std::string& key) {
    auto out = std::make_shared<Looked>();
    auto done = std::make_shared<absl::Notification>();
    cache.Lookup(key, [out, done](std::optional<std::string> bytes, Ticket ticket) {
      out->called = true;
      out->bytes = std::move(bytes);
      out->ticket = ticket;
      done->Notify();
    });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
    return *out;
  }
  static void StoreWait(ResponseCache& cache, const Ticket& ticket, const std::string& key,
                        const std::string& bytes, std::vector<std::string> tags,
                        std::vector<std::string> aliases = {}) {
    auto done = std::make_shared<absl::Notification>();
    cache.Store(ticket, key, bytes, absl::Seconds(60), std::move(tags), std::move(aliases),
                [done] { done->Notify(); });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  static void InvalidateWait(ResponseCache& cache, const std::vector<std::string>& tags,
                             const std::vector<std::string>& aliases = {}) {
    auto done = std::make_shared<absl::Notification>();
    cache.Invalidate(tags, aliases, [done] { done->Notify(); });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  // Waits (real time, bounded) until `key` misses on `cache`.
  static bool EventuallyMisses(ResponseCache& cache, const std::string& key) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      if (!LookupWait(cache, key).bytes.has_value()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  std::string Redis(std::vector<std::string> args) {
    auto r = redis_a_->CommandSync(std::move(args));
    if (!r.ok()) return r.status().ToString();
    if (r->type == RedisReply::Type::kInteger) return absl::StrCat(r->integer);
    if (r->type == RedisReply::Type::kNil) return "(nil)";
    return r->str;
  }

  TimerThreadScheduler clock_;
  ResponseCache::Options options_;
  std::unique_ptr<ResponseCache> a_, b_;
};


TEST_F(ResponseCacheRedisTest, ReplicasShareEntries) {
  MakeReplicas();
  Looked miss = LookupWait(*a_, "GetContact|id:12");
  ASSERT_FALSE(miss.bytes.has_value());
  ASSERT_TRUE(miss.ticket.redis_generation.has_value());
  StoreWait(*a_, miss.ticket, "GetContact|id:12", "c12", {"contact:id:12"},
            {"contact:id:12", "contact:email:a@b.c", "contact:phone:+6012"});

  // The data layout is the contract between replicas.
  EXPECT_EQ(Redis({"TYPE", "gw:cache:v:GetContact|id:12"}), "string");
  EXPECT_EQ(Redis({"TYPE", "gw:cache:t:contact:id:12"}), "zset");
  EXPECT_EQ(Redis({"ZCARD", "gw:cache:t:contact:id:12"}), "1");
  EXPECT_EQ(Redis({"ZCARD", "gw:cache:l:contact:email:a@b.c"}), "2");
  const int64_t pttl = std::stoll(Redis({"PTTL", "gw:cache:v:GetContact|id:12"}));
  EXPECT_GT(pttl, 50'000);
  EXPECT_LE(pttl, 60'000);

  Looked hit = LookupWait(*b_, "GetContact|id:12");  // another replica: from Redis
  ASSERT_TRUE(hit.bytes.has_value());
  EXPECT_EQ(*hit.bytes, "c12");
  hit = LookupWait(*b_, "GetContact|id:12");  // then from its local copy
  ASSERT_TRUE(hit.bytes.has_value());
  const Counters cb = b_->counters();
  EXPECT_EQ(cb.hits, 2);
  EXPECT_EQ(cb.redis_hits, 1);
  EXPECT_EQ(cb.fills, 1);
  EXPECT_EQ(cb.misses, 0);
  EXPECT_EQ(cb.redis_errors, 0);
  const Counters ca = a_->counters();
  EXPECT_EQ(ca.stores, 1);
  EXPECT_EQ(ca.misses, 1);
  EXPECT_EQ(ca.redis_errors, 0);
}

TEST_F(ResponseCacheRedisTest, InvalidationOnOneReplicaReachesTheOtherThroughAliases) {
  MakeReplicas();
  Looked miss = LookupWait(*a_, "GetContact|id:12");
  StoreWait(*a_, miss.ticket, "GetContact|id:12", "c12", {"contact:id:12"},
            {"contact:id:12", "contact:email:a@b.c", "contact:phone:+6012"});
  miss = LookupWait(*a_, "GetContact|id:13");
  StoreWait(*a_, miss.ticket, "GetContact|id:13", "c13", {"contact:id:13"});
  ASSERT_TRUE(LookupWait(*b_, "GetContact|id:12").bytes.has_value());  // B holds a local copy

  // B never saw the links locally: Redis knows them.
  InvalidateWait(*b_, {"contact:phone:+6012"});
  EXPECT_EQ(Redis({"EXISTS", "gw:cache:v:GetContact|id:12"}), "0");
  EXPECT_EQ(Redis({"EXISTS", "gw:cache:v:GetContact|id:13"}), "1");
  EXPECT_FALSE(LookupWait(*b_, "GetContact|id:12").bytes.has_value());  // dropped at once
  EXPECT_TRUE(EventuallyMisses(*a_, "GetContact|id:12"));  // A's local copy: on its next sync
  EXPECT_TRUE(LookupWait(*a_, "GetContact|id:13").bytes.has_value());
  EXPECT_TRUE(LookupWait(*b_, "GetContact|id:13").bytes.has_value());
  EXPECT_EQ(Redis({"ZSCORE", "gw:cache:inv", "contact:email:a@b.c"}), "1");
  EXPECT_EQ(Redis({"GET", "gw:cache:seq"}), "1");
}

TEST_F(ResponseCacheRedisTest, InvalidationOnAnotherReplicaDuringAMissKeepsTheOldReplyOut) {
  MakeReplicas();
  Looked miss = LookupWait(*a_, "GetContact|id:12");
  InvalidateWait(*b_, {"contact:id:12"});
  StoreWait(*a_, miss.ticket, "GetContact|id:12", "old", {"contact:id:12"});
  EXPECT_EQ(Redis({"EXISTS", "gw:cache:v:GetContact|id:12"}), "0");
  EXPECT_FALSE(LookupWait(*a_, "GetContact|id:12").bytes.has_value());
  EXPECT_FALSE(LookupWait(*b_, "GetContact|id:12").bytes.has_value());
  EXPECT_EQ(a_->counters().stale_rejected, 1);
  EXPECT_EQ(a_->counters().stores, 0);
}

TEST_F(ResponseCacheRedisTest, RedisDownFallsBackToTheLocalCacheAndRecovers) {
  MakeReplicas();
  server_->Stop();
  Looked miss = LookupWait(*a_, "k");  // Redis down: a miss, never an error
  EXPECT_FALSE(miss.bytes.has_value());
  EXPECT_FALSE(miss.ticket.redis_generation.has_value());
  StoreWait(*a_, miss.ticket, "k", "v", {"t"});
  Looked hit = LookupWait(*a_, "k");
  ASSERT_TRUE(hit.bytes.has_value());
  EXPECT_EQ(*hit.bytes, "v");
  InvalidateWait(*a_, {"t"});  // local at once; queued for Redis
  EXPECT_FALSE(LookupWait(*a_, "k").bytes.has_value());
  EXPECT_GE(a_->counters().redis_errors, 2);

  ASSERT_TRUE(server_->Start());  // back (empty): the queued invalidation is replayed
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Redis({"GET", "gw:cache:seq"}) != "1" && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Redis({"ZSCORE", "gw:cache:inv", "t"}), "1");
  // And the cache is shared again.
  Looked again = LookupWait(*a_, "k2");
  while (!again.ticket.redis_generation.has_value() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    again = LookupWait(*a_, "k2");
  }
  ASSERT_TRUE(again.ticket.redis_generation.has_value());
  StoreWait(*a_, again.ticket, "k2", "v2", {"t2"});
  EXPECT_EQ(Redis({"EXISTS", "gw:cache:v:k2"}), "1");
  // B's pooled connections died with the server: each fails once (a miss) before reconnecting.
  Looked shared = LookupWait(*b_, "k2");
  while (!shared.bytes.has_value() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    shared = LookupWait(*b_, "k2");
  }
  ASSERT_TRUE(shared.bytes.has_value());
  EXPECT_EQ(*shared.bytes, "v2");
}

}  // namespace
}  // namespace gateway::upstream
