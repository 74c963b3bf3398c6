// HTTP surface of the Chatwoot emulator: routing of the 42 application-API operations under
// /api/v1/accounts/{account_id}/, `api_access_token` auth, Chatwoot's per-client-IP rate limit
// (Rack::Attack: 3000 requests per minute by default) and JSON body parsing. The operations
// themselves live in ChatwootState.
//
// Dialects (the state's): `live` adds Chatwoot's own behaviour (form and multipart bodies,
// Rails `labels[]=` arrays, 422 {message, attributes} validation errors, message PATCH);
// `openapi` shapes every reply to the spec (a null the spec does not allow is omitted,
// availability "online" is the spec's "available").
#ifndef SANDBOX_CHATWOOT_ROUTES_H_
#define SANDBOX_CHATWOOT_ROUTES_H_

#include <functional>
#include <string>
#include <vector>

#include <httplib.h>

#include "sandbox/chatwoot_state.h"
#include "sandbox/http_util.h"
#include "sandbox/rate_limiter.h"

namespace sandbox {
namespace chatwoot {

class ChatwootApi {
 public:
  struct EndpointInfo {
    std::string method;
    std::string path;      // pattern, e.g. "/api/v1/accounts/{account_id}/contacts/{id}"
    std::string endpoint;  // the spec's operationId: request-log name
  };

  // `per_minute` is the per-client-IP limit (requests per minute) applied when `limiter` is
  // enabled.
  // `tokens`: the api_access_tokens accepted, comma-separated.
  ChatwootApi(ChatwootState* state, RateLimiter* limiter, std::string tokens, int per_minute);

  // Whether the request is for the Chatwoot emulator (path under /api/v1/).
  static bool IsChatwootPath(const RequestContext& ctx);
  // Whether it is one of the emulator's admin paths (/__admin/chatwoot/...).
  static bool IsAdminPath(const RequestContext& ctx);

  // Name of the endpoint (operationId) the request maps to, or "unknown".
  std::string EndpointFor(const RequestContext& ctx) const;

  // Auth, routing, rate limiting, body parsing and the operation itself.
  void Handle(const RequestContext& ctx, httplib::Response& res);

  // POST /__admin/chatwoot/join: ChatwootState::SimulateInviteJoin. No auth.
  void HandleAdmin(const RequestContext& ctx, httplib::Response& res);

  // Observers of state changes (the sandbox's webhooks): for every operation that is not a GET,
  // `before` runs first (its result is handed to `after`), and `after` runs when the operation
  // answered 2xx, with the operation's reply before the dialect's shaping.
  struct ChangeHooks {
    std::function<Json(const std::string& endpoint, const CwRequest& request)> before;
    std::function<void(const std::string& endpoint, const CwRequest& request,
                       const ApiResult& result, const Json& before)>
        after;
  };
  // Call before serving.
  void SetChangeHooks(ChangeHooks hooks) { hooks_ = std::move(hooks); }

  // Every route served, in matching order.
  std::vector<EndpointInfo> Endpoints() const;
  int per_minute() const { return per_minute_; }

 private:
  using HandlerFn = ApiResult (ChatwootState::*)(const CwRequest&);
  static constexpr int kLiveRoute = 1;
  static constexpr int kOpenapiRoute = 2;
  struct Route {
    std::string method;
    std::vector<std::string> pattern;  // segments after /api/v1/accounts/{account_id}/
    std::string endpoint;
    HandlerFn handler;
  };

  // `dialects`: the route exists only in these (bit mask).
  void AddRoute(const std::string& method, const std::string& path, const std::string& endpoint,
                HandlerFn handler, int dialects = kLiveRoute | kOpenapiRoute);
  // Live: a form or multipart body as the JSON object Rails' params would be.
  static bool ParseFormBody(const RequestContext& ctx, CwRequest* request, std::string* error);
  // The dialect's error and reply shapes.
  ApiResult Shape(ApiResult result) const;
  const Route* Match(const RequestContext& ctx, std::vector<std::string>* params,
                     bool* other_method) const;

  ChatwootState* state_;
  ChangeHooks hooks_;
  Dialect dialect_;
  RateLimiter* limiter_;
  // Accepted api_access_tokens (users' or bots'); the limit stays per client IP.
  std::vector<std::string> tokens_;
  int per_minute_;
  std::vector<Route> routes_;
};

}  // namespace chatwoot
}  // namespace sandbox

#endif  // SANDBOX_CHATWOOT_ROUTES_H_
