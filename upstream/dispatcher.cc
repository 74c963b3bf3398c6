#include "upstream/dispatcher.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "upstream/error_mapping.h"
#include "upstream/errors.h"
#include "upstream/json_codec.h"
#include "upstream/page_token.h"
#include "upstream/pagination.h"
#include "upstream/validation.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Message;

int PageSizeOf(const Route& route, const Message& request) {
  if (route.page_size_field == nullptr) return 0;
  return request.GetReflection()->GetInt32(request, route.page_size_field);
}

std::string PageTokenOf(const Route& route, const Message& request) {
  if (route.page_token_field == nullptr) return "";
  return request.GetReflection()->GetString(request, route.page_token_field);
}

}  // namespace

Dispatcher::Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams,
                       HttpClient* http)
    : upstreams_(std::move(upstreams)), http_(http) {}

bool Dispatcher::HasUpstream(absl::string_view upstream) const {
  auto it = upstreams_.find(upstream);
  return it != upstreams_.end() && !it->second.base_url.empty();
}

absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          route.method->output_type());
  std::unique_ptr<Message> reply(prototype->New());
  nlohmann::json json = body.empty() ? nlohmann::json::object()
                                     : nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded()) {
    return GatewayError(absl::StatusCode::kInternal,
                        absl::StrCat(upstream, " answered with a body that is not JSON"),
                        {.reason = "UPSTREAM_BAD_RESPONSE",
                         .domain = std::string(upstream),
                         .metadata = {{"upstream", std::string(upstream)}, {"rpc", route.rpc}}});
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
  if (body.empty()) {
    // nothing to decode
  } else if (route.response_field != nullptr) {
    decoded = DecodeField(json, reply.get(), route.response_field, route.response_field->json_name());
  } else {
    decoded = DecodeMessage(json, reply.get());
  }
  if (!decoded.ok()) return decoded;
  if (!next_cursor.empty() && route.next_page_token_field != nullptr) {
    reply->GetReflection()->SetString(reply.get(), route.next_page_token_field,
                                      EncodePageToken(route.rpc, next_cursor));
  }
  std::string bytes;
  reply->SerializeToString(&bytes);
  return bytes;
}

void Dispatcher::Call(const Route& route, const Message& request, const CallOptions& options,
                      Done done) const {
  auto upstream_it = upstreams_.find(route.binding.upstream());
  if (upstream_it == upstreams_.end() || upstream_it->second.base_url.empty()) {
    std::move(done)(GatewayError(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat("the upstream '", route.binding.upstream(), "' of ", route.rpc,
                     " is not configured on this gateway (set --", route.binding.upstream(),
                     "_base_url)"),
        {.reason = "UPSTREAM_NOT_CONFIGURED",
         .metadata = {{"upstream", route.binding.upstream()}, {"rpc", route.rpc}}}));
    return;
  }
  const UpstreamConfig& upstream = upstream_it->second;
  if (absl::Status s = ValidateRequest(request); !s.ok()) {
    std::move(done)(s);
    return;
  }
  const int page_size = PageSizeOf(route, request);
  std::string cursor;
  std::vector<std::pair<std::string, std::string>> page_query;
  if (route.pagination != nullptr) {
    const std::string token = PageTokenOf(route, request);
    if (!token.empty()) {
      auto decoded = DecodePageToken(route.rpc, token);
      if (!decoded.ok()) {
        std::move(done)(decoded.status());
        return;
      }
      cursor = *std::move(decoded);
    }
    auto query = route.pagination->Query(page_size, cursor);
    if (!query.ok()) {
      std::move(done)(query.status());
      return;
    }
    page_query = *std::move(query);
  }
  auto parts = BuildUpstreamRequest(route, request, upstream.path_defaults, page_query);
  if (!parts.ok()) {
    std::move(done)(parts.status());
    return;
  }

  HttpRequest http_request;
  http_request.method = route.binding.method();
  http_request.url = absl::StrCat(upstream.base_url, parts->path_and_query);
  http_request.deadline = options.deadline;
  http_request.headers.emplace_back("Accept", "application/json");
  if (upstream.auth_header == "Authorization") {
    http_request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", upstream.token));
  } else {
    http_request.headers.emplace_back(upstream.auth_header, upstream.token);
  }
  if (parts->has_body) {
    http_request.headers.emplace_back("Content-Type", "application/json");
    http_request.body = std::move(parts->body);
  }
  UpstreamCallInfo info{upstream.name, route.rpc, route.policy.bucket()};
  http_->Send(std::move(http_request),
              [&route, info = std::move(info), cursor = std::move(cursor), page_size,
               stats = options.stats,
               done = std::move(done)](absl::StatusOr<HttpResponse> response) mutable {
                if (stats != nullptr && response.ok()) stats->upstream_status = response->status;
                if (!response.ok()) {
                  std::move(done)(StatusFromTransport(info, response.status()));
                  return;
                }
                if (absl::Status s = StatusFromHttp(info, *response); !s.ok()) {
                  std::move(done)(s);
                  return;
                }
                std::move(done)(DecodeReply(route, info.upstream, cursor, page_size,
                                            response->body));
              });
}

}  // namespace gateway::upstream
