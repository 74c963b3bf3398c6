#include "events/webhook_ingress.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "chatwoot/v1/events.pb.h"
#include "gateway/v1/event_service.pb.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/events.pb.h"
#include "upstream/safe_text.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

std::string Header(const WebhookIngress::Headers& headers, absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

const std::string kNoWorkspace;

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    default:
      return 503;
  }
}

}  // namespace

std::string WebhookIngress::Result::Body() const {
  nlohmann::json body = {{"status", http_status == 200 ? "stored" : "rejected"}};
  if (!reason.empty()) body["reason"] = reason;
  if (!message.empty()) body["message"] = message;
  if (!id.empty()) body["id"] = id;
  if (duplicate) body["duplicate"] = true;
  return body.dump() + "\n";
}

absl::StatusOr<std::unique_ptr<WebhookIngress>> WebhookIngress::Create(Options options,
                                                                       EventLog* log) {
  if (absl::Status s = ValidateScheme(options.respondio_scheme); !s.ok()) return s;
  // Configured secrets: redacted from everything the gateway emits, whoever quotes them.
  for (const auto& [name, secret] : options.secrets) upstream::RegisterSecret(secret);
  std::unique_ptr<WebhookIngress> ingress(new WebhookIngress(std::move(options), log));
  for (const google::protobuf::Descriptor* d :
       {respondio::v2::Event::descriptor(), chatwoot::v1::Event::descriptor()}) {
    auto decoder = EventDecoder::Create(d);
    if (!decoder.ok()) return decoder.status();
    const std::string upstream = decoder->upstream();
    ingress->decoders_.emplace(upstream, *std::move(decoder));
  }
  return ingress;
}

WebhookIngress::Result WebhookIngress::Reject(const std::string& upstream, int status,
                                              const std::string& reason,
                                              const std::string& message) {
  {
    absl::MutexLock lock(&mu_);
    ++counters_.rejected[{upstream, reason}];
  }
  return Result{.http_status = status, .reason = reason, .message = message};
}

WebhookIngress::Result WebhookIngress::Handle(const std::string& upstream,
                                              const std::string& path_workspace,
                                              const Headers& headers, const std::string& body) {
  const std::string& workspace =
      path_workspace == options_.default_workspace ? kNoWorkspace : path_workspace;
  auto decoder = decoders_.find(upstream);
  if (decoder == decoders_.end()) {
    return Reject("unknown", 404, "UNKNOWN_UPSTREAM",
                  absl::StrCat("no webhook endpoint for upstream \"", upstream, "\""));
  }
  {
    absl::MutexLock lock(&mu_);
    ++counters_.received[upstream];
  }
  if (body.size() > options_.max_body_bytes) {
    return Reject(upstream, 413, "BODY_TOO_LARGE",
                  absl::StrCat("webhook bodies are limited to ", options_.max_body_bytes,
                               " bytes"));
  }
  // Signature before parsing: nothing of an unauthenticated body is looked at.
  std::string secret;
  if (options_.workspace_secret) {
    absl::StatusOr<std::string> found = options_.workspace_secret(upstream, workspace);
    if (absl::IsNotFound(found.status())) {
      return Reject(upstream, 404, "UNKNOWN_WORKSPACE",
                    absl::StrCat("no workspace \"", workspace, "\""));
    }
    if (!found.ok()) {
      return Reject(upstream, 503, "WORKSPACE_UNAVAILABLE", std::string(found.status().message()));
    }
    secret = *std::move(found);
    // A workspace's secret is a configured secret like the upstreams' (redacted from everything
    // the gateway emits); the hook may name new ones after a reload, so each is registered as
    // it is read (a no-op once known).
    upstream::RegisterSecret(secret);
  } else if (auto it = options_.secrets.find(upstream); it != options_.secrets.end()) {
    secret = it->second;
  }
  if (secret.empty()) {
    if (!options_.allow_unsigned) {
      return Reject(upstream, 401, "NO_SECRET",
                    absl::StrCat("no webhook secret is configured for ", upstream,
                                 workspace.empty() ? "" : absl::StrCat(" in workspace ", workspace)));
    }
  } else {
    absl::Status verified =
        upstream == "chatwoot"
            ? VerifyChatwoot(secret, Header(headers, "X-Chatwoot-Signature"),
                             Header(headers, "X-Chatwoot-Timestamp"), body, options_.clock(),
                             options_.max_timestamp_age)
            : VerifyRespondio(secret, options_.respondio_scheme,
                              Header(headers, options_.respondio_scheme.header), body);
    if (!verified.ok()) {
      return Reject(upstream, 401, upstream::ErrorReasonOf(verified),
                    std::string(verified.message()));
    }
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return Reject(upstream, 400, "MALFORMED_JSON",
                  absl::StrCat("the webhook body is not JSON: ", e.what()));
  }
  auto decoded = decoder->second.Decode(json, Header(headers, decoder->second.id_header()));
  if (!decoded.ok()) {
    return Reject(upstream, HttpStatusOf(decoded.status()),
                  upstream::ErrorReasonOf(decoded.status()), std::string(decoded.status().message()));
  }
  gateway::v1::EventEnvelope envelope;
  envelope.set_upstream(upstream);
  envelope.set_workspace(workspace);
  *envelope.mutable_received_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(options_.clock()));
  envelope.mutable_event()->PackFrom(*decoded->event);
  // Deliveries without an id (none seen live) are deduplicated by their body's digest.
  const std::string delivery =
      decoded->delivery_id.empty()
          ? absl::StrCat("body:", absl::BytesToHexString(HmacSha256("", body)))
          : decoded->delivery_id;
  const std::string dedupe_key = absl::StrCat(upstream, ":", workspace, ":", delivery);
  LogEntry entry{.upstream = upstream, .type = decoded->type, .workspace = workspace,
                 .payload = envelope.SerializeAsString()};
  auto stored = log_->Append(dedupe_key, std::move(entry));
  if (!stored.ok()) {
    return Reject(upstream, 503, "STORE_UNAVAILABLE",
                  absl::StrCat("the event could not be stored: ", stored.status().message()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stored->duplicate) {
      ++counters_.duplicates[upstream];
    } else {
      ++counters_.stored[upstream];
      if (decoded->unknown) ++counters_.unknown[{upstream, decoded->type}];
    }
  }
  if (!stored->duplicate && decoded->unknown && options_.on_unknown_event) {
    options_.on_unknown_event(upstream, decoded->type, decoded->decode_error);
  }
  if (!stored->duplicate && options_.invalidate &&
      (!decoded->invalidates.empty() || !decoded->aliases.empty())) {
    options_.invalidate(upstream, workspace, decoded->invalidates, decoded->aliases);
  }
  return Result{.http_status = 200, .id = stored->id, .duplicate = stored->duplicate};
}

WebhookIngress::Counters WebhookIngress::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace gateway::events
