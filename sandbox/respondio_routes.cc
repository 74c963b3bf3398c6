#include "sandbox/respondio_routes.h"

#include <algorithm>
#include <exception>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sandbox {
namespace respondio {

namespace {

constexpr size_t kMaxTagsPerCall = 10;
constexpr size_t kMaxTagLength = 255;
constexpr size_t kMaxCommentLength = 1000;
constexpr size_t kMaxNameLength = 255;

// Compact error propagation for validation code: each check returns an
// optional error result.
using MaybeError = std::optional<ApiResult>;

MaybeError BadRequest(std::string_view message) {
  return Error(400, message);
}

std::string JsonTypeName(const Json& j) { return j.type_name(); }

// Parses the request body as JSON. An empty body is an error unless
// allow_empty (then *out is null).
MaybeError ParseBody(const RequestContext& ctx, Json* out, bool allow_empty) {
  const std::string& body = ctx.body();
  bool blank = std::all_of(body.begin(), body.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
  if (blank) {
    if (allow_empty) {
      *out = nullptr;
      return std::nullopt;
    }
    return BadRequest("request body is required (JSON)");
  }
  *out = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) {
    return BadRequest("request body is not valid JSON");
  }
  return std::nullopt;
}

MaybeError ParseObjectBody(const RequestContext& ctx, Json* out) {
  if (auto err = ParseBody(ctx, out, /*allow_empty=*/false)) return err;
  if (!out->is_object()) {
    return BadRequest(absl::StrCat("request body must be a JSON object, got ",
                                   JsonTypeName(*out)));
  }
  return std::nullopt;
}

// Optional string member: absent → nullopt; null → nullopt unless
// !allow_null; wrong type → error naming the field.
MaybeError GetOptString(const Json& obj, const std::string& name,
                        std::optional<std::string>* out,
                        const std::string& field_path = "") {
  out->reset();
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    return BadRequest(absl::StrCat(field_path.empty() ? name : field_path,
                                   " must be a string, got ",
                                   JsonTypeName(*it)));
  }
  *out = it->get<std::string>();
  return std::nullopt;
}

MaybeError GetRequiredString(const Json& obj, const std::string& name,
                             std::string* out,
                             const std::string& field_path = "") {
  const std::string path = field_path.empty() ? name : field_path;
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    return BadRequest(absl::StrCat(path, " is required"));
  }
  if (!it->is_string()) {
    return BadRequest(
        absl::StrCat(path, " must be a string, got ", JsonTypeName(*it)));
  }
  *out = it->get<std::string>();
  if (out->empty()) return BadRequest(absl::StrCat(path, " must not be empty"));
  return std::nullopt;
}

// Optional integer member (JSON integer only).
MaybeError GetOptInt(const Json& obj, const std::string& name,
                     std::optional<int64_t>* out) {
  out->reset();
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) {
    return BadRequest(
        absl::StrCat(name, " must be an integer, got ", JsonTypeName(*it)));
  }
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return BadRequest(absl::StrCat(name, " is out of range"));
  }
  int64_t v = it->get<int64_t>();
  if (v <= 0) return BadRequest(absl::StrCat(name, " must be positive"));
  *out = v;
  return std::nullopt;
}

MaybeError ParseIdParam(const std::string& value, const std::string& name,
                        int64_t* out) {
  if (!ParseInt64(value, out) || *out <= 0) {
    return BadRequest(absl::StrCat(name, " must be a positive integer, got '",
                                   value, "'"));
  }
  return std::nullopt;
}

MaybeError ParseIdent(const std::string& value, Identifier* out) {
  std::string error;
  if (!ParseIdentifier(value, out, &error)) return BadRequest(error);
  return std::nullopt;
}

