#include "upstream/budget/idempotency_store.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "tests/upstream/redis_process.h"
#include "tests/upstream/status_details.h"
#include "upstream/errors.h"
#include "upstream/transport/redis_client.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {
namespace {

using Counters = IdempotencyStore::Counters;
using Outcome = IdempotencyStore::Outcome;
using BeginResult = IdempotencyStore::BeginResult;
using testing::DetailOf;
using testing::ErrorInfoOf;

constexpr char kKey[] = "respondio.v2.MessageService/SendMessage|5f0c9a1e-6a47-4c39-9d43-0d1b3a7d8e21";
const std::string kFp = IdempotencyStore::Fingerprint("request-bytes");
const std::string kOtherFp = IdempotencyStore::Fingerprint("other-request-bytes");

std::string Describe(const Counters& c) {
  return absl::StrCat("firsts=", c.firsts, " replays=", c.replays, " reused=", c.reused,
                      " in_flight_timeouts=", c.in_flight_timeouts, " closed=", c.closed,
                      " corrupt=", c.corrupt, " waits=", c.waits, " completes=", c.completes,
                      " abandons=", c.abandons, " evictions=", c.evictions,
                      " redis_errors=", c.redis_errors, " entries=", c.entries);
}

#define EXPECT_COUNTERS(store, ...)                           \
  do {                                                        \
    Counters want_ __VA_ARGS__;                               \
    EXPECT_EQ(Describe((store).counters()), Describe(want_)); \
  } while (0)

// The answer to one Begin, shared with its callback (which may run on another thread, or after
// a failed test returned).
struct Answer {
  absl::Notification done;
  std::optional<BeginResult> result;
  bool called() const { return done.HasBeenNotified(); }
  Outcome outcome() const { return result->outcome; }
  const absl::StatusOr<std::string>& value() const { return result->result; }
  bool Wait(absl::Duration d = absl::Seconds(10)) { return done.WaitForNotificationWithTimeout(d); }
};

std::shared_ptr<Answer> Begin(IdempotencyStore& store, const std::string& key,
                              const std::string& fp, absl::Time deadline) {
  auto answer = std::make_shared<Answer>();
  store.Begin(key, fp, deadline, [answer](BeginResult r) {
    EXPECT_FALSE(answer->called()) << "done called twice";
    answer->result = std::move(r);
    answer->done.Notify();
  });
  return answer;
}

absl::Status UpstreamNotFound() {
  return GatewayError(absl::StatusCode::kNotFound, "contact id:12 not found",
                      {.reason = "UPSTREAM_NOT_FOUND",
                       .domain = "respondio",
                       .metadata = {{"http_status", "404"}},
                       .retry_delay = absl::Milliseconds(2500),
                       .field_violations = {{"identifier", "no such contact"}}});
}

class IdempotencyStoreTest : public ::testing::Test {
 protected:
  absl::Time In(absl::Duration d) { return clock_.Now() + d; }
  ManualScheduler clock_;
};

TEST_F(IdempotencyStoreTest, FirstCallRunsAndRepeatsReplayItsResult) {
  IdempotencyStore store({}, &clock_, nullptr);
  auto first = Begin(store, kKey, kFp, In(absl::Seconds(5)));
  ASSERT_TRUE(first->called());  // local answers are synchronous
  EXPECT_EQ(first->outcome(), Outcome::kFirst);
  store.Complete(kKey, std::string("reply-bytes"));
  for (int i = 0; i < 2; ++i) {
    auto repeat = Begin(store, kKey, kFp, In(absl::Seconds(5)));
    ASSERT_TRUE(repeat->called());
    EXPECT_EQ(repeat->outcome(), Outcome::kReplay);
    EXPECT_EQ(repeat->value().value(), "reply-bytes");
  }
  // Another request id, or the same id on another RPC, is another call.
  EXPECT_EQ(Begin(store, "respondio.v2.MessageService/SendMessage|other", kFp, In(absl::Seconds(5)))
                ->outcome(),
            Outcome::kFirst);
  EXPECT_EQ(Begin(store, IdempotencyStore::Key("respondio.v2.ContactService/CreateContact",
                                               "5f0c9a1e-6a47-4c39-9d43-0d1b3a7d8e21"),
                  kFp, In(absl::Seconds(5)))
                ->outcome(),
            Outcome::kFirst);
  EXPECT_COUNTERS(store, {.firsts = 3, .replays = 2, .completes = 1, .entries = 3});
}

TEST_F(IdempotencyStoreTest, SameIdWithAnotherRequestIsRejected) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  for (bool completed : {false, true}) {
    if (completed) store.Complete(kKey, std::string("reply"));
    auto reused = Begin(store, kKey, kOtherFp, In(absl::Seconds(5)));
    ASSERT_TRUE(reused->called());
    EXPECT_EQ(reused->outcome(), Outcome::kRejected);
    const absl::Status status = reused->value().status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ErrorInfoOf(status).reason(), "REQUEST_ID_REUSED");
    EXPECT_EQ(ErrorInfoOf(status).domain(), "gateway");
    EXPECT_EQ(testing::BadRequestFieldOf(status), "request_id");
  }
  EXPECT_COUNTERS(store, {.firsts = 1, .reused = 2, .completes = 1, .entries = 1});
}

