// HTTP surface of the respond.io Developer API v2 emulator: routing, bearer
// auth, per-endpoint rate limits, request validation and JSON rendering.
// Paths are relative to the API base: the real base is
// https://api.respond.io/v2; the sandbox serves every route both at its root
// and under /v2.
//
// Two dialects (Dialect): `live` (what api.respond.io does, per
// specs/live-api.md) and `openapi` (the OpenAPI document; the sandbox's
// original behaviour). Their differences are rows of one route table (which
// routes exist, which body fields the live API takes, list envelope, reply
// shape), not separate handlers.
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

  // The dialect is the state's (RespondioState::dialect()).
  // `tokens`: the bearer tokens accepted, comma-separated (one per organization).
  RespondioApi(RespondioState* state, RateLimiter* limiter, std::string tokens);
  Dialect dialect() const { return dialect_; }

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
  // How a handler's JSON-array result goes out.
  enum class List {
    kNone,   // the handler's body as is
    kArray,  // a bare JSON array
    kPaged,  // {items, pagination} (cursorId/limit from the query string)
  };
  // What a successful write answers.
  enum class Reply {
    kResource,     // the record the handler returns
    kContactId,    // {contactId}
    kCodeMessage,  // {code: 200, message}
    kMessageId,    // {messageId}
  };
  // One row of the route table.
  struct RouteSpec {
    int dialects;  // bit mask of kLiveRoute / kOpenapiRoute
    const char* method;
    const char* path;
    const char* endpoint;
    int limit;
    HandlerFn handler;
    List list = List::kNone;
    const char* list_key = "id";  // the item id cursors count by
    Reply reply = Reply::kResource;
    const char* reply_message = "";
    // Live dialect: the top-level body fields the live API takes (comma
    // separated); any other field is a 400 naming it. nullptr: no object
    // body, or checked by the handler.
    const char* live_fields = nullptr;
  };
  static constexpr int kLiveRoute = 1;
  static constexpr int kOpenapiRoute = 2;
  static constexpr int kBothDialects = kLiveRoute | kOpenapiRoute;
  static const std::vector<RouteSpec>& RouteTable();

  struct Route {
    const RouteSpec* spec;
    std::vector<std::string> pattern;  // "{x}" matches any one segment
  };

  // ctx without a leading "/v2" (then api_prefix is "/v2").
  static RequestContext StripPrefix(const RequestContext& ctx);
  const Route* Match(const RequestContext& ctx,
                     std::vector<std::string>* params,
                     bool* other_method) const;
  // List envelope, reply shape and the dialect's null policy.
  ApiResult Shape(const Route& route, const RequestContext& ctx,
                  ApiResult result) const;

  // customFields (openapi) or custom_fields (live).
  std::string CustomFieldsKey() const {
    return dialect_ == Dialect::kLive ? "custom_fields" : "customFields";
  }
  ApiResult CreateContactLive(const Call& call);
  ApiResult ListTemplates(const Call& call);
  ApiResult GetTemplate(const Call& call);
  ApiResult UpdateTagByName(const Call& call);
  ApiResult DeleteTagByName(const Call& call);

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
  const Dialect dialect_;
  RateLimiter* limiter_;
  // Accepted tokens, one per organization (a gateway workspace); each has its own limits.
  std::vector<std::string> tokens_;
  std::vector<Route> routes_;
};

}  // namespace respondio
}  // namespace sandbox

#endif  // SANDBOX_RESPONDIO_ROUTES_H_