// ContactCreate → ContactPatch.
MaybeError ParseContactPatch(const Json& body, ContactPatch* patch) {
  struct Field {
    const char* name;
    FieldUpdate* out;
  };
  Field fields[] = {{"firstName", &patch->first_name},
                    {"lastName", &patch->last_name},
                    {"email", &patch->email},
                    {"phone", &patch->phone},
                    {"language", &patch->language},
                    {"profilePic", &patch->profile_pic},
                    {"countryCode", &patch->country_code}};
  for (const Field& f : fields) {
    auto it = body.find(f.name);
    if (it == body.end()) continue;
    f.out->present = true;
    if (it->is_null()) continue;
    if (!it->is_string()) {
      return BadRequest(absl::StrCat(f.name, " must be a string, got ",
                                     JsonTypeName(*it)));
    }
    f.out->value = it->get<std::string>();
    if (f.out->value->size() > 1024) {
      return BadRequest(absl::StrCat(f.name, " is too long"));
    }
  }
  // An empty email/phone means "none".
  for (FieldUpdate* f : {&patch->email, &patch->phone}) {
    if (f->value.has_value() && f->value->empty()) f->value.reset();
  }
  if (patch->email.value.has_value() && !IsValidEmail(*patch->email.value)) {
    return BadRequest(absl::StrCat("email is not a valid email address: '",
                                   *patch->email.value, "'"));
  }
  if (patch->phone.value.has_value() && !IsValidPhone(*patch->phone.value)) {
    return BadRequest(absl::StrCat(
        "phone must be in E.164 format ('+' followed by digits), got '",
        *patch->phone.value, "'"));
  }
  auto cf = body.find("customFields");
  if (cf != body.end() && !cf->is_null()) {
    if (!cf->is_array()) {
      return BadRequest(absl::StrCat("customFields must be an array, got ",
                                     JsonTypeName(*cf)));
    }
    for (size_t i = 0; i < cf->size(); ++i) {
      const Json& item = (*cf)[i];
      std::string path = absl::StrCat("customFields[", i, "]");
      if (!item.is_object()) {
        return BadRequest(absl::StrCat(path, " must be an object {name, value}"));
      }
      CustomFieldUpdate u;
      if (auto err = GetRequiredString(item, "name", &u.name,
                                       absl::StrCat(path, ".name"))) {
        return err;
      }
      auto v = item.find("value");
      if (v == item.end() || v->is_null()) {
        u.value.reset();
      } else if (v->is_string()) {
        u.value = v->get<std::string>();
      } else if (v->is_boolean()) {
        u.value = v->get<bool>() ? "true" : "false";
      } else if (v->is_number()) {
        u.value = DumpJson(*v);
      } else {
        return BadRequest(absl::StrCat(path,
                                       ".value must be a string, number, "
                                       "boolean or null, got ",
                                       JsonTypeName(*v)));
      }
      patch->custom_fields.push_back(std::move(u));
    }
  }
  return std::nullopt;
}

// Bare JSON array of tag names.
MaybeError ParseTagList(const RequestContext& ctx,
                        std::vector<std::string>* tags) {
  Json body;
  if (auto err = ParseBody(ctx, &body, /*allow_empty=*/false)) return err;
  if (!body.is_array()) {
    return BadRequest(absl::StrCat(
        "request body must be a JSON array of tag names, got ",
        JsonTypeName(body)));
  }
  if (body.empty()) return BadRequest("at least one tag is required");
  if (body.size() > kMaxTagsPerCall) {
    return BadRequest(absl::StrCat("at most ", kMaxTagsPerCall,
                                   " tags per request, got ", body.size()));
  }
  for (size_t i = 0; i < body.size(); ++i) {
    if (!body[i].is_string()) {
      return BadRequest(absl::StrCat("tags[", i, "] must be a string, got ",
                                     JsonTypeName(body[i])));
    }
    std::string tag = body[i].get<std::string>();
    size_t len = Utf8Length(tag);
    if (len == 0 || len > kMaxTagLength) {
      return BadRequest(absl::StrCat("tags[", i, "] must be 1 to ",
                                     kMaxTagLength, " characters, got ", len));
    }
    tags->push_back(std::move(tag));
  }
  return std::nullopt;
}

MaybeError ValidateName(const std::string& name, const std::string& field) {
  size_t len = Utf8Length(name);
  if (len == 0 || len > kMaxNameLength) {
    return BadRequest(absl::StrCat(field, " must be 1 to ", kMaxNameLength,
                                   " characters"));
  }
  return std::nullopt;
}

bool IsHttpUrl(const std::string& s) {
  return (s.rfind("http://", 0) == 0 && s.size() > 7) ||
         (s.rfind("https://", 0) == 0 && s.size() > 8);
}

