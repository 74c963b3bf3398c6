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

// ContactCreate → ContactPatch. `cf_key` names the custom-field list:
// customFields (openapi) or custom_fields (live).
MaybeError ParseContactPatch(const Json& body, const std::string& cf_key,
                             ContactPatch* patch) {
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
  auto cf = body.find(cf_key);
  if (cf != body.end() && !cf->is_null()) {
    if (!cf->is_array()) {
      return BadRequest(absl::StrCat(cf_key, " must be an array, got ",
                                     JsonTypeName(*cf)));
    }
    for (size_t i = 0; i < cf->size(); ++i) {
      const Json& item = (*cf)[i];
      std::string path = absl::StrCat(cf_key, "[", i, "]");
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

// Names in a comma-separated list.
std::vector<std::string> FieldList(const char* csv) {
  std::vector<std::string> out;
  if (csv == nullptr) return out;
  for (absl::string_view f : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    out.emplace_back(f);
  }
  return out;
}

bool Contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// The first member of `obj` not in `allowed`, as a 400 naming it.
MaybeError RejectUnknownFields(const Json& obj,
                               const std::vector<std::string>& allowed,
                               const std::string& path_prefix) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!Contains(allowed, it.key())) {
      return BadRequest(absl::StrCat(
          "unknown field '", path_prefix, it.key(), "' (accepted: ",
          absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return std::nullopt;
}

// The message kinds of each dialect: which members a kind requires and, in
// the live dialect, which it accepts (anything else is a 400 naming it).
struct MessageKind {
  const char* type;
  const char* required;
  const char* allowed;  // nullptr: not checked (openapi)
};

const std::vector<MessageKind>& MessageKinds(Dialect d) {
  static const std::vector<MessageKind> kLive = {
      {"text", "text", "type,text,messageTag"},
      {"attachment", "attachment", "type,attachment"},
      {"quick_reply", "title,replies", "type,title,replies"},
      {"custom_payload", "payload", "type,payload"},
      {"email", "message",
       "type,message,subject,cc,bcc,attachments,replyToMessageId"},
      {"whatsapp_template", "template", "type,template"},
  };
  static const std::vector<MessageKind> kOpenapi = {
      {"text", "text", nullptr},
      {"attachment", "attachment", nullptr},
      {"quick_reply", "text,quickReplies", nullptr},
      {"whatsapp_template", "template", nullptr},
  };
  return d == Dialect::kLive ? kLive : kOpenapi;
}

MaybeError ValidateAttachment(const Json& a, const std::string& path) {
  if (!a.is_object()) {
    return BadRequest(absl::StrCat(path, " must be an object {type, url}"));
  }
  static const std::set<std::string> kAttachmentTypes = {"image", "video",
                                                         "audio", "file"};
  std::string atype;
  if (auto err = GetRequiredString(a, "type", &atype, path + ".type")) {
    return err;
  }
  if (kAttachmentTypes.count(atype) == 0) {
    return BadRequest(absl::StrCat(
        path, ".type must be one of image, video, audio, file; got '", atype,
        "'"));
  }
  std::string url;
  if (auto err = GetRequiredString(a, "url", &url, path + ".url")) return err;
  if (!IsHttpUrl(url)) {
    return BadRequest(absl::StrCat(path, ".url must be an http(s) URL"));
  }
  return std::nullopt;
}

MaybeError ValidateEmailList(const Json& v, const std::string& path) {
  if (!v.is_array()) return BadRequest(path + " must be an array of emails");
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string() || !IsValidEmail(v[i].get<std::string>())) {
      return BadRequest(absl::StrCat(path, "[", i, "] must be an email"));
    }
  }
  return std::nullopt;
}

// The shape of one MessageContent member (shared by both dialects).
MaybeError ValidateMessageMember(const Json& message, const std::string& key) {
  const std::string path = "message." + key;
  auto it = message.find(key);
  if (it == message.end() || it->is_null()) return std::nullopt;
  const Json& v = *it;
  if (key == "text" || key == "title" || key == "message") {
    std::string unused;
    return GetRequiredString(message, key, &unused, path);
  }
  if (key == "messageTag" || key == "subject") {
    if (!v.is_string()) return BadRequest(path + " must be a string");
    return std::nullopt;
  }
  if (key == "attachment") return ValidateAttachment(v, path);
  if (key == "attachments") {
    if (!v.is_array()) return BadRequest(path + " must be an array");
    for (size_t i = 0; i < v.size(); ++i) {
      if (auto err = ValidateAttachment(v[i], absl::StrCat(path, "[", i, "]"))) {
        return err;
      }
    }
    return std::nullopt;
  }
  if (key == "cc" || key == "bcc") return ValidateEmailList(v, path);
  if (key == "replyToMessageId") {
    if (!v.is_string() && !v.is_number_integer()) {
      return BadRequest(path + " must be a message id");
    }
    return std::nullopt;
  }
  if (key == "payload") {
    if (!v.is_object()) return BadRequest(path + " must be a JSON object");
    return std::nullopt;
  }
  if (key == "replies") {
    if (!v.is_array() || v.empty()) {
      return BadRequest(path + " must be a non-empty array of strings");
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string() || v[i].get<std::string>().empty()) {
        return BadRequest(
            absl::StrCat(path, "[", i, "] must be a non-empty string"));
      }
    }
    return std::nullopt;
  }
  if (key == "quickReplies") {
    if (!v.is_array() || v.empty()) {
      return BadRequest(path + " must be a non-empty array");
    }
    for (size_t i = 0; i < v.size(); ++i) {
      const Json& r = v[i];
      std::string rpath = absl::StrCat(path, "[", i, "]");
      if (!r.is_object()) return BadRequest(rpath + " must be an object");
      std::string title;
      if (auto err = GetRequiredString(r, "title", &title, rpath + ".title")) {
        return err;
      }
      std::optional<std::string> payload;
      if (auto err = GetOptString(r, "payload", &payload, rpath + ".payload")) {
        return err;
      }
    }
    return std::nullopt;
  }
  if (key == "template") {
    if (!v.is_object()) {
      return BadRequest(path +
                        " must be an object {name, languageCode, components}");
    }
    std::string name;
    if (auto err = GetRequiredString(v, "name", &name, path + ".name")) {
      return err;
    }
    std::string language;
    if (auto err = GetRequiredString(v, "languageCode", &language,
                                     path + ".languageCode")) {
      return err;
    }
    auto c = v.find("components");
    if (c != v.end() && !c->is_null() && !c->is_array()) {
      return BadRequest(path + ".components must be an array");
    }
  }
  return std::nullopt;
}

// MessageContent validation against the dialect's kinds.
MaybeError ValidateMessageContent(const Json& message, Dialect dialect) {
  std::string type;
  if (auto err = GetRequiredString(message, "type", &type, "message.type")) {
    return err;
  }
  const auto& kinds = MessageKinds(dialect);
  const MessageKind* kind = nullptr;
  std::vector<std::string> names;
  for (const MessageKind& k : kinds) {
    names.push_back(k.type);
    if (type == k.type) kind = &k;
  }
  if (kind == nullptr) {
    return BadRequest(absl::StrCat("message.type must be one of ",
                                   absl::StrJoin(names, ", "), "; got '", type,
                                   "'"));
  }
  if (kind->allowed != nullptr) {
    if (auto err =
            RejectUnknownFields(message, FieldList(kind->allowed), "message.")) {
      return err;
    }
  }
  for (const std::string& key : FieldList(kind->required)) {
    auto it = message.find(key);
    if (it == message.end() || it->is_null()) {
      return BadRequest(absl::StrCat("message.", key, " is required for type ",
                                     type));
    }
  }
  for (auto it = message.begin(); it != message.end(); ++it) {
    if (auto err = ValidateMessageMember(message, it.key())) return err;
  }
  return std::nullopt;
}

// Removes null members, recursively, except those the OpenAPI document marks
// nullable (Contact.assignee, Conversation.assignee/closed,
// Pagination.cursorId): the openapi dialect omits a field rather than send a
// null the document does not allow.
void StripNulls(Json& j) {
  static const std::set<std::string> kNullable = {"assignee", "closed",
                                                  "cursorId"};
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it->is_null() && kNullable.count(it.key()) == 0) {
        it = j.erase(it);
      } else {
        StripNulls(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (Json& v : j) StripNulls(v);
  }
}

Json ToArray(const std::vector<std::pair<int64_t, Json>>& items) {
  Json out = Json::array();
  for (const auto& [id, j] : items) out.push_back(j);
  return out;
}

std::vector<std::string> PatternSegments(const std::string& path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    out.emplace_back(s);
  }
  return out;
}

}  // namespace

