// The pipeline on a manual clock with a fake HttpTransport: exactly which upstream requests
// happen (and which must not) for cancel, deadline, shutdown, retry and coalescing, plus
// request_id records per caller and Gets without a resource (upstream/pipeline/dispatcher.h).
#include "upstream/pipeline/dispatcher.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gateway/v1/annotations.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "tests/upstream/binding/declared_route.h"
#include "tests/upstream/redis_process.h"
#include "tests/upstream/status_details.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/budget/response_cache.h"
#include "upstream/scheduler.h"
#include "upstream/transport/http_transport.h"
#include "upstream/transport/redis_client.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DeclaredRoute;
using ::gateway::testing::ErrorInfoOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Records every request handed to it ("the upstream received it") and answers only when the
// test says so, as HttpTransport's contract says: Cancel of a pending request answers CANCELLED
// (not marked not-sent: the fake treats every handed-over request as in flight) exactly once,
// on the scheduler, never on Cancel's stack; destroying the fake answers CANCELLED every request
// still pending or cancelled but not yet answered.
class FakeTransport : public HttpTransport {
 public:
  explicit FakeTransport(ManualScheduler* clock) : clock_(clock) {}

  ~FakeTransport() override {
    alive_.reset();  // cancellations still on the clock answer nothing from now on
    std::vector<Done> left;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, done] : pending_) left.push_back(std::move(done));
      for (auto& [id, done] : cancelling_) left.push_back(std::move(done));
      pending_.clear();
      cancelling_.clear();
    }
    for (Done& done : left) std::move(done)(absl::CancelledError("transport destroyed"));
  }

  RequestId Send(HttpRequest request, Done done) override {
    absl::MutexLock lock(&mu_);
    const RequestId id = ++next_id_;
    sent_.push_back(std::move(request));
    pending_.emplace(id, std::move(done));
    ids_.push_back(id);
    return id;
  }

  void Cancel(RequestId id) override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_.push_back(id);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;  // answered already, or unknown: a no-op
      cancelling_.emplace(id, std::move(it->second));
      pending_.erase(it);
    }
    clock_->RunAt(clock_->Now(), [this, alive = std::weak_ptr<int>(alive_), id] {
      if (alive.expired()) return;
      Done done;
      {
        absl::MutexLock lock(&mu_);
        auto it = cancelling_.find(id);
        if (it == cancelling_.end()) return;
        done = std::move(it->second);
        cancelling_.erase(it);
      }
      std::move(done)(absl::CancelledError("cancelled"));
    });
  }

  // Answers request number `index` (0-based, in send order). False when it is not pending.
  bool Respond(size_t index, int status, std::string body,
               absl::flat_hash_map<std::string, std::string> headers = {}) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      if (index >= ids_.size()) return false;
      auto it = pending_.find(ids_[index]);
      if (it == pending_.end()) return false;
      done = std::move(it->second);
      pending_.erase(it);
    }
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    std::move(done)(std::move(response));
    return true;
  }

  // Fails request number `index` with the transport error `status`. False when not pending.
  bool Fail(size_t index, absl::Status status) {
    Done done;
    {
      absl::MutexLock lock(&mu_);
      if (index >= ids_.size()) return false;
      auto it = pending_.find(ids_[index]);
      if (it == pending_.end()) return false;
      done = std::move(it->second);
      pending_.erase(it);
    }
    std::move(done)(std::move(status));
    return true;
  }

  size_t sent() const {
    absl::MutexLock lock(&mu_);
    return sent_.size();
  }
  HttpRequest request(size_t index) const {
    absl::MutexLock lock(&mu_);
    return sent_.at(index);
  }
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  std::vector<RequestId> cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  RequestId id(size_t index) const {
    absl::MutexLock lock(&mu_);
    return ids_.at(index);
  }

 private:
  ManualScheduler* clock_;
  mutable absl::Mutex mu_;
  RequestId next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<HttpRequest> sent_ ABSL_GUARDED_BY(mu_);
  std::vector<RequestId> ids_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<RequestId, Done> pending_ ABSL_GUARDED_BY(mu_);
  // Cancelled, CANCELLED not yet delivered (it is, on the clock or at destruction).
  absl::flat_hash_map<RequestId, Done> cancelling_ ABSL_GUARDED_BY(mu_);
  std::vector<RequestId> cancelled_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// A dispatcher for one respond.io upstream whose buckets all admit `rate` calls per second.
std::unique_ptr<Dispatcher> TestDispatcher(Dispatcher::Components components, double rate = 5) {
  Dispatcher::Options options;
  options.default_bucket = {.rate_per_second = rate, .burst = 0};
  return std::make_unique<Dispatcher>(
      absl::flat_hash_map<std::string, UpstreamConfig>{
          {"respondio", {.name = "respondio", .base_url = "http://upstream.test/v2",
                         .token = "secret"}}},
      components, options);
}

