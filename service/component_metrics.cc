#include "service/component_metrics.h"

#include "absl/strings/str_cat.h"

namespace gateway::service {

void WriteCacheMetrics(const upstream::ResponseCache::Counters& c, MetricsWriter& out) {
  struct Row {
    const char* name;
    const char* help;
    int64_t value;
  };
  const Row counters[] = {
      {"hits", "Reply cache lookups answered with a stored reply (locally or from Redis).",
       c.hits},
      {"redis_hits", "Reply cache lookups answered by Redis (a subset of hits).", c.redis_hits},
      {"misses", "Reply cache lookups that found no reply.", c.misses},
      {"stores", "Replies stored in the local cache after an upstream call.", c.stores},
      {"fills", "Local cache entries filled from a Redis hit.", c.fills},
      {"replaced", "Cache entries overwritten by a newer reply under the same key.", c.replaced},
      {"stale_rejected", "Cache stores refused because an invalidation overlapped the read.",
       c.stale_rejected},
      {"too_large", "Cache stores refused: one reply larger than the cache budget.", c.too_large},
      {"evictions", "Cache entries dropped to stay within the byte budget (LRU).", c.evictions},
      {"invalidations", "Cache entries dropped by invalidation (local or synced from Redis).",
       c.invalidations},
      {"expirations", "Expired cache entries removed.", c.expirations},
      {"redis_errors", "Reply cache Redis commands that failed (the call went on without it).",
       c.redis_errors}};
  for (const Row& row : counters) {
    out.Counter(absl::StrCat("gateway_cache_", row.name, "_total"), row.help, {}, row.value);
  }
  out.Gauge("gateway_cache_entries", "Entries in the local reply cache.", {}, c.entries);
  out.Gauge("gateway_cache_bytes", "Bytes counted against the local cache budget.", {}, c.bytes);
}

namespace {

MetricLabels BucketLabels(const std::string& bucket, const std::string* workspaces) {
  MetricLabels labels = {{"bucket", bucket}};
  if (workspaces != nullptr) labels.emplace_back("workspace", *workspaces);
  return labels;
}

void WriteLimiter(const MetricLabels& labels, const upstream::RateLimiter::Counters& c,
                  MetricsWriter& out) {
  // The counters' own descriptions (rate_limiter.h) are their HELP text.
#define GATEWAY_WRITE_LIMITER_COUNTER(name, description)                                    \
  if (absl::string_view(#name) == "queued") {                                              \
    out.Gauge("gateway_limiter_queued", "Calls waiting for a rate-limit token now.", labels, \
              c.name);                                                                     \
  } else if (absl::string_view(#name) == "total") {                                        \
    out.Counter("gateway_limiter_requests_total", "Rate limiter: " description ".", labels, \
                c.name);                                                                   \
  } else {                                                                                 \
    out.Counter("gateway_limiter_" #name "_total", "Rate limiter: " description ".", labels, \
                c.name);                                                                   \
  }
  GATEWAY_RATE_LIMITER_COUNTERS(GATEWAY_WRITE_LIMITER_COUNTER)
#undef GATEWAY_WRITE_LIMITER_COUNTER
}

void WriteLimit(const MetricLabels& labels, double rate_per_second, MetricsWriter& out) {
  out.Gauge("gateway_limiter_rate_per_second",
            "The upstream's configured limit for the bucket, in calls per second (before the "
            "gateway's headroom).",
            labels, rate_per_second);
}

}  // namespace

void WriteLimiterMetrics(const std::string& bucket, const std::string& workspaces,
                         const upstream::RateLimiter::Counters& c, MetricsWriter& out) {
  WriteLimiter(BucketLabels(bucket, &workspaces), c, out);
}

void WriteLimiterMetrics(const std::string& bucket, const upstream::RateLimiter::Counters& c,
                         MetricsWriter& out) {
  WriteLimiter(BucketLabels(bucket, nullptr), c, out);
}

void WriteBucketLimit(const std::string& bucket, const std::string& workspaces,
                      double rate_per_second, MetricsWriter& out) {
  WriteLimit(BucketLabels(bucket, &workspaces), rate_per_second, out);
}

void WriteBucketLimit(const std::string& bucket, double rate_per_second, MetricsWriter& out) {
  WriteLimit(BucketLabels(bucket, nullptr), rate_per_second, out);
}

void WriteCoalescingMetrics(const upstream::CacheStage::Counters& c, MetricsWriter& out) {
  constexpr absl::string_view kHelp =
      "Identical reads sharing one upstream request, by outcome: joined (a call joined an "
      "identical read in flight on this replica), led (took the cross-replica Redis lease: its "
      "request serves every replica), followed (found another replica's lease and waited for "
      "its fill), filled_by_replica (a wait answered by that fill, no request of its own), "
      "took_over (the lease lapsed unfilled: took it and sent its own request), redis_errors "
      "(the lease command failed: sent its own request without coalescing).";
  const std::pair<const char*, int64_t> outcomes[] = {
      {"joined", c.joined},       {"led", c.led},
      {"followed", c.followed},   {"filled_by_replica", c.filled_by_replica},
      {"took_over", c.took_over}, {"redis_errors", c.redis_errors}};
  for (const auto& [outcome, value] : outcomes) {
    out.Counter("gateway_coalescing_total", kHelp, {{"outcome", outcome}}, value);
  }
}

void WriteIdempotencyMetrics(const upstream::IdempotencyStore::Counters& c, MetricsWriter& out) {
  struct Row {
    const char* name;
    const char* help;
    int64_t value;
  };
  const Row counters[] = {
      {"firsts", "request_id records: first calls (the write goes upstream).", c.firsts},
      {"replays", "request_id records: calls answered with the recorded result.", c.replays},
      {"reused", "request_id records: REQUEST_ID_REUSED (same id, different request).", c.reused},
      {"in_flight_timeouts", "request_id records: REQUEST_IN_FLIGHT answers.",
       c.in_flight_timeouts},
      {"closed", "request_id records: IDEMPOTENCY_STORE_CLOSED answers.", c.closed},
      {"corrupt", "request_id records: IDEMPOTENCY_RECORD_CORRUPT answers.", c.corrupt},
      {"waits", "request_id records: calls that found the same id in flight and waited.",
       c.waits},
      {"completes", "request_id records: results recorded.", c.completes},
      {"abandons", "request_id records: abandoned (the call failed before the write).",
       c.abandons},
      {"evictions", "request_id records dropped locally by the entry limit.", c.evictions},
      {"redis_errors", "request_id record Redis commands that failed.", c.redis_errors}};
  for (const Row& row : counters) {
    out.Counter(absl::StrCat("gateway_idempotency_", row.name, "_total"), row.help, {},
                row.value);
  }
  out.Gauge("gateway_idempotency_entries", "Local request_id records.", {}, c.entries);
}

void WriteHttpMetrics(const std::vector<upstream::HttpClient::KeyStats>& keys,
                      int64_t responses_too_large, MetricsWriter& out,
                      const absl::flat_hash_map<std::string, std::string>* workspaces) {
  static const std::string kNone;
  for (const upstream::HttpClient::KeyStats& k : keys) {
    const std::string* names = nullptr;
    if (workspaces != nullptr) {
      auto it = workspaces->find(k.key);
      names = it != workspaces->end() ? &it->second : &kNone;
    }
    const MetricLabels labels = BucketLabels(k.key, names);
    out.Gauge("gateway_http_in_flight", "Upstream HTTP requests of the bucket in flight now.",
              labels, k.in_flight);
    out.Gauge("gateway_http_queued",
              "Upstream HTTP requests of the bucket waiting, unsent, for one of its slots.", labels,
              k.queued);
    out.Gauge("gateway_http_in_flight_limit",
              "Most upstream HTTP requests of one bucket in flight at once (-1: no limit).",
              labels, k.limit);
  }
  out.Counter("gateway_http_responses_too_large_total",
              "Upstream responses aborted for exceeding the body or header bounds.", {},
              responses_too_large);
}

void WriteDriftMetrics(const std::vector<upstream::DriftReport::Entry>& entries,
                       const absl::flat_hash_map<std::string, std::string>& upstream_of_rpc,
                       MetricsWriter& out) {
  constexpr absl::string_view kHelp =
      "Upstream reply parts that did not fit the protos, by upstream, RPC, field and kind "
      "(unknown_field, type_mismatch, unknown_enum, envelope; unknown_event for webhook event "
      "types the protos do not know, rpc /webhooks/{upstream}); details at admin GET /drift.";
  // Declared even without entries: alert rules and dashboards refer to it before the first drift.
  out.Declare("gateway_upstream_drift_total", prometheus::MetricType::Counter, kHelp);
  for (const upstream::DriftReport::Entry& e : entries) {
    auto upstream = upstream_of_rpc.find(e.rpc);
    out.Counter("gateway_upstream_drift_total", kHelp,
                {{"upstream", upstream != upstream_of_rpc.end() ? upstream->second : ""},
                 {"rpc", e.rpc},
                 {"field", e.field},
                 {"kind", std::string(upstream::DriftKindName(e.kind))}},
                static_cast<double>(e.count));
  }
}

}  // namespace gateway::service
