// Converts between protobuf messages and upstream JSON, driven by descriptors alone.
//
// Why not protobuf's JsonStringToMessage: upstreams want int64 ids as JSON numbers, enum values
// as their REST strings ("quick_reply", not "MESSAGE_TYPE_QUICK_REPLY"), explicit nulls for some
// unset fields (unassign), and a mismatch must name the offending JSON path.
//
// Encoding (proto -> JSON) omits unset and default-valued fields, writes int64 as numbers, enum
// values as their REST strings (`gateway.v1.rest_value`, else the lower-case value name without
// the enum's prefix), google.protobuf.Struct/Value/ListValue as plain JSON, and JSON null for
// unset optional fields marked `null_when_unset`.
//
// Decoding (JSON -> proto) matches keys by JSON name or proto name, or by a field's
// `gateway.v1.field.json_aliases` (another dialect's name for it; when several fields read one
// key, the first whose type fits the value takes it: `assignee` as a string or as a user object),
// ignores unknown keys (the upstream may add fields), treats null as unset, accepts integers
// written as strings, decodes a single object sent for a repeated message field as a list of one
// (`{payload: contact}` where a list of contacts is declared), maps unknown enum strings to the
// zero value (the upstream may add values) and copies the upstream's string into a `<field>_raw`
// string companion when the message declares one, maps integer enum codes through
// `gateway.v1.rest_number` when the enum declares them, and fails with INTERNAL naming the path
// (e.g. `items[2].firstName`) when a value has the wrong JSON type, unless the options say
// `tolerant`: then the value is skipped and the rest decodes.
//
// With DecodeOptions::drift set, every unknown key, type mismatch and unknown enum value is
// recorded in that DriftReport under DecodeOptions::rpc (see drift_report.h).
//
// Thread-safe: these are pure functions.
#ifndef GATEWAY_UPSTREAM_JSON_CODEC_H_
#define GATEWAY_UPSTREAM_JSON_CODEC_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {

class DriftReport;

// How tolerant a decode is, and where what did not fit is reported.
struct DecodeOptions {
  // Skip values of the wrong JSON type (recorded as type_mismatch) instead of failing.
  bool tolerant = false;
  // Where unknown fields, type mismatches and unknown enum values are recorded; nullptr: nowhere.
  DriftReport* drift = nullptr;
  // The RPC the drift is recorded under, e.g. "/respondio.v2.ContactService/GetContact".
  std::string rpc;
};

// The JSON of one field of `message`: `present` false when the field is unset/default and its key
// is omitted; a `null_when_unset` field (gateway.v1.field) that is unset is present with the
// value JSON null, so the upstream receives an explicit null (e.g. "unassign").
struct EncodedField {
  bool present = false;  // false: omit the key
  nlohmann::json value;  // may be null when present (explicit null)
};
EncodedField EncodeField(const google::protobuf::Message& message,
                         const google::protobuf::FieldDescriptor* field);

// Encodes every field of `message` except those in `skip` into a JSON object.
nlohmann::json EncodeMessage(
    const google::protobuf::Message& message,
    const absl::flat_hash_set<const google::protobuf::FieldDescriptor*>& skip = {});

// The REST string of an enum value.
std::string EnumRestValue(const google::protobuf::EnumValueDescriptor* value);

// Merges `json` into `message`. `path` names `json` in error messages ("" for the root).
// Errors: INTERNAL (reason UPSTREAM_RESPONSE_MISMATCH) naming the path on a JSON type mismatch.
absl::Status DecodeMessage(const nlohmann::json& json, google::protobuf::Message* message,
                           absl::string_view path = "");

// As above, with tolerance and drift reporting as `options` say. In tolerant mode the only
// error left is a `json` that is not an object.
absl::Status DecodeMessage(const nlohmann::json& json, google::protobuf::Message* message,
                           const DecodeOptions& options, absl::string_view path = "");

// Whether decoding a message of type `d` reads the JSON key `key` (a field's JSON or proto name,
// or one of its `json_aliases`); DecodeMessage counts any other key as drift.
bool ReadsJsonKey(const google::protobuf::Descriptor* d, const std::string& key);

// Decodes `json` into one field of `message` (a repeated field takes a JSON array, or a single
// object for a list of messages).
absl::Status DecodeField(const nlohmann::json& json, google::protobuf::Message* message,
                         const google::protobuf::FieldDescriptor* field, absl::string_view path);
absl::Status DecodeField(const nlohmann::json& json, google::protobuf::Message* message,
                         const google::protobuf::FieldDescriptor* field, absl::string_view path,
                         const DecodeOptions& options);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_JSON_CODEC_H_
