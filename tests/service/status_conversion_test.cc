#include "service/status_conversion.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

// The google.rpc.Status a client reads from the grpc-status-details-bin trailer.
google::rpc::Status DetailsOf(const grpc::Status& status) {
  google::rpc::Status proto;
  EXPECT_TRUE(proto.ParseFromString(status.error_details()));
  return proto;
}

template <typename Proto>
Proto Unpack(const google::protobuf::Any& any) {
  Proto proto;
  EXPECT_TRUE(any.Is<Proto>()) << any.type_url();
  EXPECT_TRUE(any.UnpackTo(&proto));
  return proto;
}

TEST(ToGrpcStatus, OkIsOk) {
  const grpc::Status status = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.error_details(), "");
}

TEST(ToGrpcStatus, DetailsRoundTrip) {
  const absl::Status error = upstream::GatewayError(
      absl::StatusCode::kResourceExhausted, "respondio answered HTTP 429",
      {.reason = "UPSTREAM_RATE_LIMITED",
       .domain = "respondio",
       .metadata = {{"bucket", "contact_get"}, {"upstream_status", "429"}},
       .retry_delay = absl::Seconds(7),
       .quota_violations = {{"contact_get", "upstream rate limit reached"}}});
  const grpc::Status status = ToGrpcStatus(error);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "respondio answered HTTP 429");

  const google::rpc::Status details = DetailsOf(status);
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(details.message(), "respondio answered HTTP 429");
  ASSERT_EQ(details.details_size(), 3);
  const auto info = Unpack<google::rpc::ErrorInfo>(details.details(0));
  EXPECT_EQ(info.reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(info.domain(), "respondio");
  EXPECT_EQ(info.metadata().at("bucket"), "contact_get");
  EXPECT_EQ(info.metadata().at("upstream_status"), "429");
  const auto retry = Unpack<google::rpc::RetryInfo>(details.details(1));
  EXPECT_EQ(retry.retry_delay().seconds(), 7);
  EXPECT_EQ(retry.retry_delay().nanos(), 0);
  const auto quota = Unpack<google::rpc::QuotaFailure>(details.details(2));
  ASSERT_EQ(quota.violations_size(), 1);
  EXPECT_EQ(quota.violations(0).subject(), "contact_get");
}

TEST(ToGrpcStatus, BadRequestRoundTrip) {
  const grpc::Status status =
      ToGrpcStatus(upstream::InvalidField("message.type", "is required"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "message.type: is required");
  const google::rpc::Status details = DetailsOf(status);
  ASSERT_EQ(details.details_size(), 2);
  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(details.details(0)).reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(details.details(0)).domain(), "gateway");
  const auto bad = Unpack<google::rpc::BadRequest>(details.details(1));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "message.type");
  EXPECT_EQ(bad.field_violations(0).description(), "is required");
}

TEST(ToGrpcStatus, PlainStatusGetsErrorInfoNamedAfterItsCode) {
  const grpc::Status status = ToGrpcStatus(absl::InternalError("boom"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(status.error_message(), "boom");
  const google::rpc::Status details = DetailsOf(status);
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INTERNAL));
  EXPECT_EQ(details.message(), "boom");
  ASSERT_EQ(details.details_size(), 1);
  const auto info = Unpack<google::rpc::ErrorInfo>(details.details(0));
  EXPECT_EQ(info.reason(), "INTERNAL");
  EXPECT_EQ(info.domain(), "gateway");

  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(
                DetailsOf(ToGrpcStatus(absl::InvalidArgumentError("x"))).details(0))
                .reason(),
            "INVALID_ARGUMENT");
  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(
                DetailsOf(ToGrpcStatus(absl::DeadlineExceededError("x"))).details(0))
                .reason(),
            "DEADLINE_EXCEEDED");
  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(
                DetailsOf(ToGrpcStatus(absl::FailedPreconditionError("x"))).details(0))
                .reason(),
            "FAILED_PRECONDITION");
}

TEST(ToGrpcStatus, PlainStatusKeepsOtherDetailPayloads) {
  absl::Status error = absl::UnavailableError("later");
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(3);
  error.SetPayload("type.googleapis.com/google.rpc.RetryInfo", absl::Cord(retry.SerializeAsString()));
  const google::rpc::Status details = DetailsOf(ToGrpcStatus(error));
  ASSERT_EQ(details.details_size(), 2);
  EXPECT_EQ(Unpack<google::rpc::ErrorInfo>(details.details(0)).reason(), "UNAVAILABLE");
  EXPECT_EQ(Unpack<google::rpc::RetryInfo>(details.details(1)).retry_delay().seconds(), 3);
}

TEST(ToGrpcStatus, EveryCodeKeepsItsNumber) {
  for (int code = 1; code <= 16; ++code) {
    SCOPED_TRACE(code);
    const absl::Status error(static_cast<absl::StatusCode>(code), "m");
    const grpc::Status status = ToGrpcStatus(error);
    EXPECT_EQ(static_cast<int>(status.error_code()), code);
    EXPECT_EQ(DetailsOf(status).code(), code);
    EXPECT_FALSE(
        Unpack<google::rpc::ErrorInfo>(DetailsOf(status).details(0)).reason().empty());
  }
}

}  // namespace
}  // namespace gateway::service
