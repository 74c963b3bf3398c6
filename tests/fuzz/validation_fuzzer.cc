// Fuzzes request validation (upstream/binding/validation.h) on every respondio/chatwoot request
// type, and each format check on raw strings.
// Input: byte 0 picks the RPC; the rest is its request in protobuf wire format (as gRPC
// delivers it) and, as raw bytes, a string for every format check.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/message.h"
#include "tests/fuzz/fuzz_methods.h"
#include "upstream/binding/validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& m = gateway::fuzz::PickMethod(data[0]);
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  for (int f = gateway::v1::Format_MIN; f <= gateway::v1::Format_MAX; ++f) {
    if (gateway::v1::Format_IsValid(f)) {
      (void)gateway::upstream::CheckFormat(static_cast<gateway::v1::Format>(f), rest);
    }
  }
  std::unique_ptr<google::protobuf::Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(m.method->input_type())
          ->New());
  if (!request->ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return 0;
  (void)gateway::upstream::ValidateRequest(*request);
  return 0;
}
