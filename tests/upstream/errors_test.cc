#include "upstream/errors.h"

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DetailOf;
using ::gateway::testing::ErrorInfoOf;

TEST(GatewayError, CarriesEveryDetailInStableOrder) {
  const absl::Status status = GatewayError(
      absl::StatusCode::kResourceExhausted, "slow down",
      {.reason = "UPSTREAM_RATE_LIMITED",
       .domain = "respondio",
       .metadata = {{"bucket", "contact_get"}},
       .retry_delay = absl::Seconds(7) + absl::Milliseconds(250),
       .field_violations = {{"identifier", "bad"}},
       .quota_violations = {{"contact_get", "limit reached"}}});
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "slow down");
  const auto details = ErrorDetailsOf(status);
  ASSERT_EQ(details.size(), 4u);
  EXPECT_EQ(details[0].type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(details[1].type_url(), "type.googleapis.com/google.rpc.RetryInfo");
  EXPECT_EQ(details[2].type_url(), "type.googleapis.com/google.rpc.BadRequest");
  EXPECT_EQ(details[3].type_url(), "type.googleapis.com/google.rpc.QuotaFailure");

  const auto info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(info.domain(), "respondio");
  EXPECT_EQ(info.metadata().at("bucket"), "contact_get");
  const auto retry = DetailOf<google::rpc::RetryInfo>(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 7);
  EXPECT_EQ(retry->retry_delay().nanos(), 250000000);
  const auto bad = DetailOf<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field_violations(0).field(), "identifier");
  EXPECT_EQ(bad->field_violations(0).description(), "bad");
  const auto quota = DetailOf<google::rpc::QuotaFailure>(status);
  ASSERT_TRUE(quota.has_value());
  EXPECT_EQ(quota->violations(0).subject(), "contact_get");
}

TEST(GatewayError, DefaultsAndOmissions) {
  const absl::Status status =
      GatewayError(absl::StatusCode::kInternal, "x", {.reason = "SOMETHING"});
  EXPECT_EQ(ErrorInfoOf(status).domain(), "gateway");
  EXPECT_EQ(ErrorDetailsOf(status).size(), 1u);
  EXPECT_FALSE(DetailOf<google::rpc::RetryInfo>(status).has_value());
}

TEST(GatewayError, NegativeRetryDelayIsClampedToZero) {
  const auto retry = DetailOf<google::rpc::RetryInfo>(GatewayError(
      absl::StatusCode::kUnavailable, "x", {.reason = "R", .retry_delay = absl::Seconds(-3)}));
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 0);
  EXPECT_EQ(retry->retry_delay().nanos(), 0);
}

TEST(InvalidField, NamesTheField) {
  const absl::Status status = InvalidField("message.type", "is required");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "message.type: is required");
  EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("field"), "message.type");
  const auto bad = DetailOf<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 1);
  EXPECT_EQ(bad->field_violations(0).field(), "message.type");
  EXPECT_EQ(bad->field_violations(0).description(), "is required");
}

TEST(ErrorReasonOf, PlainStatusesHaveNone) {
  EXPECT_EQ(ErrorReasonOf(absl::OkStatus()), "");
  EXPECT_EQ(ErrorReasonOf(absl::InternalError("boom")), "");
  EXPECT_TRUE(ErrorDetailsOf(absl::InternalError("boom")).empty());
  EXPECT_EQ(ErrorReasonOf(InvalidField("a", "b")), "INVALID_ARGUMENT");
}

}  // namespace
}  // namespace gateway::upstream