// MessageContent validation.
MaybeError ValidateMessageContent(const Json& message) {
  static const std::set<std::string> kTypes = {"text", "attachment",
                                               "quick_reply",
                                               "whatsapp_template"};
  std::string type;
  if (auto err = GetRequiredString(message, "type", &type, "message.type")) {
    return err;
  }
  if (kTypes.count(type) == 0) {
    return BadRequest(absl::StrCat(
        "message.type must be one of text, attachment, quick_reply, "
        "whatsapp_template; got '",
        type, "'"));
  }
  if (type == "text" || type == "quick_reply") {
    std::string text;
    if (auto err = GetRequiredString(message, "text", &text, "message.text")) {
      return err;
    }
  }
  if (type == "attachment") {
    auto a = message.find("attachment");
    if (a == message.end() || !a->is_object()) {
      return BadRequest(
          "message.attachment is required (object {type, url}) for type "
          "attachment");
    }
    static const std::set<std::string> kAttachmentTypes = {"image", "video",
                                                           "audio", "file"};
    std::string atype;
    if (auto err = GetRequiredString(*a, "type", &atype,
                                     "message.attachment.type")) {
      return err;
    }
    if (kAttachmentTypes.count(atype) == 0) {
      return BadRequest(absl::StrCat(
          "message.attachment.type must be one of image, video, audio, "
          "file; got '",
          atype, "'"));
    }
    std::string url;
    if (auto err =
            GetRequiredString(*a, "url", &url, "message.attachment.url")) {
      return err;
    }
    if (!IsHttpUrl(url)) {
      return BadRequest("message.attachment.url must be an http(s) URL");
    }
  }
  if (type == "quick_reply") {
    auto q = message.find("quickReplies");
    if (q == message.end() || !q->is_array() || q->empty()) {
      return BadRequest(
          "message.quickReplies is required (non-empty array) for type "
          "quick_reply");
    }
    for (size_t i = 0; i < q->size(); ++i) {
      const Json& r = (*q)[i];
      std::string path = absl::StrCat("message.quickReplies[", i, "]");
      if (!r.is_object()) {
        return BadRequest(absl::StrCat(path, " must be an object"));
      }
      std::string title;
      if (auto err = GetRequiredString(r, "title", &title,
                                       absl::StrCat(path, ".title"))) {
        return err;
      }
      std::optional<std::string> payload;
      if (auto err = GetOptString(r, "payload", &payload,
                                  absl::StrCat(path, ".payload"))) {
        return err;
      }
    }
  }
  if (type == "whatsapp_template") {
    auto t = message.find("template");
    if (t == message.end() || !t->is_object()) {
      return BadRequest(
          "message.template is required (object {name, languageCode, "
          "components}) for type whatsapp_template");
    }
    std::string name;
    if (auto err =
            GetRequiredString(*t, "name", &name, "message.template.name")) {
      return err;
    }
    std::string language;
    if (auto err = GetRequiredString(*t, "languageCode", &language,
                                     "message.template.languageCode")) {
      return err;
    }
    auto c = t->find("components");
    if (c != t->end() && !c->is_null() && !c->is_array()) {
      return BadRequest("message.template.components must be an array");
    }
  }
  return std::nullopt;
}

ApiResult Paged(const std::vector<std::pair<int64_t, Json>>& items,
                const RequestContext& ctx) {
  PageRequest page;
  std::string error;
  if (!ParsePageRequest(ctx, &page, &error)) return Error(400, error);
  return Ok(Paginate(items, page, ctx.base_url + ctx.raw_path));
}

std::vector<std::string> PatternSegments(const std::string& path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    out.emplace_back(s);
  }
  return out;
}

}  // namespace

