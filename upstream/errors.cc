#include "upstream/errors.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "upstream/safe_text.h"

namespace gateway::upstream {
namespace {

// Payload keys are the type URLs, so ErrorDetailsOf can rebuild the Any messages as they were.
constexpr absl::string_view kTypePrefix = "type.googleapis.com/";

// What leaves the gateway: valid UTF-8 (protobuf string fields and most clients' status
// decoders require it), with every configured secret redacted.
std::string Safe(absl::string_view text) { return RedactSecrets(SanitizeUtf8(text)); }

template <typename Proto>
void Attach(absl::Status& status, const Proto& detail) {
  status.SetPayload(absl::StrCat(kTypePrefix, Proto::descriptor()->full_name()),
                    absl::Cord(detail.SerializeAsString()));
}

}  // namespace

absl::Status GatewayError(absl::StatusCode code, absl::string_view message,
                          const ErrorDetails& details) {
  absl::Status status(code, Safe(message));
  google::rpc::ErrorInfo info;
  info.set_reason(details.reason);
  info.set_domain(details.domain.empty() ? std::string(kGatewayDomain) : details.domain);
  for (const auto& [key, value] : details.metadata) {
    (*info.mutable_metadata())[Safe(key)] = Safe(value);
  }
  Attach(status, info);
  if (details.retry_delay.has_value()) {
    google::rpc::RetryInfo retry;
    const absl::Duration delay = std::max(*details.retry_delay, absl::ZeroDuration());
    // Whole seconds, truncated (delay >= 0). Not IDivDuration: its remainder pointer must not be
    // null, and passing nullptr crashed every error that carried a RetryInfo (429, 449, 5xx).
    const int64_t seconds = absl::ToInt64Seconds(delay);
    retry.mutable_retry_delay()->set_seconds(seconds);
    retry.mutable_retry_delay()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(delay - absl::Seconds(seconds))));
    Attach(status, retry);
  }
  if (!details.field_violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const auto& [field, description] : details.field_violations) {
      auto* violation = bad_request.add_field_violations();
      violation->set_field(Safe(field));
      violation->set_description(Safe(description));
    }
    Attach(status, bad_request);
  }
  if (!details.quota_violations.empty()) {
    google::rpc::QuotaFailure quota;
    for (const auto& [subject, description] : details.quota_violations) {
      auto* violation = quota.add_violations();
      violation->set_subject(Safe(subject));
      violation->set_description(Safe(description));
    }
    Attach(status, quota);
  }
  return status;
}

absl::Status InvalidField(absl::string_view field, absl::string_view description) {
  return GatewayError(absl::StatusCode::kInvalidArgument, absl::StrCat(field, ": ", description),
                      {.reason = "INVALID_ARGUMENT",
                       .metadata = {{"field", std::string(field)}},
                       .field_violations = {{std::string(field), std::string(description)}}});
}

std::vector<google::protobuf::Any> ErrorDetailsOf(const absl::Status& status) {
  std::vector<google::protobuf::Any> out;
  for (const google::protobuf::Descriptor* type :
       {google::rpc::ErrorInfo::descriptor(), google::rpc::RetryInfo::descriptor(),
        google::rpc::BadRequest::descriptor(), google::rpc::QuotaFailure::descriptor()}) {
    const std::string url = absl::StrCat(kTypePrefix, type->full_name());
    if (auto payload = status.GetPayload(url); payload.has_value()) {
      google::protobuf::Any any;
      any.set_type_url(url);
      any.set_value(std::string(*payload));
      out.push_back(std::move(any));
    }
  }
  return out;
}

std::string ErrorReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(
      absl::StrCat(kTypePrefix, google::rpc::ErrorInfo::descriptor()->full_name()));
  if (!payload.has_value()) return "";
  google::rpc::ErrorInfo info;
  if (!info.ParseFromString(std::string(*payload))) return "";
  return info.reason();
}

}  // namespace gateway::upstream
