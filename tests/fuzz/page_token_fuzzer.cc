// Fuzzes page tokens (upstream/binding/page_token.h): decoding any caller-supplied token, and
// the round trip of any cursor.
// Input: byte 0 picks the RPC; the rest is both a token to decode and a cursor to encode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_methods.h"
#include "upstream/binding/page_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string& rpc = gateway::fuzz::PickMethod(data[0]).route.rpc;
  const std::string& other = gateway::fuzz::PickMethod(data[0] + 1).route.rpc;
  const absl::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  auto cursor = gateway::upstream::DecodePageToken(rpc, input);
  if (cursor.ok()) {
    // A token that decodes is one the gateway could have issued: re-encoding gives it back.
    if (gateway::upstream::EncodePageToken(rpc, *cursor) != input) std::abort();
  }

  const std::string token = gateway::upstream::EncodePageToken(rpc, input);
  auto back = gateway::upstream::DecodePageToken(rpc, token);
  // Tokens are capped at 4096 bytes; below that, every cursor must round-trip.
  if (token.size() <= 4096 && (!back.ok() || *back != input)) std::abort();
  if (other != rpc && gateway::upstream::DecodePageToken(other, token).ok()) std::abort();
  return 0;
}
