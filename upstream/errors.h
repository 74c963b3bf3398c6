// Errors as values, with google.rpc details attached.
//
// Every error the gateway returns is an absl::Status carrying google.rpc detail messages as
// payloads (keyed by their type URL). `upstream/` builds them; `service/` turns them into a
// grpc::Status with a `grpc-status-details-bin` trailer, without knowing where they came from.
//
//   return GatewayError(absl::StatusCode::kInvalidArgument, "identifier: must be id:<digits>...",
//                       {.reason = "INVALID_FIELD", .field_violations = {{"identifier", "..."}}});
#ifndef GATEWAY_UPSTREAM_ERRORS_H_
#define GATEWAY_UPSTREAM_ERRORS_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/any.pb.h"

namespace gateway::upstream {

// ErrorInfo.domain of errors the gateway raises itself (validation, configuration, limits).
// Errors that come from an upstream use the upstream's name ("respondio", "chatwoot").
inline constexpr absl::string_view kGatewayDomain = "gateway";

struct ErrorDetails {
  // ErrorInfo.reason: a stable UPPER_SNAKE identifier, e.g. "UPSTREAM_NOT_FOUND". Required.
  std::string reason;
  // ErrorInfo.domain; defaults to kGatewayDomain.
  std::string domain;
  // ErrorInfo.metadata: upstream status, bucket, field, ... Never secrets (registered ones are
  // redacted anyway).
  std::map<std::string, std::string> metadata;
  // RetryInfo.retry_delay, when the caller should come back after a known delay.
  std::optional<absl::Duration> retry_delay;
  // BadRequest.field_violations as (field, description).
  std::vector<std::pair<std::string, std::string>> field_violations;
  // QuotaFailure.violations as (subject, description).
  std::vector<std::pair<std::string, std::string>> quota_violations;
};

// Returns a non-OK status with `code`, `message` and the details as payloads.
// `code` must not be kOk. Every string (message, metadata, violations) is made valid UTF-8 and
// has the registered secrets redacted (safe_text.h), so upstream text can be passed as is.
absl::Status GatewayError(absl::StatusCode code, absl::string_view message,
                          const ErrorDetails& details);

// Shorthand for INVALID_ARGUMENT on one request field, with reason INVALID_ARGUMENT,
// metadata {field} and a BadRequest naming the field.
absl::Status InvalidField(absl::string_view field, absl::string_view description);

// The google.rpc detail messages carried by `status`, packed as Any, in a stable order
// (ErrorInfo first). Empty for OK or for statuses built without GatewayError.
std::vector<google::protobuf::Any> ErrorDetailsOf(const absl::Status& status);

// ErrorInfo.reason of `status`, or "" when it has none. Handy in tests and logs.
std::string ErrorReasonOf(const absl::Status& status);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_ERRORS_H_
