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
// and gateway_limiter_rate_per_second{bucket}; gateway_idempotency_<counter>_total;
// gateway_upstream_drift_total{upstream, rpc, field, kind}; gateway_coalescing_total{outcome}.
#ifndef GATEWAY_SERVICE_COMPONENT_METRICS_H_
#define GATEWAY_SERVICE_COMPONENT_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_map.h"
#include "service/metrics.h"
#include "upstream/binding/drift_report.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/cache_stage.h"
#include "upstream/transport/http_client.h"

namespace gateway::service {

void WriteCacheMetrics(const upstream::ResponseCache::Counters& counters, MetricsWriter& out);
// `workspaces`: the workspaces whose calls use the bucket, comma-separated (several when they
// share one budget, like the workspaces on one Chatwoot installation): the `workspace` label of
// the bucket's series. The overloads without it write no workspace label.
void WriteLimiterMetrics(const std::string& bucket, const std::string& workspaces,
                         const upstream::RateLimiter::Counters& counters, MetricsWriter& out);
void WriteLimiterMetrics(const std::string& bucket, const upstream::RateLimiter::Counters& counters,
                         MetricsWriter& out);
// gateway_limiter_rate_per_second{bucket,workspace}: the upstream's limit for the bucket as
// configured (before the gateway's headroom), the denominator of budget use.
void WriteBucketLimit(const std::string& bucket, const std::string& workspaces,
                      double rate_per_second, MetricsWriter& out);
void WriteBucketLimit(const std::string& bucket, double rate_per_second, MetricsWriter& out);
void WriteIdempotencyMetrics(const upstream::IdempotencyStore::Counters& counters,
                             MetricsWriter& out);
// gateway_coalescing_total{outcome}: identical reads sharing one upstream request, within this
// replica (joined) and across replicas through the Redis lease (led, followed,
// filled_by_replica, took_over, redis_errors); upstream/pipeline/cache_stage.h.
void WriteCoalescingMetrics(const upstream::CacheStage::Counters& counters, MetricsWriter& out);
// The HTTP client's fairness per bucket (upstream/transport/http_client.h): gauges
// gateway_http_in_flight{bucket}, gateway_http_queued{bucket} (waiting, unsent, for a slot of
// their bucket) and gateway_http_in_flight_limit{bucket} (-1: unlimited); and
// gateway_http_responses_too_large_total (responses aborted over a size bound).
// With `workspaces` (by bucket key, as for WriteLimiterMetrics), each bucket's series also
// carry its `workspace` label.
void WriteHttpMetrics(const std::vector<upstream::HttpClient::KeyStats>& keys,
                      int64_t responses_too_large, MetricsWriter& out,
                      const absl::flat_hash_map<std::string, std::string>* workspaces = nullptr);
// gateway_upstream_drift_total{upstream, rpc, field, kind}: one series per drift report entry
// (upstream/binding/drift_report.h), the family declared (HELP and TYPE) even while empty.
// `upstream_of_rpc` maps a route's rpc ("/respondio.v2.ContactService/GetContact") to its
// upstream's name.
void WriteDriftMetrics(const std::vector<upstream::DriftReport::Entry>& entries,
                       const absl::flat_hash_map<std::string, std::string>& upstream_of_rpc,
                       MetricsWriter& out);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_COMPONENT_METRICS_H_
