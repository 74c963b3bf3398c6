#include "upstream/transport/error_mapping.h"

#include <cstdint>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "upstream/errors.h"
#include "upstream/safe_text.h"
#include "upstream/transport/upstream_json.h"

namespace gateway::upstream {
namespace {

// The human-readable message of a parsed upstream error body: respond.io {code, message},
// Chatwoot {error} / {message} / {errors: [...]}. Valid UTF-8, secrets redacted (before cutting,
// so no prefix of a secret survives), at most kMaxUpstreamMessageBytes plus "...".
std::string UpstreamMessage(const nlohmann::json& j) {
  std::string message;
  if (j.is_object()) {
    for (const char* key : {"message", "error", "errors", "description"}) {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) continue;
      message = it->is_string() ? it->get<std::string>()
                                : it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      break;
    }
  }
  if (message.empty() && !j.is_object()) {
    message = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return TruncateUtf8(RedactSecrets(SanitizeUtf8(message)), kMaxUpstreamMessageBytes);
}

ErrorDetails BaseDetails(const UpstreamCallInfo& call) {
  ErrorDetails details;
  details.domain = call.upstream;
  details.metadata = {{"upstream", call.upstream}, {"rpc", call.rpc}};
  return details;
}

}  // namespace

std::optional<absl::Duration> ParseRetryAfter(const HttpResponse& response, absl::Time now) {
  return RetryAfterOf(response, now);
}

HttpOutcome ClassifyResponse(const UpstreamCallInfo& call, const HttpResponse& response,
                             absl::Time now, absl::Duration retry_after_cap) {
  HttpOutcome out;
  const int status = response.status;
  out.retry_after = RetryAfterOf(response, now, retry_after_cap);
  auto limit = response.headers.find("x-ratelimit-limit");
  auto remaining = response.headers.find("x-ratelimit-remaining");
  HttpOutcome::RateLimit rate_limit;
  if (limit != response.headers.end() && remaining != response.headers.end() &&
      absl::SimpleAtoi(limit->second, &rate_limit.limit) &&
      absl::SimpleAtoi(remaining->second, &rate_limit.remaining)) {
    out.rate_limit = rate_limit;
  }
  if (status >= 200 && status < 300) return out;

  absl::StatusCode code;
  std::string summary;
  ErrorDetails details = BaseDetails(call);
  details.metadata["upstream_status"] = absl::StrCat(status);
  // 4xx other than 408 (a timeout of the upstream's own) means the upstream refused the request.
  out.not_processed = status >= 400 && status < 500 && status != 408;
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
    details.retry_delay = out.retry_after.value_or(absl::Seconds(1));
    out.pause = details.retry_delay;
    details.quota_violations = {{call.bucket, "upstream rate limit reached"}};
    details.metadata["bucket"] = call.bucket;
    summary = "the upstream rate limit was reached";
    out.retry_read = out.retry_write = true;
  } else if (status == 449) {
    code = absl::StatusCode::kUnavailable;
    details.reason = "UPSTREAM_NOT_READY";
    details.retry_delay = out.retry_after.value_or(absl::Seconds(5));
    summary = "the upstream is still creating the resource; retry later";
    out.retry_read = out.retry_write = true;
  } else if (status >= 500) {
    code = absl::StatusCode::kUnavailable;
    details.reason = "UPSTREAM_UNAVAILABLE";
    details.retry_delay = out.retry_after;
    summary = "the upstream is unavailable";
    out.retry_read = status == 502 || status == 503 || status == 504;
  } else {
    code = absl::StatusCode::kFailedPrecondition;
    details.reason = "UPSTREAM_REJECTED";
    summary = "the upstream refused the request";
  }

  std::string message;
  if (!response.body.empty()) {
    absl::StatusOr<nlohmann::json> body = ParseUpstreamJson(response.body);
    if (!body.ok() && IsJsonTooDeep(body.status())) {
      // Nothing of it is trusted or relayed; the limiter still saw the headers.
      out.status = StatusFromBadBody(call, status, body.status());
      out.retry_read = out.retry_write = false;
      return out;
    }
    if (body.ok()) message = UpstreamMessage(*body);
  }
  if (!message.empty()) details.metadata["upstream_message"] = message;
  std::string text = absl::StrCat(call.upstream, " answered HTTP ", status, ": ", summary);
  if (!message.empty()) absl::StrAppend(&text, " (", message, ")");
  out.status = GatewayError(code, text, details);
  return out;
}

HttpOutcome ClassifyTransportFailure(const UpstreamCallInfo& call,
                                     const absl::Status& transport) {
  HttpOutcome out;
  const bool not_sent = IsNotSent(transport);
  out.not_processed = not_sent;
  ErrorDetails details = BaseDetails(call);
  if (not_sent) details.metadata["not_sent"] = "true";
  absl::Status status;
  if (IsResponseTooLarge(transport)) {
    details.reason = "UPSTREAM_RESPONSE_TOO_LARGE";
    status = GatewayError(absl::StatusCode::kInternal,
                          absl::StrCat(call.upstream, " answered with a response over the "
                                       "gateway's size limit (", transport.message(), ")"),
                          details);
  } else if (transport.code() == absl::StatusCode::kDeadlineExceeded) {
    details.reason = "UPSTREAM_TIMEOUT";
    status = GatewayError(absl::StatusCode::kDeadlineExceeded,
                          absl::StrCat(call.upstream, " did not answer before the deadline"),
                          details);
  } else if (transport.code() == absl::StatusCode::kCancelled) {
    details.reason = "CANCELLED";
    status = GatewayError(absl::StatusCode::kCancelled, "the call was cancelled", details);
  } else {
    details.reason = "UPSTREAM_UNREACHABLE";
    status = GatewayError(absl::StatusCode::kUnavailable,
                          absl::StrCat(call.upstream, " could not be reached: ",
                                       transport.message()),
                          details);
    out.retry_read = transport.code() == absl::StatusCode::kUnavailable;
    out.retry_write = out.retry_read && not_sent;
  }
  out.status = not_sent ? MarkNotSent(std::move(status)) : std::move(status);
  return out;
}

absl::Status StatusFromHttp(const UpstreamCallInfo& call, const HttpResponse& response) {
  return ClassifyResponse(call, response, absl::Now()).status;
}

absl::Status StatusFromTransport(const UpstreamCallInfo& call, const absl::Status& transport) {
  return ClassifyTransportFailure(call, transport).status;
}

absl::Status StatusFromBadBody(const UpstreamCallInfo& call, int http_status,
                               const absl::Status& parse_error) {
  ErrorDetails details = BaseDetails(call);
  details.metadata["upstream_status"] = absl::StrCat(http_status);
  if (IsJsonTooDeep(parse_error)) {
    details.reason = "UPSTREAM_RESPONSE_TOO_DEEP";
    return GatewayError(absl::StatusCode::kInternal,
                        absl::StrCat(call.upstream, " answered with JSON nested deeper than the "
                                     "gateway accepts (", kMaxUpstreamJsonDepth, " levels)"),
                        details);
  }
  details.reason = "UPSTREAM_BAD_RESPONSE";
  return GatewayError(absl::StatusCode::kInternal,
                      absl::StrCat(call.upstream, " answered with a body that is not JSON"),
                      details);
}

}  // namespace gateway::upstream