TEST_F(IdempotencyStoreTest, WaiterIsWokenByComplete) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  auto w1 = Begin(store, kKey, kFp, In(absl::Seconds(5)));
  auto w2 = Begin(store, kKey, kFp, In(absl::Seconds(3)));
  clock_.AdvanceBy(absl::Seconds(2));
  EXPECT_FALSE(w1->called());
  EXPECT_FALSE(w2->called());
  store.Complete(kKey, std::string("reply"));
  ASSERT_TRUE(w1->called());
  ASSERT_TRUE(w2->called());
  EXPECT_EQ(w1->outcome(), Outcome::kReplay);
  EXPECT_EQ(w1->value().value(), "reply");
  EXPECT_EQ(w2->value().value(), "reply");
  clock_.AdvanceBy(absl::Seconds(10));  // their deadline timers fire and find nothing to do
  EXPECT_COUNTERS(store, {.firsts = 1, .replays = 2, .waits = 2, .completes = 1, .entries = 1});
}

TEST_F(IdempotencyStoreTest, WaiterGivesUpAtItsDeadline) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  auto waiter = Begin(store, kKey, kFp, In(absl::Seconds(1)));
  clock_.AdvanceBy(absl::Seconds(1) - absl::Nanoseconds(1));
  EXPECT_FALSE(waiter->called());
  clock_.AdvanceBy(absl::Nanoseconds(1));
  ASSERT_TRUE(waiter->called());
  EXPECT_EQ(waiter->outcome(), Outcome::kRejected);
  const absl::Status status = waiter->value().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "REQUEST_IN_FLIGHT");
  auto retry = DetailOf<google::rpc::RetryInfo>(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 1);

  // A deadline already past: rejected at once.
  auto late = Begin(store, kKey, kFp, clock_.Now());
  ASSERT_TRUE(late->called());
  EXPECT_EQ(ErrorInfoOf(late->value().status()).reason(), "REQUEST_IN_FLIGHT");

  // Retrying the same call after the first finished replays it.
  store.Complete(kKey, std::string("reply"));
  auto again = Begin(store, kKey, kFp, In(absl::Seconds(1)));
  EXPECT_EQ(again->outcome(), Outcome::kReplay);
  EXPECT_COUNTERS(store, {.firsts = 1,
                          .replays = 1,
                          .in_flight_timeouts = 2,
                          .waits = 1,
                          .completes = 1,
                          .entries = 1});
}

TEST_F(IdempotencyStoreTest, AbandonReleasesTheKey) {
  IdempotencyStore store({}, &clock_, nullptr);
  EXPECT_EQ(Begin(store, kKey, kFp, In(absl::Seconds(5)))->outcome(), Outcome::kFirst);
  store.Abandon(kKey);
  EXPECT_EQ(Begin(store, kKey, kFp, In(absl::Seconds(5)))->outcome(), Outcome::kFirst);
  store.Complete(kKey, std::string("reply"));
  store.Abandon(kKey);  // too late: the result stands
  EXPECT_EQ(Begin(store, kKey, kFp, In(absl::Seconds(5)))->outcome(), Outcome::kReplay);
  EXPECT_COUNTERS(store, {.firsts = 2, .replays = 1, .completes = 1, .abandons = 2,
                          .entries = 1});
}

TEST_F(IdempotencyStoreTest, AbandonHandsTheCallToAWaiter) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  auto w1 = Begin(store, kKey, kFp, In(absl::Seconds(5)));
  auto w2 = Begin(store, kKey, kFp, In(absl::Seconds(5)));
  store.Abandon(kKey);
  ASSERT_TRUE(w1->called());
  EXPECT_EQ(w1->outcome(), Outcome::kFirst);
  EXPECT_FALSE(w2->called());  // still waits, now for w1's call
  store.Complete(kKey, std::string("reply"));
  ASSERT_TRUE(w2->called());
  EXPECT_EQ(w2->outcome(), Outcome::kReplay);
  EXPECT_COUNTERS(store, {.firsts = 2, .replays = 1, .waits = 2, .completes = 1, .abandons = 1,
                          .entries = 1});
}

