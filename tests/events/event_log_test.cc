// The event log's semantics, for both implementations: the in-process log and Redis Streams
// (against a real redis-server).
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "events/memory_event_log.h"
#include "events/redis_event_log.h"
#include "gtest/gtest.h"
#include "tests/upstream/redis_process.h"
#include "tests/upstream/status_details.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

enum class Kind { kMemory, kRedis };

class EventLogTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kRedis) {
      ASSERT_TRUE(redis_server_.Start());
      upstream::RedisClient::Options o;
      o.port = redis_server_.port();
      redis_ = std::make_unique<upstream::RedisClient>(o);
    }
  }

  std::unique_ptr<EventLog> MakeLog(LogRetention retention = {}) {
    if (GetParam() == Kind::kMemory) {
      return std::make_unique<MemoryEventLog>(retention, &clock_);
    }
    return std::make_unique<RedisEventLog>(
        RedisEventLog::Options{.key_prefix = absl::StrCat("t", ++prefix_, ":"),
                               .retention = retention},
        redis_.get(), &wall_);
  }

  // Lets `d` pass for visibility timeouts (Redis measures idle time with its own clock).
  void Pass(absl::Duration d) {
    if (GetParam() == Kind::kMemory) {
      clock_.AdvanceBy(d);
    } else {
      absl::SleepFor(d);
    }
  }

  static LogEntry Entry(const std::string& payload, const std::string& type = "contact.updated") {
    return LogEntry{.upstream = "respondio", .type = type, .payload = payload};
  }

  std::vector<std::string> Payloads(const std::vector<LogEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.payload);
    return out;
  }

  testing::RedisProcess redis_server_;
  std::unique_ptr<upstream::RedisClient> redis_;
  upstream::ManualScheduler clock_;
  upstream::TimerThreadScheduler wall_;
  int prefix_ = 0;
};

TEST_P(EventLogTest, AppendDeduplicatesAndReadsInOrder) {
  auto log = MakeLog();
  auto a = log->Append("k1", Entry("a"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->duplicate);
  auto again = log->Append("k1", Entry("a-redelivered"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->id, a->id);
  ASSERT_TRUE(log->Append("k2", Entry("b")).ok());
  auto all = log->ReadAfter("0-0", 10);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Payloads(*all), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*all)[0].upstream, "respondio");
  EXPECT_EQ((*all)[0].type, "contact.updated");
}

