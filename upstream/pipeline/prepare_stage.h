// Stage 1, validate and prepare: one request message -> a PreparedCall, before any budget is
// spent.
//
//   PrepareStage prepare(&upstreams, {.buckets = ..., .default_bucket = ...});
//   absl::Status s = prepare.Prepare(route, request, options, &call->prepared());
//
// CONTRACT. Prepare checks, in order: the route's upstream is configured (else
// FAILED_PRECONDITION, UPSTREAM_NOT_CONFIGURED), the request's field rules (INVALID_ARGUMENT,
// validation.h), the page token (INVALID_ARGUMENT), the path expansion (INVALID_ARGUMENT when a
// path field is empty and has no default). On success it fills every field of PreparedCall:
// the upstream request parts, the limiter bucket (key and rate), and
//   reads:  the cache key (account|rpc|deterministic request bytes) and expanded cache tags;
//           `cached` when the route has a cache TTL and the caller did not ask for no-cache,
//           `coalesced` unless the caller asked for no-cache;
//   writes: the expanded invalidation tags and, with a request_id, its fingerprint and the
//           idempotency key, which names the caller: request_id records are per caller, so
//           another caller's id neither replays nor reveals anything.
// Read or write is Route::read, decided when the route was compiled. `request` is only read
// during the call. Thread-safe (immutable after construction).
#ifndef GATEWAY_UPSTREAM_PIPELINE_PREPARE_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_PREPARE_STAGE_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "upstream/budget/rate_limiter.h"
#include "upstream/pipeline/call.h"

namespace gateway::upstream {

class PrepareStage {
 public:
  struct Options {
    // Bucket rates by "upstream/bucket" (e.g. "respondio/contact_get").
    absl::flat_hash_map<std::string, BucketConfig> buckets;
    BucketConfig default_bucket;  // buckets not listed
    bool has_cache = true;        // false: no read is `cached`
    bool has_idempotency = true;  // false: no write gets an idempotency key
  };

  // `upstreams` must outlive the stage.
  PrepareStage(const absl::flat_hash_map<std::string, UpstreamConfig>* upstreams, Options options);

  absl::Status Prepare(const Route& route, const google::protobuf::Message& request,
                       const CallOptions& options, PreparedCall* out) const;

  // The key a cached read of `route` with these request bytes is stored under, when the route
  // is a cached read of a configured upstream; else nullopt. No parsing, no validation: used
  // only to find an entry a validated call stored.
  std::optional<std::string> HitKey(const Route& route, absl::string_view request_bytes) const;

  // The rate-limit bucket key ("upstream:account:bucket") calls of `upstream`'s routes naming
  // `bucket` are admitted under (PreparedCall::bucket_key), or nullopt when that upstream is
  // not configured here (no base URL).
  std::optional<std::string> BucketKey(const std::string& upstream, const std::string& bucket) const;

 private:
  struct Account {
    std::string limit;  // limiter scope: token id or host
    std::string cache;  // cache and request_id partition: host/token id
  };
  const absl::flat_hash_map<std::string, UpstreamConfig>* upstreams_;
  absl::flat_hash_map<std::string, Account> accounts_;
  Options options_;
};

// The cache (and coalescing) key of a read: every key is made here. `account`: the upstream
// account's cache partition; `request_bytes`: the request's deterministic serialization (a
// caller's bytes that are not deterministic simply miss the hit fast path, never hit wrongly:
// deterministic bytes decode to exactly one message).
std::string CacheKey(absl::string_view account, absl::string_view rpc,
                     absl::string_view request_bytes);

// Deterministic serialization of `message` (map order fixed), for cache keys and fingerprints.
std::string DeterministicBytes(const google::protobuf::Message& message);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_PREPARE_STAGE_H_
