#include "sandbox/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace sandbox {
namespace {

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string Hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) absl::StrAppendFormat(&out, "%02x", c);
  return out;
}

}  // namespace

WebhookEmitter::WebhookEmitter(Options options) : options_(std::move(options)) {
  worker_ = std::thread([this] { Worker(); });
}

WebhookEmitter::~WebhookEmitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  worker_.join();
}

std::string WebhookEmitter::EmitRespondio(const std::string& event_type, Json fields) {
  absl::MutexLock lock(&mu_);
  const std::string id =
      absl::StrFormat("%08x-0000-4000-8000-%012d", absl::ToUnixSeconds(absl::Now()), ++sequence_);
  fields["event_id"] = id;
  fields["event_type"] = event_type;
  const std::string body = fields.dump();
  queue_.push_back(
      {"/webhooks/respondio" + options_.path_suffix, body,
       {{"x-webhook-signature", absl::Base64Escape(Hmac(options_.respondio_secret, body))}}});
  return id;
}

std::string WebhookEmitter::EmitChatwoot(const std::string& event, Json model) {
  absl::MutexLock lock(&mu_);
  const std::string delivery =
      absl::StrFormat("%08x-0000-4000-9000-%012d", absl::ToUnixSeconds(absl::Now()), ++sequence_);
  model["event"] = event;
  const std::string body = model.dump();
  const std::string timestamp = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
  queue_.push_back(
      {"/webhooks/chatwoot" + options_.path_suffix, body,
       {{"X-Chatwoot-Signature",
         "sha256=" + Hex(Hmac(options_.chatwoot_secret, timestamp + "." + body))},
        {"X-Chatwoot-Timestamp", timestamp},
        {"X-Chatwoot-Delivery", delivery}}});
  return delivery;
}

Json WebhookEmitter::Stats() const {
  absl::MutexLock lock(&mu_);
  return Json{{"posted", posted_}, {"accepted", accepted_}};
}

void WebhookEmitter::Worker() {
  httplib::Client client(options_.url);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(5));
  client.set_write_timeout(std::chrono::seconds(5));
  while (true) {
    Delivery delivery;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WebhookEmitter* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->stopping_ || !e->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      delivery = std::move(queue_.front());
      queue_.pop_front();
    }
    httplib::Headers headers(delivery.headers.begin(), delivery.headers.end());
    auto result = client.Post(delivery.path, headers, delivery.body, "application/json");
    absl::MutexLock lock(&mu_);
    ++posted_;
    if (result && result->status / 100 == 2) ++accepted_;
  }
}

std::string RespondioEventFor(const std::string& endpoint, const Json& request_body) {
  // Which API calls change state that respond.io reports by webhook.
  static const auto* const kEvents = new std::map<std::string, std::string>{
      {"create_contact", "contact.created"},
      {"update_contact", "contact.updated"},
      {"create_or_update_contact", "contact.updated"},
      {"contact_tag", "contact.tag.updated"},
      {"send_message", "message.sent"},
      {"assign_conversation", "contact.assignee.updated"},
  };
  if (endpoint == "conversation_status") {
    const std::string status =
        request_body.is_object() ? request_body.value("status", "") : std::string();
    if (status == "open") return "conversation.opened";
    if (status == "close") return "conversation.closed";
    return "";
  }
  auto it = kEvents->find(endpoint);
  return it == kEvents->end() ? "" : it->second;
}

const ChatwootWebhooks::Emission* ChatwootWebhooks::EmissionFor(const std::string& endpoint) {
  // operationId -> event; Chatwoot's models dispatch these on create/update commits.
  static const auto* const kEmissions = new std::map<std::string, Emission>{
      {"contactCreate", {"contact_created", Record::kContact, false}},
      {"contactUpdate", {"contact_updated", Record::kContact, true}},
      {"newConversation", {"conversation_created", Record::kConversation, false}},
      {"toggle-status-of-a-conversation",
       {"conversation_status_changed", Record::kConversation, true}},
      {"update-conversation", {"conversation_updated", Record::kConversation, true}},
      {"toggle-priority-of-a-conversation",
       {"conversation_updated", Record::kConversation, true}},
      {"update-custom-attributes-of-a-conversation",
       {"conversation_updated", Record::kConversation, true}},
      {"assign-a-conversation", {"conversation_updated", Record::kConversation, true}},
      {"conversation-add-labels", {"conversation_updated", Record::kConversation, true}},
      {"create-a-new-message-in-a-conversation",
       {"message_created", Record::kMessage, false}},
      {"update-a-message", {"message_updated", Record::kMessage, true}},
  };
  auto it = kEmissions->find(endpoint);
  return it == kEmissions->end() ? nullptr : &it->second;
}

