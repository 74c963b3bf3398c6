#include "upstream/transport/upstream_json.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace gateway::upstream {
namespace {

constexpr absl::string_view kTooDeepKey = "gateway.upstream/json-too-deep";

}  // namespace

int JsonNestingDepth(absl::string_view body, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > limit) return limit + 1;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

absl::StatusOr<nlohmann::json> ParseUpstreamJson(absl::string_view body, int max_depth,
                                                 int* depth) {
  const int nesting = JsonNestingDepth(body, max_depth);
  if (depth != nullptr) *depth = nesting;
  if (nesting > max_depth) {
    absl::Status status = absl::OutOfRangeError(
        absl::StrCat("the body nests deeper than ", max_depth, " levels"));
    status.SetPayload(kTooDeepKey, absl::Cord("1"));
    return status;
  }
  nlohmann::json json = nlohmann::json::parse(body.begin(), body.end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError("the body is not JSON");
  return json;
}

bool IsJsonTooDeep(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kTooDeepKey).has_value();
}

}  // namespace gateway::upstream