const std::vector<RespondioApi::RouteSpec>& RespondioApi::RouteTable() {
  using A = RespondioApi;
  constexpr int L = kLiveRoute;
  constexpr int O = kOpenapiRoute;
  constexpr int B = kBothDialects;
  constexpr List kPaged = List::kPaged;
  constexpr List kArray = List::kArray;
  constexpr List kNone = List::kNone;
  constexpr Reply kRes = Reply::kResource;
  constexpr const char* kContactFields =
      "firstName,lastName,email,phone,language,profilePic,countryCode,"
      "custom_fields";
  // Limits are requests per second from the API guide's table; 5 where the
  // guide is silent. Literal routes come before parameterised ones. The
  // openapi rows are the OpenAPI document's paths plus the guide's (the
  // sandbox's original table); the live rows are specs/live-api.md.
  static const std::vector<RouteSpec> kTable = {
      {O, "POST", "/contact", "create_contact", 5, &A::CreateContact},
      {O, "GET", "/contact/list", "list_contacts", 5, &A::ListContacts, kPaged},
      {O, "POST", "/contact/list", "list_contacts", 5, &A::ListContacts,
       kPaged},
      {L, "POST", "/contact/list", "list_contacts", 5, &A::ListContacts, kPaged,
       "id", kRes, "", "search,timezone,filter"},
      {B, "POST", "/contact/merge", "merge_contacts", 5, &A::MergeContacts,
       kNone, "id", kRes, "", "primaryContactId,secondaryContactId"},
      {O, "POST", "/contact/create_or_update/{identifier}",
       "create_or_update_contact", 5, &A::CreateOrUpdateContact},
      {L, "POST", "/contact/create_or_update/{identifier}",
       "create_or_update_contact", 5, &A::CreateOrUpdateContact, kNone, "id",
       Reply::kContactId, "", kContactFields},
      {B, "GET", "/contact/{identifier}", "get_contact", 10, &A::GetContact},
      {L, "POST", "/contact/{identifier}", "create_contact", 5,
       &A::CreateContactLive, kNone, "id", Reply::kCodeMessage,
       "Contact created successfully", kContactFields},
      {O, "PUT", "/contact/{identifier}", "update_contact", 5,
       &A::UpdateContact},
      {L, "PUT", "/contact/{identifier}", "update_contact", 5,
       &A::UpdateContact, kNone, "id", Reply::kContactId, "", kContactFields},
      {B, "DELETE", "/contact/{identifier}", "delete_contact", 5,
       &A::DeleteContact},
      {B, "POST", "/contact/{identifier}/tag", "contact_tag", 5,
       &A::ContactTags},
      {B, "DELETE", "/contact/{identifier}/tag", "contact_tag", 5,
       &A::ContactTags},
      {O, "GET", "/contact/{identifier}/channel", "list_contact_channels", 5,
       &A::ListContactChannels, kArray},
      {O, "GET", "/contact/{identifier}/channels", "list_contact_channels", 5,
       &A::ListContactChannels, kArray},
      {L, "GET", "/contact/{identifier}/channels", "list_contact_channels", 5,
       &A::ListContactChannels, kPaged},
      {B, "GET", "/contact/{identifier}/channel/{channelId}",
       "get_contact_channel", 10, &A::GetContactChannel},
      {O, "POST", "/contact/{identifier}/message", "send_message", 10,
       &A::SendMessage},
      {L, "POST", "/contact/{identifier}/message", "send_message", 10,
       &A::SendMessage, kNone, "id", Reply::kMessageId, "",
       "channelId,message"},
      {B, "GET", "/contact/{identifier}/message/list", "list_messages", 5,
       &A::ListMessages, kPaged, "messageId"},
      {B, "GET", "/contact/{identifier}/message/{messageId}", "get_message",
       15, &A::GetMessage},
      {O, "POST", "/contact/{identifier}/conversation", "conversation_status",
       5, &A::ConversationStatus},
      {O, "POST", "/contact/{identifier}/conversation/status",
       "conversation_status", 5, &A::ConversationStatus},
      {L, "POST", "/contact/{identifier}/conversation/status",
       "conversation_status", 5, &A::ConversationStatus, kNone, "id", kRes, "",
       "status,category,summary"},
      {O, "POST", "/contact/{identifier}/conversation/assignee",
       "assign_conversation", 5, &A::AssignConversation},
      {L, "POST", "/contact/{identifier}/conversation/assignee",
       "assign_conversation", 5, &A::AssignConversation, kNone, "id", kRes, "",
       "assignee"},
      {O, "POST", "/contact/{identifier}/comment", "create_comment", 10,
       &A::CreateComment},
      {L, "POST", "/contact/{identifier}/comment", "create_comment", 10,
       &A::CreateComment, kNone, "id", kRes, "", "text"},
      {O, "POST", "/contact/{identifier}/lifecycle/update", "update_lifecycle",
       5, &A::UpdateLifecycle},
      {L, "POST", "/contact/{identifier}/lifecycle/update", "update_lifecycle",
       5, &A::UpdateLifecycle, kNone, "id", Reply::kCodeMessage,
       "Lifecycle updated successfully", "name"},
      // Workspace tags: by id (openapi), keyed by name (live).
      {O, "GET", "/tag", "list_tags", 5, &A::ListTags, kArray},
      {O, "POST", "/tag", "create_tag", 5, &A::CreateTag},
      {O, "PUT", "/tag/{tagId}", "update_tag", 5, &A::UpdateTag},
      {O, "DELETE", "/tag/{tagId}", "delete_tag", 5, &A::DeleteTag},
      {O, "GET", "/space/tag", "list_tags", 5, &A::ListTags, kArray},
      {O, "POST", "/space/tag", "create_tag", 5, &A::CreateTag},
      {O, "PUT", "/space/tag/{tagId}", "update_tag", 5, &A::UpdateTag},
      {O, "DELETE", "/space/tag/{tagId}", "delete_tag", 5, &A::DeleteTag},
      {L, "GET", "/space/tag", "list_tags", 5, &A::ListTags, kPaged},
      {L, "POST", "/space/tag", "create_tag", 5, &A::CreateTag, kNone, "id",
       kRes, "", "name,description,colorCode,emoji"},
      {L, "PUT", "/space/tag", "update_tag", 5, &A::UpdateTagByName, kNone,
       "id", kRes, "", "currentName,name,description,colorCode,emoji"},
      {L, "DELETE", "/space/tag", "delete_tag", 5, &A::DeleteTagByName, kNone,
       "id", Reply::kCodeMessage, "Tag deleted successfully", "name"},
      // Custom fields.
      {O, "GET", "/custom_field", "list_custom_fields", 5,
       &A::ListCustomFields, kArray},
      {O, "POST", "/custom_field", "create_custom_field", 5,
       &A::CreateCustomField},
      {O, "GET", "/custom_field/{id}", "get_custom_field", 10,
       &A::GetCustomField},
      {O, "GET", "/space/custom_field", "list_custom_fields", 5,
       &A::ListCustomFields, kArray},
      {O, "POST", "/space/custom_field", "create_custom_field", 5,
       &A::CreateCustomField},
      {O, "GET", "/space/custom_field/{id}", "get_custom_field", 10,
       &A::GetCustomField},
      {O, "GET", "/space/contact_field", "list_custom_fields", 5,
       &A::ListCustomFields, kArray},
      {O, "POST", "/space/contact_field", "create_custom_field", 5,
       &A::CreateCustomField},
      {O, "GET", "/space/contact_field/{id}", "get_custom_field", 10,
       &A::GetCustomField},
      {L, "GET", "/space/custom_field", "list_custom_fields", 5,
       &A::ListCustomFields, kPaged},
      {L, "POST", "/space/custom_field", "create_custom_field", 5,
       &A::CreateCustomField, kNone, "id", kRes, "",
       "name,description,slug,dataType,allowedValues"},
      {L, "GET", "/space/custom_field/{id}", "get_custom_field", 10,
       &A::GetCustomField},
      {L, "GET", "/space/contact_field", "list_custom_fields", 5,
       &A::ListCustomFields, kPaged},
      {L, "POST", "/space/contact_field", "create_custom_field", 5,
       &A::CreateCustomField, kNone, "id", kRes, "",
       "name,description,slug,dataType,allowedValues"},
      {L, "GET", "/space/contact_field/{id}", "get_custom_field", 10,
       &A::GetCustomField},
      // Space.
      {B, "GET", "/space/channel", "list_space_channels", 5,
       &A::ListSpaceChannels, kPaged},
      {L, "GET", "/space/channel/{channelId}/mtm", "list_whatsapp_templates", 5,
       &A::ListTemplates, kPaged},
      {L, "GET", "/space/mtm/{templateId}", "get_whatsapp_template", 10,
       &A::GetTemplate},
      {B, "GET", "/space/closing_notes", "list_closing_notes", 5,
       &A::ListClosingNotes, kPaged},
      {B, "GET", "/space/user", "list_space_users", 5, &A::ListSpaceUsers,
       kPaged},
      {B, "GET", "/space/user/{id}", "get_space_user", 10, &A::GetSpaceUser},
  };
  return kTable;
}

