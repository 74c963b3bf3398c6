#include "upstream/transport/error_mapping.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "tests/upstream/status_details.h"
#include "upstream/safe_text.h"
#include "upstream/transport/http_transport.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DetailOf;
using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;

const UpstreamCallInfo kCall{"respondio", "/respondio.v2.ContactService/GetContact", "contact_get"};

HttpResponse Response(int status, const std::string& body = "",
                      const std::string& retry_after = "") {
  HttpResponse response;
  response.status = status;
  response.body = body;
  response.headers["content-type"] = "application/json";
  if (!retry_after.empty()) response.headers["retry-after"] = retry_after;
  return response;
}

// Checks code, reason, domain and the common metadata of a mapped HTTP error.
void ExpectMapped(const absl::Status& status, absl::StatusCode code, const std::string& reason,
                  int http_status) {
  EXPECT_EQ(status.code(), code) << status;
  const google::rpc::ErrorInfo info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), reason);
  EXPECT_EQ(info.domain(), "respondio");
  EXPECT_EQ(info.metadata().at("upstream"), "respondio");
  EXPECT_EQ(info.metadata().at("upstream_status"), std::to_string(http_status));
  EXPECT_EQ(info.metadata().at("rpc"), "/respondio.v2.ContactService/GetContact");
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("respondio answered HTTP " + std::to_string(http_status)));
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  auto retry = DetailOf<google::rpc::RetryInfo>(status);
  if (!retry.has_value()) return std::nullopt;
  return absl::Seconds(retry->retry_delay().seconds()) +
         absl::Nanoseconds(retry->retry_delay().nanos());
}

TEST(StatusFromHttp, SuccessIsOk) {
  for (int status : {200, 201, 202, 204, 299}) {
    EXPECT_TRUE(StatusFromHttp(kCall, Response(status, R"({"id":1})")).ok()) << status;
  }
}

TEST(StatusFromHttp, BadRequestAndUnprocessableAreInvalidArgument) {
  for (int http : {400, 422}) {
    SCOPED_TRACE(http);
    const absl::Status status = StatusFromHttp(kCall, Response(http, R"({"code":400,"message":"bad"})"));
    ExpectMapped(status, absl::StatusCode::kInvalidArgument, "UPSTREAM_INVALID_ARGUMENT", http);
    EXPECT_EQ(ErrorInfoOf(status).metadata().at("upstream_message"), "bad");
    EXPECT_THAT(std::string(status.message()), HasSubstr("(bad)"));
    EXPECT_FALSE(RetryDelayOf(status).has_value());
  }
}

TEST(StatusFromHttp, UnauthorizedIsInternalNeverUnauthenticated) {
  const absl::Status status =
      StatusFromHttp(kCall, Response(401, R"({"code":401,"message":"Invalid token"})"));
  ExpectMapped(status, absl::StatusCode::kInternal, "UPSTREAM_AUTH_REJECTED", 401);
  EXPECT_NE(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("upstream_message"), "Invalid token");
}

TEST(StatusFromHttp, ForbiddenIsPermissionDenied) {
  ExpectMapped(StatusFromHttp(kCall, Response(403, R"({"message":"no"})")),
               absl::StatusCode::kPermissionDenied, "UPSTREAM_PERMISSION_DENIED", 403);
}

TEST(StatusFromHttp, NotFound) {
  const absl::Status status =
      StatusFromHttp(kCall, Response(404, R"({"code":404,"message":"Contact not found"})"));
  ExpectMapped(status, absl::StatusCode::kNotFound, "UPSTREAM_NOT_FOUND", 404);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("upstream_message"), "Contact not found");
}

TEST(StatusFromHttp, ConflictIsAlreadyExists) {
  ExpectMapped(StatusFromHttp(kCall, Response(409)), absl::StatusCode::kAlreadyExists,
               "UPSTREAM_CONFLICT", 409);
}

TEST(StatusFromHttp, RateLimitedWithRetryAfter) {
  const absl::Status status = StatusFromHttp(
      kCall, Response(429, R"({"code":429,"message":"Too many requests"})", "7"));
  ExpectMapped(status, absl::StatusCode::kResourceExhausted, "UPSTREAM_RATE_LIMITED", 429);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(7));
  auto quota = DetailOf<google::rpc::QuotaFailure>(status);
  ASSERT_TRUE(quota.has_value());
  ASSERT_EQ(quota->violations_size(), 1);
  EXPECT_EQ(quota->violations(0).subject(), "contact_get");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("bucket"), "contact_get");
}

