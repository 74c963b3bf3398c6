// Parsing of upstream reply bodies with a nesting bound, before anything walks them.
//
//   absl::StatusOr<nlohmann::json> json = ParseUpstreamJson(response.body);
//   if (!json.ok()) return StatusFromBadBody(call, response, json.status());  // error_mapping.h
//
// nlohmann's parser itself is iterative, but everything after it (dump(), copies, the codec,
// pagination, error-message extraction) recurses once per nesting level: a hostile 60,000-deep
// body overflowed the stack. A linear pre-scan rejects such a body before a json value exists.
//
// Thread-safe: pure functions.
#ifndef GATEWAY_UPSTREAM_UPSTREAM_JSON_H_
#define GATEWAY_UPSTREAM_UPSTREAM_JSON_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {

// Deepest nesting of arrays and objects accepted in an upstream body. The replies of both
// upstreams nest fewer than 10 levels; nothing deeper than 100 could be decoded into a reply
// that protobuf parsers accept (their default limit is 100 nested messages, and every JSON level
// decodes into at least one).
inline constexpr int kMaxUpstreamJsonDepth = 100;

// The nesting depth of the JSON text `body` (0 for a scalar), counting `[` and `{` outside
// strings; it stops counting once `limit` is exceeded and returns limit + 1. Does not validate.
int JsonNestingDepth(absl::string_view body, int limit);

// Parses `body`. Errors: OUT_OF_RANGE (see IsJsonTooDeep) when it nests deeper than
// `max_depth`, INVALID_ARGUMENT when it is not JSON. Never throws. `depth` (optional) receives
// JsonNestingDepth(body, max_depth), which the parse measures anyway.
absl::StatusOr<nlohmann::json> ParseUpstreamJson(absl::string_view body,
                                                 int max_depth = kMaxUpstreamJsonDepth,
                                                 int* depth = nullptr);

// True iff `status` is ParseUpstreamJson's "nested too deep" error.
bool IsJsonTooDeep(const absl::Status& status);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_UPSTREAM_JSON_H_
