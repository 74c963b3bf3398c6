// How deep a protobuf message nests, against the parsers' recursion limits.
//
//   if (absl::Status s = CheckReplyDepth(reply, "chatwoot", rpc); !s.ok()) return s;
//
// Protobuf parsers stop at 100 nested messages by default (C++, Java, Python, ...), so a reply
// nesting deeper is one that typed clients cannot parse. Upstream JSON reaches that depth easily
// through google.protobuf.Struct fields: every JSON object level costs three messages (Struct,
// its map entry, Value) and every array level two (ListValue, Value), so a 35-level
// `custom_attributes` already made an unparseable reply.
//
// Thread-safe: pure functions.
#ifndef GATEWAY_UPSTREAM_MESSAGE_DEPTH_H_
#define GATEWAY_UPSTREAM_MESSAGE_DEPTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace gateway::upstream {

// The deepest reply the gateway sends, in messages, counting the reply itself as 1: one under
// protobuf's default limit of 100 nested messages, whatever way a parser counts the outermost.
inline constexpr int kMaxReplyMessageDepth = 99;

// The deepest JSON (nested arrays and objects, JsonNestingDepth in upstream_json.h) whose
// decoding cannot nest deeper than kMaxReplyMessageDepth: the codec spends at most three
// messages on a JSON level (Struct, its map entry, Value; a message field spends one, a list
// two), plus the reply itself. A reply decoded from JSON this shallow needs no MessageDepth walk.
inline constexpr int kMaxJsonDepthWithinReplyLimit = (kMaxReplyMessageDepth - 1) / 3;

// The nesting depth of `message` (1 without message fields set), counted up to `limit` + 1:
// it never descends further, so its recursion is bounded by `limit`. `path` (optional) receives
// the field path of the first message found beyond `limit`, e.g.
// "contact.custom_attributes.fields[0].value.struct_value".
int MessageDepth(const google::protobuf::Message& message, int limit, std::string* path = nullptr);

// OK when `reply` nests at most kMaxReplyMessageDepth messages; otherwise INTERNAL with ErrorInfo
// UPSTREAM_RESPONSE_TOO_DEEP (domain `upstream`, metadata upstream, rpc and field).
absl::Status CheckReplyDepth(const google::protobuf::Message& reply, absl::string_view upstream,
                             absl::string_view rpc);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_MESSAGE_DEPTH_H_
