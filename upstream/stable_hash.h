// A hash that is the same in every process, replica and build (FNV-1a, 64 bit), for values
// that leave the process: page tokens, account partitions of shared state. absl::Hash is seeded
// per process and must not be used for these. Not for security: anyone can compute it.
#ifndef GATEWAY_UPSTREAM_STABLE_HASH_H_
#define GATEWAY_UPSTREAM_STABLE_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace gateway::upstream {

inline uint64_t StableHash(absl::string_view data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_STABLE_HASH_H_
