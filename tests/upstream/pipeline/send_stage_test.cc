// The send stage alone (upstream/pipeline/send_stage.h), on a manual clock with a recording
// transport: the request it builds, Send and Cancel handed to the transport, the outcome table
// applied per route kind (what is retried, what was not sent or not processed), the backoff,
// and Retry-After honoured and capped at max_pause.
#include "upstream/pipeline/send_stage.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/v1/annotations.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "tests/upstream/binding/declared_route.h"
#include "tests/upstream/status_details.h"
#include "upstream/pipeline/prepare_stage.h"
#include "upstream/scheduler.h"
#include "upstream/transport/http_transport.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DeclaredRoute;
using ::gateway::testing::ErrorInfoOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// Records what it is handed; answers nothing (the stage does not wait for answers).
class RecordingTransport : public HttpTransport {
 public:
  RequestId Send(HttpRequest request, Done done) override {
    sent.push_back(std::move(request));
    dones.push_back(std::move(done));
    return 40 + sent.size();
  }
  void Cancel(RequestId id) override { cancelled.push_back(id); }

  std::vector<HttpRequest> sent;
  std::vector<Done> dones;
  std::vector<RequestId> cancelled;
};

HttpResponse Response(int status, absl::flat_hash_map<std::string, std::string> headers = {},
                      std::string body = "") {
  HttpResponse response;
  response.status = status;
  response.headers = std::move(headers);
  response.body = std::move(body);
  return response;
}

class SendStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    respondio::v2::GetContactRequest get;
    get.set_identifier("id:7");
    ASSERT_TRUE(prepare_.Prepare(get_contact_, get, {}, &read_).ok());
    respondio::v2::CreateCommentRequest comment;
    comment.set_identifier("id:1");
    comment.set_text("hello");
    ASSERT_TRUE(prepare_.Prepare(create_comment_, comment, {}, &write_).ok());
    ASSERT_TRUE(get_contact_.read);
    ASSERT_FALSE(create_comment_.read);
  }

  // Whether the stage would retry `response` for `prepared` on its first attempt, with time.
  bool Retried(const PreparedCall& prepared, const absl::StatusOr<HttpResponse>& response) {
    const SendStage::Outcome outcome = send_.Classify(prepared, response);
    return send_.RetryDelay(prepared, outcome, /*attempt=*/0, clock_.Now() + absl::Minutes(10),
                            absl::Milliseconds(100))
        .has_value();
  }

  ManualScheduler clock_;
  RecordingTransport http_;
  const absl::flat_hash_map<std::string, UpstreamConfig> upstreams_{
      {"respondio",
       {.name = "respondio", .base_url = "http://upstream.test/v2", .token = "secret",
        .max_response_bytes = 4096}}};
  const PrepareStage prepare_{&upstreams_, {.has_cache = false, .has_idempotency = false}};
  const SendStage send_{&http_, &clock_, RetryPolicy{}, /*max_pause=*/absl::Seconds(10)};
  const Route get_contact_ = DeclaredRoute("respondio.v2.ContactService.GetContact");
  const Route create_comment_ = DeclaredRoute("respondio.v2.CommentService.CreateComment");
  PreparedCall read_;
  PreparedCall write_;
};

TEST_F(SendStageTest, BuildsTheRequestOfARead) {
  const absl::Time deadline = clock_.Now() + absl::Seconds(3);
  const HttpRequest request =
      send_.Build(read_, {.trace_headers = {{"traceparent", "00-abc-def-01"}}}, deadline);
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url, "http://upstream.test/v2/contact/id:7");
  EXPECT_EQ(request.deadline, deadline);
  EXPECT_FALSE(request.fresh_connection) << "reads use pooled connections";
  EXPECT_EQ(request.fairness_key, read_.bucket_key);
  EXPECT_FALSE(request.fairness_key.empty());
  EXPECT_EQ(request.max_response_bytes, 4096);
  EXPECT_THAT(request.headers, ElementsAre(Pair("Accept", "application/json"),
                                           Pair("Authorization", "Bearer secret"),
                                           Pair("traceparent", "00-abc-def-01")));
  EXPECT_THAT(request.body, IsEmpty());
}

TEST_F(SendStageTest, BuildsTheRequestOfAWriteOnAFreshConnection) {
  const HttpRequest request = send_.Build(write_, {}, absl::InfiniteFuture());
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "http://upstream.test/v2/contact/id:1/comment");
  EXPECT_TRUE(request.fresh_connection) << "libcurl may resend on a reused connection";
  EXPECT_EQ(request.body, R"({"text":"hello"})");
  EXPECT_THAT(request.headers, Contains(Pair("Content-Type", "application/json")));
}