RespondioApi::RespondioApi(RespondioState* state, RateLimiter* limiter,
                           std::string token)
    : state_(state), limiter_(limiter), token_(std::move(token)) {
  using A = RespondioApi;
  // Limits are requests per second from the API guide's table; 5 where the
  // guide is silent. Literal routes come before parameterised ones.
  AddRoute("POST", "/contact", "create_contact", 5, &A::CreateContact);
  AddRoute("GET", "/contact/list", "list_contacts", 5, &A::ListContacts);
  AddRoute("POST", "/contact/list", "list_contacts", 5, &A::ListContacts);
  AddRoute("POST", "/contact/merge", "merge_contacts", 5, &A::MergeContacts);
  AddRoute("POST", "/contact/create_or_update/{identifier}",
           "create_or_update_contact", 5, &A::CreateOrUpdateContact);
  AddRoute("GET", "/contact/{identifier}", "get_contact", 10, &A::GetContact);
  AddRoute("PUT", "/contact/{identifier}", "update_contact", 5,
           &A::UpdateContact);
  AddRoute("DELETE", "/contact/{identifier}", "delete_contact", 5,
           &A::DeleteContact);
  AddRoute("POST", "/contact/{identifier}/tag", "contact_tag", 5,
           &A::ContactTags);
  AddRoute("DELETE", "/contact/{identifier}/tag", "contact_tag", 5,
           &A::ContactTags);
  AddRoute("GET", "/contact/{identifier}/channel", "list_contact_channels", 5,
           &A::ListContactChannels);
  AddRoute("GET", "/contact/{identifier}/channels", "list_contact_channels",
           5, &A::ListContactChannels);
  AddRoute("GET", "/contact/{identifier}/channel/{channelId}",
           "get_contact_channel", 10, &A::GetContactChannel);
  AddRoute("POST", "/contact/{identifier}/message", "send_message", 10,
           &A::SendMessage);
  AddRoute("GET", "/contact/{identifier}/message/list", "list_messages", 5,
           &A::ListMessages);
  AddRoute("GET", "/contact/{identifier}/message/{messageId}", "get_message",
           15, &A::GetMessage);
  AddRoute("POST", "/contact/{identifier}/conversation",
           "conversation_status", 5, &A::ConversationStatus);
  AddRoute("POST", "/contact/{identifier}/conversation/status",
           "conversation_status", 5, &A::ConversationStatus);
  AddRoute("POST", "/contact/{identifier}/conversation/assignee",
           "assign_conversation", 5, &A::AssignConversation);
  AddRoute("POST", "/contact/{identifier}/comment", "create_comment", 10,
           &A::CreateComment);
  AddRoute("POST", "/contact/{identifier}/lifecycle/update",
           "update_lifecycle", 5, &A::UpdateLifecycle);
  for (const char* base : {"/tag", "/space/tag"}) {
    AddRoute("GET", base, "list_tags", 5, &A::ListTags);
    AddRoute("POST", base, "create_tag", 5, &A::CreateTag);
    AddRoute("PUT", absl::StrCat(base, "/{tagId}"), "update_tag", 5,
             &A::UpdateTag);
    AddRoute("DELETE", absl::StrCat(base, "/{tagId}"), "delete_tag", 5,
             &A::DeleteTag);
  }
  for (const char* base :
       {"/custom_field", "/space/custom_field", "/space/contact_field"}) {
    AddRoute("GET", base, "list_custom_fields", 5, &A::ListCustomFields);
    AddRoute("POST", base, "create_custom_field", 5, &A::CreateCustomField);
    AddRoute("GET", absl::StrCat(base, "/{id}"), "get_custom_field", 10,
             &A::GetCustomField);
  }
  AddRoute("GET", "/space/channel", "list_space_channels", 5,
           &A::ListSpaceChannels);
  AddRoute("GET", "/space/closing_notes", "list_closing_notes", 5,
           &A::ListClosingNotes);
  AddRoute("GET", "/space/user", "list_space_users", 5, &A::ListSpaceUsers);
  AddRoute("GET", "/space/user/{id}", "get_space_user", 10,
           &A::GetSpaceUser);
}

void RespondioApi::AddRoute(const std::string& method, const std::string& path,
                            const std::string& endpoint, int limit,
                            HandlerFn handler) {
  routes_.push_back(
      Route{method, PatternSegments(path), endpoint, limit, handler});
}

std::vector<RespondioApi::EndpointInfo> RespondioApi::Endpoints() const {
  std::vector<EndpointInfo> out;
  for (const Route& r : routes_) {
    out.push_back(EndpointInfo{
        r.method, absl::StrCat("/", absl::StrJoin(r.pattern, "/")),
        r.endpoint, r.limit});
  }
  return out;
}