// One call's outcome, once it ended.
struct Outcome {
  bool ended = false;
  absl::StatusOr<std::string> result = absl::UnknownError("not ended");
};

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest()
      : cache_({}, &clock_, nullptr),
        idempotency_({}, &clock_, nullptr),
        limiter_({}, &clock_, nullptr),
        http_(&clock_) {}

  void SetUp() override { MakeDispatcher(); }

  void MakeDispatcher(double rate = 5) {
    dispatcher_ = TestDispatcher({.http = &http_,
                                  .scheduler = &clock_,
                                  .limiter = &limiter_,
                                  .cache = &cache_,
                                  .idempotency = &idempotency_},
                                 rate);
  }

  std::shared_ptr<Outcome> Start(const Route& route, const google::protobuf::Message& request,
                                 absl::Duration timeout, std::shared_ptr<Call>* call = nullptr,
                                 std::string caller = "", bool bypass_cache = false) {
    auto outcome = std::make_shared<Outcome>();
    auto started = dispatcher_->Call(
        route, request,
        {.deadline = clock_.Now() + timeout, .caller = std::move(caller),
         .bypass_cache = bypass_cache},
        [outcome](absl::StatusOr<std::string> result) {
          EXPECT_FALSE(outcome->ended) << "a call ended twice";
          outcome->ended = true;
          outcome->result = std::move(result);
        });
    if (call != nullptr) *call = started;
    return outcome;
  }

  static respondio::v2::CreateCommentRequest Comment(int i, std::string request_id = "") {
    respondio::v2::CreateCommentRequest request;
    request.set_identifier("id:1");
    request.set_text("comment " + std::to_string(i));
    request.set_request_id(std::move(request_id));
    return request;
  }
  static respondio::v2::GetContactRequest Contact(const std::string& identifier = "id:7") {
    respondio::v2::GetContactRequest request;
    request.set_identifier(identifier);
    return request;
  }

  // Destroyed in reverse order: first the transport, the limiter and the store, which answer
  // what is still pending with CANCELLED (their contracts), while the dispatcher, the routes and
  // the cache those answers reach are alive; the clock last (it drops its timers, and an
  // exchange only a timer held ends its calls, exchange.h). Nothing of a test outlives it.
  const std::string comment_bucket_ = "respondio:";  // prefix; the account part is a hash
  ManualScheduler clock_;
  ResponseCache cache_;
  const Route comment_ = DeclaredRoute("respondio.v2.CommentService.CreateComment");
  const Route get_contact_ = DeclaredRoute("respondio.v2.ContactService.GetContact");
  std::unique_ptr<Dispatcher> dispatcher_;
  IdempotencyStore idempotency_;
  RateLimiter limiter_;
  FakeTransport http_;
};

std::string BucketOf(const FakeTransport& http) { return http.request(0).fairness_key; }

// Item 2: callers that cancel queued writes. The upstream never receives them, and they spend
// no token: the next call is admitted one interval after the one that was sent.
TEST_F(PipelineTest, CancelledQueuedWritesAreNeverSentAndSpendNoToken) {
  std::vector<std::shared_ptr<Call>> calls(10);
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 10; ++i) {
    outcomes.push_back(Start(comment_, Comment(i), absl::Seconds(60), &calls[i]));
  }
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);  // 5 per second, no burst: one now, the rest queued
  for (int i = 1; i < 10; ++i) calls[i]->Cancel(Call::CancelReason::kCallerLeft);
  clock_.RunDue();
  for (int i = 1; i < 10; ++i) {
    ASSERT_TRUE(outcomes[i]->ended) << i;
    EXPECT_EQ(outcomes[i]->result.status().code(), absl::StatusCode::kCancelled);
    const auto info = ErrorInfoOf(outcomes[i]->result.status());
    EXPECT_EQ(info.reason(), "CALLER_CANCELLED");
    EXPECT_EQ(info.metadata().at("not_sent"), "true");
    EXPECT_EQ(calls[i]->state(), Call::State::kDone);
  }
  clock_.AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(http_.sent(), 1u) << "a cancelled write reached the upstream";
  EXPECT_THAT(http_.cancelled(), IsEmpty()) << "nothing was in flight to cancel";

  const RateLimiter::Counters counters = limiter_.counters(BucketOf(http_));
  EXPECT_EQ(counters.total, 10);
  EXPECT_EQ(counters.admitted, 1);
  EXPECT_EQ(counters.cancelled, 9);
  EXPECT_EQ(counters.rejected, 0);
  EXPECT_EQ(counters.queued, 0);

  // The first write still completes normally.
  ASSERT_TRUE(http_.Respond(0, 200, "{}"));
  EXPECT_TRUE(outcomes[0]->ended);
  EXPECT_TRUE(outcomes[0]->result.ok()) << outcomes[0]->result.status();
  EXPECT_EQ(dispatcher_->counters().cancelled, 9);
  EXPECT_EQ(dispatcher_->counters().upstream_requests, 1);
  EXPECT_EQ(dispatcher_->live_exchanges(), 0u);
}

