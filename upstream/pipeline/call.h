// One caller's call through the pipeline: an object with an explicit state and a Cancel().
//
//   std::shared_ptr<Call> call = dispatcher.Call(route, request, options, done);
//   ...
//   call->Cancel(Call::CancelReason::kCallerLeft);   // gRPC's OnCancel
//
// A Call is created by Dispatcher::Call and moves forward through its states, never back:
//
//   kPreparing ─▶ kReplaying (request_id) ─▶ kLookingUp (cache) ─▶ kWaiting (on an Exchange) ─▶ kDone
//        └──────────────┴────────────────────────┴───────────────────────┴─────────────────────▶ kDone
//
// It ENDS EXACTLY ONCE: `done` runs once, in End(), and the state is then kDone. Nothing of a
// call happens after it ended: every stage checks the state before it starts work for the call
// (Advance/Attach fail on an ended call), and an Exchange (the upstream request shared by the
// calls waiting on it) never starts an admission, request or retry once its last waiter left.
//
// Cancel() ends the call early, whatever it is doing:
//   - before it waits on an exchange (preparing, waiting for its request_id record or the
//     cache): at once; late answers of those stages are cleaned up (a request_id record that
//     turns out to be ours is abandoned);
//   - waiting on an exchange with other calls (a coalesced read): it leaves at once, the others
//     keep the exchange;
//   - the exchange's last waiter: the exchange is aborted (the call leaves the limiter queue
//     without spending a token, a request not yet sent is never sent, one in flight is
//     aborted) and the call ends when the abort is settled, with an answer that says whether
//     the upstream may have processed it (ErrorInfo metadata `not_sent`).
// Cancelling an ended call is a no-op.
//
// OWNERSHIP. A call holds the exchange it waits on weakly; the exchange holds its waiters. What
// keeps an exchange alive is only the work it waits on (the limiter's, the transport's, the
// scheduler's or Redis' pending callback). So there is no reference cycle between calls and
// exchanges: should a component drop such a callback without running it (a scheduler destroyed
// with pending timers, a transport that loses a request), the exchange is destroyed, and ends
// the calls still waiting on it (exchange.h), instead of both staying alive forever.
//
// Thread-safe. `done` runs on whichever thread ends the call (never while a lock is held).
#ifndef GATEWAY_UPSTREAM_PIPELINE_CALL_H_
#define GATEWAY_UPSTREAM_PIPELINE_CALL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "upstream/binding/route.h"
#include "upstream/budget/rate_limiter.h"

