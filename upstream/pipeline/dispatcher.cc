#include "upstream/pipeline/dispatcher.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "upstream/transport/error_mapping.h"
#include "upstream/errors.h"
#include "upstream/safe_text.h"
#include "upstream/stable_hash.h"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/message_depth.h"
#include "upstream/transport/upstream_json.h"
#include "upstream/binding/page_token.h"
#include "upstream/binding/pagination.h"
#include "upstream/binding/validation.h"

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

absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          route.method->output_type());
  std::unique_ptr<Message> reply(prototype->New());
  // Depth-bounded: every walk below (pagination, codec) recurses per nesting level.
  absl::StatusOr<nlohmann::json> parsed =
      body.empty() ? nlohmann::json::object() : ParseUpstreamJson(body);
  if (!parsed.ok()) {
    return StatusFromBadBody({std::string(upstream), route.rpc, route.policy.bucket()},
                             /*http_status=*/0, parsed.status());
  }
  nlohmann::json& json = *parsed;
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
  // Protobuf parsers refuse replies nesting more than 100 messages (Struct fields cost three per
  // JSON level): never send, or cache, one.
  if (absl::Status deep = CheckReplyDepth(*reply, upstream, route.rpc); !deep.ok()) return deep;
  if (!next_cursor.empty() && route.next_page_token_field != nullptr) {
    reply->GetReflection()->SetString(reply.get(), route.next_page_token_field,
                                      EncodePageToken(route.rpc, next_cursor));
  }
  std::string bytes;
  reply->SerializeToString(&bytes);
  return bytes;
}


// ---- the call pipeline (see dispatcher.h) ----

struct Dispatcher::CallState {
  const Route* route = nullptr;
  const UpstreamConfig* upstream = nullptr;
  CallOptions options;
  UpstreamRequestParts parts;
  std::string cursor;
  int page_size = 0;
  std::string bucket_key;
  BucketConfig bucket;
  std::string cache_key;                  // reads: account|rpc|request bytes
  std::vector<std::string> cache_tags;    // reads: expanded policy.cache_tags
  std::vector<std::string> invalidations; // writes: expanded policy.invalidates
  std::string idempotency_key;            // writes with request_id
  bool leads_flight = false;              // others wait on this read's result
  bool store_reply = false;               // a cache miss: store the reply with `ticket`
  ResponseCache::ReadTicket ticket;
  bool reached_upstream = false;          // an HTTP request was sent (the write may have happened)
  int last_http_status = 0;               // of the final attempt, 0 for transport failures
  int attempt = 0;
  Done done;
};

namespace {


std::string HostOf(absl::string_view url) {
  absl::ConsumePrefix(&url, "https://") || absl::ConsumePrefix(&url, "http://");
  return std::string(url.substr(0, url.find_first_of("/?#")));
}

bool IsRead(const Route& route) { return route.policy.retry_safe() || route.is_read(); }

// Tags from templates; a template whose placeholders expanded to nothing is dropped
// ("contact:email:" names no contact).
std::vector<std::string> ExpandTags(const google::protobuf::RepeatedPtrField<std::string>& templates,
                                    const google::protobuf::Message& message) {
  std::vector<std::string> tags;
  for (const std::string& t : templates) {
    std::string tag = ExpandTemplate(t, message);
    if (tag.empty() || absl::EndsWith(tag, ":") || absl::StrContains(tag, "::") ||
        absl::StrContains(tag, "{")) {
      continue;
    }
    tags.push_back(std::move(tag));
  }
  return tags;
}

// Aliases named by the reply (policy.aliases templates over the reply message).
std::vector<std::string> ReplyAliases(const Route& route, absl::string_view reply_bytes) {
  if (route.policy.aliases().empty()) return {};
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          route.method->output_type());
  std::unique_ptr<google::protobuf::Message> reply(prototype->New());
  if (!reply->ParseFromArray(reply_bytes.data(), static_cast<int>(reply_bytes.size()))) return {};
  return ExpandTags(route.policy.aliases(), *reply);
}

// Statuses that mean "the upstream did not process the request": a write may be repeated.
bool NotProcessed(int http_status) {
  return http_status == 429 || http_status == 449 ||
         (http_status >= 400 && http_status < 500 && http_status != 408);
}

}  // namespace

std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