TEST_F(PipelineTest, CancelledTokensGoToTheNextCaller) {
  std::shared_ptr<Call> first, second;
  Start(comment_, Comment(1), absl::Seconds(60), &first);
  auto cancelled = Start(comment_, Comment(2), absl::Seconds(60), &second);
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  second->Cancel(Call::CancelReason::kCallerLeft);
  clock_.RunDue();
  auto third = Start(comment_, Comment(3), absl::Seconds(60));
  clock_.AdvanceBy(absl::Milliseconds(199));
  EXPECT_EQ(http_.sent(), 1u);
  clock_.AdvanceBy(absl::Milliseconds(1));  // one interval after the first, not two
  EXPECT_EQ(http_.sent(), 2u);
  EXPECT_EQ(http_.request(1).body, R"({"text":"comment 3"})");
}

// A write cancelled while its request is in flight: the request is aborted, and the answer says
// the upstream may have processed it.
TEST_F(PipelineTest, WriteCancelledInFlightIsAbortedAndReportedHonestly) {
  std::shared_ptr<Call> call;
  auto outcome = Start(comment_, Comment(1), absl::Seconds(60), &call);
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  call->Cancel(Call::CancelReason::kCallerLeft);
  EXPECT_THAT(http_.cancelled(), ElementsAre(http_.id(0)));
  EXPECT_FALSE(outcome->ended) << "ends when the abort is settled";
  clock_.RunDue();
  ASSERT_TRUE(outcome->ended);
  EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kCancelled);
  const auto info = ErrorInfoOf(outcome->result.status());
  EXPECT_EQ(info.metadata().at("not_sent"), "false");
  EXPECT_EQ(info.metadata().at("upstream_may_have_processed"), "true");
  EXPECT_FALSE(http_.Respond(0, 200, "{}"));  // nothing left to answer
  EXPECT_EQ(http_.sent(), 1u);
}

// The caller's deadline cancels a queued write: never sent, no token; one in flight: aborted.
TEST_F(PipelineTest, DeadlineCancelsQueuedAndInFlightWrites) {
  MakeDispatcher(/*rate=*/1);
  auto in_flight = Start(comment_, Comment(1), absl::Seconds(3));
  auto queued = Start(comment_, Comment(2), absl::Milliseconds(2500));  // turn at 1 s
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 2u);  // the second is admitted at its turn
  clock_.AdvanceBy(absl::Milliseconds(1500));  // t = 2.5 s: the second's deadline
  ASSERT_TRUE(queued->ended);
  EXPECT_EQ(queued->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrorInfoOf(queued->result.status()).metadata().at("not_sent"), "false");
  EXPECT_THAT(http_.cancelled(), ElementsAre(http_.id(1)));
  clock_.AdvanceBy(absl::Milliseconds(500));  // t = 3 s: the first's
  ASSERT_TRUE(in_flight->ended);
  EXPECT_EQ(in_flight->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(http_.cancelled(), ElementsAre(http_.id(1), http_.id(0)));
  EXPECT_EQ(http_.sent(), 2u);
}

TEST_F(PipelineTest, QueuedWriteWhoseDeadlinePassesIsNeverSent) {
  MakeDispatcher(/*rate=*/1);
  auto first = Start(comment_, Comment(1), absl::Seconds(60));
  clock_.RunDue();
  // Queued behind the first (turn at 1 s); its deadline (1.2 s) leaves just enough time for the
  // limiter to admit it, but the caller leaves at 0.5 s.
  std::shared_ptr<Call> call;
  auto second = Start(comment_, Comment(2), absl::Milliseconds(1200), &call);
  clock_.AdvanceBy(absl::Milliseconds(500));
  call->Cancel(Call::CancelReason::kDeadline);
  clock_.RunDue();
  ASSERT_TRUE(second->ended);
  EXPECT_EQ(ErrorInfoOf(second->result.status()).metadata().at("not_sent"), "true");
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(http_.sent(), 1u);
}

