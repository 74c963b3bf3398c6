#include "upstream/pipeline/dispatcher.h"

#include <memory>
#include <optional>
#include <utility>

#include "upstream/safe_text.h"

namespace gateway::upstream {

Dispatcher::Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams,
                       Components components, Options options)
    : upstreams_(std::move(upstreams)),
      components_(components),
      prepare_(&upstreams_, {.buckets = std::move(options.buckets),
                             .default_bucket = options.default_bucket,
                             .has_cache = components.cache != nullptr,
                             .has_idempotency = components.idempotency != nullptr}),
      replay_(components.idempotency),
      cache_(components.cache, {.redis = components.redis,
                                .scheduler = components.scheduler,
                                .lease = components.coalescing_lease}),
      admission_(components.limiter),
      send_(components.http, components.scheduler, options.retry, admission_.max_pause()),
      commit_(components.cache, components.idempotency) {
  // Never relayed, even when an upstream quotes a token back in an error body.
  for (const auto& [name, up] : upstreams_) RegisterSecret(up.token);
  stages_.scheduler = components_.scheduler;
  stages_.admission = &admission_;
  stages_.send = &send_;
  stages_.commit = &commit_;
  stages_.cache = &cache_;
  stages_.registry = &registry_;
  stages_.counters = &counters_;
  stages_.drift = components_.drift;
}

Dispatcher::~Dispatcher() = default;

Dispatcher::Counters Dispatcher::counters() const {
  return {counters_.calls.load(),     counters_.upstream_requests.load(),
          counters_.retries.load(),   counters_.coalesced.load(),
          counters_.idempotent_replays.load(), counters_.cancelled.load(),
          counters_.aborted_in_flight.load(), cache_.counters()};
}

std::vector<std::string> Dispatcher::BucketKeys() const { return admission_.BucketKeys(); }

std::optional<std::string> Dispatcher::BucketKeyOf(const std::string& upstream,
                                                   const std::string& bucket) const {
  return prepare_.BucketKey(upstream, bucket);
}

void Dispatcher::InvalidateTags(const std::string& upstream, const std::vector<std::string>& tags,
                                const std::vector<std::string>& aliases) const {
  if (components_.cache == nullptr || (tags.empty() && aliases.empty())) return;
  auto it = upstreams_.find(upstream);
  if (it == upstreams_.end() || it->second.base_url.empty()) return;
  components_.cache->Invalidate(PartitionTags(it->second.partition, tags),
                                PartitionTags(it->second.partition, aliases));
}

std::shared_ptr<const std::string> Dispatcher::CachedReply(
    const Route& route, absl::string_view request_bytes) const {
  if (components_.cache == nullptr) return nullptr;
  std::optional<std::string> key = prepare_.HitKey(route, request_bytes);
  if (!key.has_value()) return nullptr;
  std::shared_ptr<const std::string> hit = components_.cache->Peek(*key);
  if (hit != nullptr) counters_.calls.fetch_add(1, std::memory_order_relaxed);
  return hit;
}

void Dispatcher::Shutdown(absl::Time abort_at) {
  components_.scheduler->RunAt(abort_at, [this, self = weak_from_this().lock()] {
    registry_.AbortAll(upstream::Call::CancelReason::kShutdown);
  });
}

CallPtr Dispatcher::Call(const Route& route, const google::protobuf::Message& request,
                                       const CallOptions& options, Done done) const {
  counters_.calls.fetch_add(1, std::memory_order_relaxed);
  // The call keeps this dispatcher alive (see LIFETIME in the header); null when not shared.
  auto call = std::make_shared<upstream::Call>(
      options, std::move(done), weak_from_this().lock());
  if (absl::Status s = prepare_.Prepare(route, request, options, &call->prepared()); !s.ok()) {
    call->End(std::move(s));
    return call;
  }
  const PreparedCall& prepared = call->prepared();
  if (replay_.Applies(prepared)) {
    call->Advance(upstream::Call::State::kReplaying);
    replay_.Begin(prepared, options.deadline,
                  [this, call](IdempotencyStore::BeginResult begin) {
                    if (begin.outcome == IdempotencyStore::Outcome::kFirst) {
                      if (call->state() == upstream::Call::State::kDone) {
                        replay_.Abandon(call->prepared());  // ended while waiting: release the id
                        return;
                      }
                      StartExchange(call, std::nullopt);
                      return;
                    }
                    if (begin.outcome == IdempotencyStore::Outcome::kReplay) {
                      counters_.idempotent_replays.fetch_add(1, std::memory_order_relaxed);
                    }
                    call->End(std::move(begin.result));
                  });
    return call;
  }
  if (prepared.cached) {
    call->Advance(upstream::Call::State::kLookingUp);
    cache_.Lookup(prepared, [this, call](std::optional<std::string> hit,
                                         ResponseCache::ReadTicket ticket) {
      if (hit.has_value()) {
        if (call->options().stats != nullptr) call->options().stats->cache_hit = true;
        call->End(*std::move(hit));
        return;
      }
      StartExchange(call, ticket);
    });
    return call;
  }
  StartExchange(call, std::nullopt);
  return call;
}

void Dispatcher::StartExchange(const CallPtr& call,
                               std::optional<ResponseCache::ReadTicket> ticket) const {
  auto [exchange, leads] = cache_.JoinOrLead(call, [&] {
    return std::make_shared<Exchange>(&stages_, call, ticket);
  });
  if (leads) {
    cache_.Begin(exchange, /*stored=*/ticket.has_value());
  } else {
    counters_.coalesced.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace gateway::upstream