TEST(StatusFromHttp, RateLimitedWithoutRetryAfterStillCarriesRetryInfo) {
  const absl::Status status = StatusFromHttp(kCall, Response(429));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(1));
}

TEST(StatusFromHttp, NotReady449IsUnavailableWithRetryInfo) {
  absl::Status status = StatusFromHttp(kCall, Response(449));
  ExpectMapped(status, absl::StatusCode::kUnavailable, "UPSTREAM_NOT_READY", 449);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(5));
  status = StatusFromHttp(kCall, Response(449, "", "30"));
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(30));
}

TEST(StatusFromHttp, ServerErrorsAreUnavailable) {
  for (int http : {500, 502, 503, 504}) {
    SCOPED_TRACE(http);
    const absl::Status status = StatusFromHttp(kCall, Response(http, "<html>Bad Gateway</html>"));
    ExpectMapped(status, absl::StatusCode::kUnavailable, "UPSTREAM_UNAVAILABLE", http);
    EXPECT_FALSE(RetryDelayOf(status).has_value());
    EXPECT_EQ(ErrorInfoOf(status).metadata().count("upstream_message"), 0u);
  }
  const absl::Status status = StatusFromHttp(kCall, Response(503, "", "120"));
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(120));
}

TEST(StatusFromHttp, OtherClientErrorsAreFailedPrecondition) {
  ExpectMapped(StatusFromHttp(kCall, Response(418)), absl::StatusCode::kFailedPrecondition,
               "UPSTREAM_REJECTED", 418);
}

TEST(StatusFromHttp, UpstreamMessageShapes) {
  auto message_of = [](const std::string& body) {
    const auto info = ErrorInfoOf(StatusFromHttp(kCall, Response(400, body)));
    auto it = info.metadata().find("upstream_message");
    return it == info.metadata().end() ? std::string("<none>") : it->second;
  };
  EXPECT_EQ(message_of(R"({"error":"Access denied"})"), "Access denied");
  EXPECT_EQ(message_of(R"({"errors":["Name is required","Email is invalid"]})"),
            R"(["Name is required","Email is invalid"])");
  EXPECT_EQ(message_of(R"({"message":null,"error":"second"})"), "second");
  EXPECT_EQ(message_of(R"("plain")"), R"("plain")");
  EXPECT_EQ(message_of("not json"), "<none>");
  EXPECT_EQ(message_of(""), "<none>");
  EXPECT_EQ(message_of(R"({"code":400})"), "<none>");
  const std::string long_message = message_of(R"({"message":")" + std::string(600, 'm') + R"("})");
  EXPECT_EQ(long_message, std::string(500, 'm') + "...");
}

TEST(StatusFromTransport, Mapping) {
  absl::Status status = StatusFromTransport(kCall, absl::UnavailableError("Connection refused"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_UNREACHABLE");
  EXPECT_EQ(ErrorInfoOf(status).domain(), "respondio");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("rpc"), kCall.rpc);
  EXPECT_THAT(std::string(status.message()), HasSubstr("Connection refused"));

  status = StatusFromTransport(kCall, absl::DeadlineExceededError("Timeout was reached"));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_TIMEOUT");

  status = StatusFromTransport(kCall, absl::CancelledError("shutting down"));
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "CANCELLED");
}

TEST(ParseRetryAfter, DeltaSeconds) {
  const absl::Time now = absl::FromUnixSeconds(1445412480);
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "7"), now), absl::Seconds(7));
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "0"), now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "1.5"), now), absl::Milliseconds(1500));
  EXPECT_EQ(ParseRetryAfter(Response(429, "", " 7 "), now), absl::Seconds(7));
}

TEST(ParseRetryAfter, HttpDate) {
  // Wed, 21 Oct 2015 07:28:00 GMT is Unix time 1445412480.
  const absl::Time when = absl::FromUnixSeconds(1445412480);
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "Wed, 21 Oct 2015 07:28:00 GMT"),
                            when - absl::Seconds(30)),
            absl::Seconds(30));
  // A date in the past means "now".
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "Wed, 21 Oct 2015 07:28:00 GMT"),
                            when + absl::Seconds(30)),
            absl::ZeroDuration());
}

TEST(ParseRetryAfter, AbsentOrUnparseable) {
  const absl::Time now = absl::FromUnixSeconds(1445412480);
  EXPECT_EQ(ParseRetryAfter(Response(429), now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "soon"), now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "-5"), now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter(Response(429, "", "Someday, 99 Foo 2015 07:28:00 GMT"), now),
            std::nullopt);
}