const RespondioApi::Route* RespondioApi::Match(
    const RequestContext& ctx, std::vector<std::string>* params,
    bool* other_method) const {
  *other_method = false;
  for (const Route& r : routes_) {
    if (r.pattern.size() != ctx.segments.size()) continue;
    std::vector<std::string> values;
    bool ok = true;
    for (size_t i = 0; i < r.pattern.size(); ++i) {
      const std::string& p = r.pattern[i];
      if (!p.empty() && p.front() == '{') {
        if (ctx.segments[i].empty()) {
          ok = false;
          break;
        }
        values.push_back(ctx.segments[i]);
      } else if (p != ctx.segments[i]) {
        ok = false;
        break;
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

std::string RespondioApi::EndpointFor(const RequestContext& ctx) const {
  std::vector<std::string> params;
  bool other_method = false;
  const Route* r = Match(ctx, &params, &other_method);
  return r == nullptr ? "unknown" : r->endpoint;
}

void RespondioApi::Handle(const RequestContext& ctx, httplib::Response& res) {
  // 1. Bearer auth.
  const std::string auth = ctx.req->get_header_value("Authorization");
  if (auth.empty()) {
    WriteJson(res, 401,
              ErrorBody(401, "Unauthorized: missing Authorization header "
                             "(expected 'Bearer <token>')"));
    return;
  }
  std::string scheme = AsciiLower(auth.substr(0, std::min<size_t>(7, auth.size())));
  if (scheme != "bearer " || auth.substr(7) != token_) {
    WriteJson(res, 401,
              ErrorBody(401, "Unauthorized: invalid access token"));
    return;
  }

  // 2. Routing.
  std::vector<std::string> params;
  bool other_method = false;
  const Route* route = Match(ctx, &params, &other_method);
  if (route == nullptr) {
    if (other_method) {
      WriteJson(res, 405,
                ErrorBody(405, absl::StrCat("Method ", ctx.method,
                                            " not allowed on ", ctx.path)));
    } else {
      WriteJson(res, 404,
                ErrorBody(404, absl::StrCat("Cannot ", ctx.method, " ",
                                            ctx.path)));
    }
    return;
  }

  // 3. Rate limit (organisation-wide, per endpoint).
  if (limiter_->enabled()) {
    RateLimiter::Decision d = limiter_->Acquire(route->endpoint, route->limit);
    res.set_header("X-RateLimit-Limit", std::to_string(d.limit));
    res.set_header("X-RateLimit-Remaining", std::to_string(d.remaining));
    if (!d.allowed) {
      res.set_header("Retry-After", std::to_string(d.retry_after_s));
      WriteJson(res, 429,
                ErrorBody(429, absl::StrCat("Too many requests: ",
                                            route->endpoint, " allows ",
                                            route->limit,
                                            " requests per second")));
      return;
    }
  }

  // 4. The operation. nlohmann::json throws on type errors; never let an
  // exception escape into httplib.
  ApiResult result;
  try {
    Call call{ctx, std::move(params)};
    result = (this->*(route->handler))(call);
  } catch (const nlohmann::json::exception& e) {
    result = Error(400, absl::StrCat("invalid request: ", e.what()));
  } catch (const std::exception& e) {
    result = Error(500, absl::StrCat("internal error: ", e.what()));
  } catch (...) {
    result = Error(500, "internal error");
  }
  WriteJson(res, result.status, result.body);
}

// ---------------------------------------------------------------------------
// Contacts.

ApiResult RespondioApi::CreateContact(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, &patch)) return *err;
  return state_->CreateContact(patch);
}

ApiResult RespondioApi::CreateOrUpdateContact(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, &patch)) return *err;
  return state_->CreateOrUpdateContact(ident, patch);
}

ApiResult RespondioApi::ListContacts(const Call& call) {
  std::string search = call.ctx.QueryParam("search").value_or("");
  if (call.ctx.method == "POST") {
    Json body;
    if (auto err = ParseBody(call.ctx, &body, /*allow_empty=*/true)) {
      return *err;
    }
    if (!body.is_null()) {
      if (!body.is_object()) {
        return Error(400, absl::StrCat("request body must be a JSON object, "
                                       "got ",
                                       JsonTypeName(body)));
      }
      std::optional<std::string> s;
      if (auto err = GetOptString(body, "search", &s)) return *err;
      if (s.has_value()) search = *s;
      std::optional<std::string> tz;
      if (auto err = GetOptString(body, "timezone", &tz)) return *err;
      auto filter = body.find("filter");
      if (filter != body.end() && !filter->is_null() && !filter->is_object()) {
        return Error(400, absl::StrCat("filter must be an object, got ",
                                       JsonTypeName(*filter)));
      }
    }
  }
  PageRequest page;
  std::string error;
  if (!ParsePageRequest(call.ctx, &page, &error)) return Error(400, error);
  return Ok(Paginate(state_->ListContacts(search), page,
                     call.ctx.base_url + "/contact/list"));
}

