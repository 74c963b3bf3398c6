// Scrape-time collectors that expose the upstream components' own counters on /metrics (the
// components' hot paths never touch the metrics registry; see service/metrics.h):
//
//   metrics.AddCollector([&](MetricsWriter& out) {
//     WriteCacheMetrics(cache.counters(), out);
//     WriteIdempotencyMetrics(idempotency.counters(), out);
//     for (const std::string& bucket : limiter_bucket_keys) {
//       WriteLimiterMetrics(bucket, limiter.counters(bucket), out);
//       WriteBucketLimit(bucket, configured_rate_per_second, out);
//     }
//   });
//
// Names: gateway_cache_<counter>_total (hits, misses, evictions, invalidations, ...) and
// gateway_cache_{entries,bytes} gauges; gateway_limiter_<counter>_total{bucket} (admitted,
// admitted_after_wait = waits, rejected, ...; the limiter's `total` counter, calls that asked
// for a token, is gateway_limiter_requests_total) and the gauges gateway_limiter_queued{bucket}
// and gateway_limiter_rate_per_second{bucket}; gateway_idempotency_<counter>_total.
#ifndef GATEWAY_SERVICE_COMPONENT_METRICS_H_
#define GATEWAY_SERVICE_COMPONENT_METRICS_H_

#include <string>

#include "service/metrics.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/budget/response_cache.h"

namespace gateway::service {

void WriteCacheMetrics(const upstream::ResponseCache::Counters& counters, MetricsWriter& out);
void WriteLimiterMetrics(const std::string& bucket, const upstream::RateLimiter::Counters& counters,
                         MetricsWriter& out);
// gateway_limiter_rate_per_second{bucket}: the upstream's limit for the bucket as configured
// (before the gateway's headroom), the denominator of budget use.
void WriteBucketLimit(const std::string& bucket, double rate_per_second, MetricsWriter& out);
void WriteIdempotencyMetrics(const upstream::IdempotencyStore::Counters& counters,
                             MetricsWriter& out);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_COMPONENT_METRICS_H_