Dispatcher::Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams,
                       Components components, Options options)
    : upstreams_(std::move(upstreams)),
      components_(components),
      options_(std::move(options)) {
  for (const auto& [name, up] : upstreams_) {
    RegisterSecret(up.token);  // never relayed, even when an upstream quotes it back
    const std::string token_id = absl::StrFormat("%016x", StableHash(up.token));
    limit_accounts_[name] = up.limit_scope == UpstreamConfig::LimitScope::kHost
                                ? HostOf(up.base_url)
                                : token_id.substr(0, 12);
    cache_accounts_[name] = absl::StrCat(HostOf(up.base_url), "/", token_id.substr(0, 12));
  }
}

Dispatcher::~Dispatcher() = default;

bool Dispatcher::HasUpstream(absl::string_view upstream) const {
  auto it = upstreams_.find(upstream);
  return it != upstreams_.end() && !it->second.base_url.empty();
}

Dispatcher::Counters Dispatcher::counters() const {
  return {calls_.load(), upstream_requests_.load(), retries_.load(), coalesced_.load(),
          idempotent_replays_.load()};
}

void Dispatcher::Call(const Route& route, const Message& request, const CallOptions& options,
                      Done done) const {
  calls_.fetch_add(1, std::memory_order_relaxed);
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
  if (absl::Status s = ValidateRequest(request); !s.ok()) {
    std::move(done)(s);
    return;
  }
  auto call = std::make_shared<CallState>();
  call->route = &route;
  call->upstream = &upstream_it->second;
  call->options = options;
  call->page_size = PageSizeOf(route, request);
  std::vector<std::pair<std::string, std::string>> page_query;
  if (route.pagination != nullptr) {
    const std::string token = PageTokenOf(route, request);
    if (!token.empty()) {
      auto decoded = DecodePageToken(route.rpc, token);
      if (!decoded.ok()) {
        std::move(done)(decoded.status());
        return;
      }
      call->cursor = *std::move(decoded);
    }
    auto query = route.pagination->Query(call->page_size, call->cursor);
    if (!query.ok()) {
      std::move(done)(query.status());
      return;
    }
    page_query = *std::move(query);
  }
  auto parts = BuildUpstreamRequest(route, request, call->upstream->path_defaults, page_query);
  if (!parts.ok()) {
    std::move(done)(parts.status());
    return;
  }
  call->parts = *std::move(parts);
  const std::string& upstream_name = call->upstream->name;
  call->bucket_key = absl::StrCat(upstream_name, ":", limit_accounts_.at(upstream_name), ":",
                                  route.policy.bucket());
  auto bucket = options_.buckets.find(absl::StrCat(upstream_name, "/", route.policy.bucket()));
  call->bucket = bucket != options_.buckets.end() ? bucket->second : options_.default_bucket;
  call->done = std::move(done);

  if (IsRead(route)) {
    call->cache_key = absl::StrCat(cache_accounts_.at(upstream_name), "|", route.rpc, "|",
                                   DeterministicBytes(request));
    call->cache_tags = ExpandTags(route.policy.cache_tags(), request);
    LookupThenRun(std::move(call));
    return;
  }
  call->invalidations = ExpandTags(route.policy.invalidates(), request);
  const std::string request_id =
      route.request_id_field == nullptr
          ? ""
          : request.GetReflection()->GetString(request, route.request_id_field);
  if (request_id.empty() || components_.idempotency == nullptr) {
    Attempt(std::move(call));
    return;
  }
  call->idempotency_key = IdempotencyStore::Key(
      absl::StrCat(cache_accounts_.at(upstream_name), "|", route.rpc), request_id);
  const std::string fingerprint = IdempotencyStore::Fingerprint(DeterministicBytes(request));
  components_.idempotency->Begin(
      call->idempotency_key, fingerprint, options.deadline,
      [this, call](IdempotencyStore::BeginResult begin) mutable {
        if (begin.outcome == IdempotencyStore::Outcome::kFirst) {
          Attempt(std::move(call));
          return;
        }
        if (begin.outcome == IdempotencyStore::Outcome::kReplay) {
          idempotent_replays_.fetch_add(1, std::memory_order_relaxed);
        }
        call->idempotency_key.clear();  // not ours to complete
        std::move(call->done)(std::move(begin.result));
      });
}

void Dispatcher::LookupThenRun(std::shared_ptr<CallState> call) const {
  if (components_.cache == nullptr || call->route->policy.cache_ttl_seconds() <= 0 ||
      call->options.bypass_cache) {
    JoinOrLead(std::move(call));
    return;
  }
  const std::string key = call->cache_key;
  components_.cache->Lookup(key, [this, call](std::optional<std::string> hit,
                                               ResponseCache::ReadTicket ticket) mutable {
    if (hit.has_value()) {
      if (call->options.stats != nullptr) call->options.stats->cache_hit = true;
      std::move(call->done)(*std::move(hit));
      return;
    }
    call->store_reply = true;
    call->ticket = ticket;
    JoinOrLead(std::move(call));
  });
}

