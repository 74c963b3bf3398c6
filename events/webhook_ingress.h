// Webhook ingress: checks, decodes and stores one upstream webhook, and invalidates the cache
// entries it makes stale. WebhookServer (webhook_server.h) serves it over HTTP.
//
//   POST /webhooks/{upstream}[/{workspace}]   upstream: respondio | chatwoot
//
// Answers (JSON bodies {"status": ..., "reason": ..., "id": ...}):
//   200  stored (or a duplicate of a stored event: {"duplicate": true}, nothing new stored)
//   400  MALFORMED_JSON (not JSON), MALFORMED_EVENT (no event type)
//   401  SIGNATURE_MISSING, SIGNATURE_INVALID, TIMESTAMP_MISSING, TIMESTAMP_STALE,
//        NO_SECRET (no secret configured for the upstream and unsigned webhooks not allowed)
//   404  UNKNOWN_UPSTREAM, UNKNOWN_WORKSPACE (Options::workspace_secret says it does not exist)
//   413  BODY_TOO_LARGE (over Options::max_body_bytes)
//   503  STORE_UNAVAILABLE (the event log could not store it; the sender may retry)
// Nothing is stored unless the answer is 200. 200 is sent only after the log stored the event.
//
// Thread-safe; Handle blocks for the log's Append (bounded by the Redis command timeout).
#ifndef GATEWAY_EVENTS_WEBHOOK_INGRESS_H_
#define GATEWAY_EVENTS_WEBHOOK_INGRESS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "events/event_decoder.h"
#include "events/event_log.h"
#include "events/signature.h"

namespace gateway::events {

class WebhookIngress {
 public:
  struct Options {
    // Secrets per upstream ("respondio", "chatwoot"); an upstream without one rejects every
    // webhook unless allow_unsigned.
    std::map<std::string, std::string> secrets;
    // Per-workspace webhooks (/webhooks/{upstream}/{workspace}): the secret that workspace's
    // webhooks are signed with, "" for none (then allow_unsigned decides); NOT_FOUND for a
    // workspace that does not exist (answered 404 UNKNOWN_WORKSPACE, nothing stored). Called
    // with workspace "" for the path without a workspace (the default workspace; main.cc
    // answers its own secret or the upstream's `secrets` entry). Unset, every path is checked
    // with `secrets` and a workspace name is only carried in the envelope and the dedupe key.
    // Every secret the hook returns is redacted from everything the gateway emits, like
    // `secrets` (upstream/safe_text.h), from the first time it is returned.
    std::function<absl::StatusOr<std::string>(const std::string& upstream,
                                              const std::string& workspace)>
        workspace_secret;
    // The workspace a path without one means: /webhooks/{upstream}/{default_workspace} is the
    // same endpoint as /webhooks/{upstream} (envelope workspace "", one dedupe key).
    std::string default_workspace = "default";
    // Accept webhooks without checking signatures (loopback development only; the server
    // refuses it on other addresses).
    bool allow_unsigned = false;
    RespondioScheme respondio_scheme;
    absl::Duration max_timestamp_age = absl::Minutes(5);
    size_t max_body_bytes = 1 << 20;
    // The clock of the Chatwoot timestamp check and of received_time.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    // Called once per stored event (not for duplicates) that was kept as unknown: an event type
    // the protos do not know (`decode_error` "") or a known type whose JSON did not fit
    // (`decode_error` says why). main.cc records it in the drift report.
    std::function<void(const std::string& upstream, const std::string& type,
                       const std::string& decode_error)>
        on_unknown_event;
    // Called after an event was stored with the cache tags it makes stale (may be empty), in
    // the cache partition of `upstream` in `workspace` ("" for the default workspace) only.
    std::function<void(const std::string& upstream, const std::string& workspace,
                       const std::vector<std::string>& tags,
                       const std::vector<std::string>& aliases)>
        invalidate;
  };

  // Header names are matched case-insensitively (callers pass them lower-cased or not).
  using Headers = std::multimap<std::string, std::string>;
  struct Result {
    int http_status = 200;
    std::string reason;  // "" on success
    std::string message;
    std::string id;  // stored event id (200)
    bool duplicate = false;
    std::string Body() const;  // the JSON answer
  };

  // Counters for /metrics, keyed by upstream (and reason / type).
  struct Counters {
    std::map<std::string, int64_t> received;                           // upstream
    std::map<std::pair<std::string, std::string>, int64_t> rejected;   // (upstream, reason)
    std::map<std::string, int64_t> duplicates;                         // upstream
    std::map<std::string, int64_t> stored;                             // upstream
    std::map<std::pair<std::string, std::string>, int64_t> unknown;    // (upstream, type)
  };

  // Errors: INVALID_ARGUMENT when the event protos' options are inconsistent.
  static absl::StatusOr<std::unique_ptr<WebhookIngress>> Create(Options options, EventLog* log);

  Result Handle(const std::string& upstream, const std::string& workspace, const Headers& headers,
                const std::string& body);

  Counters counters() const;
  size_t max_body_bytes() const { return options_.max_body_bytes; }

  // Counts a rejection decided outside Handle (the HTTP server's own 413) and returns its answer.
  Result Reject(const std::string& upstream, int status, const std::string& reason,
                const std::string& message);

 private:
  WebhookIngress(Options options, EventLog* log) : options_(std::move(options)), log_(log) {}

  const Options options_;
  EventLog* const log_;
  std::map<std::string, EventDecoder> decoders_;  // by upstream
  mutable absl::Mutex mu_;
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_WEBHOOK_INGRESS_H_
