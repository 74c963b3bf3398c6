#include "upstream/pipeline/call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "upstream/errors.h"
#include "upstream/pipeline/exchange.h"

namespace gateway::upstream {

std::vector<std::string> PartitionTags(absl::string_view partition,
                                       std::vector<std::string> tags) {
  if (partition.empty()) return tags;
  for (std::string& tag : tags) tag = absl::StrCat(partition, "/", tag);
  return tags;
}

Call::Call(CallOptions options, Done done, std::shared_ptr<const void> owner)
    : owner_(std::move(owner)), options_(std::move(options)), done_(std::move(done)) {}

Call::State Call::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

bool Call::Advance(State next) {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kDone) return false;
  state_ = next;
  return true;
}

bool Call::Attach(std::shared_ptr<Exchange> exchange) {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kDone) return false;
  state_ = State::kWaiting;
  exchange_ = std::move(exchange);
  return true;
}

bool Call::End(absl::StatusOr<std::string> result) {
  Done done;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone) return false;
    state_ = State::kDone;
    done = std::move(done_);
    exchange_.reset();
  }
  std::move(done)(std::move(result));
  return true;
}

void Call::Cancel(CancelReason reason) {
  std::shared_ptr<Exchange> exchange;
  bool waiting = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kDone) return;
    waiting = state_ == State::kWaiting;
    exchange = exchange_.lock();
  }
  if (exchange != nullptr) {
    exchange->Leave(this, reason);  // ends the call now, or once the abort is settled
    return;
  }
  // Not yet waiting on upstream work: nothing of it was sent. Waiting, but the exchange is
  // already gone (being destroyed, and about to end this call itself): whether its request
  // reached the upstream is not known here, so the answer does not claim it was not sent.
  End(CancelStatus(reason, prepared_, /*not_sent=*/!waiting));
}

absl::Status Call::CancelStatus(CancelReason reason, const PreparedCall& prepared, bool not_sent) {
  ErrorDetails details;
  absl::StatusCode code = absl::StatusCode::kCancelled;
  std::string message;
  switch (reason) {
    case CancelReason::kCallerLeft:
      code = absl::StatusCode::kCancelled;
      details.reason = "CALLER_CANCELLED";
      message = "the caller cancelled the call";
      break;
    case CancelReason::kDeadline:
      code = absl::StatusCode::kDeadlineExceeded;
      details.reason = "DEADLINE_EXCEEDED";
      message = "the call's deadline passed before the upstream answered";
      break;
    case CancelReason::kShutdown:
      code = absl::StatusCode::kUnavailable;
      details.reason = "SHUTTING_DOWN";
      message = "the gateway is shutting down";
      break;
  }
  const bool write = prepared.route != nullptr && !prepared.route->read;
  if (not_sent) {
    absl::StrAppend(&message, "; the upstream request was not sent");
  } else if (write) {
    absl::StrAppend(&message,
                    "; the request was in flight and the upstream may have processed it");
    details.metadata["upstream_may_have_processed"] = "true";
  }
  details.metadata["not_sent"] = not_sent ? "true" : "false";
  if (prepared.route != nullptr) details.metadata["rpc"] = prepared.route->rpc;
  if (prepared.upstream != nullptr) details.metadata["upstream"] = prepared.upstream->name;
  return GatewayError(code, message, details);
}

}  // namespace gateway::upstream
