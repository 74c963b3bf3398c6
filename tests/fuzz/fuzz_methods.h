// The RPCs of both dialects (respondio.v2, chatwoot.v1), for fuzz targets that pick one RPC from
// their input's first byte.
#ifndef GATEWAY_TESTS_FUZZ_FUZZ_METHODS_H_
#define GATEWAY_TESTS_FUZZ_FUZZ_METHODS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "upstream/binding/route.h"

namespace gateway::fuzz {

struct FuzzMethod {
  const google::protobuf::MethodDescriptor* method;
  const char* upstream;  // "respondio" or "chatwoot"
  upstream::Route route;  // the route the proto declares
};

// Every RPC of both dialects with its declared route, in a fixed order (built once).
const std::vector<FuzzMethod>& AllMethods();

// Picks the method named by `selector` (taken modulo the count).
inline const FuzzMethod& PickMethod(uint8_t selector) {
  const auto& all = AllMethods();
  return all[selector % all.size()];
}

}  // namespace gateway::fuzz

#endif  // GATEWAY_TESTS_FUZZ_FUZZ_METHODS_H_