TEST_F(SendStageTest, AnyOtherAuthHeaderCarriesTheBareToken) {
  UpstreamConfig chatwoot = {.name = "chatwoot", .base_url = "http://chatwoot.test",
                             .token = "tok", .auth_header = "api_access_token"};
  PreparedCall prepared = read_;
  prepared.upstream = &chatwoot;
  const HttpRequest request = send_.Build(prepared, {}, absl::InfiniteFuture());
  EXPECT_EQ(request.url, "http://chatwoot.test/contact/id:7");
  EXPECT_THAT(request.headers, Contains(Pair("api_access_token", "tok")));
  for (const auto& [name, value] : request.headers) EXPECT_NE(name, "Authorization");
}

TEST_F(SendStageTest, SendAndCancelGoToTheTransport) {
  const HttpTransport::RequestId id = send_.Send(read_, {}, absl::InfiniteFuture(),
                                                 [](absl::StatusOr<HttpResponse>) {});
  ASSERT_EQ(http_.sent.size(), 1u);
  EXPECT_EQ(http_.sent[0].url, "http://upstream.test/v2/contact/id:7");
  send_.Cancel(id);
  EXPECT_THAT(http_.cancelled, ElementsAre(id));
}

// The one outcome table, per route kind: reads are retried on 429, 449, 502, 503, 504 and
// connection failures; writes only on 429, 449 and failures that provably never left.
TEST_F(SendStageTest, RetriesFollowTheOutcomeTable) {
  for (int status : {429, 449, 502, 503, 504}) {
    EXPECT_TRUE(Retried(read_, Response(status))) << "read, HTTP " << status;
  }
  for (int status : {200, 400, 401, 403, 404, 408, 409, 422, 500, 501}) {
    EXPECT_FALSE(Retried(read_, Response(status))) << "read, HTTP " << status;
  }
  for (int status : {429, 449}) {
    EXPECT_TRUE(Retried(write_, Response(status))) << "write, HTTP " << status;
  }
  for (int status : {200, 400, 408, 500, 502, 503, 504}) {
    EXPECT_FALSE(Retried(write_, Response(status))) << "write, HTTP " << status;
  }
  const absl::Status refused = MarkNotSent(absl::UnavailableError("connection refused"));
  const absl::Status reset = absl::UnavailableError("connection reset by peer");
  EXPECT_TRUE(Retried(read_, refused));
  EXPECT_TRUE(Retried(read_, reset));
  EXPECT_TRUE(Retried(write_, refused)) << "provably never left the gateway";
  EXPECT_FALSE(Retried(write_, reset)) << "may have been processed";
  for (const absl::Status& s :
       {absl::CancelledError("cancelled"), MarkNotSent(absl::CancelledError("cancelled")),
        absl::DeadlineExceededError("deadline"), ResponseTooLargeError("body")}) {
    EXPECT_FALSE(Retried(read_, s)) << s;
    EXPECT_FALSE(Retried(write_, s)) << s;
  }
}