void Dispatcher::JoinOrLead(std::shared_ptr<CallState> call) const {
  if (!call->options.bypass_cache) {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(call->cache_key);
    if (it != flights_.end()) {
      coalesced_.fetch_add(1, std::memory_order_relaxed);
      it->second.push_back(std::move(call->done));
      return;
    }
    flights_[call->cache_key];  // followers attach here until Finish
    call->leads_flight = true;
  }
  Attempt(std::move(call));
}

absl::Duration Dispatcher::ExpectedLatency(const std::string& bucket_key) const {
  // Beyond the upstream's own latency, the reply must still travel back to the caller before
  // its deadline: a call the limiter can only admit later than this is better answered now.
  constexpr absl::Duration kReplyMargin = absl::Milliseconds(50);
  absl::MutexLock lock(&mu_);
  bucket_keys_.insert(bucket_key);  // every limiter ticket passes here
  auto it = latency_.find(bucket_key);
  return kReplyMargin + (it == latency_.end() ? absl::Milliseconds(50) : it->second);
}

std::vector<std::string> Dispatcher::BucketKeys() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys(bucket_keys_.begin(), bucket_keys_.end());
  std::sort(keys.begin(), keys.end());
  return keys;
}

void Dispatcher::RecordLatency(const std::string& bucket_key, absl::Duration elapsed) const {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = latency_.try_emplace(bucket_key, elapsed);
  if (!inserted) it->second = it->second * 0.8 + elapsed * 0.2;
}

void Dispatcher::Attempt(std::shared_ptr<CallState> call) const {
  if (components_.limiter == nullptr) {
    Send(std::move(call));
    return;
  }
  RateLimiter::Ticket ticket;
  ticket.bucket_key = call->bucket_key;
  ticket.config = call->bucket;
  ticket.caller = call->options.caller;
  ticket.deadline = call->options.deadline;
  ticket.expected_latency = ExpectedLatency(call->bucket_key);
  const absl::Time asked = absl::Now();
  components_.limiter->Acquire(std::move(ticket), [this, call, asked](absl::Status admitted) mutable {
    if (CallStats* stats = call->options.stats; stats != nullptr) {
      stats->limited = true;
      stats->queue_wait += absl::Now() - asked;
    }
    if (!admitted.ok()) {
      Finish(std::move(call), admitted);
      return;
    }
    Send(std::move(call));
  });
}

void Dispatcher::Send(std::shared_ptr<CallState> call) const {
  const UpstreamConfig& upstream = *call->upstream;
  HttpRequest http_request;
  http_request.method = call->route->binding.method();
  http_request.url = absl::StrCat(upstream.base_url, call->parts.path_and_query);
  http_request.deadline = call->options.deadline;
  http_request.fresh_connection = !IsRead(*call->route);
  http_request.fairness_key = call->bucket_key;
  http_request.max_response_bytes = upstream.max_response_bytes;  // one slow bucket cannot take every connection
  http_request.headers.emplace_back("Accept", "application/json");
  if (upstream.auth_header == "Authorization") {
    http_request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", upstream.token));
  } else {
    http_request.headers.emplace_back(upstream.auth_header, upstream.token);
  }
  for (const auto& header : call->options.trace_headers) http_request.headers.push_back(header);
  if (call->parts.has_body) {
    http_request.headers.emplace_back("Content-Type", "application/json");
    http_request.body = call->parts.body;
  }
  upstream_requests_.fetch_add(1, std::memory_order_relaxed);
  call->reached_upstream = true;
  const absl::Time sent = absl::Now();
  components_.http->Send(std::move(http_request),
                         [this, call, sent](absl::StatusOr<HttpResponse> response) mutable {
                           if (CallStats* stats = call->options.stats; stats != nullptr) {
                             stats->upstream_latency = absl::Now() - sent;
                           }
                           OnResponse(std::move(call), std::move(response));
                         });
}

