#include "upstream/transport/error_mapping.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

constexpr size_t kMaxMessage = 500;

// The human-readable message of an upstream error body: respond.io {code, message}, Chatwoot
// {error} / {message} / {errors: [...]}.
std::string UpstreamMessage(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string message;
  if (j.is_object()) {
    for (const char* key : {"message", "error", "errors", "description"}) {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) continue;
      message = it->is_string() ? it->get<std::string>() : it->dump();
      break;
    }
  }
  if (message.empty() && !j.is_discarded() && !j.is_object()) message = j.dump();
  if (message.size() > kMaxMessage) message = absl::StrCat(message.substr(0, kMaxMessage), "...");
  return message;
}

}  // namespace

std::optional<absl::Duration> ParseRetryAfter(const HttpResponse& response, absl::Time now) {
  auto it = response.headers.find("retry-after");
  if (it == response.headers.end()) return std::nullopt;
  const absl::string_view value = absl::StripAsciiWhitespace(it->second);
  double seconds;
  if (absl::SimpleAtod(value, &seconds) && seconds >= 0 && seconds < 86400) {
    return absl::Seconds(seconds);
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S", std::string(value.substr(0, value.rfind(' '))),
                      &when, &err)) {
    return std::max(when - now, absl::ZeroDuration());
  }
  return std::nullopt;
}

absl::Status StatusFromHttp(const UpstreamCallInfo& call, const HttpResponse& response) {
  const int status = response.status;
  if (status >= 200 && status < 300) return absl::OkStatus();
  ErrorDetails details;
  details.domain = call.upstream;
  details.metadata = {{"upstream", call.upstream},
                      {"upstream_status", absl::StrCat(status)},
                      {"rpc", call.rpc}};
  const std::string message = UpstreamMessage(response.body);
  if (!message.empty()) details.metadata["upstream_message"] = message;
  const std::optional<absl::Duration> retry_after = ParseRetryAfter(response, absl::Now());
  absl::StatusCode code;
  std::string summary;
  if (status == 400 || status == 422) {
    code = absl::StatusCode::kInvalidArgument;
    details.reason = "UPSTREAM_INVALID_ARGUMENT";
    summary = "the upstream rejected the request";
  } else if (status == 401) {
    code = absl::StatusCode::kInternal;
    details.reason = "UPSTREAM_AUTH_REJECTED";
    summary = "the upstream rejected the gateway's API token; the gateway's configuration must be fixed";
  } else if (status == 403) {
    code = absl::StatusCode::kPermissionDenied;
    details.reason = "UPSTREAM_PERMISSION_DENIED";
    summary = "the upstream denied access to this resource";
  } else if (status == 404) {
    code = absl::StatusCode::kNotFound;
    details.reason = "UPSTREAM_NOT_FOUND";
    summary = "not found";
  } else if (status == 409) {
    code = absl::StatusCode::kAlreadyExists;
    details.reason = "UPSTREAM_CONFLICT";
    summary = "the upstream reported a conflict";
  } else if (status == 429) {
    code = absl::StatusCode::kResourceExhausted;
    details.reason = "UPSTREAM_RATE_LIMITED";
    details.retry_delay = retry_after.value_or(absl::Seconds(1));
    details.quota_violations = {{call.bucket, "upstream rate limit reached"}};
    details.metadata["bucket"] = call.bucket;
    summary = "the upstream rate limit was reached";
  } else if (status == 449) {
    code = absl::StatusCode::kUnavailable;
    details.reason = "UPSTREAM_NOT_READY";
    details.retry_delay = retry_after.value_or(absl::Seconds(5));
    summary = "the upstream is still creating the resource; retry later";
  } else if (status >= 500) {
    code = absl::StatusCode::kUnavailable;
    details.reason = "UPSTREAM_UNAVAILABLE";
    details.retry_delay = retry_after;
    summary = "the upstream is unavailable";
  } else {
    code = absl::StatusCode::kFailedPrecondition;
    details.reason = "UPSTREAM_REJECTED";
    summary = "the upstream refused the request";
  }
  std::string text = absl::StrCat(call.upstream, " answered HTTP ", status, ": ", summary);
  if (!message.empty()) absl::StrAppend(&text, " (", message, ")");
  return GatewayError(code, text, details);
}

absl::Status StatusFromTransport(const UpstreamCallInfo& call, const absl::Status& transport) {
  ErrorDetails details;
  details.domain = call.upstream;
  details.metadata = {{"upstream", call.upstream}, {"rpc", call.rpc}};
  if (transport.code() == absl::StatusCode::kDeadlineExceeded) {
    details.reason = "UPSTREAM_TIMEOUT";
    return GatewayError(absl::StatusCode::kDeadlineExceeded,
                        absl::StrCat(call.upstream, " did not answer before the deadline"), details);
  }
  if (transport.code() == absl::StatusCode::kCancelled) {
    details.reason = "CANCELLED";
    return GatewayError(absl::StatusCode::kCancelled, "the call was cancelled", details);
  }
  details.reason = "UPSTREAM_UNREACHABLE";
  return GatewayError(absl::StatusCode::kUnavailable,
                      absl::StrCat(call.upstream, " could not be reached: ", transport.message()),
                      details);
}

}  // namespace gateway::upstream