// Item 3: shutdown. Queued writes are answered UNAVAILABLE SHUTTING_DOWN, not_sent, before their
// request exists, and never sent afterwards; nothing of an answered call is sent later.
TEST_F(PipelineTest, ShutdownAnswersQueuedWritesBeforeTheirRequestExists) {
  MakeDispatcher(/*rate=*/1);
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 5; ++i) outcomes.push_back(Start(comment_, Comment(i), absl::Seconds(60)));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  ASSERT_TRUE(http_.Respond(0, 200, "{}"));
  dispatcher_->Shutdown(clock_.Now() + absl::Milliseconds(1500));
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 2u);  // the grace still lets the next turn run
  clock_.AdvanceBy(absl::Milliseconds(500));
  for (int i = 1; i < 5; ++i) {
    ASSERT_TRUE(outcomes[i]->ended) << i;
    EXPECT_EQ(outcomes[i]->result.status().code(), absl::StatusCode::kUnavailable) << i;
    const auto info = ErrorInfoOf(outcomes[i]->result.status());
    EXPECT_EQ(info.reason(), "SHUTTING_DOWN");
    // The one in flight was aborted (it may have been processed); the others never existed.
    EXPECT_EQ(info.metadata().at("not_sent"), i == 1 ? "false" : "true") << i;
  }
  EXPECT_THAT(http_.cancelled(), ElementsAre(http_.id(1)));
  clock_.AdvanceBy(absl::Seconds(30));
  EXPECT_EQ(http_.sent(), 2u) << "an answered call was sent later";

  // After the sweep, a new call ends at once, unsent.
  auto late = Start(comment_, Comment(9), absl::Seconds(60));
  clock_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(late->ended);
  EXPECT_EQ(ErrorInfoOf(late->result.status()).reason(), "SHUTTING_DOWN");
  EXPECT_EQ(ErrorInfoOf(late->result.status()).metadata().at("not_sent"), "true");
  EXPECT_EQ(http_.sent(), 2u);
  EXPECT_EQ(limiter_.counters(BucketOf(http_)).queued, 0);
}

