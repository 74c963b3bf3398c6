#include "upstream/binding/message_depth.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Depth of `message` sitting at `depth`, capped at limit + 1; on exceeding, `path` gets the
// segments of the way there, innermost first.
int Walk(const Message& message, int depth, int limit, std::vector<std::string>* path) {
  if (depth > limit) return depth;
  int deepest = depth;
  const google::protobuf::Reflection* r = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const int n = field->is_repeated() ? r->FieldSize(message, field) : 1;
    for (int i = 0; i < n; ++i) {
      const Message& sub = field->is_repeated() ? r->GetRepeatedMessage(message, field, i)
                                                : r->GetMessage(message, field);
      const int d = Walk(sub, depth + 1, limit, path);
      if (d > deepest) deepest = d;
      if (deepest > limit) {
        if (path != nullptr) {
          path->push_back(field->is_repeated() ? absl::StrCat(field->name(), "[", i, "]")
                                               : field->name());
        }
        return deepest;
      }
    }
  }
  return deepest;
}

}  // namespace

int MessageDepth(const Message& message, int limit, std::string* path) {
  std::vector<std::string> segments;
  const int depth = Walk(message, 1, limit, &segments);
  if (path != nullptr) {
    path->clear();
    for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
      if (!path->empty()) path->push_back('.');
      path->append(*it);
    }
  }
  return depth;
}

absl::Status CheckReplyDepth(const Message& reply, absl::string_view upstream,
                             absl::string_view rpc) {
  std::string path;
  if (MessageDepth(reply, kMaxReplyMessageDepth, &path) <= kMaxReplyMessageDepth) {
    return absl::OkStatus();
  }
  return GatewayError(
      absl::StatusCode::kInternal,
      absl::StrCat(upstream, " answered with a value nested too deep for a reply (more than ",
                   kMaxReplyMessageDepth, " messages, protobuf's parse limit) at '", path, "'"),
      {.reason = "UPSTREAM_RESPONSE_TOO_DEEP",
       .domain = std::string(upstream),
       .metadata = {{"upstream", std::string(upstream)},
                    {"rpc", std::string(rpc)},
                    {"field", path}}});
}

}  // namespace gateway::upstream