RespondioApi::RespondioApi(RespondioState* state, RateLimiter* limiter,
                           std::string tokens)
    : state_(state),
      dialect_(state->dialect()),
      limiter_(limiter),
      tokens_(absl::StrSplit(tokens, ',', absl::SkipEmpty())) {
  const int mask = dialect_ == Dialect::kLive ? kLiveRoute : kOpenapiRoute;
  for (const RouteSpec& spec : RouteTable()) {
    if ((spec.dialects & mask) == 0) continue;
    routes_.push_back(Route{&spec, PatternSegments(spec.path)});
  }
}

std::vector<RespondioApi::EndpointInfo> RespondioApi::Endpoints() const {
  std::vector<EndpointInfo> out;
  for (const Route& r : routes_) {
    out.push_back(EndpointInfo{r.spec->method, r.spec->path, r.spec->endpoint,
                               r.spec->limit});
  }
  return out;
}

RequestContext RespondioApi::StripPrefix(const RequestContext& ctx) {
  RequestContext out = ctx;
  if (!ctx.segments.empty() && ctx.segments[0] == "v2" &&
      ctx.raw_path.rfind("/v2", 0) == 0) {
    out.api_prefix = "/v2";
    out.segments.erase(out.segments.begin());
    out.raw_path = ctx.raw_path.substr(3);
    if (out.raw_path.empty()) out.raw_path = "/";
    if (out.path.rfind("/v2", 0) == 0) out.path = out.path.substr(3);
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
    if (r.spec->method != ctx.method) {
      *other_method = true;
      continue;
    }
    *params = std::move(values);
    return &r;
  }
  return nullptr;
}