TEST_F(IdempotencyStoreTest, StoredErrorReplaysWithItsDetails) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  store.Complete(kKey, UpstreamNotFound());
  auto replay = Begin(store, kKey, kFp, In(absl::Seconds(5)));
  ASSERT_EQ(replay->outcome(), Outcome::kReplay);
  const absl::Status status = replay->value().status();
  EXPECT_EQ(status, UpstreamNotFound());  // code, message and every payload
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_NOT_FOUND");
  EXPECT_EQ(ErrorInfoOf(status).domain(), "respondio");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("http_status"), "404");
  EXPECT_EQ(DetailOf<google::rpc::RetryInfo>(status)->retry_delay().nanos(), 500'000'000);
  EXPECT_EQ(testing::BadRequestFieldOf(status), "identifier");
}

TEST_F(IdempotencyStoreTest, RecordsLastTheRetentionFromTheFirstBegin) {
  IdempotencyStore store({}, &clock_, nullptr);
  Begin(store, kKey, kFp, In(absl::Seconds(5)));
  clock_.AdvanceBy(absl::Seconds(1));
  store.Complete(kKey, std::string("reply"));
  clock_.AdvanceBy(absl::Hours(24) - absl::Seconds(1) - absl::Nanoseconds(1));
  EXPECT_EQ(Begin(store, kKey, kFp, In(absl::Seconds(5)))->outcome(), Outcome::kReplay);
  clock_.AdvanceBy(absl::Nanoseconds(1));
  EXPECT_EQ(Begin(store, kKey, kFp, In(absl::Seconds(5)))->outcome(), Outcome::kFirst);
  EXPECT_COUNTERS(store, {.firsts = 2, .replays = 1, .completes = 1, .entries = 1});
}

TEST_F(IdempotencyStoreTest, MaxEntriesEvictsTheOldestCompletedRecordFirst) {
  IdempotencyStore::Options options;
  options.max_entries = 2;
  IdempotencyStore store(options, &clock_, nullptr);
  Begin(store, "a", kFp, In(absl::Seconds(5)));  // stays in flight
  Begin(store, "b", kFp, In(absl::Seconds(5)));
  store.Complete("b", std::string("b"));
  Begin(store, "c", kFp, In(absl::Seconds(5)));  // evicts b (completed), not a (older)
  store.Complete("c", std::string("c"));
  auto a = Begin(store, "a", kFp, In(absl::Seconds(5)));
  EXPECT_FALSE(a->called());  // a is still known to be in flight: waits
  EXPECT_EQ(Begin(store, "c", kFp, In(absl::Seconds(5)))->outcome(), Outcome::kReplay);
  store.Complete("a", std::string("a"));
  EXPECT_EQ(a->outcome(), Outcome::kReplay);
  EXPECT_COUNTERS(store, {.firsts = 3, .replays = 2, .waits = 1, .completes = 3, .evictions = 1,
                          .entries = 2});
}

TEST_F(IdempotencyStoreTest, CountersAddUp) {
  IdempotencyStore store({}, &clock_, nullptr);
  EXPECT_COUNTERS(store, {});  // all zeros
  int64_t begins = 0;
  for (int i = 0; i < 6; ++i) {
    const std::string key = absl::StrCat("k", i % 3);
    Begin(store, key, i == 4 ? kOtherFp : kFp, In(absl::Milliseconds(10)));
    ++begins;
  }
  clock_.AdvanceBy(absl::Milliseconds(10));  // waiters on k0, k2 give up; k1 was reused
  store.Complete("k0", std::string("0"));
  store.Abandon("k2");
  Begin(store, "k0", kFp, In(absl::Seconds(1)));
  Begin(store, "k2", kFp, In(absl::Seconds(1)));
  begins += 2;
  const Counters c = store.counters();
  EXPECT_EQ(c.firsts + c.replays + c.reused + c.in_flight_timeouts + c.closed + c.corrupt, begins)
      << Describe(c);
  EXPECT_COUNTERS(store, {.firsts = 4,
                          .replays = 1,
                          .reused = 1,
                          .in_flight_timeouts = 2,
                          .waits = 2,
                          .completes = 1,
                          .abandons = 1,
                          .entries = 3});
}

