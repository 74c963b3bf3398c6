// HTTP surface of the respond.io Developer API v2 emulator: routing, bearer
// auth, per-endpoint rate limits, request validation and JSON rendering.
// Paths are relative to the API base (the real base is
// https://api.respond.io/v2; the sandbox serves them at its root).
#ifndef SANDBOX_RESPONDIO_ROUTES_H_
#define SANDBOX_RESPONDIO_ROUTES_H_

#include <string>
#include <vector>

#include <httplib.h>

#include "sandbox/http_util.h"
#include "sandbox/rate_limiter.h"
#include "sandbox/respondio_state.h"

namespace sandbox {
namespace respondio {

class RespondioApi {
 public:
  struct EndpointInfo {
    std::string method;
    std::string path;      // pattern, e.g. "/contact/{identifier}/tag"
    std::string endpoint;  // name used in the request log and rate limits
    int limit;             // requests per second
  };

  RespondioApi(RespondioState* state, RateLimiter* limiter, std::string token);

  // Name of the endpoint the request maps to, or "unknown".
  std::string EndpointFor(const RequestContext& ctx) const;

  // Auth, routing, rate limiting, validation and the operation itself.
  void Handle(const RequestContext& ctx, httplib::Response& res);

  // Every route served, in matching order.
  std::vector<EndpointInfo> Endpoints() const;

 private:
  struct Call {
    const RequestContext& ctx;
    std::vector<std::string> params;  // decoded values of {..} segments
  };
  using HandlerFn = ApiResult (RespondioApi::*)(const Call&);
  struct Route {
    std::string method;
    std::vector<std::string> pattern;  // "{x}" matches any one segment
    std::string endpoint;
    int limit;
    HandlerFn handler;
  };

  void AddRoute(const std::string& method, const std::string& path,
                const std::string& endpoint, int limit, HandlerFn handler);
  const Route* Match(const RequestContext& ctx,
                     std::vector<std::string>* params,
                     bool* other_method) const;

  ApiResult CreateContact(const Call& call);
  ApiResult CreateOrUpdateContact(const Call& call);
  ApiResult ListContacts(const Call& call);
  ApiResult GetContact(const Call& call);
  ApiResult UpdateContact(const Call& call);
  ApiResult DeleteContact(const Call& call);
  ApiResult MergeContacts(const Call& call);
  ApiResult ContactTags(const Call& call);
  ApiResult ListContactChannels(const Call& call);
  ApiResult GetContactChannel(const Call& call);
  ApiResult SendMessage(const Call& call);
  ApiResult ListMessages(const Call& call);
  ApiResult GetMessage(const Call& call);
  ApiResult ConversationStatus(const Call& call);
  ApiResult AssignConversation(const Call& call);
  ApiResult CreateComment(const Call& call);
  ApiResult UpdateLifecycle(const Call& call);
  ApiResult ListTags(const Call& call);
  ApiResult CreateTag(const Call& call);
  ApiResult UpdateTag(const Call& call);
  ApiResult DeleteTag(const Call& call);
  ApiResult ListCustomFields(const Call& call);
  ApiResult CreateCustomField(const Call& call);
  ApiResult GetCustomField(const Call& call);
  ApiResult ListSpaceChannels(const Call& call);
  ApiResult ListClosingNotes(const Call& call);
  ApiResult ListSpaceUsers(const Call& call);
  ApiResult GetSpaceUser(const Call& call);

  RespondioState* state_;
  RateLimiter* limiter_;
  std::string token_;
  std::vector<Route> routes_;
};

}  // namespace respondio
}  // namespace sandbox

#endif  // SANDBOX_RESPONDIO_ROUTES_H_
