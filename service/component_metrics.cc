#include "service/component_metrics.h"

#include "absl/strings/str_cat.h"

namespace gateway::service {

void WriteCacheMetrics(const upstream::ResponseCache::Counters& c, MetricsWriter& out) {
  const std::pair<const char*, int64_t> counters[] = {
      {"hits", c.hits},           {"redis_hits", c.redis_hits},
      {"misses", c.misses},       {"stores", c.stores},
      {"fills", c.fills},         {"replaced", c.replaced},
      {"stale_rejected", c.stale_rejected}, {"too_large", c.too_large},
      {"evictions", c.evictions}, {"invalidations", c.invalidations},
      {"expirations", c.expirations}, {"redis_errors", c.redis_errors}};
  for (const auto& [name, value] : counters) {
    out.Counter(absl::StrCat("gateway_cache_", name, "_total"),
                "Reply cache events (upstream/budget/response_cache.h).", {}, value);
  }
  out.Gauge("gateway_cache_entries", "Entries in the local reply cache.", {}, c.entries);
  out.Gauge("gateway_cache_bytes", "Bytes counted against the local cache budget.", {}, c.bytes);
}

void WriteLimiterMetrics(const std::string& bucket, const upstream::RateLimiter::Counters& c,
                         MetricsWriter& out) {
  c.ForEach([&](absl::string_view name, int64_t value) {
    if (name == "queued") {
      out.Gauge("gateway_limiter_queued", "Calls waiting for a rate-limit token now.",
                {{"bucket", bucket}}, value);
    } else {
      out.Counter(absl::StrCat("gateway_limiter_", name, "_total"),
                  "Rate limiter decisions (upstream/budget/rate_limiter.h).", {{"bucket", bucket}}, value);
    }
  });
}

void WriteIdempotencyMetrics(const upstream::IdempotencyStore::Counters& c, MetricsWriter& out) {
  const std::pair<const char*, int64_t> counters[] = {
      {"firsts", c.firsts},         {"replays", c.replays},
      {"reused", c.reused},         {"in_flight_timeouts", c.in_flight_timeouts},
      {"closed", c.closed},         {"corrupt", c.corrupt},
      {"waits", c.waits},           {"completes", c.completes},
      {"abandons", c.abandons},     {"evictions", c.evictions},
      {"redis_errors", c.redis_errors}};
  for (const auto& [name, value] : counters) {
    out.Counter(absl::StrCat("gateway_idempotency_", name, "_total"),
                "request_id records (upstream/budget/idempotency_store.h).", {}, value);
  }
  out.Gauge("gateway_idempotency_entries", "Local request_id records.", {}, c.entries);
}

}  // namespace gateway::service
