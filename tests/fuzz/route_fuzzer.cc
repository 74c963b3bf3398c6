// Fuzzes route compilation and path expansion (upstream/binding/route.h).
// Input: byte 0 picks the RPC; then a path template up to the first '\n'; the rest is the
// request in protobuf wire format. Expands the request through the declared route and through
// the fuzzed template, and checks that percent-encoding keeps values inside their segment.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/message.h"
#include "tests/fuzz/fuzz_methods.h"
#include "upstream/binding/route.h"

namespace {

void CheckEncoded(absl::string_view value) {
  const std::string segment = gateway::upstream::PercentEncodePathSegment(value);
  const std::string query = gateway::upstream::PercentEncodeQuery(value);
  for (char c : segment) {
    if (c == '/' || c == '?' || c == '#' || c == '+' || c == '&' || c == '=') std::abort();
  }
  for (char c : query) {
    if (c == '/' || c == '?' || c == '#' || c == '+' || c == '&' || c == '=') std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& m = gateway::fuzz::PickMethod(data[0]);
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t newline = rest.find('\n');
  const absl::string_view templ = rest.substr(0, newline);
  const absl::string_view wire =
      newline == absl::string_view::npos ? absl::string_view() : rest.substr(newline + 1);
  CheckEncoded(templ);

  std::unique_ptr<google::protobuf::Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(m.method->input_type())
          ->New());
  if (!request->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) request->Clear();

  const gateway::upstream::PathDefaults defaults = {{"account_id", "1"}};
  (void)gateway::upstream::BuildUpstreamRequest(m.route, *request, defaults,
                                                {{"page", "2"}, {"cursor", std::string(templ)}});
  (void)gateway::upstream::BuildUpstreamRequest(m.route, *request, {});
  (void)gateway::upstream::ExpandTemplate(templ, *request);

  gateway::v1::Binding binding = m.route.binding;
  binding.set_path(std::string(templ));
  auto route = gateway::upstream::CompileRoute(m.method, binding, m.route.policy);
  if (route.ok()) {
    (void)gateway::upstream::BuildUpstreamRequest(*route, *request, defaults);
  }
  return 0;
}