TEST(StatusFromHttp, RetryAfterAsHttpDateIsHonoured) {
  const absl::Time in_a_minute = absl::Now() + absl::Seconds(60);
  const std::string date = absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", in_a_minute,
                                            absl::UTCTimeZone());
  const auto delay = RetryDelayOf(StatusFromHttp(kCall, Response(429, "", date)));
  ASSERT_TRUE(delay.has_value());
  EXPECT_GT(*delay, absl::Seconds(50));
  EXPECT_LE(*delay, absl::Seconds(60));
}

TEST(StatusFromHttp, UpstreamMessageIsCutOnACharacterBoundaryAndValidUtf8) {
  // 499 bytes, then "é": a cut at byte 500 used to split it, and Python clients then failed to
  // parse the status details.
  const std::string body = R"({"message":")" + std::string(499, 'm') + "\xC3\xA9" + "more" + R"("})";
  const absl::Status status = StatusFromHttp(kCall, Response(400, body));
  const std::string message = ErrorInfoOf(status).metadata().at("upstream_message");
  EXPECT_EQ(message, std::string(499, 'm') + "...");
  EXPECT_EQ(SanitizeUtf8(status.message()), std::string(status.message()));
}

TEST(StatusFromHttp, TheGatewaysTokenQuotedByTheUpstreamIsRedacted) {
  const std::string token = "rio-tok-5f1e2d3c4b5a69788796a5b4";
  RegisterSecret(token);
  const absl::Status status = StatusFromHttp(
      kCall, Response(401, R"({"message":"invalid token )" + token + R"( for org 7"})"));
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr(token)));
  EXPECT_THAT(std::string(status.message()), HasSubstr("[REDACTED]"));
  const google::rpc::ErrorInfo info = ErrorInfoOf(status);
  EXPECT_EQ(info.metadata().at("upstream_message"), "invalid token [REDACTED] for org 7");
  for (const auto& [key, value] : info.metadata()) EXPECT_THAT(value, ::testing::Not(HasSubstr(token)));
  // A token straddling the 500-byte cut leaves no prefix behind either.
  const std::string padded = R"({"message":")" + std::string(490, 'x') + token + R"("})";
  const std::string cut =
      ErrorInfoOf(StatusFromHttp(kCall, Response(400, padded))).metadata().at("upstream_message");
  EXPECT_THAT(cut, ::testing::Not(HasSubstr(token.substr(0, 8))));
}

TEST(StatusFromHttp, ADeeplyNestedErrorBodyIsTooDeepNotACrash) {
  // ~120 KB, 60,000 levels: dump() of it overflowed the stack.
  const std::string deep = R"({"errors":)" + std::string(60000, '[') + std::string(60000, ']') + "}";
  for (int http : {400, 404, 500, 503}) {
    SCOPED_TRACE(http);
    const HttpOutcome outcome = ClassifyResponse(kCall, Response(http, deep), absl::Now());
    EXPECT_EQ(outcome.status.code(), absl::StatusCode::kInternal);
    const google::rpc::ErrorInfo info = ErrorInfoOf(outcome.status);
    EXPECT_EQ(info.reason(), "UPSTREAM_RESPONSE_TOO_DEEP");
    EXPECT_EQ(info.metadata().at("upstream_status"), std::to_string(http));
    EXPECT_FALSE(outcome.retry_read);
  }
}

TEST(ClassifyResponse, TheOneTableOfRetryAndNotProcessed) {
  struct Row {
    int http;
    bool retry_read, retry_write, not_processed;
  };
  for (const Row& row : std::vector<Row>{{200, false, false, false},
                                         {400, false, false, true},
                                         {401, false, false, true},
                                         {404, false, false, true},
                                         {408, false, false, false},
                                         {409, false, false, true},
                                         {429, true, true, true},
                                         {449, true, true, true},
                                         {500, false, false, false},
                                         {502, true, false, false},
                                         {503, true, false, false},
                                         {504, true, false, false}}) {
    SCOPED_TRACE(row.http);
    const HttpOutcome outcome = ClassifyResponse(kCall, Response(row.http), absl::Now());
    EXPECT_EQ(outcome.status.ok(), row.http == 200);
    EXPECT_EQ(outcome.retry_read, row.retry_read);
    EXPECT_EQ(outcome.retry_write, row.retry_write);
    EXPECT_EQ(outcome.not_processed, row.not_processed);
  }
}

