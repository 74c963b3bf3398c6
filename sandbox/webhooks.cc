#include "sandbox/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <functional>
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
      {"/webhooks/respondio", body,
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
      {"/webhooks/chatwoot", body,
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
