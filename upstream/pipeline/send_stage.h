// Stage 5, send with retry: one HTTP request per attempt over the shared transport, the
// classification of its outcome, and the retry decision.
//
//   SendStage send(&transport, &scheduler, retry_policy, max_pause);
//   HttpTransport::RequestId id = send.Send(prepared, options, deadline, done);
//   send.Cancel(id);                               // not sent: never sent; in flight: aborted
//   SendStage::Outcome o = send.Classify(prepared, response);
//   std::optional<absl::Duration> wait = send.RetryDelay(prepared, o, attempt, deadline, margin);
//
// CONTRACT.
// - Send builds the request (base URL + expanded path, the upstream's auth header, JSON body,
//   fairness_key = the bucket key, the upstream's max_response_bytes, the call's trace context
//   headers) and hands it to HttpTransport::Send; writes go on a fresh
//   connection (a reused one can make libcurl resend them), reads on pooled ones.
// - Classify is error_mapping's one outcome table (ClassifyResponse, ClassifyTransportFailure)
//   applied to the route: the status, `not_sent` (the transport proved no byte left),
//   `not_processed` (also: the upstream answered 429, 449 or a 4xx other than 408, which mean it
//   did not act), `retryable` (the table's retry_read for reads, retry_write for writes), the
//   Retry-After capped at `max_pause` (the configured rate_limits.max_pause_seconds, the same
//   cap as the limiter's), and the table's feedback for the limiter (`pause`, `rate_limit`).
//   The pipeline has no table of its own.
// - RetryDelay: only what Classify called retryable (reads on 429, 449, 502, 503, 504 and
//   connection failures; writes on 429, 449 and failures that provably never left the gateway),
//   at most RetryPolicy::max_attempts attempts, with exponential backoff and jitter, at least
//   the upstream's Retry-After, and only when the next attempt fits before `deadline` (plus
//   `margin`, the expected latency); nullopt otherwise.
// Thread-safe (immutable after construction).
#ifndef GATEWAY_UPSTREAM_PIPELINE_SEND_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_SEND_STAGE_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "upstream/pipeline/call.h"
#include "upstream/scheduler.h"
#include "upstream/transport/error_mapping.h"
#include "upstream/transport/http_transport.h"
#include "upstream/transport/retry_after.h"

namespace gateway::upstream {

struct RetryPolicy {
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

class SendStage {
 public:
  // `max_pause`: the longest wait an upstream's header may impose (RateLimiter::max_pause).
  SendStage(HttpTransport* transport, Scheduler* clock, RetryPolicy retry,
            absl::Duration max_pause = kDefaultRetryAfterCap)
      : transport_(transport), clock_(clock), retry_(retry), max_pause_(max_pause) {}

  // `options`: of the call whose request this is (its trace context is forwarded).
  HttpRequest Build(const PreparedCall& prepared, const CallOptions& options,
                    absl::Time deadline) const;
  HttpTransport::RequestId Send(const PreparedCall& prepared, const CallOptions& options,
                                absl::Time deadline, HttpTransport::Done done) const {
    return transport_->Send(Build(prepared, options, deadline), std::move(done));
  }
  void Cancel(HttpTransport::RequestId id) const { transport_->Cancel(id); }

  struct Outcome {
    absl::Status status;  // OK for 2xx
    int http_status = 0;  // 0 when no response arrived
    std::optional<absl::Duration> retry_after;  // capped at max_pause
    std::optional<absl::Duration> pause;        // HttpOutcome::pause: hold the bucket this long
    std::optional<HttpOutcome::RateLimit> rate_limit;  // X-RateLimit-* of the response
    bool not_sent = false;       // provably never left the gateway
    bool not_processed = false;  // not_sent, or the upstream said it did not act
    bool retryable = false;      // the table allows sending it again (for this route's kind)
  };
  Outcome Classify(const PreparedCall& prepared,
                   const absl::StatusOr<HttpResponse>& response) const;

  std::optional<absl::Duration> RetryDelay(const PreparedCall& prepared, const Outcome& outcome,
                                           int attempt, absl::Time deadline,
                                           absl::Duration margin) const;

 private:
  HttpTransport* transport_;
  Scheduler* clock_;
  RetryPolicy retry_;
  absl::Duration max_pause_;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_SEND_STAGE_H_
