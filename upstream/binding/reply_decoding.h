// Decoding an upstream reply through a route's reply shapes, whichever dialect answered.
//
// A route knows how its spoken dialect shapes the reply (Route::reply_shapes[0]) and how the
// other dialects do. The body is decoded through the shape that fits it best (the one whose
// target reads the most of its keys, the spoken one on ties), so a live reply decodes on an
// openapi route and vice versa; using a shape other than the spoken one, or falling back to the
// reply's only list for a bare array nobody declared, is recorded as `envelope` drift. Decoding
// itself is tolerant (json_codec.h): mismatches are skipped and recorded, never fatal.
//
//   DecodeReplyJson(route, json, reply.get(), &drift);
#ifndef GATEWAY_UPSTREAM_BINDING_REPLY_DECODING_H_
#define GATEWAY_UPSTREAM_BINDING_REPLY_DECODING_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "upstream/binding/drift_report.h"
#include "upstream/binding/route.h"

namespace gateway::upstream {

// Decodes `json` (the parsed reply body, after the pagination hook consumed its part) into
// `reply`. `drift` may be nullptr. Errors: INTERNAL (UPSTREAM_RESPONSE_MISMATCH) only when no
// shape can take the body at all (e.g. a string where an object was expected).
absl::Status DecodeReplyJson(const Route& route, const nlohmann::json& json,
                             google::protobuf::Message* reply, DriftReport* drift);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_BINDING_REPLY_DECODING_H_