ApiResult RespondioApi::GetContact(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  return state_->GetContact(ident);
}

ApiResult RespondioApi::UpdateContact(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, &patch)) return *err;
  return state_->UpdateContact(ident, patch);
}

ApiResult RespondioApi::DeleteContact(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  return state_->DeleteContact(ident);
}

ApiResult RespondioApi::MergeContacts(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::optional<int64_t> primary;
  std::optional<int64_t> secondary;
  if (auto err = GetOptInt(body, "primaryContactId", &primary)) return *err;
  if (auto err = GetOptInt(body, "secondaryContactId", &secondary)) {
    return *err;
  }
  if (!primary.has_value()) return Error(400, "primaryContactId is required");
  if (!secondary.has_value()) {
    return Error(400, "secondaryContactId is required");
  }
  return state_->MergeContacts(*primary, *secondary);
}

ApiResult RespondioApi::UpdateLifecycle(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  if (!body.contains("name")) {
    return Error(400, "name is required (a lifecycle name or null)");
  }
  std::optional<std::string> name;
  if (auto err = GetOptString(body, "name", &name)) return *err;
  if (name.has_value()) {
    if (auto err = ValidateName(*name, "name")) return *err;
  }
  return state_->UpdateLifecycle(ident, name);
}

ApiResult RespondioApi::ContactTags(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  std::vector<std::string> tags;
  if (auto err = ParseTagList(call.ctx, &tags)) return *err;
  if (call.ctx.method == "DELETE") return state_->RemoveTags(ident, tags);
  return state_->AddTags(ident, tags);
}

ApiResult RespondioApi::ListContactChannels(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  return state_->ListContactChannels(ident);
}

ApiResult RespondioApi::GetContactChannel(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  int64_t channel_id = 0;
  if (auto err = ParseIdParam(call.params[1], "channelId", &channel_id)) {
    return *err;
  }
  return state_->GetContactChannel(ident, channel_id);
}

// ---------------------------------------------------------------------------
// Messages.

ApiResult RespondioApi::SendMessage(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  MessageInput input;
  if (auto err = GetOptInt(body, "channelId", &input.channel_id)) return *err;
  auto m = body.find("message");
  if (m == body.end() || m->is_null()) {
    return Error(400, "message is required");
  }
  if (!m->is_object()) {
    return Error(400, absl::StrCat("message must be an object, got ",
                                   JsonTypeName(*m)));
  }
  if (auto err = ValidateMessageContent(*m)) return *err;
  input.message = *m;
  return state_->SendMessage(ident, input);
}

ApiResult RespondioApi::ListMessages(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  std::vector<std::pair<int64_t, Json>> items;
  ApiResult r = state_->ListMessages(ident, &items);
  if (r.status != 200) return r;
  return Paged(items, call.ctx);
}

ApiResult RespondioApi::GetMessage(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  int64_t message_id = 0;
  if (auto err = ParseIdParam(call.params[1], "messageId", &message_id)) {
    return *err;
  }
  return state_->GetMessage(ident, message_id);
}

// ---------------------------------------------------------------------------
// Conversations and comments.

ApiResult RespondioApi::ConversationStatus(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ConversationStatusInput input;
  if (auto err = GetRequiredString(body, "status", &input.status)) {
    return *err;
  }
  if (input.status != "open" && input.status != "close") {
    return Error(400, absl::StrCat("status must be 'open' or 'close', got '",
                                   input.status, "'"));
  }
  if (auto err = GetOptInt(body, "closingNoteId", &input.closing_note_id)) {
    return *err;
  }
  if (auto err = GetOptString(body, "category", &input.category)) return *err;
  if (auto err = GetOptString(body, "summary", &input.summary)) return *err;
  if (input.status == "open" &&
      (input.closing_note_id.has_value() || input.category.has_value() ||
       input.summary.has_value())) {
    return Error(400,
                 "closingNoteId, category and summary are only allowed with "
                 "status 'close'");
  }
  return state_->SetConversationStatus(ident, input);
}