// Item 5: a coalesced follower keeps its own deadline and gets the result after the leader's
// deadline passed; the request runs to the latest deadline still waiting.
TEST_F(PipelineTest, FollowerOutlivesTheLeadersDeadline) {
  auto leader = Start(get_contact_, Contact(), absl::Milliseconds(500));
  clock_.AdvanceBy(absl::Milliseconds(100));
  auto follower = Start(get_contact_, Contact(), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  EXPECT_EQ(http_.request(0).deadline, absl::InfiniteFuture());  // ended by its waiters only
  clock_.AdvanceBy(absl::Milliseconds(400));  // the leader's deadline
  ASSERT_TRUE(leader->ended);
  EXPECT_EQ(leader->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(follower->ended);
  EXPECT_THAT(http_.cancelled(), IsEmpty()) << "the follower still waits";
  clock_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(http_.Respond(0, 200, R"({"id": 7, "firstName": "Ann"})"));
  ASSERT_TRUE(follower->ended);
  ASSERT_TRUE(follower->result.ok()) << follower->result.status();
  respondio::v2::GetContactResponse reply;
  ASSERT_TRUE(reply.ParseFromString(*follower->result));
  EXPECT_EQ(reply.contact().first_name(), "Ann");
  EXPECT_EQ(http_.sent(), 1u);
  EXPECT_EQ(dispatcher_->counters().coalesced, 1);
}

TEST_F(PipelineTest, FollowerJoinedWhileQueuedKeepsItsDeadline) {
  MakeDispatcher(/*rate=*/1);
  auto blocker = Start(get_contact_, Contact("id:1"), absl::Seconds(60));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  // Queued behind the blocker (turn at 1 s): the 0.5 s leader cannot make it, the follower can.
  auto leader = Start(get_contact_, Contact(), absl::Milliseconds(500));
  auto follower = Start(get_contact_, Contact(), absl::Seconds(10));
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(leader->ended);
  EXPECT_FALSE(leader->result.ok());
  EXPECT_FALSE(follower->ended);
  ASSERT_EQ(http_.sent(), 2u);
  ASSERT_TRUE(http_.Respond(1, 200, R"({"id": 7})"));
  ASSERT_TRUE(follower->ended);
  EXPECT_TRUE(follower->result.ok()) << follower->result.status();
}

TEST_F(PipelineTest, FollowerLeavesWithoutCancellingTheLeader) {
  auto leader = Start(get_contact_, Contact(), absl::Seconds(5));
  std::shared_ptr<Call> follower_call;
  auto follower = Start(get_contact_, Contact(), absl::Seconds(5), &follower_call);
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  follower_call->Cancel(Call::CancelReason::kCallerLeft);
  ASSERT_TRUE(follower->ended);
  EXPECT_EQ(follower->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(http_.cancelled(), IsEmpty());
  ASSERT_TRUE(http_.Respond(0, 200, R"({"id": 7})"));
  ASSERT_TRUE(leader->ended);
  EXPECT_TRUE(leader->result.ok());
}

TEST_F(PipelineTest, LeaderLeavesFollowerStillGetsTheResult) {
  std::shared_ptr<Call> leader_call;
  auto leader = Start(get_contact_, Contact(), absl::Seconds(5), &leader_call);
  auto follower = Start(get_contact_, Contact(), absl::Seconds(5));
  clock_.RunDue();
  leader_call->Cancel(Call::CancelReason::kCallerLeft);
  ASSERT_TRUE(leader->ended);
  EXPECT_THAT(http_.cancelled(), IsEmpty());
  ASSERT_TRUE(http_.Respond(0, 200, R"({"id": 7})"));
  EXPECT_TRUE(follower->result.ok());
}

TEST_F(PipelineTest, WhenEveryWaiterLeavesTheReadIsAborted) {
  std::shared_ptr<Call> a, b;
  auto ra = Start(get_contact_, Contact(), absl::Seconds(5), &a);
  auto rb = Start(get_contact_, Contact(), absl::Seconds(5), &b);
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  a->Cancel(Call::CancelReason::kCallerLeft);
  b->Cancel(Call::CancelReason::kCallerLeft);
  EXPECT_THAT(http_.cancelled(), ElementsAre(http_.id(0)));
  clock_.RunDue();
  EXPECT_TRUE(ra->ended && rb->ended);
  // Nothing stored: the next identical read goes upstream again.
  auto again = Start(get_contact_, Contact(), absl::Seconds(5));
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(http_.sent(), 2u);
}

// A call and its exchange never keep each other alive (call.h, OWNERSHIP). A transport
// destroyed with a write in flight answers it CANCELLED: the call ends once, is not sent again,
// and nothing of it stays allocated. (While the call held its exchange and the exchange its
// call, a transport that dropped the request's callback left both alive for ever.)
TEST(PipelineOwnershipTest, TransportDestroyedWithARequestInFlightEndsAndFreesTheCall) {
  ManualScheduler clock;
  auto http = std::make_unique<FakeTransport>(&clock);
  const Route comment = DeclaredRoute("respondio.v2.CommentService.CreateComment");
  auto dispatcher = TestDispatcher({.http = http.get(), .scheduler = &clock});
  int ended = 0;
  absl::Status status;
  respondio::v2::CreateCommentRequest request;
  request.set_identifier("id:1");
  request.set_text("hello");
  std::weak_ptr<Call> call = dispatcher->Call(comment, request,
                                              {.deadline = clock.Now() + absl::Seconds(60)},
                                              [&](absl::StatusOr<std::string> result) {
                                                ++ended;
                                                status = result.status();
                                              });
  clock.RunDue();
  ASSERT_EQ(http->sent(), 1u);
  EXPECT_FALSE(call.expired()) << "the exchange holds its waiter while the request is out";
  http.reset();
  EXPECT_EQ(ended, 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(call.expired()) << "the call outlived the exchange it waited on";
  EXPECT_EQ(dispatcher->live_exchanges(), 0u);
  clock.AdvanceBy(absl::Seconds(60));  // its deadline timer finds nothing
  EXPECT_EQ(ended, 1);
  EXPECT_EQ(dispatcher->counters().upstream_requests, 1);
}

// A component that drops a callback unrun (a scheduler destroyed with a retry timer pending,
// as TimerThreadScheduler's destructor does) frees the exchange, which ends its calls:
// UNAVAILABLE SHUTTING_DOWN, honest about the request already sent. This leaked (and the call
// never ended) while calls and exchanges held each other.
TEST(PipelineOwnershipTest, ExchangeOnlyADroppedTimerHeldEndsItsCalls) {
  auto clock = std::make_unique<ManualScheduler>();
  FakeTransport http(clock.get());
  const Route get_contact = DeclaredRoute("respondio.v2.ContactService.GetContact");
  auto dispatcher = TestDispatcher({.http = &http, .scheduler = clock.get()});
  std::vector<absl::Status> results;
  respondio::v2::GetContactRequest request;
  request.set_identifier("id:7");
  std::weak_ptr<Call> call =
      dispatcher->Call(get_contact, request, {.deadline = clock->Now() + absl::Seconds(60)},
                       [&](absl::StatusOr<std::string> result) {
                         results.push_back(result.status());
                       });
  clock->RunDue();
  ASSERT_EQ(http.sent(), 1u);
  ASSERT_TRUE(http.Respond(0, 503, "busy"));  // a read: retried after a backoff timer
  ASSERT_TRUE(results.empty());
  ASSERT_EQ(dispatcher->counters().retries, 1);
  clock.reset();  // the timer is dropped unrun
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].code(), absl::StatusCode::kUnavailable) << results[0];
  const auto info = ErrorInfoOf(results[0]);
  EXPECT_EQ(info.reason(), "SHUTTING_DOWN");
  EXPECT_EQ(info.metadata().at("not_sent"), "false");
  EXPECT_TRUE(call.expired()) << "the call and its exchange kept each other alive";
  EXPECT_EQ(http.sent(), 1u);
}

// Retries: reads on 503 after a backoff; writes never on 503, only on 429/449; a call cancelled
// while backing off is not sent again.
TEST_F(PipelineTest, ReadIsRetriedOn503) {
  auto outcome = Start(get_contact_, Contact(), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_TRUE(http_.Respond(0, 503, "busy"));
  EXPECT_EQ(http_.sent(), 1u);
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 2u);
  ASSERT_TRUE(http_.Respond(1, 200, R"({"id": 7})"));
  EXPECT_TRUE(outcome->result.ok());
  EXPECT_EQ(dispatcher_->counters().retries, 1);
}

TEST_F(PipelineTest, WriteIsNotRetriedOn503ButOn429) {
  auto on503 = Start(comment_, Comment(1), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_TRUE(http_.Respond(0, 503, "busy"));
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(http_.sent(), 1u);
  ASSERT_TRUE(on503->ended);
  EXPECT_EQ(on503->result.status().code(), absl::StatusCode::kUnavailable);

  auto on429 = Start(comment_, Comment(2), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 2u);
  ASSERT_TRUE(http_.Respond(1, 429, "slow down", {{"retry-after", "1"}}));
  clock_.AdvanceBy(absl::Seconds(2));
  ASSERT_EQ(http_.sent(), 3u);
  ASSERT_TRUE(http_.Respond(2, 200, "{}"));
  EXPECT_TRUE(on429->result.ok());
}

// What is retried is what error_mapping's one outcome table says (ClassifyResponse,
// ClassifyTransportFailure), not a second table in the pipeline.
TEST_F(PipelineTest, RetriesFollowTheOutcomeTable) {
  // A 503 whose body nests too deep is UPSTREAM_RESPONSE_TOO_DEEP: nothing of it is trusted, and
  // it is not retried, even for a read.
  auto deep = Start(get_contact_, Contact(), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_TRUE(http_.Respond(0, 503, std::string(200, '[') + std::string(200, ']')));
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(http_.sent(), 1u);
  ASSERT_TRUE(deep->ended);
  EXPECT_EQ(ErrorInfoOf(deep->result.status()).reason(), "UPSTREAM_RESPONSE_TOO_DEEP");

  // A write that provably never left the gateway (connection refused) may be sent again...
  auto refused = Start(comment_, Comment(1), absl::Seconds(10));
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 2u);
  ASSERT_TRUE(http_.Fail(1, MarkNotSent(absl::UnavailableError("connection refused"))));
  clock_.AdvanceBy(absl::Seconds(2));
  ASSERT_EQ(http_.sent(), 3u);
  ASSERT_TRUE(http_.Respond(2, 200, "{}"));
  ASSERT_TRUE(refused->ended);
  EXPECT_TRUE(refused->result.ok()) << refused->result.status();

  // ... one that may have reached it (reset after sending) is not.
  auto reset = Start(comment_, Comment(2), absl::Seconds(10));
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 4u);
  ASSERT_TRUE(http_.Fail(3, absl::UnavailableError("connection reset")));
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(http_.sent(), 4u);
  ASSERT_TRUE(reset->ended);
  EXPECT_EQ(ErrorInfoOf(reset->result.status()).reason(), "UPSTREAM_UNREACHABLE");

  // A Retry-After date in year 9999 waits the table's cap (300 s), which no 10 s deadline fits:
  // answered now, with the capped RetryInfo.
  auto paused = Start(get_contact_, Contact("id:8"), absl::Seconds(10));
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 5u);
  ASSERT_TRUE(http_.Respond(4, 429, "", {{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}));
  ASSERT_TRUE(paused->ended);
  EXPECT_EQ(paused->result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(http_.sent(), 5u);
}

// The one configured cap (rate_limits.max_pause_seconds = RateLimiter::Options::max_pause)
// bounds every wait an upstream's Retry-After imposes: the bucket's pause, the backoff before a
// retry and the RetryInfo callers get; not a fixed 300 s of the outcome table's own.
TEST(PipelinePauseCapTest, RetryAfterIsCappedByTheConfiguredMaxPause) {
  ManualScheduler clock;
  FakeTransport http(&clock);
  RateLimiter limiter({.max_pause = absl::Seconds(10)}, &clock, nullptr);
  auto dispatcher = TestDispatcher({.http = &http, .scheduler = &clock, .limiter = &limiter});
  const Route get_contact = DeclaredRoute("respondio.v2.ContactService.GetContact");
  auto start = [&](const std::string& identifier, absl::Duration timeout) {
    auto outcome = std::make_shared<Outcome>();
    respondio::v2::GetContactRequest request;
    request.set_identifier(identifier);
    dispatcher->Call(get_contact, request, {.deadline = clock.Now() + timeout},
                     [outcome](absl::StatusOr<std::string> result) {
                       outcome->ended = true;
                       outcome->result = std::move(result);
                     });
    return outcome;
  };

  // Retry-After: 120 with a 5 s deadline: answered now, and told to come back in 10 s.
  auto short_call = start("id:1", absl::Seconds(5));
  clock.RunDue();
  ASSERT_EQ(http.sent(), 1u);
  ASSERT_TRUE(http.Respond(0, 429, "", {{"retry-after", "120"}}));
  ASSERT_TRUE(short_call->ended);
  EXPECT_EQ(short_call->result.status().code(), absl::StatusCode::kResourceExhausted);
  auto retry_info = gateway::testing::DetailOf<google::rpc::RetryInfo>(short_call->result.status());
  ASSERT_TRUE(retry_info.has_value());
  EXPECT_EQ(retry_info->retry_delay().seconds(), 10);

  // The bucket was paused for 10 s, not 120 s.
  clock.AdvanceBy(absl::Seconds(11));
  // A date in year 9999 with a 60 s deadline: retried after the 10 s cap (with 300 s it would
  // not fit the deadline and the caller would get RESOURCE_EXHAUSTED at once).
  auto long_call = start("id:2", absl::Seconds(60));
  clock.RunDue();
  ASSERT_EQ(http.sent(), 2u);
  ASSERT_TRUE(http.Respond(1, 429, "", {{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}));
  EXPECT_FALSE(long_call->ended);
  clock.AdvanceBy(absl::Seconds(9));
  EXPECT_EQ(http.sent(), 2u);
  clock.AdvanceBy(absl::Seconds(2));
  ASSERT_EQ(http.sent(), 3u);
  ASSERT_TRUE(http.Respond(2, 200, R"({"id": 2})"));
  ASSERT_TRUE(long_call->ended);
  EXPECT_TRUE(long_call->result.ok()) << long_call->result.status();
}

// The limiter learns of an upstream's budget only through the outcome table: a 429 pauses the
// bucket (Retry-After, else 1 s), any other status does not, whatever its Retry-After says.
TEST_F(PipelineTest, OnlyWhatTheTablePausesPausesTheBucket) {
  auto first = Start(get_contact_, Contact("id:1"), absl::Seconds(30));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  // A 404 with a Retry-After: not retried, and no pause.
  ASSERT_TRUE(http_.Respond(0, 404, "", {{"retry-after", "20"}}));
  ASSERT_TRUE(first->ended);
  clock_.AdvanceBy(absl::Seconds(1));
  auto second = Start(get_contact_, Contact("id:2"), absl::Seconds(30));
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 2u);
  // A 429 without Retry-After pauses for 1 s: the read is retried after it.
  ASSERT_TRUE(http_.Respond(1, 429, ""));
  clock_.AdvanceBy(absl::Milliseconds(900));
  EXPECT_EQ(http_.sent(), 2u);
  clock_.AdvanceBy(absl::Milliseconds(400));
  ASSERT_EQ(http_.sent(), 3u);
  ASSERT_TRUE(http_.Respond(2, 200, R"({"id": 2})"));
  EXPECT_TRUE(second->result.ok());
  EXPECT_EQ(limiter_.counters(BucketOf(http_)).paused_by_upstream, 1);
}

TEST_F(PipelineTest, CallCancelledWhileBackingOffIsNotSentAgain) {
  std::shared_ptr<Call> call;
  auto outcome = Start(get_contact_, Contact(), absl::Seconds(10), &call);
  clock_.RunDue();
  ASSERT_TRUE(http_.Respond(0, 503, "busy"));
  call->Cancel(Call::CancelReason::kCallerLeft);
  ASSERT_TRUE(outcome->ended);
  clock_.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(http_.sent(), 1u);
}

// Item 11: request_id records are per caller.
TEST_F(PipelineTest, RequestIdRecordsArePerCaller) {
  const std::string id = "0b6f2f6e-8a1e-4c61-9f43-5d8f3c2e1a7b";
  auto a = Start(comment_, Comment(1, id), absl::Seconds(10), nullptr, "alice");
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  ASSERT_TRUE(http_.Respond(0, 200, "{}"));
  ASSERT_TRUE(a->result.ok());

  // Bob with Alice's id and request: his own call, not Alice's result.
  auto b = Start(comment_, Comment(1, id), absl::Seconds(10), nullptr, "bob");
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(http_.sent(), 2u);
  ASSERT_TRUE(http_.Respond(1, 422, R"({"message": "bob's own answer"})"));
  ASSERT_TRUE(b->ended);
  EXPECT_EQ(b->result.status().code(), absl::StatusCode::kInvalidArgument);
  // Bob with Alice's id and another request: no REQUEST_ID_REUSED probe answer either.
  auto probe = Start(comment_, Comment(2, id), absl::Seconds(10), nullptr, "bob");
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_NE(ErrorInfoOf(probe->result.status()).reason(), "REQUEST_ID_REUSED");
  ASSERT_EQ(http_.sent(), 3u);
  ASSERT_TRUE(http_.Respond(2, 200, "{}"));

  // Alice's repeat replays her result without a request.
  auto again = Start(comment_, Comment(1, id), absl::Seconds(10), nullptr, "alice");
  clock_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(again->ended);
  EXPECT_TRUE(again->result.ok());
  EXPECT_EQ(http_.sent(), 3u);
  EXPECT_EQ(dispatcher_->counters().idempotent_replays, 1);
}

TEST_F(PipelineTest, CancelledWriteReleasesItsRequestId) {
  const std::string id = "0b6f2f6e-8a1e-4c61-9f43-5d8f3c2e1a7c";
  auto blocker = Start(comment_, Comment(0), absl::Seconds(60));
  std::shared_ptr<Call> call;
  auto first = Start(comment_, Comment(1, id), absl::Seconds(60), &call, "alice");
  clock_.RunDue();
  ASSERT_EQ(http_.sent(), 1u);
  call->Cancel(Call::CancelReason::kCallerLeft);
  clock_.RunDue();
  ASSERT_TRUE(first->ended);
  // Never sent: the retry runs (it is not answered with the cancellation).
  auto retry = Start(comment_, Comment(1, id), absl::Seconds(60), nullptr, "alice");
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(http_.sent(), 2u);
}

// Item 11: a Get whose 200 carries no resource.
TEST_F(PipelineTest, GetWithEmptyOrNullBodyIsBadResponse) {
  for (const std::string body : {"", "null", "  "}) {
    auto outcome = Start(get_contact_, Contact("id:" + std::to_string(body.size() + 10)),
                         absl::Seconds(10));
    clock_.AdvanceBy(absl::Seconds(1));
    const size_t index = http_.sent() - 1;
    ASSERT_TRUE(http_.Respond(index, 200, body));
    ASSERT_TRUE(outcome->ended);
    EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kInternal) << "'" << body << "'";
    EXPECT_EQ(ErrorInfoOf(outcome->result.status()).reason(), "UPSTREAM_BAD_RESPONSE");
  }
}

TEST_F(PipelineTest, CacheHitSendsNothing) {
  auto first = Start(get_contact_, Contact(), absl::Seconds(10));
  clock_.RunDue();
  ASSERT_TRUE(http_.Respond(0, 200, R"({"id": 7})"));
  auto second = Start(get_contact_, Contact(), absl::Seconds(10));
  ASSERT_TRUE(second->ended);
  EXPECT_TRUE(second->result.ok());
  clock_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(http_.sent(), 1u);
  EXPECT_EQ(dispatcher_->live_exchanges(), 0u);
}

// A write is answered only once the shared cache has dropped what it changed: answered earlier,
// the caller's next read (on this replica or another) could still be served the replaced reply
// from Redis. Redis is frozen while the write commits; the caller must wait for it.
TEST(PipelineSharedCacheTest, WriteIsAnsweredOnlyOnceTheSharedCacheDroppedWhatItChanged) {
  ::gateway::testing::RedisProcess server;
  ASSERT_TRUE(server.Start());
  // The clock first: the Redis client, destroyed before it, answers the cache's pending
  // commands, which read the clock (response_cache.h).
  ManualScheduler clock;
  RedisClient redis({.port = server.port(), .timeout = absl::Seconds(30)});
  FakeTransport http(&clock);
  RateLimiter limiter({}, &clock, nullptr);
  ResponseCache cache({}, &clock, &redis);
  IdempotencyStore idempotency({}, &clock, nullptr);
  std::unique_ptr<Dispatcher> dispatcher = TestDispatcher({.http = &http,
                                                           .scheduler = &clock,
                                                           .limiter = &limiter,
                                                           .cache = &cache,
                                                           .idempotency = &idempotency});
  const Route update = DeclaredRoute("respondio.v2.ContactService.UpdateContact");
  ASSERT_FALSE(update.invalidates.empty());
  respondio::v2::UpdateContactRequest request;
  request.set_identifier("id:7");
  request.set_first_name("Augusta");

  absl::Notification ended;
  absl::Status status;
  dispatcher->Call(update, request, {.deadline = clock.Now() + absl::Seconds(10)},
                  [&](absl::StatusOr<std::string> result) {
                    status = result.status();
                    ended.Notify();
                  });
  clock.RunDue();
  ASSERT_EQ(http.sent(), 1u);
  server.Pause();
  ASSERT_TRUE(http.Respond(0, 200, R"({"id": 7, "firstName": "Augusta"})"));
  EXPECT_FALSE(ended.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "answered before the shared invalidation was acknowledged";
  server.Resume();
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(cache.counters().redis_errors, 0);
}

}  // namespace
}  // namespace gateway::upstream
