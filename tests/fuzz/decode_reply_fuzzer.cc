// Fuzzes upstream-reply decoding (DecodeReply, upstream/pipeline/dispatcher.h): a 2xx body as a
// hostile upstream could send it, for every respondio/chatwoot RPC, with its pagination hook.
// Input: byte 0 picks the RPC, byte 1 the page_size (0-255); the rest is the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "tests/fuzz/fuzz_methods.h"
#include "upstream/pipeline/dispatcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto& m = gateway::fuzz::PickMethod(data[0]);
  const int page_size = data[1];
  const absl::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  for (absl::string_view cursor : {absl::string_view(""), absl::string_view("2")}) {
    auto reply = gateway::upstream::DecodeReply(m.route, m.upstream, cursor, page_size, body);
    if (!reply.ok()) continue;
    // Whatever the gateway answers OK must parse as the reply type.
    std::unique_ptr<google::protobuf::Message> parsed(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(m.method->output_type())
            ->New());
    if (!parsed->ParseFromString(*reply)) std::abort();
  }
  return 0;
}