TEST(ClassifyResponse, RetryAfterIsCapped) {
  const HttpOutcome outcome =
      ClassifyResponse(kCall, Response(429, "", "Fri, 31 Dec 9999 23:59:59 GMT"), absl::Now());
  EXPECT_EQ(outcome.retry_after, kDefaultRetryAfterCap);
  EXPECT_EQ(RetryDelayOf(outcome.status), absl::Seconds(300));
}

TEST(ClassifyResponse, TheGivenCapBoundsRetryAfterRetryInfoAndPause) {
  const HttpOutcome outcome = ClassifyResponse(
      kCall, Response(429, "", "Fri, 31 Dec 9999 23:59:59 GMT"), absl::Now(), absl::Seconds(10));
  EXPECT_EQ(outcome.retry_after, absl::Seconds(10));
  EXPECT_EQ(outcome.pause, absl::Seconds(10));
  EXPECT_EQ(RetryDelayOf(outcome.status), absl::Seconds(10));
  // A cap above the default is the cap too.
  EXPECT_EQ(ClassifyResponse(kCall, Response(429, "", "600"), absl::Now(), absl::Seconds(900))
                .pause,
            absl::Seconds(600));
}

// The limiter's feedback comes from the table: only a 429 pauses (Retry-After, else 1 s), and
// X-RateLimit-Limit/Remaining are read from any response when both are integers.
TEST(ClassifyResponse, FeedbackForTheLimiter) {
  EXPECT_EQ(ClassifyResponse(kCall, Response(429), absl::Now()).pause, absl::Seconds(1));
  EXPECT_EQ(ClassifyResponse(kCall, Response(429, "", "7"), absl::Now()).pause, absl::Seconds(7));
  for (int status : {200, 404, 449, 503}) {
    SCOPED_TRACE(status);
    EXPECT_EQ(ClassifyResponse(kCall, Response(status, "", "7"), absl::Now()).pause,
              std::nullopt);
  }
  HttpResponse limited = Response(200, "{}");
  limited.headers["x-ratelimit-limit"] = "10";
  limited.headers["x-ratelimit-remaining"] = "0";
  const HttpOutcome outcome = ClassifyResponse(kCall, limited, absl::Now());
  ASSERT_TRUE(outcome.rate_limit.has_value());
  EXPECT_EQ(outcome.rate_limit->limit, 10);
  EXPECT_EQ(outcome.rate_limit->remaining, 0);
  limited.headers["x-ratelimit-remaining"] = "many";
  EXPECT_FALSE(ClassifyResponse(kCall, limited, absl::Now()).rate_limit.has_value());
  limited.headers.erase("x-ratelimit-remaining");
  EXPECT_FALSE(ClassifyResponse(kCall, limited, absl::Now()).rate_limit.has_value());
}

TEST(ClassifyTransportFailure, NotSentIsKeptAndSaid) {
  HttpOutcome refused =
      ClassifyTransportFailure(kCall, MarkNotSent(absl::UnavailableError("Connection refused")));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsNotSent(refused.status));
  EXPECT_EQ(ErrorInfoOf(refused.status).metadata().at("not_sent"), "true");
  EXPECT_TRUE(refused.retry_read);
  EXPECT_TRUE(refused.retry_write);  // provably never reached the upstream
  EXPECT_TRUE(refused.not_processed);

  HttpOutcome reset = ClassifyTransportFailure(kCall, absl::UnavailableError("reset"));
  EXPECT_FALSE(IsNotSent(reset.status));
  EXPECT_EQ(ErrorInfoOf(reset.status).metadata().count("not_sent"), 0u);
  EXPECT_TRUE(reset.retry_read);
  EXPECT_FALSE(reset.retry_write);
  EXPECT_FALSE(reset.not_processed);

  HttpOutcome cancelled =
      ClassifyTransportFailure(kCall, MarkNotSent(absl::CancelledError("cancelled")));
  EXPECT_EQ(cancelled.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(cancelled.not_processed);
  EXPECT_FALSE(cancelled.retry_read);
}

TEST(ClassifyTransportFailure, ResponseTooLargeIsInternal) {
  const HttpOutcome outcome =
      ClassifyTransportFailure(kCall, ResponseTooLargeError("body over 8388608 bytes"));
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ErrorInfoOf(outcome.status).reason(), "UPSTREAM_RESPONSE_TOO_LARGE");
  EXPECT_FALSE(outcome.retry_read);
  EXPECT_FALSE(outcome.not_processed);
}

}  // namespace
}  // namespace gateway::upstream