void Dispatcher::OnResponse(std::shared_ptr<CallState> call,
                            absl::StatusOr<HttpResponse> response) const {
  const Route& route = *call->route;
  const UpstreamCallInfo info{call->upstream->name, route.rpc, route.policy.bucket()};
  absl::Status status;
  std::optional<absl::Duration> retry_after;
  if (response.ok()) {
    call->last_http_status = response->status;
    if (call->options.stats != nullptr) call->options.stats->upstream_status = response->status;
    RecordLatency(call->bucket_key, response->elapsed);
    retry_after = ParseRetryAfter(*response, absl::Now());
    if (components_.limiter != nullptr) {
      if (response->status == 429) {
        components_.limiter->Pause(call->bucket_key, call->bucket,
                                   retry_after.value_or(absl::Seconds(1)));
      }
      auto limit = response->headers.find("x-ratelimit-limit");
      auto remaining = response->headers.find("x-ratelimit-remaining");
      int limit_value = 0, remaining_value = 0;
      if (limit != response->headers.end() && remaining != response->headers.end() &&
          absl::SimpleAtoi(limit->second, &limit_value) &&
          absl::SimpleAtoi(remaining->second, &remaining_value)) {
        components_.limiter->ObserveRemaining(call->bucket_key, call->bucket, limit_value,
                                              remaining_value);
      }
    }
    status = StatusFromHttp(info, *response);
  } else {
    call->last_http_status = 0;
    status = StatusFromTransport(info, response.status());
  }
  if (status.ok()) {
    absl::StatusOr<std::string> reply =
        DecodeReply(route, info.upstream, call->cursor, call->page_size, response->body);
    Finish(std::move(call), std::move(reply));
    return;
  }
  // Retry only what is safe: reads on transient failures; writes only when the upstream said
  // it did not process them (429, 449).
  const int http = call->last_http_status;
  const bool transient = http == 429 || http == 449 || http == 502 || http == 503 ||
                         http == 504 ||
                         (http == 0 && status.code() == absl::StatusCode::kUnavailable);
  const bool safe = IsRead(route) ? transient : (http == 429 || http == 449);
  if (safe && call->attempt + 1 < options_.retry.max_attempts) {
    absl::Duration backoff =
        std::min(options_.retry.max_backoff, options_.retry.initial_backoff * (1 << call->attempt));
    backoff = backoff * absl::Uniform(absl::BitGen(), 0.5, 1.0);  // jitter
    // Honour Retry-After (a 429 also paused the bucket in the limiter, for every replica). When
    // the wait cannot fit in the deadline, the caller gets the upstream's answer and its
    // RetryInfo now rather than a later, vaguer rejection.
    if (retry_after.has_value()) backoff = std::max(backoff, *retry_after);
    const absl::Time now = components_.scheduler->Now();
    if (now + backoff + ExpectedLatency(call->bucket_key) < call->options.deadline) {
      ++call->attempt;
      retries_.fetch_add(1, std::memory_order_relaxed);
      components_.scheduler->RunAt(now + backoff,
                                   [this, call]() mutable { Attempt(std::move(call)); });
      return;
    }
  }
  Finish(std::move(call), status);
}

void Dispatcher::Finish(std::shared_ptr<CallState> call, absl::StatusOr<std::string> result) const {
  const Route& route = *call->route;
  if (components_.cache != nullptr) {
    if (IsRead(route)) {
      if (result.ok() && call->store_reply) {
        components_.cache->Store(call->ticket, call->cache_key, *result,
                                 absl::Seconds(route.policy.cache_ttl_seconds()), call->cache_tags,
                                 ReplyAliases(route, *result));
      }
    } else if (call->reached_upstream) {
      // A write that reached the upstream may have changed it, even when its answer was lost.
      components_.cache->Invalidate(call->invalidations,
                                    result.ok() ? ReplyAliases(route, *result)
                                                : std::vector<std::string>{});
    }
  }
  if (!call->idempotency_key.empty() && components_.idempotency != nullptr) {
    // Record what may have happened upstream; release the id when it certainly did not.
    const bool certainly_not_processed =
        !result.ok() && (!call->reached_upstream || NotProcessed(call->last_http_status));
    if (certainly_not_processed) {
      components_.idempotency->Abandon(call->idempotency_key);
    } else {
      components_.idempotency->Complete(call->idempotency_key, result);
    }
  }
  std::vector<Done> followers;
  if (call->leads_flight) {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(call->cache_key);
    if (it != flights_.end()) {
      followers = std::move(it->second);
      flights_.erase(it);
    }
  }
  for (Done& follower : followers) std::move(follower)(result);
  std::move(call->done)(std::move(result));
}

}  // namespace gateway::upstream