std::string RespondioApi::EndpointFor(const RequestContext& request) const {
  std::vector<std::string> params;
  bool other_method = false;
  const Route* r = Match(StripPrefix(request), &params, &other_method);
  return r == nullptr ? "unknown" : r->spec->endpoint;
}

ApiResult RespondioApi::Shape(const Route& route, const RequestContext& ctx,
                              ApiResult result) const {
  const RouteSpec& spec = *route.spec;
  if (result.status >= 200 && result.status < 300) {
    if (spec.list != List::kNone && result.body.is_array()) {
      if (spec.list == List::kPaged) {
        PageRequest page;
        std::string error;
        if (!ParsePageRequest(ctx, &page, &error)) {
          result = Error(400, error);
        } else {
          std::vector<std::pair<int64_t, Json>> items;
          for (const Json& item : result.body) {
            items.emplace_back(item.value(spec.list_key, int64_t{0}), item);
          }
          result.body = Paginate(items, page,
                                 ctx.base_url + ctx.api_prefix + ctx.raw_path,
                                 dialect_ == Dialect::kLive
                                     ? PaginationStyle::kUrls
                                     : PaginationStyle::kCursor);
        }
      }
    }
    switch (spec.reply) {
      case Reply::kResource:
        break;
      case Reply::kContactId:
        if (result.body.contains("id")) {
          result.body = Json{{"contactId", result.body["id"]}};
        }
        break;
      case Reply::kCodeMessage:
        result.body = Json{{"code", 200}, {"message", spec.reply_message}};
        break;
      case Reply::kMessageId:
        result.body = Json{{"messageId", result.body.value("messageId", 0)}};
        break;
    }
  }
  if (result.status >= 400 && dialect_ == Dialect::kLive &&
      result.body.is_object()) {
    // The live API's errors are {code, message}.
    result.body.erase("status");
  }
  if (dialect_ == Dialect::kOpenapi) StripNulls(result.body);
  return result;
}

