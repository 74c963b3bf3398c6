// Dialects: how one upstream is spoken on the wire, as data.
//
// The OpenAPI documents and the live services disagree (verbs, paths, query style, body keys
// and shapes, reply envelopes). Each upstream is spoken in one dialect, chosen at start-up:
//
//   "openapi"  the bindings as the protos declare them (the vendors' OpenAPI documents), with the
//              RPCs the documents lack marked `unavailable` in
//              upstream/binding/dialects/<upstream>.openapi.json (answered UNIMPLEMENTED)
//   "live"     what the live services do (the vendors' own clients and sources), as overrides in
//              upstream/binding/dialects/<upstream>.live.json
//
// A dialect file names, per RPC, the `gateway.v1.Binding` fields it changes, in the Binding's
// JSON form; a key present replaces that field (so "response_body": "" clears it):
//
//   {"upstream": "respondio", "dialect": "live", "routes": {
//      "respondio.v2.ContactService.CreateContact": {
//        "path": "/contact/{identifier}", "response_body": "",
//        "wire_names": {"custom_fields": "custom_fields"}}}}
//
// The files are compiled into the binary and parsed once at start-up; an unknown RPC, key or
// value is a start-up error. Callers never see which dialect is spoken.
#ifndef GATEWAY_UPSTREAM_BINDING_DIALECT_H_
#define GATEWAY_UPSTREAM_BINDING_DIALECT_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/v1/annotations.pb.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {

inline constexpr char kDialectLive[] = "live";
inline constexpr char kDialectOpenapi[] = "openapi";

// The dialects every upstream can speak: {"live", "openapi"}.
const std::vector<std::string>& DialectNames();

struct Dialect {
  std::string upstream;  // "respondio"
  std::string name;      // "live"
  // Per RPC ("/package.Service/Method"): the Binding fields this dialect sets, in JSON form.
  absl::flat_hash_map<std::string, nlohmann::json> routes;
};

// Parses a dialect file. Errors: INVALID_ARGUMENT naming `origin` and the bad key (malformed
// JSON, unknown top-level or Binding key, a value of the wrong type).
absl::StatusOr<Dialect> ParseDialect(absl::string_view text, absl::string_view origin);

// The dialect compiled into the binary for `upstream` and `name`. Errors: INVALID_ARGUMENT for a
// dialect name that is not one of DialectNames(); INTERNAL when the embedded file is broken.
// Upstreams with no file of that name speak it with no changes (an empty Dialect).
absl::StatusOr<Dialect> BuiltinDialect(absl::string_view upstream, absl::string_view name);

// Replaces the fields of `binding` that `override` (one RPC's entry of a dialect) names.
// Errors: INVALID_ARGUMENT naming the key.
absl::Status ApplyBindingOverride(const nlohmann::json& override, gateway::v1::Binding* binding);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_BINDING_DIALECT_H_
