// Webhook emission (--webhook_url): the sandbox POSTs signed webhooks in each upstream's format,
// as the live services do, when its state changes through either API, and when a customer's
// inbound message is simulated through the admin API:
//
//   respond.io (RespondioEventFor): contact created/updated -> contact.created/contact.updated,
//     tags -> contact.tag.updated, message sent -> message.sent, conversation status open/close
//     -> conversation.opened/conversation.closed (with `conversation`), conversation assignee ->
//     contact.assignee.updated
//   Chatwoot (ChatwootWebhooks, the account webhook's events): contact create/update ->
//     contact_created/contact_updated, conversation create -> conversation_created, status
//     toggle -> conversation_status_changed, conversation update/priority/custom attributes/
//     assignment/labels -> conversation_updated, message create/update ->
//     message_created/message_updated; updates carry `changed_attributes`
//     ([{attr: {previous_value, current_value}}], the record's top-level keys that changed)
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
// worker thread in order; the inbound messages are not added to the emulators' state. Not
// emitted: Chatwoot's typing and webwidget_triggered events (no API call causes them).
// Shares no code with the gateway (so a signing bug cannot hide on both sides). Thread-safe.
#ifndef SANDBOX_WEBHOOKS_H_
#define SANDBOX_WEBHOOKS_H_

#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "sandbox/chatwoot_state.h"
#include "sandbox/http_util.h"

namespace sandbox {

class WebhookEmitter {
 public:
  struct Options {
    std::string url;  // base URL, e.g. http://127.0.0.1:8443
    std::string path_suffix;  // appended to /webhooks/{upstream}, e.g. "/acme" ("" for none)
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

// The respond.io webhook event type a successful API call implies ("" for none). `endpoint` is
// the request log's endpoint name; `request_body` the call's JSON body (null when none).
std::string RespondioEventFor(const std::string& endpoint, const Json& request_body);

// Chatwoot's webhooks for calls of its API: hook Before/After into ChatwootApi::ChangeHooks.
// The webhook body is the record as the API renders it (Chatwoot's webhook data: contact,
// conversation or message at the top level) plus "event", and `changed_attributes` for updates.
class ChatwootWebhooks {
 public:
  // Both must outlive this.
  ChatwootWebhooks(chatwoot::ChatwootState* state, WebhookEmitter* emitter)
      : state_(state), emitter_(emitter) {}
  // The record an update is about, before it changes (null when the call emits nothing).
  Json Before(const std::string& endpoint, const chatwoot::CwRequest& request) const;
  // Emits the call's event, with the record after the change.
  void After(const std::string& endpoint, const chatwoot::CwRequest& request,
             const ApiResult& result, const Json& before) const;

 private:
  enum class Record { kContact, kConversation, kMessage };
  struct Emission {
    const char* event;
    Record record;
    bool update;  // about an existing record named in the path: carries changed_attributes
  };
  static const Emission* EmissionFor(const std::string& endpoint);
  Json Fetch(Record record, int64_t account_id, int64_t id, int64_t message_id) const;

  chatwoot::ChatwootState* const state_;
  WebhookEmitter* const emitter_;
};

// Handles POST /__admin/{respondio,chatwoot}/inbound_message; false when `ctx` is not one of
// them. `contact` looks up a respond.io contact's JSON by identifier (nullopt: unknown).
bool HandleInboundMessage(const RequestContext& ctx, WebhookEmitter* emitter,
                          const std::function<std::optional<Json>(const std::string&)>& contact,
                          httplib::Response& res);

}  // namespace sandbox

#endif  // SANDBOX_WEBHOOKS_H_
