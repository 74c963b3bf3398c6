// Fuzzes the JSON codec (upstream/binding/json_codec.h): upstream JSON -> the request and reply
// messages of every respondio/chatwoot RPC, then back to JSON.
// Input: byte 0 picks the RPC, byte 1 bit 0 picks its reply (0) or request (1) type; the rest
// is the JSON text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_methods.h"
#include "upstream/binding/json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto& m = gateway::fuzz::PickMethod(data[0]);
  const google::protobuf::Descriptor* type =
      (data[1] & 1) ? m.method->input_type() : m.method->output_type();
  const std::string text(reinterpret_cast<const char*>(data + 2), size - 2);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  if (!gateway::upstream::DecodeMessage(json, message.get()).ok()) return 0;
  // What decoded must encode, and the encoding must decode again to the same message.
  const nlohmann::json encoded = gateway::upstream::EncodeMessage(*message);
  const std::string dumped = encoded.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::unique_ptr<google::protobuf::Message> again(message->New());
  if (!gateway::upstream::DecodeMessage(nlohmann::json::parse(dumped), again.get()).ok()) {
    std::abort();  // the codec cannot read its own output
  }
  std::string bytes;
  message->SerializeToString(&bytes);
  return 0;
}