ApiResult RespondioApi::AssignConversation(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  auto a = body.find("assignee");
  if (a == body.end()) {
    return Error(400,
                 "assignee is required (email:<email>, id:<userId> or null)");
  }
  if (a->is_null()) return state_->AssignConversation(ident, std::nullopt);
  if (!a->is_string()) {
    return Error(400, absl::StrCat("assignee must be a string or null, got ",
                                   JsonTypeName(*a)));
  }
  return state_->AssignConversation(ident, a->get<std::string>());
}

ApiResult RespondioApi::CreateComment(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string text;
  if (auto err = GetRequiredString(body, "text", &text)) return *err;
  size_t len = Utf8Length(text);
  if (len > kMaxCommentLength) {
    return Error(400, absl::StrCat("text must be at most ", kMaxCommentLength,
                                   " characters, got ", len));
  }
  return state_->CreateComment(ident, text);
}

// ---------------------------------------------------------------------------
// Workspace tags.

ApiResult RespondioApi::ListTags(const Call&) { return state_->ListTags(); }

ApiResult RespondioApi::CreateTag(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string name;
  if (auto err = GetRequiredString(body, "name", &name)) return *err;
  if (auto err = ValidateName(name, "name")) return *err;
  return state_->CreateTag(name);
}

ApiResult RespondioApi::UpdateTag(const Call& call) {
  int64_t tag_id = 0;
  if (auto err = ParseIdParam(call.params[0], "tagId", &tag_id)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string name;
  if (auto err = GetRequiredString(body, "name", &name)) return *err;
  if (auto err = ValidateName(name, "name")) return *err;
  return state_->UpdateTag(tag_id, name);
}

ApiResult RespondioApi::DeleteTag(const Call& call) {
  int64_t tag_id = 0;
  if (auto err = ParseIdParam(call.params[0], "tagId", &tag_id)) return *err;
  return state_->DeleteTag(tag_id);
}

// ---------------------------------------------------------------------------
// Custom fields.

ApiResult RespondioApi::ListCustomFields(const Call&) {
  return state_->ListCustomFields();
}

ApiResult RespondioApi::CreateCustomField(const Call& call) {
  static const std::set<std::string> kTypes = {"text", "number",   "date",
                                               "list", "checkbox", "url"};
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string name;
  if (auto err = GetRequiredString(body, "name", &name)) return *err;
  if (auto err = ValidateName(name, "name")) return *err;
  std::string type;
  if (auto err = GetRequiredString(body, "type", &type)) return *err;
  if (kTypes.count(type) == 0) {
    return Error(400, absl::StrCat("type must be one of text, number, date, "
                                   "list, checkbox, url; got '",
                                   type, "'"));
  }
  std::vector<std::string> options;
  auto o = body.find("options");
  bool has_options = o != body.end() && !o->is_null();
  if (has_options) {
    if (!o->is_array()) {
      return Error(400, absl::StrCat("options must be an array of strings, "
                                     "got ",
                                     JsonTypeName(*o)));
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < o->size(); ++i) {
      const Json& v = (*o)[i];
      if (!v.is_string() || v.get<std::string>().empty()) {
        return Error(400, absl::StrCat("options[", i,
                                       "] must be a non-empty string"));
      }
      if (!seen.insert(v.get<std::string>()).second) {
        return Error(400, absl::StrCat("options[", i, "] is a duplicate: '",
                                       v.get<std::string>(), "'"));
      }
      options.push_back(v.get<std::string>());
    }
  }
  if (type == "list" && options.empty()) {
    return Error(400, "options is required (non-empty) for type list");
  }
  if (type != "list" && !options.empty()) {
    return Error(400, "options is only allowed for type list");
  }
  return state_->CreateCustomField(name, type, options);
}

ApiResult RespondioApi::GetCustomField(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "id", &id)) return *err;
  return state_->GetCustomField(id);
}

// ---------------------------------------------------------------------------
// Space.

ApiResult RespondioApi::ListSpaceChannels(const Call& call) {
  return Paged(state_->ListSpaceChannels(), call.ctx);
}

ApiResult RespondioApi::ListClosingNotes(const Call& call) {
  return Paged(state_->ListClosingNotes(), call.ctx);
}

ApiResult RespondioApi::ListSpaceUsers(const Call& call) {
  return Paged(state_->ListSpaceUsers(), call.ctx);
}

ApiResult RespondioApi::GetSpaceUser(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "id", &id)) return *err;
  return state_->GetSpaceUser(id);
}

}  // namespace respondio
}  // namespace sandbox