TEST_F(IdempotencyStoreTest, DestroyingTheStoreAnswersItsWaiters) {
  auto store = std::make_unique<IdempotencyStore>(IdempotencyStore::Options{}, &clock_, nullptr);
  Begin(*store, kKey, kFp, In(absl::Seconds(5)));
  auto waiter = Begin(*store, kKey, kFp, In(absl::Seconds(5)));
  store.reset();
  ASSERT_TRUE(waiter->called());
  EXPECT_EQ(ErrorInfoOf(waiter->value().status()).reason(), "IDEMPOTENCY_STORE_CLOSED");
  clock_.AdvanceBy(absl::Seconds(10));  // the deadline timer outlives the store harmlessly
}

TEST_F(IdempotencyStoreTest, FingerprintIsStableAndTellsRequestsApart) {
  // Pinned: replicas of different builds must agree.
  EXPECT_EQ(IdempotencyStore::Fingerprint(""), IdempotencyStore::Fingerprint(""));
  EXPECT_EQ(IdempotencyStore::Fingerprint("request-bytes").size(), 32u);
  EXPECT_EQ(IdempotencyStore::Fingerprint("request-bytes"), "96bcba3e114815680b40273a63b61005");
  EXPECT_NE(IdempotencyStore::Fingerprint("a"), IdempotencyStore::Fingerprint("b"));
  EXPECT_NE(IdempotencyStore::Fingerprint("ab"), IdempotencyStore::Fingerprint("ba"));
  EXPECT_NE(IdempotencyStore::Fingerprint(std::string(1, '\0')),
            IdempotencyStore::Fingerprint(std::string(2, '\0')));
}

// ---- Redis: two replicas sharing one redis-server ----

class IdempotencyStoreRedisTest : public testing::TwoRedisClientsTest {
 protected:
  void SetUp() override {
    testing::TwoRedisClientsTest::SetUp();
    if (HasFatalFailure()) return;
    options_.poll_interval = absl::Milliseconds(20);
    options_.redis_retry_interval = absl::Milliseconds(50);
    a_ = std::make_unique<IdempotencyStore>(options_, &clock_, redis_a_.get());
    b_ = std::make_unique<IdempotencyStore>(options_, &clock_, redis_b_.get());
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    testing::TwoRedisClientsTest::TearDown();
  }
  absl::Time In(absl::Duration d) { return clock_.Now() + d; }
  std::string Record(const std::string& key) {
    auto r = redis_a_->CommandSync({"GET", absl::StrCat("gw:idem:", key)});
    if (!r.ok()) return r.status().ToString();
    return r->type == RedisReply::Type::kNil ? "(nil)" : r->str;
  }
  int64_t Pttl(const std::string& key) {
    auto r = redis_a_->CommandSync({"PTTL", absl::StrCat("gw:idem:", key)});
    return r.ok() ? r->integer : -100;
  }

  TimerThreadScheduler clock_;
  IdempotencyStore::Options options_;
  std::unique_ptr<IdempotencyStore> a_, b_;
};