TEST_P(EventLogTest, ResumeAfterAnyPositionHasNoGapAndNoDuplicate) {
  auto log = MakeLog();
  auto newest = log->NewestPosition();
  ASSERT_TRUE(newest.ok());
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(log->Append(absl::StrCat("k", i), Entry(absl::StrCat(i))).ok());
  // A subscriber reading 3 at a time, "disconnecting" after each batch and resuming with the
  // last id it saw, sees every event exactly once.
  std::vector<std::string> seen;
  std::string token = *newest;
  for (int round = 0; round < 5; ++round) {
    auto batch = log->ReadAfter(token, 3);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (const auto& e : *batch) {
      seen.push_back(e.payload);
      token = e.id;
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
  auto after_newest = log->NewestPosition();
  ASSERT_TRUE(after_newest.ok());
  EXPECT_EQ(*after_newest, token);
  EXPECT_TRUE(log->ReadAfter(token, 10)->empty());
  EXPECT_EQ(log->ReadAfter("not-a-token", 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(EventLogTest, BehindRetentionIsOutOfRangeWithTheOldestToken) {
  auto log = MakeLog({.max_events = 3});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = log->Append(absl::StrCat("k", i), Entry(absl::StrCat(i)));
    ASSERT_TRUE(r.ok());
    ids.push_back(r->id);
  }
  // ids[0] and ids[1] were trimmed: resuming after ids[0] would miss ids[1].
  auto behind = log->ReadAfter(ids[0], 10);
  EXPECT_EQ(behind.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(upstream::ErrorReasonOf(behind.status()), "EVENTS_EXPIRED");
  const auto info = testing::ErrorInfoOf(behind.status());
  EXPECT_EQ(info.metadata().at("oldest_resume_token"), ids[1]);
  // From the oldest token on, the retained events follow without a gap.
  auto rest = log->ReadAfter(info.metadata().at("oldest_resume_token"), 10);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(Payloads(*rest), (std::vector<std::string>{"2", "3", "4"}));
  auto oldest = log->OldestPosition();
  ASSERT_TRUE(oldest.ok());
  EXPECT_EQ(*oldest, ids[1]);
  // After ids[1] nothing was lost.
  EXPECT_TRUE(log->ReadAfter(ids[1], 10).ok());
}

TEST_P(EventLogTest, GroupMembersShareEventsExactlyOnceWhileAcking) {
  auto log = MakeLog();
  ASSERT_TRUE(log->EnsureGroup("workers", /*from_oldest=*/false).ok());
  ASSERT_TRUE(log->EnsureGroup("workers", false).ok());  // idempotent
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->Append(absl::StrCat("k", i), Entry(absl::StrCat(i))).ok());
  // Nothing read yet: the group lags by every event (gateway_event_group_lag), none pending.
  auto lag_of = [&](const std::string& group) -> std::pair<int64_t, int64_t> {
    for (const GroupInfo& g : log->Groups()) {
      if (g.name == group) return {g.lag, g.pending};
    }
    return {-1, -1};
  };
  EXPECT_EQ(lag_of("workers"), std::make_pair(int64_t{10}, int64_t{0}));
  std::multiset<std::string> seen;
  for (int round = 0; round < 10; ++round) {
    if (round == 1) {
      // After one round (two members, two events each, acknowledged): six still to deliver.
      EXPECT_EQ(lag_of("workers"), std::make_pair(int64_t{6}, int64_t{0}));
    }
    for (const char* member : {"a", "b"}) {
      auto batch = log->ReadGroup("workers", member, 2, absl::Seconds(30));
      ASSERT_TRUE(batch.ok()) << batch.status();
      std::vector<std::string> ids;
      for (const auto& e : *batch) {
        seen.insert(e.payload);
        EXPECT_EQ(e.delivery_count, 1);
        ids.push_back(e.id);
      }
      auto acked = log->Ack("workers", ids);
      ASSERT_TRUE(acked.ok());
      EXPECT_EQ(*acked, static_cast<int64_t>(ids.size()));
    }
  }
  EXPECT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(seen.count(absl::StrCat(i)), 1u) << i;
  // Another group gets every event again.
  ASSERT_TRUE(log->EnsureGroup("audit", /*from_oldest=*/true).ok());
  auto audit = log->ReadGroup("audit", "x", 100, absl::Seconds(30));
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->size(), 10u);
  bool found = false;
  for (const GroupInfo& g : log->Groups()) {
    if (g.name == "audit") {
      found = true;
      EXPECT_EQ(g.pending, 10);
      EXPECT_EQ(g.lag, 0);
    }
  }
  EXPECT_TRUE(found);
}

TEST_P(EventLogTest, UnackedEventGoesToAnotherMemberAfterTheVisibilityTimeout) {
  auto log = MakeLog();
  ASSERT_TRUE(log->EnsureGroup("g", false).ok());
  ASSERT_TRUE(log->Append("k", Entry("only")).ok());
  auto first = log->ReadGroup("g", "dies", 10, absl::Milliseconds(300));
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // Within the timeout nobody else gets it.
  auto early = log->ReadGroup("g", "survivor", 10, absl::Milliseconds(300));
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->empty());
  Pass(absl::Milliseconds(400));
  auto redelivered = log->ReadGroup("g", "survivor", 10, absl::Milliseconds(300));
  ASSERT_TRUE(redelivered.ok()) << redelivered.status();
  ASSERT_EQ(redelivered->size(), 1u);
  EXPECT_EQ((*redelivered)[0].payload, "only");
  EXPECT_EQ((*redelivered)[0].id, (*first)[0].id);
  EXPECT_EQ((*redelivered)[0].delivery_count, 2);
  ASSERT_TRUE(log->Ack("g", {(*redelivered)[0].id}).ok());
  Pass(absl::Milliseconds(400));
  auto after_ack = log->ReadGroup("g", "survivor", 10, absl::Milliseconds(300));
  ASSERT_TRUE(after_ack.ok());
  EXPECT_TRUE(after_ack->empty());
}

TEST_P(EventLogTest, GroupBehindRetentionIsOutOfRangeUntilAMemberSkipsTheGap) {
  auto log = MakeLog({.max_events = 3});
  ASSERT_TRUE(log->EnsureGroup("slow", /*from_oldest=*/false).ok());
  auto first = log->Append("k0", Entry("0"));
  ASSERT_TRUE(first.ok());
  auto got = log->ReadGroup("slow", "a", 1, absl::Seconds(30));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  ASSERT_TRUE(log->Ack("slow", {(*got)[0].id}).ok());
  // The group is at "0"; five more arrive and the log keeps 3: "1" and "2" are lost to it.
  std::vector<std::string> ids = {first->id};
  for (int i = 1; i <= 5; ++i) {
    auto r = log->Append(absl::StrCat("k", i), Entry(absl::StrCat(i)));
    ASSERT_TRUE(r.ok());
    ids.push_back(r->id);
  }
  for (const char* member : {"a", "b"}) {  // every member is told, on every read
    auto behind = log->ReadGroup("slow", member, 10, absl::Seconds(30));
    ASSERT_EQ(behind.status().code(), absl::StatusCode::kOutOfRange) << behind.status();
    EXPECT_EQ(upstream::ErrorReasonOf(behind.status()), "EVENTS_EXPIRED");
    EXPECT_EQ(testing::ErrorInfoOf(behind.status()).metadata().at("oldest_resume_token"), ids[2]);
  }
  // A position that is itself trimmed cannot be skipped to.
  EXPECT_EQ(log->SkipExpired("slow", ids[1]).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(log->SkipExpired("slow", "nope").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log->SkipExpired("nobody", ids[2]).code(), absl::StatusCode::kFailedPrecondition);
  // Skipping to the oldest token resumes with the retained events, in order, once; a second
  // member's skip (the group is no longer behind) moves nothing.
  ASSERT_TRUE(log->SkipExpired("slow", ids[2]).ok());
  ASSERT_TRUE(log->SkipExpired("slow", ids[4]).ok());
  auto rest = log->ReadGroup("slow", "b", 10, absl::Seconds(30));
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(Payloads(*rest), (std::vector<std::string>{"3", "4", "5"}));
  // A group created from the oldest retained event is not behind.
  ASSERT_TRUE(log->EnsureGroup("late", /*from_oldest=*/true).ok());
  auto late = log->ReadGroup("late", "x", 10, absl::Seconds(30));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(Payloads(*late), (std::vector<std::string>{"3", "4", "5"}));
  EXPECT_EQ(log->ReadGroup("nobody", "x", 1, absl::Seconds(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(EventLogTest, EntriesKeepTheirWorkspace) {
  auto log = MakeLog();
  ASSERT_TRUE(log->EnsureGroup("g", /*from_oldest=*/true).ok());
  LogEntry acme = Entry("a");
  acme.workspace = "acme";
  ASSERT_TRUE(log->Append("k1", acme).ok());
  ASSERT_TRUE(log->Append("k2", Entry("default")).ok());
  auto read = log->ReadAfter("0-0", 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].workspace, "acme");
  EXPECT_EQ((*read)[1].workspace, "");
  auto grouped = log->ReadGroup("g", "m", 10, absl::Seconds(30));
  ASSERT_TRUE(grouped.ok()) << grouped.status();
  ASSERT_EQ(grouped->size(), 2u);
  EXPECT_EQ((*grouped)[0].workspace, "acme");
  EXPECT_EQ((*grouped)[1].workspace, "");
}

// An event a member was given and had not acknowledged when retention trimmed it can never be
// redelivered: the group's next read counts it as lost, once (an acknowledged one is not).
TEST_P(EventLogTest, UnackedEventTrimmedBeforeRedeliveryIsCountedLost) {
  auto log = MakeLog({.max_events = 2});
  ASSERT_TRUE(log->EnsureGroup("g", /*from_oldest=*/false).ok());
  ASSERT_TRUE(log->Append("k0", Entry("0")).ok());
  ASSERT_TRUE(log->Append("k1", Entry("1")).ok());
  auto given = log->ReadGroup("g", "dies", 10, absl::Milliseconds(300));
  ASSERT_TRUE(given.ok()) << given.status();
  ASSERT_EQ(given->size(), 2u);
  ASSERT_TRUE(log->Ack("g", {(*given)[1].id}).ok());  // "0" stays unacknowledged
  // Two more arrive: "0" and "1" are trimmed ("1" was acknowledged, "0" was not).
  ASSERT_TRUE(log->Append("k2", Entry("2")).ok());
  ASSERT_TRUE(log->Append("k3", Entry("3")).ok());
  EXPECT_EQ(log->Groups()[0].expired_unacked, 0);  // found by the group's next read
  auto fresh = log->ReadGroup("g", "survivor", 10, absl::Milliseconds(300));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(Payloads(*fresh), (std::vector<std::string>{"2", "3"}));
  std::vector<GroupInfo> groups = log->Groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].expired_unacked, 1);
  EXPECT_EQ(groups[0].pending, 2);  // "2" and "3"; the lost one is no longer pending
  EXPECT_EQ(*log->Ack("g", {(*given)[0].id}), 0);  // too late: nothing to acknowledge
  Pass(absl::Milliseconds(400));
  // "2" and "3" are redelivered; the lost one is counted once.
  auto again = log->ReadGroup("g", "survivor", 10, absl::Milliseconds(300));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Payloads(*again), (std::vector<std::string>{"2", "3"}));
  EXPECT_EQ(log->Groups()[0].expired_unacked, 1);
}

INSTANTIATE_TEST_SUITE_P(Logs, EventLogTest, ::testing::Values(Kind::kMemory, Kind::kRedis),
                         [](const auto& info) {
                           return info.param == Kind::kMemory ? std::string("Memory")
                                                              : std::string("Redis");
                         });

LogEntry Entry(const std::string& payload) {
  return LogEntry{.upstream = "chatwoot", .type = "t", .payload = payload};
}

TEST(MemoryEventLogTest, AgeRetentionAndDedupeWindow) {
  upstream::ManualScheduler clock;
  MemoryEventLog log({.max_events = 100, .max_age = absl::Minutes(10),
                      .dedupe_window = absl::Minutes(5)},
                     &clock);
  auto first = log.Append("k", Entry("a"));
  ASSERT_TRUE(first.ok());
  clock.AdvanceBy(absl::Minutes(6));
  auto later = log.Append("k", Entry("a-again"));  // outside the dedupe window: stored
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(later->duplicate);
  clock.AdvanceBy(absl::Minutes(5));  // `a` is now 11 minutes old
  EXPECT_EQ(log.ReadAfter("0-0", 10).status().code(), absl::StatusCode::kOutOfRange);
  auto rest = log.ReadAfter(first->id, 10);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].payload, "a-again");
}

}  // namespace
}  // namespace gateway::events