void RespondioApi::Handle(const RequestContext& request,
                          httplib::Response& res) {
  const RequestContext ctx = StripPrefix(request);
  auto write_error = [&](int code, const std::string& message) {
    Json body = ErrorBody(code, message);
    if (dialect_ == Dialect::kLive) body.erase("status");
    WriteJson(res, code, body);
  };
  // 1. Bearer auth.
  const std::string auth = ctx.req->get_header_value("Authorization");
  if (auth.empty()) {
    write_error(401,
                "Unauthorized: missing Authorization header (expected "
                "'Bearer <token>')");
    return;
  }
  std::string scheme = AsciiLower(auth.substr(0, std::min<size_t>(7, auth.size())));
  const std::string presented = auth.size() > 7 ? auth.substr(7) : "";
  const auto token = std::find(tokens_.begin(), tokens_.end(), presented);
  if (scheme != "bearer " || token == tokens_.end()) {
    write_error(401, "Unauthorized: invalid access token");
    return;
  }
  const size_t organization = token - tokens_.begin();

  // 2. Routing.
  std::vector<std::string> params;
  bool other_method = false;
  const Route* route = Match(ctx, &params, &other_method);
  if (route == nullptr) {
    if (other_method) {
      write_error(405, absl::StrCat("Method ", ctx.method, " not allowed on ",
                                    request.path));
    } else {
      write_error(404, absl::StrCat("Cannot ", ctx.method, " ", request.path));
    }
    return;
  }

  // 3. Rate limit (organisation-wide, per endpoint).
  if (limiter_->enabled()) {
    RateLimiter::Decision d =
        limiter_->Acquire(
            // With several tokens (organizations) each has its own limits, as respond.io's are
            // per organization. The request log shows which token each request carried.
            tokens_.size() == 1 ? route->spec->endpoint
                                : absl::StrCat(route->spec->endpoint, "@org", organization),
            route->spec->limit);
    res.set_header("X-RateLimit-Limit", std::to_string(d.limit));
    res.set_header("X-RateLimit-Remaining", std::to_string(d.remaining));
    if (!d.allowed) {
      res.set_header("Retry-After", std::to_string(d.retry_after_s));
      write_error(429, absl::StrCat("Too many requests: ",
                                    route->spec->endpoint, " allows ",
                                    route->spec->limit,
                                    " requests per second"));
      return;
    }
  }

  // 4. The operation. nlohmann::json throws on type errors; never let an
  // exception escape into httplib.
  ApiResult result;
  try {
    // Live: a body member the live API does not take is a 400 naming it,
    // never silently dropped.
    std::optional<ApiResult> rejected;
    if (dialect_ == Dialect::kLive && route->spec->live_fields != nullptr) {
      Json body = Json::parse(ctx.body(), nullptr, /*allow_exceptions=*/false);
      if (!body.is_discarded() && body.is_object()) {
        rejected = RejectUnknownFields(
            body, FieldList(route->spec->live_fields), "");
      }
    }
    if (rejected.has_value()) {
      result = *rejected;
    } else {
      Call call{ctx, std::move(params)};
      result = (this->*(route->spec->handler))(call);
    }
  } catch (const nlohmann::json::exception& e) {
    result = Error(400, absl::StrCat("invalid request: ", e.what()));
  } catch (const std::exception& e) {
    result = Error(500, absl::StrCat("internal error: ", e.what()));
  } catch (...) {
    result = Error(500, "internal error");
  }
  result = Shape(*route, ctx, std::move(result));
  WriteJson(res, result.status, result.body);
}

