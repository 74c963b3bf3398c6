// Caller authentication: per-caller bearer tokens from a mounted file, each with an allowlist
// of RPCs.
//
// Callers file (JSON; unknown keys are errors):
//
//   {"callers": [
//     {"name": "crm-sync", "token": "9f3c...", "allow": ["*"]},
//     {"name": "reporting", "token_file": "/run/secrets/callers/reporting", "allow": ["@read"]},
//     {"name": "support-bot", "token": "...",
//      "allow": ["respondio.v2.MessageService/*", "respondio.v2.ContactService/GetContact"]}
//   ]}
//
// Allow patterns: "*" (every RPC), "@read" (every RPC whose upstream call is a GET),
// "gateway.v1.EventService/Subscribe" (and .../Ack) for the webhook event streams,
// "package.Service/Method" (a leading "/" is optional), and '*' wildcards anywhere
// ("respondio.v2.*/List*"). A pattern that matches no RPC is an error, so typos fail start-up.
// Tokens are at least 16 characters, unique, without whitespace. Callers present
// "authorization: Bearer <token>" metadata.
//
//   auto auth = CallerAuth::Load("/etc/gateway/callers.json", routes);
//   absl::StatusOr<std::string> caller = auth->Check(authorization_metadata, *route);
//
// Errors are GatewayErrors: UNAUTHENTICATED (reason MISSING_CREDENTIALS or INVALID_TOKEN) and
// PERMISSION_DENIED (reason RPC_NOT_ALLOWED, metadata {caller, rpc}). Tokens never appear in
// errors or logs. Immutable after loading; thread-safe.
#ifndef GATEWAY_SERVICE_AUTH_H_
#define GATEWAY_SERVICE_AUTH_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/route_table.h"
#include "upstream/binding/route.h"

namespace gateway::service {

// The gateway's own RPCs (not upstream routes) that allow patterns may name; "@read" never
// matches them.
inline constexpr const char* kGatewayRpcs[] = {"/gateway.v1.EventService/Subscribe",
                                               "/gateway.v1.EventService/Ack"};

class CallerAuth {
 public:
  // Reads and checks the callers file. Errors (INVALID_ARGUMENT naming the file and the caller):
  // unreadable or malformed file, unknown keys, missing/duplicate names or tokens, short tokens,
  // unreadable token files, patterns matching no RPC.
  static absl::StatusOr<CallerAuth> Load(const std::string& path, const RouteTable& routes);
  // As Load, from the file's text (`origin` names it in errors).
  static absl::StatusOr<CallerAuth> Parse(absl::string_view json, absl::string_view origin,
                                          const RouteTable& routes);

  // The caller presenting `authorization` (the metadata value, "" when absent), if it may call
  // `route`.
  absl::StatusOr<std::string> Check(absl::string_view authorization,
                                    const upstream::Route& route) const;
  // As Check, for an RPC by name ("/package.Service/Method"): an upstream RPC or one of
  // kGatewayRpcs.
  absl::StatusOr<std::string> CheckRpc(absl::string_view authorization,
                                       absl::string_view rpc) const;

  // Names of the configured callers, in file order.
  std::vector<std::string> CallerNames() const;

 private:
  struct Caller {
    std::string name;
    std::string token;
    absl::flat_hash_set<std::string> allowed;  // RPC names "/package.Service/Method"
  };
  std::vector<Caller> callers_;
};

// Whether `rpc` ("/package.Service/Method") matches an allow pattern (see the file comment;
// "@read" is not handled here).
bool RpcPatternMatches(absl::string_view pattern, absl::string_view rpc);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_AUTH_H_
