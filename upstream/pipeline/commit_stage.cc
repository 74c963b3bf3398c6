#include "upstream/pipeline/commit_stage.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/message_depth.h"
#include "upstream/binding/page_token.h"
#include "upstream/binding/pagination.h"
#include "upstream/binding/reply_decoding.h"
#include "upstream/errors.h"
#include "upstream/transport/error_mapping.h"
#include "upstream/transport/upstream_json.h"

namespace gateway::upstream {

using google::protobuf::Message;

namespace {

absl::Status BadResponse(const Route& route, absl::string_view upstream, absl::string_view what) {
  return GatewayError(absl::StatusCode::kInternal, absl::StrCat(upstream, " answered ", what),
                      {.reason = "UPSTREAM_BAD_RESPONSE",
                       .domain = std::string(upstream),
                       .metadata = {{"upstream", std::string(upstream)}, {"rpc", route.rpc}}});
}

}  // namespace

absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body, DriftReport* drift) {
  const Message* prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(
      route.method->output_type());
  std::unique_ptr<Message> reply(prototype->New());
  // Depth-bounded: every walk below (pagination, codec) recurses per nesting level.
  int json_depth = 0;
  absl::StatusOr<nlohmann::json> parsed =
      body.empty() ? nlohmann::json::object()
                   : ParseUpstreamJson(body, kMaxUpstreamJsonDepth, &json_depth);
  if (!parsed.ok()) {
    return StatusFromBadBody({std::string(upstream), route.rpc, route.policy.bucket()},
                             /*http_status=*/0, parsed.status());
  }
  nlohmann::json& json = *parsed;
  // A read whose reply is one resource (GetContact's `contact`) must get one: an empty body or
  // `null` would otherwise answer OK with no resource.
  const bool names_one_resource =
      route.read && route.response_field != nullptr && !route.response_field->is_repeated() &&
      route.response_field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE;
  if (names_one_resource && (body.find_first_not_of(" \t\r\n") == absl::string_view::npos ||
                             json.is_null())) {
    return BadResponse(route, upstream, "2xx without the resource (an empty or null body)");
  }
  std::string next_cursor;
  if (route.pagination != nullptr) {
    auto next = route.pagination->NextCursor(page_size, cursor, json);
    if (!next.ok()) return next.status();
    next_cursor = *std::move(next);
  }
  // An empty body (e.g. 204) is the empty reply: decoding `{}` into response_field would set
  // that field to an empty message, as if the upstream had sent one.
  absl::Status decoded;
  if (!body.empty()) {
    if (route.pagination != nullptr && json.is_object()) {
      // The pagination hook read these; they are not reply fields (nor drift).
      for (const char* key : {"pagination", "meta"}) {
        if (route.method->output_type()->FindFieldByName(key) == nullptr) json.erase(key);
      }
    }
    decoded = DecodeReplyJson(route, json, reply.get(), drift);
  }
  if (!decoded.ok()) return decoded;
  // Protobuf parsers refuse replies nesting more than 100 messages (Struct fields cost three per
  // JSON level): never send, or cache, one. JSON shallow enough cannot decode that deep.
  if (json_depth > kMaxJsonDepthWithinReplyLimit) {
    if (absl::Status deep = CheckReplyDepth(*reply, upstream, route.rpc); !deep.ok()) return deep;
  }
  if (!next_cursor.empty() && route.next_page_token_field != nullptr) {
    reply->GetReflection()->SetString(reply.get(), route.next_page_token_field,
                                      EncodePageToken(route.rpc, next_cursor));
  }
  std::string bytes;
  reply->SerializeToString(&bytes);
  return bytes;
}

std::vector<std::string> ReplyAliases(const Route& route, absl::string_view reply_bytes) {
  if (route.aliases.empty()) return {};
  const Message* prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(
      route.method->output_type());
  std::unique_ptr<Message> reply(prototype->New());
  if (!reply->ParseFromArray(reply_bytes.data(), static_cast<int>(reply_bytes.size()))) return {};
  std::vector<std::string> aliases;
  for (const TagTemplate& alias : route.aliases) {
    std::string tag = ExpandTag(alias, *reply);
    if (!tag.empty()) aliases.push_back(std::move(tag));
  }
  return aliases;
}

void CommitStage::Commit(const PreparedCall& prepared, const ResponseCache::ReadTicket* ticket,
                         const absl::StatusOr<std::string>& result, bool maybe_sent,
                         bool maybe_processed, Settled settled) const {
  const Route& route = *prepared.route;
  if (!prepared.idempotency_key.empty() && idempotency_ != nullptr) {
    // Record what may have happened upstream; release the id when it certainly did not.
    if (!result.ok() && !maybe_processed) {
      idempotency_->Abandon(prepared.idempotency_key);
    } else {
      idempotency_->Complete(prepared.idempotency_key, result);
    }
  }
  if (cache_ != nullptr) {
    if (route.read) {
      if (result.ok() && ticket != nullptr) {
        cache_->Store(*ticket, prepared.cache_key, *result,
                      absl::Seconds(route.policy.cache_ttl_seconds()), prepared.cache_tags,
                      PartitionTags(prepared.upstream->partition, ReplyAliases(route, *result)));
      }
    } else if (maybe_sent) {
      // A write that reached the upstream may have changed it, even when its answer was lost.
      // The caller is answered once the shared cache has dropped the stale entries too: answered
      // earlier, its next read (here or on another replica) could still hit them in Redis.
      cache_->Invalidate(prepared.invalidations,
                         result.ok() ? PartitionTags(prepared.upstream->partition,
                                                     ReplyAliases(route, *result))
                                     : std::vector<std::string>{},
                         std::move(settled));
      return;
    }
  }
  std::move(settled)();
}

}  // namespace gateway::upstream