// ---------------------------------------------------------------------------
// Contacts.

ApiResult RespondioApi::CreateContact(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, CustomFieldsKey(), &patch)) {
    return *err;
  }
  return state_->CreateContact(patch);
}

// POST /contact/{identifier} (live): the identifier (email: or phone:) is
// the new contact's email or phone.
ApiResult RespondioApi::CreateContactLive(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  if (ident.kind == Identifier::Kind::kId) {
    return Error(400, "identifier: a contact is created by email: or phone:, "
                      "not id:");
  }
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, CustomFieldsKey(), &patch)) {
    return *err;
  }
  FieldUpdate& f =
      ident.kind == Identifier::Kind::kEmail ? patch.email : patch.phone;
  if (f.value.has_value() && AsciiLower(*f.value) != AsciiLower(ident.value)) {
    return Error(400, absl::StrCat(
                          ident.kind == Identifier::Kind::kEmail ? "email"
                                                                 : "phone",
                          ": differs from the identifier ", ident.ToString()));
  }
  f.present = true;
  f.value = ident.value;
  return state_->CreateContact(patch);
}

ApiResult RespondioApi::CreateOrUpdateContact(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  ContactPatch patch;
  if (auto err = ParseContactPatch(body, CustomFieldsKey(), &patch)) {
    return *err;
  }
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
  return Ok(ToArray(state_->ListContacts(search)));
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
  if (auto err = ParseContactPatch(body, CustomFieldsKey(), &patch)) {
    return *err;
  }
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
  if (auto err = ValidateMessageContent(*m, dialect_)) return *err;
  input.message = *m;
  return state_->SendMessage(ident, input);
}

