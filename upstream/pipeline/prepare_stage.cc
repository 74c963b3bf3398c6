#include "upstream/pipeline/prepare_stage.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "upstream/binding/page_token.h"
#include "upstream/binding/pagination.h"
#include "upstream/binding/validation.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/errors.h"
#include "upstream/stable_hash.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Message;

std::string HostOf(absl::string_view url) {
  absl::ConsumePrefix(&url, "https://") || absl::ConsumePrefix(&url, "http://");
  return std::string(url.substr(0, url.find_first_of("/?#")));
}

// Tags from compiled templates; a template whose placeholders expanded to nothing is dropped.
std::vector<std::string> ExpandTags(const std::vector<TagTemplate>& templates,
                                    const Message& message) {
  std::vector<std::string> tags;
  tags.reserve(templates.size());
  for (const TagTemplate& t : templates) {
    std::string tag = ExpandTag(t, message);
    if (!tag.empty()) tags.push_back(std::move(tag));
  }
  return tags;
}

}  // namespace

std::string DeterministicBytes(const Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

PrepareStage::PrepareStage(const absl::flat_hash_map<std::string, UpstreamConfig>* upstreams,
                           Options options)
    : upstreams_(upstreams), options_(std::move(options)) {
  for (const auto& [name, up] : *upstreams_) {
    const std::string token_id = absl::StrFormat("%016x", StableHash(up.token)).substr(0, 12);
    accounts_[name] = {
        up.limit_scope == UpstreamConfig::LimitScope::kHost ? HostOf(up.base_url) : token_id,
        // The partition (a workspace) keeps replies and request_id records apart even between
        // workspaces that share a token (their default accounts may differ).
        absl::StrCat(up.partition.empty() ? "" : absl::StrCat(up.partition, "/"),
                     HostOf(up.base_url), "/", token_id)};
  }
}

std::optional<std::string> PrepareStage::BucketKey(const std::string& upstream,
                                                   const std::string& bucket) const {
  auto up = upstreams_->find(upstream);
  auto account = accounts_.find(upstream);
  if (up == upstreams_->end() || up->second.base_url.empty() || account == accounts_.end()) {
    return std::nullopt;
  }
  return absl::StrCat(upstream, ":", account->second.limit, ":", bucket);
}

std::string CacheKey(absl::string_view account, absl::string_view rpc,
                     absl::string_view request_bytes) {
  return absl::StrCat(account, "|", rpc, "|", request_bytes);
}

std::optional<std::string> PrepareStage::HitKey(const Route& route,
                                                absl::string_view request_bytes) const {
  if (!options_.has_cache || !route.read || route.policy.cache_ttl_seconds() <= 0) {
    return std::nullopt;
  }
  auto upstream_it = upstreams_->find(route.binding.upstream());
  if (upstream_it == upstreams_->end() || upstream_it->second.base_url.empty()) {
    return std::nullopt;
  }
  auto account = accounts_.find(upstream_it->second.name);
  if (account == accounts_.end()) return std::nullopt;
  return CacheKey(account->second.cache, route.rpc, request_bytes);
}

absl::Status PrepareStage::Prepare(const Route& route, const Message& request,
                                   const CallOptions& options, PreparedCall* out) const {
  auto upstream_it = upstreams_->find(route.binding.upstream());
  if (upstream_it == upstreams_->end() || upstream_it->second.base_url.empty()) {
    return GatewayError(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat("the upstream '", route.binding.upstream(), "' of ", route.rpc,
                     " is not configured on this gateway (set --", route.binding.upstream(),
                     "_base_url)"),
        {.reason = "UPSTREAM_NOT_CONFIGURED",
         .metadata = {{"upstream", route.binding.upstream()}, {"rpc", route.rpc}}});
  }
  if (!route.binding.unavailable().empty()) {
    return GatewayError(
        absl::StatusCode::kUnimplemented,
        absl::StrCat(route.rpc, " is not available in the ", route.dialect, " dialect of ",
                     route.binding.upstream(), ": ", route.binding.unavailable(), " (--",
                     route.binding.upstream(), "_dialect)"),
        {.reason = "RPC_NOT_IN_DIALECT",
         .metadata = {{"upstream", route.binding.upstream()},
                      {"dialect", route.dialect},
                      {"rpc", route.rpc}}});
  }
  if (absl::Status s = ValidateRequest(request); !s.ok()) return s;
  out->route = &route;
  out->upstream = &upstream_it->second;
  if (route.page_size_field != nullptr) {
    out->page_size = request.GetReflection()->GetInt32(request, route.page_size_field);
  }
  std::vector<std::pair<std::string, std::string>> page_query;
  if (route.pagination != nullptr) {
    const std::string& token =
        request.GetReflection()->GetStringReference(request, route.page_token_field, nullptr);
    if (!token.empty()) {
      auto decoded = DecodePageToken(route.rpc, token);
      if (!decoded.ok()) return decoded.status();
      out->cursor = *std::move(decoded);
    }
    auto query = route.pagination->Query(out->page_size, out->cursor);
    if (!query.ok()) return query.status();
    page_query = *std::move(query);
  }
  auto parts = BuildUpstreamRequest(route, request, out->upstream->path_defaults, page_query);
  if (!parts.ok()) return parts.status();
  out->parts = *std::move(parts);
  const std::string& upstream_name = out->upstream->name;
  const Account& account = accounts_.at(upstream_name);
  out->bucket_key = absl::StrCat(upstream_name, ":", account.limit, ":", route.policy.bucket());
  auto bucket = options_.buckets.find(absl::StrCat(upstream_name, "/", route.policy.bucket()));
  out->bucket = bucket != options_.buckets.end() ? bucket->second : options_.default_bucket;

  if (route.read) {
    out->cache_key = CacheKey(account.cache, route.rpc, DeterministicBytes(request));
    out->cached = options_.has_cache && route.policy.cache_ttl_seconds() > 0 && !options.bypass_cache;
    out->coalesced = !options.bypass_cache;
    if (out->cached) {
      out->cache_tags =
          PartitionTags(out->upstream->partition, ExpandTags(route.cache_tags, request));
    }
    return absl::OkStatus();
  }
  out->invalidations =
      PartitionTags(out->upstream->partition, ExpandTags(route.invalidates, request));
  if (route.request_id_field != nullptr && options_.has_idempotency) {
    out->request_id = request.GetReflection()->GetString(request, route.request_id_field);
  }
  if (!out->request_id.empty()) {
    // Per caller: another caller's request_id is another record (no replay, no probing).
    out->idempotency_key = IdempotencyStore::Key(
        absl::StrCat(account.cache, "|", options.caller, "|", route.rpc), out->request_id);
    out->fingerprint = IdempotencyStore::Fingerprint(DeterministicBytes(request));
  }
  return absl::OkStatus();
}

}  // namespace gateway::upstream
