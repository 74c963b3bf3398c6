#include "sandbox/chatwoot_routes.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sandbox {
namespace chatwoot {

namespace {

// /api/v1/accounts/{account_id}/...: the segments before the routed part.
constexpr size_t kPrefixSegments = 4;

std::vector<std::string> PatternSegments(const std::string& path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    out.emplace_back(s);
  }
  return out;
}

void WriteResult(httplib::Response& res, const ApiResult& result) {
  if (result.body.is_null()) {
    // No content documented: an empty 200 body, as Chatwoot's `head :ok`.
    res.status = result.status;
    res.set_content("", "application/json; charset=utf-8");
    return;
  }
  WriteJson(res, result.status, result.body);
}

}  // namespace

ChatwootApi::ChatwootApi(ChatwootState* state, RateLimiter* limiter, std::string token,
                         int per_minute)
    : state_(state), limiter_(limiter), token_(std::move(token)), per_minute_(per_minute) {
  using S = ChatwootState;
  // Endpoint names are the spec's operationIds. Literal segments come before {placeholders}.
  AddRoute("GET", "contacts", "contactList", &S::ListContacts);
  AddRoute("POST", "contacts", "contactCreate", &S::CreateContact);
  AddRoute("GET", "contacts/search", "contactSearch", &S::SearchContacts);
  AddRoute("POST", "contacts/filter", "contactFilter", &S::FilterContacts);
  AddRoute("GET", "contacts/{id}", "contactDetails", &S::GetContact);
  AddRoute("PUT", "contacts/{id}", "contactUpdate", &S::UpdateContact);
  AddRoute("DELETE", "contacts/{id}", "contactDelete", &S::DeleteContact);
  AddRoute("GET", "contacts/{id}/conversations", "contactConversations",
           &S::ListContactConversations);
  AddRoute("GET", "contacts/{id}/labels", "list-all-labels-of-a-contact", &S::ListContactLabels);
  AddRoute("POST", "contacts/{id}/labels", "contact-add-labels", &S::SetContactLabels);
  AddRoute("POST", "contacts/{id}/contact_inboxes", "contactInboxCreation",
           &S::CreateContactInbox);
  AddRoute("GET", "contacts/{id}/contactable_inboxes", "contactableInboxesGet",
           &S::ListContactableInboxes);
  AddRoute("POST", "contacts/{id}/sync_group", "contact-sync-group", &S::SyncGroup);
  AddRoute("GET", "contacts/{id}/group_members", "contact-group-members-list",
           &S::ListGroupMembers);
  AddRoute("POST", "contacts/{id}/group_members", "contact-group-members-add",
           &S::AddGroupMembers);
  AddRoute("PATCH", "contacts/{id}/group_members/{member_id}", "contact-group-member-update-role",
           &S::UpdateGroupMemberRole);
  AddRoute("DELETE", "contacts/{id}/group_members/{member_id}", "contact-group-member-remove",
           &S::RemoveGroupMember);
  AddRoute("PATCH", "contacts/{id}/group_metadata", "contact-group-metadata-update",
           &S::UpdateGroupMetadata);
  AddRoute("GET", "contacts/{id}/group_invite", "contact-group-invite-show", &S::GetGroupInvite);
  AddRoute("POST", "contacts/{id}/group_invite/revoke", "contact-group-invite-revoke",
           &S::RevokeGroupInvite);
  AddRoute("GET", "contacts/{id}/group_join_requests", "contact-group-join-requests-list",
           &S::ListGroupJoinRequests);
  AddRoute("POST", "contacts/{id}/group_join_requests/handle",
           "contact-group-join-requests-handle", &S::HandleGroupJoinRequests);
  AddRoute("PATCH", "contacts/{id}/group_admin", "contact-group-admin-update",
           &S::UpdateGroupAdminSetting);
  AddRoute("POST", "contacts/{id}/group_admin/leave", "contact-group-admin-leave",
           &S::LeaveGroup);
  AddRoute("POST", "groups", "create-group", &S::CreateGroup);
  AddRoute("POST", "actions/contact_merge", "contactMerge", &S::MergeContacts);
  AddRoute("GET", "conversations/meta", "conversationListMeta", &S::GetConversationCounts);
  AddRoute("GET", "conversations", "conversationList", &S::ListConversations);
  AddRoute("POST", "conversations", "newConversation", &S::CreateConversation);
  AddRoute("POST", "conversations/filter", "conversationFilter", &S::FilterConversations);
  AddRoute("GET", "conversations/{conversation_id}", "get-details-of-a-conversation",
           &S::GetConversation);
  AddRoute("PATCH", "conversations/{conversation_id}", "update-conversation",
           &S::UpdateConversation);
  AddRoute("POST", "conversations/{conversation_id}/toggle_status",
           "toggle-status-of-a-conversation", &S::ToggleStatus);
  AddRoute("POST", "conversations/{conversation_id}/toggle_priority",
           "toggle-priority-of-a-conversation", &S::TogglePriority);
  AddRoute("POST", "conversations/{conversation_id}/custom_attributes",
           "update-custom-attributes-of-a-conversation", &S::UpdateCustomAttributes);
  AddRoute("POST", "conversations/{conversation_id}/assignments", "assign-a-conversation",
           &S::AssignConversation);
  AddRoute("GET", "conversations/{conversation_id}/labels", "list-all-labels-of-a-conversation",
           &S::ListConversationLabels);
  AddRoute("POST", "conversations/{conversation_id}/labels", "conversation-add-labels",
           &S::SetConversationLabels);
  AddRoute("GET", "conversations/{conversation_id}/reporting_events",
           "get-conversation-reporting-events", &S::ListReportingEvents);
  AddRoute("GET", "conversations/{conversation_id}/messages", "list-all-messages",
           &S::ListMessages);
  AddRoute("POST", "conversations/{conversation_id}/messages",
           "create-a-new-message-in-a-conversation", &S::CreateMessage);
  AddRoute("DELETE", "conversations/{conversation_id}/messages/{message_id}", "delete-a-message",
           &S::DeleteMessage);
}