ApiResult RespondioApi::ListMessages(const Call& call) {
  Identifier ident;
  if (auto err = ParseIdent(call.params[0], &ident)) return *err;
  std::vector<std::pair<int64_t, Json>> items;
  ApiResult r = state_->ListMessages(ident, &items);
  if (r.status != 200) return r;
  return Ok(ToArray(items));
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
  if (dialect_ == Dialect::kLive && input.status == "open") {
    // The live clients send open with empty category and summary.
    for (std::optional<std::string>* f : {&input.category, &input.summary}) {
      if (f->has_value() && (*f)->empty()) f->reset();
    }
  }
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
  if (dialect_ == Dialect::kLive) {
    // Live: a user id as a number, or the user's plain email.
    if (a->is_number_integer()) {
      return state_->AssignConversation(
          ident, absl::StrCat("id:", a->get<int64_t>()));
    }
    if (!a->is_string()) {
      return Error(400, absl::StrCat("assignee must be a user id (number), an "
                                     "email or null, got ",
                                     JsonTypeName(*a)));
    }
    const std::string email = a->get<std::string>();
    if (!IsValidEmail(email) || email.rfind("email:", 0) == 0) {
      return Error(400, absl::StrCat("assignee must be a user id (number), an "
                                     "email or null, got '",
                                     email, "'"));
    }
    return state_->AssignConversation(ident, "email:" + email);
  }
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

// {name, description?, colorCode?, emoji?}; the openapi Tag is {id?, name}.
static MaybeError ParseTagInput(const Json& body, const char* name_key,
                         TagInput* tag) {
  if (auto err = GetRequiredString(body, name_key, &tag->name)) return err;
  if (auto err = ValidateName(tag->name, name_key)) return err;
  if (auto err = GetOptString(body, "description", &tag->description)) {
    return err;
  }
  if (auto err = GetOptString(body, "colorCode", &tag->color_code)) return err;
  if (auto err = GetOptString(body, "emoji", &tag->emoji)) return err;
  return std::nullopt;
}

ApiResult RespondioApi::CreateTag(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  TagInput tag;
  if (auto err = ParseTagInput(body, "name", &tag)) return *err;
  return state_->CreateTag(tag);
}

ApiResult RespondioApi::UpdateTag(const Call& call) {
  int64_t tag_id = 0;
  if (auto err = ParseIdParam(call.params[0], "tagId", &tag_id)) return *err;
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  TagInput tag;
  if (auto err = ParseTagInput(body, "name", &tag)) return *err;
  return state_->UpdateTag(tag_id, tag);
}

ApiResult RespondioApi::UpdateTagByName(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string current;
  if (auto err = GetRequiredString(body, "currentName", &current)) {
    return *err;
  }
  TagInput tag;
  if (auto err = ParseTagInput(body, "name", &tag)) return *err;
  return state_->UpdateTagByName(current, tag);
}

ApiResult RespondioApi::DeleteTag(const Call& call) {
  int64_t tag_id = 0;
  if (auto err = ParseIdParam(call.params[0], "tagId", &tag_id)) return *err;
  return state_->DeleteTag(tag_id);
}

ApiResult RespondioApi::DeleteTagByName(const Call& call) {
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  std::string name;
  if (auto err = GetRequiredString(body, "name", &name)) return *err;
  return state_->DeleteTagByName(name);
}

// ---------------------------------------------------------------------------
// Custom fields.

ApiResult RespondioApi::ListCustomFields(const Call&) {
  return state_->ListCustomFields();
}

ApiResult RespondioApi::CreateCustomField(const Call& call) {
  // The dialects name the members differently and the live API knows two
  // more data types.
  const bool live = dialect_ == Dialect::kLive;
  const std::vector<std::string> types =
      live ? std::vector<std::string>{"text", "email", "number", "date",
                                      "time", "list", "checkbox", "url"}
           : std::vector<std::string>{"text", "number", "date",
                                      "list", "checkbox", "url"};
  const std::string type_key = live ? "dataType" : "type";
  const std::string options_key = live ? "allowedValues" : "options";
  Json body;
  if (auto err = ParseObjectBody(call.ctx, &body)) return *err;
  CustomFieldInput input;
  std::string& name = input.name;
  if (auto err = GetRequiredString(body, "name", &name)) return *err;
  if (auto err = ValidateName(name, "name")) return *err;
  std::string& type = input.type;
  if (auto err = GetRequiredString(body, type_key, &type)) return *err;
  if (!Contains(types, type)) {
    return Error(400, absl::StrCat(type_key, " must be one of ",
                                   absl::StrJoin(types, ", "), "; got '", type,
                                   "'"));
  }
  if (live) {
    if (auto err = GetOptString(body, "slug", &input.slug)) return *err;
    if (auto err = GetOptString(body, "description", &input.description)) {
      return *err;
    }
  }
  std::vector<std::string>& options = input.options;
  auto o = body.find(options_key);
  bool has_options = o != body.end() && !o->is_null();
  if (has_options) {
    if (!o->is_array()) {
      return Error(400, absl::StrCat(options_key,
                                     " must be an array of strings, got ",
                                     JsonTypeName(*o)));
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < o->size(); ++i) {
      const Json& v = (*o)[i];
      if (!v.is_string() || v.get<std::string>().empty()) {
        return Error(400, absl::StrCat(options_key, "[", i,
                                       "] must be a non-empty string"));
      }
      if (!seen.insert(v.get<std::string>()).second) {
        return Error(400, absl::StrCat(options_key, "[", i,
                                       "] is a duplicate: '",
                                       v.get<std::string>(), "'"));
      }
      options.push_back(v.get<std::string>());
    }
  }
  if (type == "list" && options.empty()) {
    return Error(400, absl::StrCat(options_key,
                                   " is required (non-empty) for type list"));
  }
  if (type != "list" && !options.empty()) {
    return Error(400, absl::StrCat(options_key,
                                   " is only allowed for type list"));
  }
  return state_->CreateCustomField(input);
}

ApiResult RespondioApi::GetCustomField(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "id", &id)) return *err;
  return state_->GetCustomField(id);
}

// ---------------------------------------------------------------------------
// Space.

ApiResult RespondioApi::ListSpaceChannels(const Call&) {
  return Ok(ToArray(state_->ListSpaceChannels()));
}

ApiResult RespondioApi::ListClosingNotes(const Call&) {
  return Ok(ToArray(state_->ListClosingNotes()));
}

ApiResult RespondioApi::ListSpaceUsers(const Call&) {
  return Ok(ToArray(state_->ListSpaceUsers()));
}

ApiResult RespondioApi::ListTemplates(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "channelId", &id)) return *err;
  return state_->ListTemplates(id);
}

ApiResult RespondioApi::GetTemplate(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "templateId", &id)) return *err;
  return state_->GetTemplate(id);
}

ApiResult RespondioApi::GetSpaceUser(const Call& call) {
  int64_t id = 0;
  if (auto err = ParseIdParam(call.params[0], "id", &id)) return *err;
  return state_->GetSpaceUser(id);
}

}  // namespace respondio
}  // namespace sandbox
