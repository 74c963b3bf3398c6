#include "upstream/pipeline/send_stage.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "upstream/transport/error_mapping.h"

namespace gateway::upstream {

HttpRequest SendStage::Build(const PreparedCall& prepared, const CallOptions& options,
                              absl::Time deadline) const {
  const UpstreamConfig& upstream = *prepared.upstream;
  HttpRequest request;
  request.method = prepared.route->binding.method();
  request.url = absl::StrCat(upstream.base_url, prepared.parts.path_and_query);
  request.deadline = deadline;
  request.fresh_connection = !prepared.route->read;
  request.fairness_key = prepared.bucket_key;  // one slow bucket cannot take every connection
  request.max_response_bytes = upstream.max_response_bytes;
  request.headers.reserve(3 + options.trace_headers.size());
  request.headers.emplace_back("Accept", "application/json");
  if (upstream.auth_header == "Authorization") {
    request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", upstream.token));
  } else {
    request.headers.emplace_back(upstream.auth_header, upstream.token);
  }
  for (const auto& header : options.trace_headers) request.headers.push_back(header);
  if (prepared.parts.has_body) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = prepared.parts.body;
  }
  return request;
}

SendStage::Outcome SendStage::Classify(const PreparedCall& prepared,
                                       const absl::StatusOr<HttpResponse>& response) const {
  const Route& route = *prepared.route;
  const UpstreamCallInfo info{prepared.upstream->name, route.rpc, route.policy.bucket()};
  // The one outcome table (error_mapping.h): code, reason, what may be retried, what certainly
  // was not processed. HTTP-date Retry-After values are read on the pipeline's clock.
  HttpOutcome row;
  Outcome outcome;
  if (response.ok()) {
    outcome.http_status = response->status;
    row = ClassifyResponse(info, *response, clock_->Now(), max_pause_);
  } else {
    row = ClassifyTransportFailure(info, response.status());
    outcome.not_sent = IsNotSent(response.status());
  }
  outcome.status = std::move(row.status);
  outcome.retry_after = row.retry_after;
  outcome.pause = row.pause;
  outcome.rate_limit = row.rate_limit;
  outcome.not_processed = row.not_processed;
  outcome.retryable = route.read ? row.retry_read : row.retry_write;
  return outcome;
}

std::optional<absl::Duration> SendStage::RetryDelay(const PreparedCall& prepared,
                                                    const Outcome& outcome, int attempt,
                                                    absl::Time deadline,
                                                    absl::Duration margin) const {
  if (outcome.status.ok() || !outcome.retryable || attempt + 1 >= retry_.max_attempts) {
    return std::nullopt;
  }
  absl::Duration backoff =
      std::min(retry_.max_backoff, retry_.initial_backoff * (1 << std::min(attempt, 20)));
  backoff = backoff * absl::Uniform(absl::BitGen(), 0.5, 1.0);  // jitter
  // Honour Retry-After (a 429 also paused the bucket in the limiter, for every replica). When
  // the wait cannot fit in the deadline, the caller gets the upstream's answer and its
  // RetryInfo now rather than a later, vaguer rejection.
  if (outcome.retry_after.has_value()) backoff = std::max(backoff, *outcome.retry_after);
  if (clock_->Now() + backoff + margin >= deadline) return std::nullopt;
  return backoff;
}

}  // namespace gateway::upstream