namespace gateway::upstream {

// How the gateway reaches one upstream. `token` is a secret: never logged or returned.
struct UpstreamConfig {
  std::string name;      // "respondio", "chatwoot"
  std::string base_url;  // without trailing '/', e.g. "https://api.respond.io/v2"
  std::string token;
  // Header that carries the token: "Authorization" sends "Bearer <token>"; any other header
  // name (Chatwoot's "api_access_token") sends the bare token.
  std::string auth_header = "Authorization";
  PathDefaults path_defaults;  // e.g. {"account_id": "1"}
  // Whose budget the rate limits count: respond.io limits per organization (its token),
  // Chatwoot per client IP (all tokens behind one egress share it).
  enum class LimitScope { kToken, kHost };
  LimitScope limit_scope = LimitScope::kToken;
  // Largest response body accepted from this upstream, in bytes (config key
  // upstreams.<name>.max_response_bytes); 0 means the HTTP client's default, 8 MiB. A larger
  // reply is INTERNAL UPSTREAM_RESPONSE_TOO_LARGE, read no further and never cached.
  int64_t max_response_bytes = 0;
  // Who else may share this account's cache entries, cache tags and request_id records: "" for
  // all, else a name (the gateway's workspace) mixed into those keys, so that one workspace's
  // writes and events invalidate only its own entries (PartitionTags). Budgets are not
  // partitioned: they follow limit_scope, the upstream's own accounting.
  std::string partition;
};

// `tags` as stored in the reply cache for an account of `partition`: "<partition>/<tag>", or
// unchanged for partition "" (a gateway without workspaces, and the workspace `default`).
std::vector<std::string> PartitionTags(absl::string_view partition, std::vector<std::string> tags);

// What happened on the way to the reply, for the per-call log and metrics. Filled before
// `done` runs; owned by the caller and kept alive until then.
struct CallStats {
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none arrived
  bool cache_hit = false;   // answered from the reply cache
  // Time spent waiting for rate-limit admission (summed over attempts); `limited` says whether
  // the call asked the limiter at all (a cache hit does not).
  absl::Duration queue_wait;
  bool limited = false;
  // Time from handing the last HTTP request to the transport to its outcome; 0 when none was sent.
  absl::Duration upstream_latency;
};

struct CallOptions {
  // On the scheduler's clock (Dispatcher::Components::scheduler).
  absl::Time deadline = absl::InfiniteFuture();
  // Who is calling: the authenticated caller's name (or the `x-caller` metadata when the gateway
  // runs without caller authentication); "" when unknown. The rate limiter's fairness class,
  // and the owner of the call's request_id record (records are per caller).
  std::string caller;
  // Skip the cache (metadata `cache-control: no-cache`): neither read nor joined to an identical
  // read in flight; the reply is not stored either.
  bool bypass_cache = false;
  // Optional; see CallStats.
  CallStats* stats = nullptr;
  // Headers copied into every upstream request of the call: the W3C trace context
  // (`traceparent`, `tracestate`; service/trace_context.h).
  std::vector<std::pair<std::string, std::string>> trace_headers;
};

// Everything the prepare stage derives from one request, once (prepare_stage.h).
struct PreparedCall {
  const Route* route = nullptr;
  const UpstreamConfig* upstream = nullptr;
  UpstreamRequestParts parts;
  std::string cursor;  // the current page's cursor (from page_token)
  int page_size = 0;
  std::string bucket_key;  // "upstream:account:bucket"
  BucketConfig bucket;
  std::string cache_key;                   // reads: account|rpc|request bytes
  std::vector<std::string> cache_tags;     // reads: expanded route.cache_tags
  std::vector<std::string> invalidations;  // writes: expanded route.invalidates
  // cache_tags and invalidations are partitioned (PartitionTags with upstream->partition), and
  // so must be the aliases the commit derives from the reply.
  std::string request_id;                  // writes: the request's request_id, or ""
  std::string fingerprint;                 // writes with request_id: of the request bytes
  std::string idempotency_key;             // writes with request_id: per caller
  bool cached = false;     // a read the cache may answer and store
  bool coalesced = false;  // a read identical concurrent calls may share
};

class Exchange;

class Call {
 public:
  enum class State {
    kPreparing,  // inside Dispatcher::Call: validating, building the upstream request
    kReplaying,  // waiting for the request_id record (idempotency store)
    kLookingUp,  // waiting for the reply cache
    kWaiting,    // attached to an Exchange: queued for a token, in flight, backing off, following
    kDone,       // ended: answered exactly once; nothing of it happens any more
  };
  enum class CancelReason {
    kCallerLeft,  // the caller cancelled (gRPC OnCancel): CANCELLED, CALLER_CANCELLED
    kDeadline,    // the caller's deadline passed: DEADLINE_EXCEEDED, DEADLINE_EXCEEDED
    kShutdown,    // the gateway is stopping: UNAVAILABLE, SHUTTING_DOWN
  };
  using Done = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  // `owner` (may be null) is kept until the Call is destroyed: the Dispatcher passes itself, so
  // that every callback still holding the call (or its exchange) finds the dispatcher alive.
  Call(CallOptions options, Done done, std::shared_ptr<const void> owner = nullptr);
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Ends the call early (see the file comment). Thread-safe; idempotent.
  void Cancel(CancelReason reason) ABSL_LOCKS_EXCLUDED(mu_);

  State state() const ABSL_LOCKS_EXCLUDED(mu_);
  const CallOptions& options() const { return options_; }

  // ---- for the pipeline's stages ----

  PreparedCall& prepared() { return prepared_; }
  const PreparedCall& prepared() const { return prepared_; }

  // Moves to `next` (kReplaying or kLookingUp). False when the call already ended.
  bool Advance(State next) ABSL_LOCKS_EXCLUDED(mu_);
  // Moves to kWaiting on `exchange`. False when the call already ended.
  bool Attach(std::shared_ptr<Exchange> exchange) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the call with `result`: runs `done` unless the call had ended already (returns false).
  bool End(absl::StatusOr<std::string> result) ABSL_LOCKS_EXCLUDED(mu_);

  // The answer of a call ended by `reason`. `not_sent`: no byte of its upstream request left the
  // gateway (metadata not_sent "true"); otherwise, for a write, the upstream may have processed
  // it (not_sent "false", upstream_may_have_processed "true").
  static absl::Status CancelStatus(CancelReason reason, const PreparedCall& prepared,
                                   bool not_sent);

 private:
  const std::shared_ptr<const void> owner_;  // first: destroyed after everything else
  const CallOptions options_;
  PreparedCall prepared_;
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kPreparing;
  Done done_ ABSL_GUARDED_BY(mu_);
  // While kWaiting. Weak: see OWNERSHIP in the file comment.
  std::weak_ptr<Exchange> exchange_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_CALL_H_
