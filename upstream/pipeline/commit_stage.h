// Stage 6, commit: decode the upstream's 2xx body into the reply, then make the gateway's state
// agree with what happened upstream — exactly once per exchange, before any caller is answered.
//
//   CommitStage commit(&cache, &store);                        // either may be null
//   absl::StatusOr<std::string> reply = DecodeReply(route, "respondio", cursor, size, body);
//   commit.Commit(prepared, &ticket, reply, /*maybe_sent=*/true, /*maybe_processed=*/true,
//                 [&] { AnswerCallers(reply); });
//
// CONTRACT.
// - Reads: a successful reply is stored in the cache with the miss's ticket (when the read is
//   cached), under its tags and the aliases its reply names.
// - Writes: when a request may have reached the upstream (even if its answer was lost), the
//   tags it invalidates (and the aliases its reply names) are dropped from the cache: locally at
//   once, and in the shared cache before `settled` runs, so a caller answered from `settled`
//   reads its own write on any replica.
// - request_id: when the upstream certainly did not process the write (never sent, or it said
//   429/449/4xx), the record is abandoned so a retry runs again; otherwise the result (reply or
//   error) is recorded for replay.
// Thread-safe.
#ifndef GATEWAY_UPSTREAM_PIPELINE_COMMIT_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_COMMIT_STAGE_H_

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "upstream/binding/drift_report.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/response_cache.h"
#include "upstream/pipeline/call.h"

namespace gateway::upstream {

class CommitStage {
 public:
  CommitStage(ResponseCache* cache, IdempotencyStore* idempotency)
      : cache_(cache), idempotency_(idempotency) {}

  using Settled = absl::AnyInvocable<void() &&>;

  // `ticket`: the cache miss to store a read's reply with; null when it is not stored.
  // `settled` runs exactly once, when the commit is visible to every replica: at once, or for a
  // write's invalidation with a shared cache, when Redis has answered it (or failed; the
  // invalidation is then replayed later). It may run on a Redis worker thread.
  void Commit(const PreparedCall& prepared, const ResponseCache::ReadTicket* ticket,
              const absl::StatusOr<std::string>& result, bool maybe_sent, bool maybe_processed,
              Settled settled) const;

 private:
  ResponseCache* cache_;
  IdempotencyStore* idempotency_;
};

// Decodes a 2xx upstream `body` into a serialized reply of `route`. `cursor` is the current
// page's cursor. The body is decoded through the route's reply shapes, tolerantly
// (upstream/binding/reply_decoding.h); what does not fit goes to `drift` (may be nullptr).
// Errors: INTERNAL, reason UPSTREAM_BAD_RESPONSE, when the body is not JSON or no reply shape can
// take it, or when a read whose reply names one resource (a message response field) gets no
// resource: an empty body or `null`.
absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body, DriftReport* drift = nullptr);

// The aliases (route.aliases) a serialized reply names.
std::vector<std::string> ReplyAliases(const Route& route, absl::string_view reply_bytes);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_COMMIT_STAGE_H_
