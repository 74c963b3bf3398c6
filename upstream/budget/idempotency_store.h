// Exactly-once writes by request id: the first call with an id runs, repeats replay its result.
//
// Write RPCs carry an optional `request_id` (a UUID). Before calling the upstream the gateway
// calls Begin with key = rpc + request_id and a fingerprint of the request; the first caller gets
// kFirst and must later call Complete (with the reply bytes or the error) or Abandon (the call
// never reached the upstream). A repeat gets kReplay with the first result, without a second
// upstream call, even while the first is still in flight (it waits for it) and, with Redis, even
// when the repeat reaches another replica:
//
//   IdempotencyStore store({}, &scheduler, redis);  // redis may be null
//   const std::string key = IdempotencyStore::Key(rpc_name, request_id);
//   store.Begin(key, IdempotencyStore::Fingerprint(request_bytes), deadline,
//               [&](IdempotencyStore::BeginResult r) {
//     switch (r.outcome) {
//       case IdempotencyStore::Outcome::kFirst:
//         CallUpstream(..., [&, key](absl::StatusOr<std::string> reply) {
//           store.Complete(key, reply);  // or store.Abandon(key) if it was never sent
//           Finish(reply);
//         });
//         return;
//       case IdempotencyStore::Outcome::kReplay:    // the first call's result (reply or error)
//       case IdempotencyStore::Outcome::kRejected:  // REQUEST_ID_REUSED or REQUEST_IN_FLIGHT
//         return Finish(std::move(r.result));
//     }
//   });
//
// Errors (kRejected; absl::Status with google.rpc details via upstream/errors.h):
//   INVALID_ARGUMENT, reason REQUEST_ID_REUSED: the id was used with a different request (other
//     fingerprint), with a BadRequest on field "request_id". Not retryable.
//   UNAVAILABLE, reason REQUEST_IN_FLIGHT, RetryInfo(Options::in_flight_retry_delay): the first
//     call is still in flight and did not finish before `deadline`. UNAVAILABLE because retrying
//     exactly the same call (same request_id) is safe and will replay the result once the first
//     call finishes; ABORTED would tell the client to restart a higher-level transaction.
//   UNAVAILABLE, reason IDEMPOTENCY_STORE_CLOSED: the store was destroyed while a call waited.
//   INTERNAL, reason IDEMPOTENCY_RECORD_CORRUPT: a Redis record could not be decoded.
// A stored error replays with its code, message and every payload (the google.rpc details).
//
// Retention. A record lives `retention` after its first Begin (Redis keeps its TTL when the call
// completes). Locally, records also obey `max_entries`, dropping the oldest completed record first.
//
// Redis (optional). Begin runs one script: SET key <pending, fingerprint> NX PX retention, or
// return the existing record: completed → replay; pending → poll every `poll_interval` on the
// Scheduler (no thread waits) until it completes, disappears (the first caller abandoned: the
// poller may become first), or `deadline` passes. Complete and Abandon also update local waiters
// at once. Layout (P = Options::redis_key_prefix):
//   P <key>  STRING  "P<n>:<fingerprint>" while in flight;
//                    "D<n>:<fingerprint><result>" once complete, where <result> is
//                    "O<reply bytes>" or "E" + code, message and payloads (length-prefixed)
//                    PX = retention from the first Begin.
// Redis unreachable: Begin falls back to the in-process store, so calls never fail because of
// Redis, with a weaker guarantee: a repeat that reaches another replica while Redis is down, or
// a call begun during the outage and repeated elsewhere, runs again. A poller that loses Redis
// keeps polling until its deadline (the first call is known to be in flight elsewhere). Complete
// and Abandon writes that fail are retried every `redis_retry_interval` within the retention.
//
// Thread safety: thread-safe. One absl::Mutex guards local records; it is never held during Redis
// I/O or while calling a callback. `done` runs exactly once: on the calling thread (answers known
// locally), a RedisClient worker thread, or the Scheduler's thread (waits). Deadlines are times on
// the Scheduler's clock. `clock` and `redis` must outlive the store; waiters still pending when
// the store is destroyed are answered IDEMPOTENCY_STORE_CLOSED. Redis replies arriving after
// that are handled harmlessly but read `clock`: destroy the RedisClient before the Scheduler.
#ifndef GATEWAY_UPSTREAM_IDEMPOTENCY_STORE_H_
#define GATEWAY_UPSTREAM_IDEMPOTENCY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "upstream/transport/redis_client.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {

class IdempotencyStore {
 public:
  struct Options {
    // How long a request id is remembered after its first Begin.
    absl::Duration retention = absl::Hours(24);
    // How often a Begin that waits for a call in flight on another replica re-reads Redis.
    absl::Duration poll_interval = absl::Milliseconds(50);
    // Prefix of every Redis key.
    std::string redis_key_prefix = "gw:idem:";
    // Most records kept in process (completed ones evicted oldest first). 100k records of a few
    // KiB each stay well under a gigabyte; a busy gateway sees far fewer writes per day.
    size_t max_entries = 100'000;
    // RetryInfo.retry_delay of REQUEST_IN_FLIGHT.
    absl::Duration in_flight_retry_delay = absl::Seconds(1);
    // Interval between retries of a Complete or Abandon that could not reach Redis.
    absl::Duration redis_retry_interval = absl::Seconds(1);
  };

  enum class Outcome {
    kFirst,     // run the call, then Complete or Abandon
    kReplay,    // `result` is the first call's result: reply bytes or its error
    kRejected,  // `result` is the error to return (REQUEST_ID_REUSED, REQUEST_IN_FLIGHT, ...)
  };
  struct BeginResult {
    Outcome outcome = Outcome::kFirst;
    // kFirst: OK and empty. kReplay: the stored result. kRejected: a non-OK status.
    absl::StatusOr<std::string> result;
  };
  using BeginCallback = absl::AnyInvocable<void(BeginResult) &&>;

  // Monotonic counters and the current number of local records. Accounting:
  //   Begin calls = firsts + replays + reused + in_flight_timeouts + closed + corrupt
  //   (promotions: waiters that became first after an Abandon, are counted in firsts too)
  struct Counters {
    int64_t firsts = 0;              // kFirst answers
    int64_t replays = 0;             // kReplay answers
    int64_t reused = 0;              // REQUEST_ID_REUSED
    int64_t in_flight_timeouts = 0;  // REQUEST_IN_FLIGHT
    int64_t closed = 0;              // IDEMPOTENCY_STORE_CLOSED
    int64_t corrupt = 0;             // IDEMPOTENCY_RECORD_CORRUPT
    int64_t waits = 0;               // Begins that found the call in flight and waited
    int64_t completes = 0;           // Complete calls that recorded a result
    int64_t abandons = 0;            // Abandon calls
    int64_t evictions = 0;           // local records dropped by max_entries
    int64_t redis_errors = 0;        // failed Redis commands (fell back or retried)
    size_t entries = 0;              // current local records
  };

  // `clock` is required; `redis` may be null (in-process only).
  IdempotencyStore(Options options, Scheduler* clock, RedisClient* redis);
  ~IdempotencyStore();
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // The store key of `request_id` on `rpc` (the full method name).
  static std::string Key(absl::string_view rpc, absl::string_view request_id);
  // A stable fingerprint (same on every replica and build) of the request bytes: 32 hex digits.
  // Serialize the request deterministically before hashing it.
  static std::string Fingerprint(absl::string_view request_bytes);

  // Starts or joins the call recorded under `key`; see the class comment. A first caller is
  // answered kFirst whatever `deadline` is; a repeat that finds the call in flight waits until it
  // completes or `deadline` passes (at once when `deadline` has passed already).
  void Begin(const std::string& key, const std::string& fingerprint, absl::Time deadline,
             BeginCallback done);

  // Records the first call's result for the rest of the retention and answers every waiter
  // (local ones at once; other replicas on their next poll). A second Complete of the same key
  // is ignored. An error result is replayed with its code, message and payloads.
  void Complete(const std::string& key, const absl::StatusOr<std::string>& result);

  // Releases `key` after a kFirst whose call certainly did not reach the upstream (validation,
  // rate limit): a repeat runs again. If a repeat is already waiting here it becomes the first
  // caller (kFirst) instead; otherwise the key is deleted and a poller elsewhere takes it over.
  void Abandon(const std::string& key);

  Counters counters() const;

 private:
  class Core;
  std::shared_ptr<Core> core_;  // shared with in-flight Redis callbacks and scheduled polls
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_IDEMPOTENCY_STORE_H_