TEST_F(IdempotencyStoreRedisTest, RepeatOnAnotherReplicaWaitsForTheFirstThenReplays) {
  auto first = Begin(*a_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(first->Wait());
  ASSERT_EQ(first->outcome(), Outcome::kFirst);
  EXPECT_EQ(Record(kKey), absl::StrCat("P32:", kFp));
  EXPECT_GT(Pttl(kKey), absl::ToInt64Milliseconds(absl::Hours(24) - absl::Minutes(1)));

  auto repeat = Begin(*b_, kKey, kFp, In(absl::Seconds(10)));
  EXPECT_FALSE(repeat->Wait(absl::Milliseconds(200)));  // in flight on A: B polls
  a_->Complete(kKey, std::string("reply-bytes"));
  ASSERT_TRUE(repeat->Wait());
  EXPECT_EQ(repeat->outcome(), Outcome::kReplay);
  EXPECT_EQ(repeat->value().value(), "reply-bytes");
  EXPECT_EQ(Record(kKey), absl::StrCat("D32:", kFp, "Oreply-bytes"));
  EXPECT_GT(Pttl(kKey), absl::ToInt64Milliseconds(absl::Hours(24) - absl::Minutes(1)));

  // Later repeats on B are answered from its local copy.
  auto again = Begin(*b_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(again->called());
  EXPECT_EQ(again->value().value(), "reply-bytes");
  EXPECT_COUNTERS(*b_, {.replays = 2, .waits = 1, .entries = 1});
  EXPECT_COUNTERS(*a_, {.firsts = 1, .completes = 1, .entries = 1});
}

TEST_F(IdempotencyStoreRedisTest, ErrorReplaysOnAnotherReplicaWithItsDetails) {
  ASSERT_TRUE(Begin(*a_, kKey, kFp, In(absl::Seconds(10)))->Wait());
  a_->Complete(kKey, UpstreamNotFound());
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Record(kKey)[0] != 'D' && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  auto replay = Begin(*b_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(replay->Wait());
  ASSERT_EQ(replay->outcome(), Outcome::kReplay);
  EXPECT_EQ(replay->value().status(), UpstreamNotFound());
  EXPECT_EQ(ErrorInfoOf(replay->value().status()).reason(), "UPSTREAM_NOT_FOUND");
  EXPECT_EQ(testing::BadRequestFieldOf(replay->value().status()), "identifier");
}

TEST_F(IdempotencyStoreRedisTest, OtherRequestOnAnotherReplicaIsRejected) {
  ASSERT_TRUE(Begin(*a_, kKey, kFp, In(absl::Seconds(10)))->Wait());
  auto reused = Begin(*b_, kKey, kOtherFp, In(absl::Seconds(10)));
  ASSERT_TRUE(reused->Wait());
  EXPECT_EQ(ErrorInfoOf(reused->value().status()).reason(), "REQUEST_ID_REUSED");
  EXPECT_EQ(reused->value().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IdempotencyStoreRedisTest, RepeatOnAnotherReplicaGivesUpAtItsDeadline) {
  ASSERT_TRUE(Begin(*a_, kKey, kFp, In(absl::Seconds(10)))->Wait());
  const absl::Time deadline = In(absl::Milliseconds(200));
  auto repeat = Begin(*b_, kKey, kFp, deadline);
  ASSERT_TRUE(repeat->Wait());
  EXPECT_GE(clock_.Now(), deadline);
  EXPECT_EQ(repeat->outcome(), Outcome::kRejected);
  EXPECT_EQ(repeat->value().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorInfoOf(repeat->value().status()).reason(), "REQUEST_IN_FLIGHT");
  EXPECT_COUNTERS(*b_, {.in_flight_timeouts = 1, .waits = 1});
}

TEST_F(IdempotencyStoreRedisTest, AbandonLetsARepeatOnAnotherReplicaRun) {
  ASSERT_TRUE(Begin(*a_, kKey, kFp, In(absl::Seconds(10)))->Wait());
  auto repeat = Begin(*b_, kKey, kFp, In(absl::Seconds(10)));
  EXPECT_FALSE(repeat->Wait(absl::Milliseconds(100)));
  a_->Abandon(kKey);
  ASSERT_TRUE(repeat->Wait());
  EXPECT_EQ(repeat->outcome(), Outcome::kFirst);
  EXPECT_EQ(Record(kKey), absl::StrCat("P32:", kFp));  // now held by B
  b_->Complete(kKey, std::string("from-b"));
  auto on_a = Begin(*a_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(on_a->Wait());
  EXPECT_EQ(on_a->value().value(), "from-b");
}

TEST_F(IdempotencyStoreRedisTest, RedisDownFallsBackToTheLocalStoreAndCatchesUp) {
  server_->Stop();
  auto first = Begin(*a_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(first->Wait());
  EXPECT_EQ(first->outcome(), Outcome::kFirst);  // never fails because of Redis
  auto repeat = Begin(*a_, kKey, kFp, In(absl::Seconds(10)));
  EXPECT_FALSE(repeat->Wait(absl::Milliseconds(50)));  // waits on the local record
  a_->Complete(kKey, std::string("reply"));
  ASSERT_TRUE(repeat->Wait());
  EXPECT_EQ(repeat->value().value(), "reply");
  // The Begin's Redis error, then the Complete's (asynchronous; retried until Redis is back).
  for (absl::Time t = absl::Now() + absl::Seconds(10);
       a_->counters().redis_errors < 2 && absl::Now() < t;) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GE(a_->counters().redis_errors, 2);

  // Redis returns (empty): the retried Complete writes the record, B replays it.
  ASSERT_TRUE(server_->Start());
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Record(kKey)[0] != 'D' && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Record(kKey), absl::StrCat("D32:", kFp, "Oreply"));
  auto on_b = Begin(*b_, kKey, kFp, In(absl::Seconds(10)));
  ASSERT_TRUE(on_b->Wait());
  EXPECT_EQ(on_b->outcome(), Outcome::kReplay);
  EXPECT_EQ(on_b->value().value(), "reply");
}

}  // namespace
}  // namespace gateway::upstream
