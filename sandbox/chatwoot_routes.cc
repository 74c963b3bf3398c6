#include "sandbox/chatwoot_routes.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <set>
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

// Members the spec marks nullable (collected from specs/chatwoot-openapi.json): the openapi
// dialect keeps these when null and omits any other null.
const std::set<std::string>& SpecNullable() {
  static const std::set<std::string> kNullable = {
      "agent_last_seen_at", "archived_articles_count", "assignee_id", "assignee_last_seen_at",
      "auto_resolve_after", "auto_resolve_ignore_waiting", "auto_resolve_message",
      "avg_first_response_time", "avg_reply_time", "avg_resolution_time", "comment",
      "conversation_id", "custom_role", "custom_role_id", "display_name",
      "draft_articles_count", "email", "identifier", "in_reply_to", "inbox_id",
      "last_activity_at", "message_signature", "phone_number", "processed_message_content",
      "provider", "published_count", "remote_address", "sender_id", "sender_type",
      "source_id", "type", "user_id"};
  return kNullable;
}

void ShapeForSpec(Json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it->is_null() && !SpecNullable().count(it.key())) {
        it = j.erase(it);
        continue;
      }
      // The spec's availability enum is available|busy|offline; Chatwoot says online.
      if ((it.key() == "availability_status" || it.key() == "availability") &&
          it->is_string() && it->get<std::string>() == "online") {
        *it = "available";
      }
      ShapeForSpec(*it);
      ++it;
    }
  } else if (j.is_array()) {
    for (Json& v : j) ShapeForSpec(v);
  }
}

// Rails casts form strings per attribute; these are the typed members of the bodies the
// emulator reads.
Json FormValue(const std::string& key, const std::string& value) {
  if (key == "private" || key == "is_private") {
    if (value == "true" || value == "1") return true;
    if (value == "false" || value == "0") return false;
  }
  if (key.size() > 3 && key.compare(key.size() - 3, 3, "_id") == 0) {
    int64_t v = 0;
    if (ParseInt64(value, &v)) return v;
  }
  return value;
}

// Sets `key` (Rails-style: "a[b]" nests, "a[]" appends) in obj.
void SetFormParam(Json& obj, const std::string& key, const std::string& value) {
  size_t open = key.find('[');
  if (open == std::string::npos || open == 0 || key.back() != ']') {
    obj[key] = FormValue(key, value);
    return;
  }
  std::string base = key.substr(0, open);
  std::string inner = key.substr(open + 1, key.size() - open - 2);
  if (inner.empty()) {
    if (!obj[base].is_array()) obj[base] = Json::array();
    obj[base].push_back(value);
  } else {
    if (!obj[base].is_object()) obj[base] = Json::object();
    obj[base][inner] = FormValue(inner, value);
  }
}

std::string FileType(const std::string& content_type) {
  if (content_type.rfind("image/", 0) == 0) return "image";
  if (content_type.rfind("audio/", 0) == 0) return "audio";
  if (content_type.rfind("video/", 0) == 0) return "video";
  return "file";
}

}  // namespace

bool ChatwootApi::ParseFormBody(const RequestContext& ctx, CwRequest* request,
                                std::string* error) {
  const std::string type = AsciiLower(ctx.req->get_header_value("Content-Type"));
  if (type.rfind("application/x-www-form-urlencoded", 0) == 0) {
    Json obj = Json::object();
    for (const auto& [k, v] : ParseQuery(ctx.body())) SetFormParam(obj, k, v);
    request->body = std::move(obj);
    return true;
  }
  if (type.rfind("multipart/form-data", 0) == 0) {
    Json obj = Json::object();
    for (const auto& [name, file] : ctx.req->files) {
      if (!file.filename.empty()) {
        if (name != "attachments[]" && name != "attachments") {
          *error = absl::StrCat("unknown file field '", name, "' (expected attachments[])");
          return false;
        }
        std::string ext;
        if (size_t dot = file.filename.rfind('.'); dot != std::string::npos) {
          ext = file.filename.substr(dot + 1);
        }
        request->attachments.push_back(
            Json{{"file_type", FileType(file.content_type)},
                 {"extension", ext},
                 {"file_name", file.filename},
                 {"file_size", file.content.size()},
                 {"data_url", absl::StrCat("https://sandbox.invalid/rails/active_storage/",
                                           file.filename)}});
      } else {
        SetFormParam(obj, name, file.content);
      }
    }
    request->body = std::move(obj);
    return true;
  }
  return false;
}

