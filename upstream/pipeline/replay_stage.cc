#include "upstream/pipeline/replay_stage.h"

#include <utility>

namespace gateway::upstream {

void ReplayStage::Begin(const PreparedCall& prepared, absl::Time deadline,
                        IdempotencyStore::BeginCallback done) const {
  store_->Begin(prepared.idempotency_key, prepared.fingerprint, deadline, std::move(done));
}

void ReplayStage::Abandon(const PreparedCall& prepared) const {
  store_->Abandon(prepared.idempotency_key);
}

}  // namespace gateway::upstream