// What the caller is told about a request that ended without an answer: cancelled before it
// started (not sent, so not processed) or aborted in flight (the upstream may have acted).
TEST_F(SendStageTest, NotSentAndInFlightCancellationsAreReportedApart) {
  const SendStage::Outcome before =
      send_.Classify(write_, MarkNotSent(absl::CancelledError("cancelled before start")));
  EXPECT_EQ(before.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(before.not_sent);
  EXPECT_TRUE(before.not_processed);
  EXPECT_EQ(before.http_status, 0);
  EXPECT_EQ(ErrorInfoOf(before.status).metadata().at("not_sent"), "true");
  EXPECT_TRUE(IsNotSent(before.status)) << "the mark travels with the status";

  const SendStage::Outcome in_flight =
      send_.Classify(write_, absl::CancelledError("aborted in flight"));
  EXPECT_EQ(in_flight.status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(in_flight.not_sent);
  EXPECT_FALSE(in_flight.not_processed);
  EXPECT_FALSE(ErrorInfoOf(in_flight.status).metadata().contains("not_sent"));
  EXPECT_FALSE(IsNotSent(in_flight.status));

  // An answer says whether the upstream acted: a 4xx other than 408 means it did not.
  EXPECT_TRUE(send_.Classify(write_, Response(429)).not_processed);
  EXPECT_TRUE(send_.Classify(write_, Response(422)).not_processed);
  EXPECT_FALSE(send_.Classify(write_, Response(408)).not_processed);
  EXPECT_FALSE(send_.Classify(write_, Response(503)).not_processed);
  EXPECT_FALSE(send_.Classify(write_, Response(503)).not_sent);
}

TEST_F(SendStageTest, BackoffGrowsWithJitterAndStopsAfterMaxAttempts) {
  const SendStage::Outcome busy = send_.Classify(read_, Response(503));
  const absl::Time far = clock_.Now() + absl::Minutes(10);
  for (int i = 0; i < 20; ++i) {
    // 100 ms doubling per attempt, jittered to [50 %, 100 %], at most 2 s.
    auto first = send_.RetryDelay(read_, busy, 0, far, absl::ZeroDuration());
    ASSERT_TRUE(first.has_value());
    EXPECT_GE(*first, absl::Milliseconds(50));
    EXPECT_LE(*first, absl::Milliseconds(100));
    auto third = send_.RetryDelay(read_, busy, 2, far, absl::ZeroDuration());
    ASSERT_TRUE(third.has_value());
    EXPECT_GE(*third, absl::Milliseconds(200));
    EXPECT_LE(*third, absl::Milliseconds(400));
  }
  // RetryPolicy::max_attempts = 4: after the fourth attempt, no more.
  EXPECT_FALSE(send_.RetryDelay(read_, busy, 3, far, absl::ZeroDuration()).has_value());
  // The next attempt must fit before the deadline, with the margin.
  EXPECT_FALSE(send_.RetryDelay(read_, busy, 0, clock_.Now() + absl::Milliseconds(120),
                                absl::Milliseconds(100))
                   .has_value());
}

TEST_F(SendStageTest, RetryAfterIsHonouredAndCapped) {
  const absl::Time far = clock_.Now() + absl::Minutes(10);
  // Honoured: the backoff is at least what the upstream asked for.
  const SendStage::Outcome two = send_.Classify(read_, Response(429, {{"retry-after", "2"}}));
  EXPECT_EQ(two.retry_after, absl::Seconds(2));
  EXPECT_EQ(two.pause, absl::Seconds(2));
  auto wait = send_.RetryDelay(read_, two, 0, far, absl::ZeroDuration());
  ASSERT_TRUE(wait.has_value());
  EXPECT_GE(*wait, absl::Seconds(2));
  // An HTTP-date is read on the stage's clock.
  const std::string in_five = absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                                               clock_.Now() + absl::Seconds(5), absl::UTCTimeZone());
  EXPECT_EQ(send_.Classify(read_, Response(429, {{"retry-after", in_five}})).retry_after,
            absl::Seconds(5));
  // Capped at max_pause (10 s here), numbers and dates alike, also the RetryInfo.
  for (const std::string value : {"120", "Fri, 31 Dec 9999 23:59:59 GMT"}) {
    const SendStage::Outcome capped = send_.Classify(read_, Response(429, {{"retry-after", value}}));
    EXPECT_EQ(capped.retry_after, absl::Seconds(10)) << value;
    EXPECT_EQ(capped.pause, absl::Seconds(10)) << value;
    auto info = gateway::testing::DetailOf<google::rpc::RetryInfo>(capped.status);
    ASSERT_TRUE(info.has_value()) << value;
    EXPECT_EQ(info->retry_delay().seconds(), 10) << value;
    auto capped_wait = send_.RetryDelay(read_, capped, 0, far, absl::ZeroDuration());
    ASSERT_TRUE(capped_wait.has_value()) << value;
    EXPECT_EQ(*capped_wait, absl::Seconds(10)) << value;
  }
  // A Retry-After that does not fit the deadline: no retry, the caller gets the answer now.
  const SendStage::Outcome five = send_.Classify(write_, Response(429, {{"retry-after", "5"}}));
  EXPECT_FALSE(
      send_.RetryDelay(write_, five, 0, clock_.Now() + absl::Seconds(3), absl::ZeroDuration())
          .has_value());
  // A 429 without Retry-After still pauses its bucket for 1 s; other statuses never do.
  EXPECT_EQ(send_.Classify(read_, Response(429)).pause, absl::Seconds(1));
  EXPECT_FALSE(send_.Classify(read_, Response(503, {{"retry-after", "20"}})).pause.has_value());
}

}  // namespace
}  // namespace gateway::upstream