void ChatwootApi::AddRoute(const std::string& method, const std::string& path,
                           const std::string& endpoint, HandlerFn handler) {
  routes_.push_back(Route{method, PatternSegments(path), endpoint, handler});
}

bool ChatwootApi::IsChatwootPath(const RequestContext& ctx) {
  return ctx.segments.size() >= 2 && ctx.segments[0] == "api" && ctx.segments[1] == "v1";
}

bool ChatwootApi::IsAdminPath(const RequestContext& ctx) {
  return ctx.segments.size() >= 2 && ctx.segments[0] == "__admin" &&
         ctx.segments[1] == "chatwoot";
}

std::vector<ChatwootApi::EndpointInfo> ChatwootApi::Endpoints() const {
  std::vector<EndpointInfo> out;
  for (const Route& r : routes_) {
    out.push_back(EndpointInfo{
        r.method, absl::StrCat("/api/v1/accounts/{account_id}/", absl::StrJoin(r.pattern, "/")),
        r.endpoint});
  }
  return out;
}

const ChatwootApi::Route* ChatwootApi::Match(const RequestContext& ctx,
                                             std::vector<std::string>* params,
                                             bool* other_method) const {
  *other_method = false;
  const auto& segs = ctx.segments;
  if (segs.size() <= kPrefixSegments || segs[0] != "api" || segs[1] != "v1" ||
      segs[2] != "accounts" || segs[3].empty()) {
    return nullptr;
  }
  for (const Route& r : routes_) {
    if (r.pattern.size() + kPrefixSegments != segs.size()) continue;
    std::vector<std::string> values;
    bool ok = true;
    for (size_t i = 0; i < r.pattern.size() && ok; ++i) {
      const std::string& p = r.pattern[i];
      const std::string& s = segs[i + kPrefixSegments];
      if (!p.empty() && p.front() == '{') {
        ok = !s.empty();
        values.push_back(s);
      } else {
        ok = p == s;
      }
    }
    if (!ok) continue;
    if (r.method != ctx.method) {
      *other_method = true;
      continue;
    }
    *params = std::move(values);
    return &r;
  }
  return nullptr;
}