ApiResult ChatwootApi::Shape(ApiResult result) const {
  if (dialect_ == Dialect::kOpenapi) {
    ShapeForSpec(result.body);
    return result;
  }
  // Live: Rails answers a validation error with 422 {message, attributes}.
  if ((result.status == 400 || result.status == 422) && result.body.is_object() &&
      result.body.contains("errors")) {
    Json attributes = Json::array();
    for (const Json& e : result.body["errors"]) {
      if (e.contains("field")) attributes.push_back(e["field"]);
    }
    result = ApiResult{422, Json{{"message", result.body.value("error", "")},
                                 {"attributes", attributes}}};
  }
  return result;
}

ChatwootApi::ChatwootApi(ChatwootState* state, RateLimiter* limiter, std::string tokens,
                         int per_minute)
    : state_(state),
      dialect_(state->dialect()),
      limiter_(limiter),
      tokens_(absl::StrSplit(tokens, ',', absl::SkipEmpty())),
      per_minute_(per_minute) {
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
  // Live only: the spec has no account-level message update.
  AddRoute("PATCH", "conversations/{conversation_id}/messages/{message_id}", "update-a-message",
           &S::UpdateMessage, kLiveRoute);
  AddRoute("GET", "inboxes", "listAllInboxes", &S::ListInboxes);
  AddRoute("GET", "agents", "get-account-agents", &S::ListAgents);
}

void ChatwootApi::AddRoute(const std::string& method, const std::string& path,
                           const std::string& endpoint, HandlerFn handler, int dialects) {
  const int mask = dialect_ == Dialect::kLive ? kLiveRoute : kOpenapiRoute;
  if ((dialects & mask) == 0) return;
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
      std::find(tokens_.begin(), tokens_.end(), ctx.req->get_header_value("api_access_token")) ==
          tokens_.end()) {
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
  request.rails_arrays = dialect_ == Dialect::kLive;

  // 5. The body: JSON (empty means none); live also form and multipart, as Rails reads them.
  const std::string& body = ctx.body();
  std::string form_error;
  if (dialect_ == Dialect::kLive && ParseFormBody(ctx, &request, &form_error)) {
    // parsed
  } else if (!form_error.empty()) {
    WriteResult(res, Shape(CwError(422, form_error, "attachments", "invalid")));
    return;
  } else if (!std::all_of(body.begin(), body.end(),
                   [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; })) {
    request.body = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (request.body.is_discarded()) {
      WriteJson(res, 400, ErrorJson("Request body is not valid JSON", "", "parse_error"));
      return;
    }
  }

  // 6. The operation. nlohmann::json throws on type errors; never let one escape into httplib.
  ApiResult result;
  const bool changes = ctx.method != "GET" && hooks_.after != nullptr;
  try {
    const Json before = changes && hooks_.before != nullptr
                            ? hooks_.before(route->endpoint, request)
                            : Json();
    result = (state_->*(route->handler))(request);
    if (changes && result.status / 100 == 2) hooks_.after(route->endpoint, request, result, before);
  } catch (const nlohmann::json::exception& e) {
    result = CwError(422, absl::StrCat("invalid request: ", e.what()));
  } catch (const std::exception& e) {
    result = CwError(500, absl::StrCat("internal error: ", e.what()));
  } catch (...) {
    result = CwError(500, "internal error");
  }
  WriteResult(res, Shape(std::move(result)));
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