Json ChatwootWebhooks::Fetch(Record record, int64_t account_id, int64_t id,
                             int64_t message_id) const {
  chatwoot::CwRequest request;
  request.account_id = account_id;
  request.ids = {id};
  switch (record) {
    case Record::kContact: {
      ApiResult r = state_->GetContact(request);
      return r.status == 200 ? r.body.value("payload", Json()) : Json();
    }
    case Record::kConversation: {
      ApiResult r = state_->GetConversation(request);
      return r.status == 200 ? r.body : Json();
    }
    case Record::kMessage: {
      ApiResult r = state_->ListMessages(request);
      if (r.status != 200) return Json();
      for (const Json& m : r.body.value("payload", Json::array())) {
        if (m.value("id", int64_t{0}) == message_id) return m;
      }
      return Json();
    }
  }
  return Json();
}

Json ChatwootWebhooks::Before(const std::string& endpoint,
                              const chatwoot::CwRequest& request) const {
  const Emission* emission = EmissionFor(endpoint);
  if (emission == nullptr || !emission->update || request.ids.empty()) return Json();
  return Fetch(emission->record, request.account_id, request.ids[0],
               request.ids.size() > 1 ? request.ids[1] : 0);
}

void ChatwootWebhooks::After(const std::string& endpoint, const chatwoot::CwRequest& request,
                             const ApiResult& result, const Json& before) const {
  const Emission* emission = EmissionFor(endpoint);
  if (emission == nullptr) return;
  // The record's id: in the path for updates (and a message's conversation), else in the reply
  // (contact create answers {payload: {contact}} live and {id, payload: [..]} in the openapi
  // dialect; conversation and message creates answer the record or {id, ...}).
  int64_t id = 0, message_id = 0;
  const Json& body = result.body;
  auto id_in = [](const Json& j) {
    return j.is_object() && j.contains("id") && j["id"].is_number_integer()
               ? j["id"].get<int64_t>()
               : int64_t{0};
  };
  if (emission->record == Record::kMessage) {
    if (request.ids.empty()) return;
    id = request.ids[0];
    message_id = request.ids.size() > 1 ? request.ids[1] : id_in(body);
  } else if (emission->update) {
    if (request.ids.empty()) return;
    id = request.ids[0];
  } else {
    id = id_in(body);
    if (id == 0 && body.is_object() && body.contains("payload")) {
      const Json& payload = body["payload"];
      id = payload.is_object() ? id_in(payload.value("contact", Json()))
                               : (payload.is_array() && !payload.empty() ? id_in(payload[0]) : 0);
    }
  }
  if (id == 0) return;
  Json record = Fetch(emission->record, request.account_id, id, message_id);
  if (!record.is_object()) return;
  if (!record.contains("account")) record["account"] = Json{{"id", request.account_id}};
  if (emission->update) {
    Json changed = Json::array();
    if (before.is_object()) {
      for (const auto& [key, value] : record.items()) {
        const Json previous = before.value(key, Json());
        if (previous != value && key != "account") {
          changed.push_back(Json{{key, {{"previous_value", previous}, {"current_value", value}}}});
        }
      }
    }
    record["changed_attributes"] = std::move(changed);
  }
  emitter_->EmitChatwoot(emission->event, std::move(record));
}

bool HandleInboundMessage(const RequestContext& ctx, WebhookEmitter* emitter,
                          const std::function<std::optional<Json>(const std::string&)>& contact,
                          httplib::Response& res) {
  const bool respondio = ctx.path == "/__admin/respondio/inbound_message";
  const bool chatwoot = ctx.path == "/__admin/chatwoot/inbound_message";
  if (!respondio && !chatwoot) return false;
  if (ctx.method != "POST") {
    WriteJson(res, 405, Json{{"message", "POST only"}});
    return true;
  }
  if (emitter == nullptr) {
    WriteJson(res, 409, Json{{"message", "start the sandbox with --webhook_url"}});
    return true;
  }
  Json body = Json::parse(ctx.body(), nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    WriteJson(res, 400, Json{{"message", "body must be a JSON object"}});
    return true;
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (respondio) {
    const std::string identifier = body.value("identifier", "");
    std::optional<Json> found = contact(identifier);
    if (!found.has_value()) {
      WriteJson(res, 404, Json{{"message", "no contact " + identifier}});
      return true;
    }
    Json message = {{"messageId", now * 1000 + 1},
                    {"contactId", found->value("id", 0)},
                    {"channelId", body.value("channelId", 123)},
                    {"traffic", "incoming"},
                    {"message", {{"type", "text"}, {"text", body.value("text", "")}}},
                    {"timestamp", now}};
    const std::string id =
        emitter->EmitRespondio("message.received", Json{{"contact", *found}, {"message", message}});
    WriteJson(res, 202, Json{{"event_id", id}});
    return true;
  }
  Json message = {{"id", now * 1000 + 2},
                  {"content", body.value("content", "")},
                  {"message_type", "incoming"},
                  {"conversation_id", body.value("conversation_id", 1)},
                  {"account_id", body.value("account_id", 1)},
                  {"created_at", now},
                  {"conversation", {{"id", body.value("conversation_id", 1)}}}};
  const std::string delivery = emitter->EmitChatwoot("message_created", message);
  WriteJson(res, 202, Json{{"delivery_id", delivery}});
  return true;
}

}  // namespace sandbox
