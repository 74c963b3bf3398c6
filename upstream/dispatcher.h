// The generic upstream call: one compiled Route + one request message -> serialized reply bytes.
//
//   Dispatcher dispatcher(upstreams, &http_client);
//   dispatcher.Call(route, request, {.deadline = deadline}, [](absl::StatusOr<std::string> reply) {
//     // reply: the serialized reply message, or an error with google.rpc details
//   });
//
// Steps: validate the request (before any upstream budget is spent), expand path/query/body,
// add pagination parameters from the page token, send over the shared HttpClient with the
// caller's remaining deadline, map HTTP errors, decode the JSON into the reply (and the next
// page token), serialize. No thread waits: `done` runs later, on the HTTP client's thread, or
// at once for requests rejected before sending.
//
// Thread-safe. The Dispatcher must outlive every call's `done`.
#ifndef GATEWAY_UPSTREAM_DISPATCHER_H_
#define GATEWAY_UPSTREAM_DISPATCHER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "upstream/http_client.h"
#include "upstream/route.h"

namespace gateway::upstream {

// How the gateway reaches one upstream. `token` is a secret: never logged or returned.
struct UpstreamConfig {
  std::string name;      // "respondio", "chatwoot"
  std::string base_url;  // without trailing '/', e.g. "https://api.respond.io/v2"
  std::string token;
  // Header that carries the token: "Authorization" sends "Bearer <token>"; any other header
  // name (Chatwoot's "api_access_token") sends the bare token.
  std::string auth_header = "Authorization";
  PathDefaults path_defaults;  // e.g. {"account_id": "1"}
};

// What happened on the way to the reply, for the per-call log and metrics. Filled before
// `done` runs; owned by the caller and kept alive until then.
struct CallStats {
  int upstream_status = 0;  // HTTP status of the last upstream response; 0 when none arrived
  bool cache_hit = false;   // answered from the reply cache
};

struct CallOptions {
  absl::Time deadline = absl::InfiniteFuture();
  // Who is calling: the authenticated caller's name (or the `x-caller` metadata when the gateway
  // runs without caller authentication); "" when unknown. The rate limiter's fairness class.
  std::string caller;
  // Optional; see CallStats.
  CallStats* stats = nullptr;
};

class Dispatcher {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<std::string>) &&>;

  Dispatcher(absl::flat_hash_map<std::string, UpstreamConfig> upstreams, HttpClient* http);

  // Serves one call. `request` is only read during Call(). Errors: INVALID_ARGUMENT (validation,
  // page token), FAILED_PRECONDITION (the RPC's upstream is not configured), DEADLINE_EXCEEDED,
  // and the upstream error model (error_mapping.h).
  void Call(const Route& route, const google::protobuf::Message& request,
            const CallOptions& options, Done done) const;

  // Whether `upstream` is configured (has a base URL).
  bool HasUpstream(absl::string_view upstream) const;

 private:
  absl::flat_hash_map<std::string, UpstreamConfig> upstreams_;
  HttpClient* http_;
};

// Decodes a 2xx upstream `body` into a serialized reply of `route` (exposed for tests).
// `cursor` is the current page's cursor. Errors: INTERNAL when the body is not JSON of the
// reply's shape.
absl::StatusOr<std::string> DecodeReply(const Route& route, absl::string_view upstream,
                                        absl::string_view cursor, int page_size,
                                        absl::string_view body);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_DISPATCHER_H_
