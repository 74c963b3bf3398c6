// Stage 2, idempotency replay: a write with a request_id runs once per caller and id; repeats
// get the first call's result.
//
//   ReplayStage replay(&store);                        // store may be null: stage inactive
//   if (replay.Applies(prepared)) {
//     replay.Begin(prepared, deadline, [](IdempotencyStore::BeginResult r) { ... });
//   }
//
// CONTRACT. Applies iff there is a store and the call has an idempotency key (prepare_stage.h:
// the key names the caller). Begin is IdempotencyStore::Begin on that key and the request's
// fingerprint: kFirst means run the call (the commit stage later completes or abandons the
// record); kReplay carries the recorded result; kRejected an error (REQUEST_ID_REUSED,
// REQUEST_IN_FLIGHT, ...). A caller that gets kFirst after its call ended must Abandon, so the
// id is not left pending. Thread-safe.
#ifndef GATEWAY_UPSTREAM_PIPELINE_REPLAY_STAGE_H_
#define GATEWAY_UPSTREAM_PIPELINE_REPLAY_STAGE_H_

#include "absl/time/time.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/pipeline/call.h"

namespace gateway::upstream {

class ReplayStage {
 public:
  explicit ReplayStage(IdempotencyStore* store) : store_(store) {}

  bool Applies(const PreparedCall& prepared) const {
    return store_ != nullptr && !prepared.idempotency_key.empty();
  }
  void Begin(const PreparedCall& prepared, absl::Time deadline,
             IdempotencyStore::BeginCallback done) const;
  // Releases a kFirst record whose call ended before it started.
  void Abandon(const PreparedCall& prepared) const;

 private:
  IdempotencyStore* store_;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PIPELINE_REPLAY_STAGE_H_
