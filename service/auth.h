// Caller authentication: per-caller bearer tokens from a mounted file, each with an allowlist
// of RPCs.
//
// Callers file (JSON; unknown keys are errors):
//
//   {"callers": [
//     {"name": "crm-sync", "token": "9f3c...", "allow": ["*"]},
//     {"name": "reporting", "token_file": "/run/secrets/callers/reporting", "allow": ["@read"],
//      "workspaces": ["acme"]},
//     {"name": "support-bot", "token": "...",
//      "allow": ["respondio.v2.MessageService/*", "respondio.v2.ContactService/GetContact"]}
//   ]}
//
// Allow patterns: "*" (every RPC), "@read" (every read RPC, Route::read:
// its upstream call is a GET or its policy declares it retry_safe, such as a POST search),
// "gateway.v1.EventService/Subscribe" (and .../Ack) for the webhook event streams,
// "package.Service/Method" (a leading "/" is optional), and '*' wildcards anywhere
// ("respondio.v2.*/List*"). A pattern that matches no RPC is an error, so typos fail start-up.
// Tokens are at least 16 characters, unique, without whitespace. Callers present
// "authorization: Bearer <token>" metadata. `workspaces` lists the workspaces (config
// `workspaces`, chosen by the call's `x-workspace` metadata) a caller may use; absent or
// ["*"]: every workspace. A name the configuration does not define is an error.
//
//   auto auth = CallerAuth::Load("/etc/gateway/callers.json", routes);
//   absl::StatusOr<std::string> caller = auth->Check(authorization_metadata, *route);
//
// Errors are GatewayErrors: UNAUTHENTICATED (reason MISSING_CREDENTIALS or INVALID_TOKEN),
// PERMISSION_DENIED (reason RPC_NOT_ALLOWED, metadata {caller, rpc}; WORKSPACE_NOT_ALLOWED,
// metadata {caller, workspace}). Tokens never appear in errors or logs.
//
// Reloading: copies of a CallerAuth share one current set of callers, and Replace() swaps it
// atomically for a newly loaded one (the callers file changed): each check reads one snapshot,
// so a call is judged wholly by the old or wholly by the new file. Thread-safe.
#ifndef GATEWAY_SERVICE_AUTH_H_
#define GATEWAY_SERVICE_AUTH_H_

#include <string>
#include <vector>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
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
  // `workspaces`: the configured workspace names (each caller's `workspaces` must name only
  // these); null skips that check.
  static absl::StatusOr<CallerAuth> Load(const std::string& path, const RouteTable& routes,
                                         const std::vector<std::string>* workspaces = nullptr);
  // As Load, from the file's text (`origin` names it in errors).
  static absl::StatusOr<CallerAuth> Parse(absl::string_view json, absl::string_view origin,
                                          const RouteTable& routes,
                                          const std::vector<std::string>* workspaces = nullptr);

  // The caller presenting `authorization` (the metadata value, "" when absent), if it may call
  // `route`.
  absl::StatusOr<std::string> Check(absl::string_view authorization,
                                    const upstream::Route& route) const;
  // As Check, for an RPC by name ("/package.Service/Method"): an upstream RPC or one of
  // kGatewayRpcs.
  absl::StatusOr<std::string> CheckRpc(absl::string_view authorization,
                                       absl::string_view rpc) const;

  // OK if `caller` (a name Check returned) may use `workspace`, else PERMISSION_DENIED
  // WORKSPACE_NOT_ALLOWED. A caller the current file no longer lists may use none.
  absl::Status CheckWorkspace(absl::string_view caller, absl::string_view workspace) const;

  // The token files the current callers file names (watched for changes, as the file is).
  std::vector<std::string> TokenFiles() const;

  // Makes `next`'s callers the current ones of this CallerAuth and every copy of it.
  void Replace(const CallerAuth& next);

 private:
  struct Caller {
    std::string name;
    std::string token;
    absl::flat_hash_set<std::string> allowed;  // RPC names "/package.Service/Method"
    bool all_workspaces = true;
    absl::flat_hash_set<std::string> workspaces;  // when !all_workspaces
  };
  struct Callers {
    std::vector<Caller> callers;
    std::vector<std::string> token_files;
  };
  struct Shared {
    mutable absl::Mutex mu;
    std::shared_ptr<const Callers> current ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<const Callers> Snapshot() const;

  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

// Whether `rpc` ("/package.Service/Method") matches an allow pattern (see the file comment;
// "@read" is not handled here).
bool RpcPatternMatches(absl::string_view pattern, absl::string_view rpc);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_AUTH_H_
