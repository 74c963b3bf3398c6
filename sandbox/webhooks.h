// Webhook emission (--webhook_url): the sandbox POSTs signed webhooks in each upstream's format,
// as the live services do, when its state changes through the respond.io API, and when a
// customer's inbound message is simulated through the admin API:
//
//   POST /__admin/respondio/inbound_message {"identifier": "id:12345", "text": "hi"}
//     -> message.received to {webhook_url}/webhooks/respondio
//   POST /__admin/chatwoot/inbound_message  {"conversation_id": 1, "content": "hi"}
//     -> message_created to {webhook_url}/webhooks/chatwoot
//
// respond.io: x-webhook-signature = base64(HMAC-SHA256(secret, body)), body {event_id,
// event_type, contact, message?}. Chatwoot: X-Chatwoot-Signature = sha256=<hex HMAC-SHA256(secret,
// "{timestamp}.{body}")>, X-Chatwoot-Timestamp, X-Chatwoot-Delivery, body = the model + "event".
// Each webhook is one attempt with a 5 s timeout (Chatwoot does not retry either), posted by a
// worker thread in order; the inbound messages are not added to the emulators' state.
// Shares no code with the gateway (so a signing bug cannot hide on both sides). Thread-safe.
#ifndef SANDBOX_WEBHOOKS_H_
#define SANDBOX_WEBHOOKS_H_

#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/http_util.h"

namespace sandbox {

class WebhookEmitter {
 public:
  struct Options {
    std::string url;  // base URL, e.g. http://127.0.0.1:8443
    std::string respondio_secret;
    std::string chatwoot_secret;
  };
  explicit WebhookEmitter(Options options);
  ~WebhookEmitter();  // posts what is queued, then joins

  // Queues a respond.io webhook of `event_type` with `fields` (contact, message, ...); returns
  // its event_id.
  std::string EmitRespondio(const std::string& event_type, Json fields);
  // Queues a Chatwoot webhook `event` whose body is `model` plus "event"; returns the delivery id.
  std::string EmitChatwoot(const std::string& event, Json model);

  // Webhooks posted so far and how many got a 2xx (for the admin state dump).
  Json Stats() const;

 private:
  struct Delivery {
    std::string path;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  void Worker();
  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<Delivery> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t posted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread worker_;
};

// Handles POST /__admin/{respondio,chatwoot}/inbound_message; false when `ctx` is not one of
// them. `contact` looks up a respond.io contact's JSON by identifier (nullopt: unknown).
bool HandleInboundMessage(const RequestContext& ctx, WebhookEmitter* emitter,
                          const std::function<std::optional<Json>(const std::string&)>& contact,
                          httplib::Response& res);

}  // namespace sandbox

#endif  // SANDBOX_WEBHOOKS_H_