std::string ChatwootApi::EndpointFor(const RequestContext& ctx) const {
  std::vector<std::string> params;
  bool other_method = false;
  const Route* r = Match(ctx, &params, &other_method);
  return r == nullptr ? "unknown" : r->endpoint;
}

void ChatwootApi::Handle(const RequestContext& ctx, httplib::Response& res) {
  // 1. Auth: the api_access_token header (a user or agent-bot token).
  if (!ctx.req->has_header("api_access_token") ||
      ctx.req->get_header_value("api_access_token") != token_) {
    WriteJson(res, 401, ErrorJson("Invalid Access Token", "api_access_token", "unauthorized"));
    return;
  }

  // 2. Routing.
  std::vector<std::string> params;
  bool other_method = false;
  const Route* route = Match(ctx, &params, &other_method);
  if (route == nullptr) {
    if (other_method) {
      WriteJson(res, 405, ErrorJson(absl::StrCat("Method ", ctx.method, " not allowed on ",
                                                 ctx.path)));
    } else {
      WriteJson(res, 404, ErrorJson(absl::StrCat("No route matches ", ctx.method, " ", ctx.path),
                                    "", "not_found"));
    }
    return;
  }

  // 3. Rate limit: Rack::Attack throttles per client IP, across every endpoint.
  if (limiter_->enabled()) {
    RateLimiter::Decision d =
        limiter_->Acquire(absl::StrCat("chatwoot:", ctx.req->remote_addr), per_minute_,
                          std::chrono::minutes(1));
    if (!d.allowed) {
      res.set_header("Retry-After", std::to_string(d.retry_after_s));
      WriteJson(res, 429,
                ErrorJson(absl::StrCat("Retry later: at most ", per_minute_,
                                       " requests per minute per client IP"),
                          "", "throttled"));
      return;
    }
  }

  // 4. Account and numeric ids: Rails' find answers 404 for anything that is no record id.
  CwRequest request;
  if (!ParseInt64(ctx.segments[3], &request.account_id) || request.account_id <= 0 ||
      !state_->HasAccount(request.account_id)) {
    WriteJson(res, 404, ErrorJson("Account not found", "account_id", "not_found"));
    return;
  }
  for (const std::string& p : params) {
    int64_t id = 0;
    if (!ParseInt64(p, &id) || id <= 0) {
      WriteJson(res, 404, ErrorJson(absl::StrCat("Couldn't find a record with id '", p, "'"), "",
                                    "not_found"));
      return;
    }
    request.ids.push_back(id);
  }
  request.query = ctx.query;

  // 5. The JSON body (empty means none).
  const std::string& body = ctx.body();
  if (!std::all_of(body.begin(), body.end(),
                   [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; })) {
    request.body = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (request.body.is_discarded()) {
      WriteJson(res, 400, ErrorJson("Request body is not valid JSON", "", "parse_error"));
      return;
    }
  }

  // 6. The operation. nlohmann::json throws on type errors; never let one escape into httplib.
  ApiResult result;
  try {
    result = (state_->*(route->handler))(request);
  } catch (const nlohmann::json::exception& e) {
    result = CwError(422, absl::StrCat("invalid request: ", e.what()));
  } catch (const std::exception& e) {
    result = CwError(500, absl::StrCat("internal error: ", e.what()));
  } catch (...) {
    result = CwError(500, "internal error");
  }
  WriteResult(res, result);
}

void ChatwootApi::HandleAdmin(const RequestContext& ctx, httplib::Response& res) {
  if (ctx.segments.size() == 3 && ctx.segments[2] == "join") {
    if (ctx.method != "POST") {
      WriteJson(res, 405, ErrorJson("use POST"));
      return;
    }
    Json body = Json::parse(ctx.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      WriteJson(res, 400, ErrorJson("Request body is not valid JSON"));
      return;
    }
    WriteResult(res, state_->SimulateInviteJoin(body));
    return;
  }
  WriteJson(res, 404, ErrorJson(absl::StrCat("No admin route ", ctx.path)));
}

}  // namespace chatwoot
}  // namespace sandbox
