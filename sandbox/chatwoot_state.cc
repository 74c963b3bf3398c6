#include "sandbox/chatwoot_state.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace sandbox {
namespace chatwoot {

Json ErrorJson(std::string_view message, std::string_view field, std::string_view code) {
  Json error = {{"message", std::string(message)}};
  if (!field.empty()) error["field"] = std::string(field);
  if (!code.empty()) error["code"] = std::string(code);
  return Json{{"error", std::string(message)},
              {"description", std::string(message)},
              {"errors", Json::array({error})}};
}

ApiResult CwError(int status, std::string_view message, std::string_view field,
                  std::string_view code) {
  return ApiResult{status, ErrorJson(message, field, code)};
}

std::optional<std::string> CwRequest::Query(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::vector<std::string> CwRequest::QueryAll(std::string_view name) const {
  std::vector<std::string> out;
  const std::string bracketed = std::string(name) + "[]";
  std::optional<std::string> last_plain;
  for (const auto& [key, value] : query) {
    if (key == bracketed || (!rails_arrays && key == name)) out.push_back(value);
    if (key == name) last_plain = value;
  }
  // Rails: `labels=a&labels=b` is the scalar "b"; `labels[]=` wins over it.
  if (rails_arrays && out.empty() && last_plain.has_value()) out.push_back(*last_plain);
  return out;
}

namespace {

// No-content success (the spec documents no body): the routes send an empty 200.
ApiResult NoContent() { return ApiResult{200, Json()}; }

ApiResult NotFound(std::string_view what) {
  return CwError(404, std::string(what) + " not found", "", "not_found");
}

int64_t Now() { return UnixSecondsNow(); }
double NowFloat() { return UnixMillisNow() / 1000.0; }

std::string IsoTime(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

Json NullIfEmpty(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }
Json NullIfZero(int64_t v) { return v == 0 ? Json(nullptr) : Json(v); }

std::string Lower(std::string_view s) { return AsciiLower(s); }

bool ContainsFold(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(Lower(needle)) != std::string::npos;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

// WhatsApp participants: E.164 without '+', 8..15 digits, no leading zero.
bool IsParticipant(std::string_view s) {
  return IsDigits(s) && s.size() >= 8 && s.size() <= 15 && s[0] != '0';
}

// Chatwoot's contact phone numbers: E.164 with '+'.
bool IsE164(std::string_view s) {
  return s.size() >= 2 && s[0] == '+' && IsDigits(s.substr(1)) && s.size() <= 16 && s[1] != '0';
}

bool IsEmail(std::string_view s) {
  const size_t at = s.find('@');
  return at != std::string_view::npos && at > 0 && s.find('.', at) != std::string_view::npos &&
         s.back() != '.' && s.find(' ') == std::string_view::npos;
}

std::string ParticipantJid(const std::string& digits) {
  return absl::StrCat(digits, "@s.whatsapp.net");
}

// ---- body accessors: each returns an error result on a wrong type ----

using MaybeError = std::optional<ApiResult>;

MaybeError RequireObject(const CwRequest& r, int status = 422) {
  if (!r.body.is_object()) return CwError(status, "request body must be a JSON object");
  return std::nullopt;
}

// An integer member (JSON integer, whole number or digit string: the spec types ids as
// "number"). Absent or null leaves *out unset.
MaybeError GetInt(const Json& body, const char* name, std::optional<int64_t>* out,
                  int status = 422) {
  out->reset();
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
  } else if (it->is_number_float() && std::trunc(it->get<double>()) == it->get<double>() &&
             std::abs(it->get<double>()) < 9e15) {
    *out = static_cast<int64_t>(it->get<double>());
  } else if (int64_t v; it->is_string() && ParseInt64(it->get<std::string>(), &v)) {
    *out = v;
  } else {
    return CwError(status, absl::StrCat(name, " must be an integer"), name, "invalid");
  }
  return std::nullopt;
}

// One optional field of one JSON type: absent or null leaves `out` empty; another type is an
// error with `status`.
template <typename T>
MaybeError GetTyped(const Json& body, const char* name, std::optional<T>* out, int status,
                    bool (Json::*has_type)() const noexcept, const char* type_name) {
  out->reset();
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!((*it).*has_type)()) {
    return CwError(status, absl::StrCat(name, " must be ", type_name), name, "invalid");
  }
  *out = it->get<T>();
  return std::nullopt;
}

MaybeError GetString(const Json& body, const char* name, std::optional<std::string>* out,
                     int status = 422) {
  return GetTyped(body, name, out, status, &Json::is_string, "a string");
}

MaybeError GetBool(const Json& body, const char* name, std::optional<bool>* out,
                   int status = 422) {
  return GetTyped(body, name, out, status, &Json::is_boolean, "a boolean");
}

MaybeError GetObject(const Json& body, const char* name, std::optional<Json>* out,
                     int status = 422) {
  return GetTyped(body, name, out, status, &Json::is_object, "an object");
}

MaybeError GetStringArray(const Json& body, const char* name,
                          std::optional<std::vector<std::string>>* out, int status = 422) {
  out->reset();
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) {
    return CwError(status, absl::StrCat(name, " must be an array of strings"), name, "invalid");
  }
  std::vector<std::string> values;
  for (const Json& v : *it) {
    if (!v.is_string()) {
      return CwError(status, absl::StrCat(name, " must be an array of strings"), name,
                     "invalid");
    }
    values.push_back(v.get<std::string>());
  }
  *out = std::move(values);
  return std::nullopt;
}

MaybeError ParsePositive(const std::optional<std::string>& value, const char* name,
                         int64_t fallback, int64_t* out) {
  *out = fallback;
  if (!value.has_value()) return std::nullopt;
  if (!ParseInt64(*value, out) || *out < 1) {
    return CwError(400, absl::StrCat(name, " must be a positive integer"), name, "invalid");
  }
  return std::nullopt;
}

// Labels: each 1..255 characters; stored as a set.
MaybeError ParseLabels(const CwRequest& r, std::set<std::string>* out) {
  if (auto err = RequireObject(r)) return err;
  std::optional<std::vector<std::string>> labels;
  if (auto err = GetStringArray(r.body, "labels", &labels)) return err;
  if (!labels.has_value()) return CwError(422, "labels is required", "labels", "missing");
  out->clear();
  for (const std::string& label : *labels) {
    if (label.empty() || Utf8Length(label) > 255) {
      return CwError(422, "each label must have 1 to 255 characters", "labels", "invalid");
    }
    out->insert(label);
  }
  return std::nullopt;
}

Json LabelsJson(const std::set<std::string>& labels) {
  Json out = Json::array();
  for (const auto& l : labels) out.push_back(l);
  return out;
}

// ---- filters (contacts/filter, conversations/filter) ----

struct Condition {
  std::string key;
  std::string op;
  std::vector<std::string> values;  // lower-case
  std::string query_operator;       // "and" | "or" | ""
};

MaybeError ParseConditions(const CwRequest& r, std::vector<Condition>* out) {
  if (auto err = RequireObject(r, 400)) return err;
  auto it = r.body.find("payload");
  if (it == r.body.end() || !it->is_array() || it->empty()) {
    return CwError(400, "payload must be a non-empty array of filter conditions", "payload",
                   "invalid");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& c = (*it)[i];
    const std::string where = absl::StrCat("payload[", i, "]");
    if (!c.is_object()) return CwError(400, absl::StrCat(where, " must be an object"));
    Condition cond;
    auto key = c.find("attribute_key");
    if (key == c.end() || !key->is_string() || key->get<std::string>().empty()) {
      return CwError(400, absl::StrCat(where, ".attribute_key is required"), "attribute_key",
                     "missing");
    }
    cond.key = key->get<std::string>();
    auto op = c.find("filter_operator");
    if (op == c.end() || !op->is_string()) {
      return CwError(400, absl::StrCat(where, ".filter_operator is required"), "filter_operator",
                     "missing");
    }
    cond.op = op->get<std::string>();
    if (cond.op != "equal_to" && cond.op != "not_equal_to" && cond.op != "contains" &&
        cond.op != "does_not_contain") {
      return CwError(400, absl::StrCat("Invalid filter operator: ", cond.op), "filter_operator",
                     "invalid");
    }
    auto values = c.find("values");
    if (values != c.end() && !values->is_null()) {
      if (!values->is_array()) {
        return CwError(400, absl::StrCat(where, ".values must be an array"), "values", "invalid");
      }
      for (const Json& v : *values) {
        if (v.is_string()) {
          cond.values.push_back(Lower(v.get<std::string>()));
        } else if (v.is_number() || v.is_boolean()) {
          cond.values.push_back(Lower(v.dump()));
        } else {
          return CwError(400, absl::StrCat(where, ".values must hold strings"), "values",
                         "invalid");
        }
      }
    }
    auto qop = c.find("query_operator");
    if (qop != c.end() && !qop->is_null()) {
      if (!qop->is_string() || (Lower(qop->get<std::string>()) != "and" &&
                                Lower(qop->get<std::string>()) != "or")) {
        return CwError(400, absl::StrCat(where, ".query_operator must be AND or OR"),
                       "query_operator", "invalid");
      }
      cond.query_operator = Lower(qop->get<std::string>());
    }
    out->push_back(std::move(cond));
  }
  return std::nullopt;
}

// Filter conditions may name a standard attribute, or a custom attribute some record has.
template <typename Records>
MaybeError CheckFilterKeys(const std::vector<Condition>& conds, const Records& records,
                           const std::set<std::string>& standard) {
  std::set<std::string> custom_keys;
  for (const auto& [id, record] : records) {
    for (auto it = record.custom_attributes.begin(); it != record.custom_attributes.end(); ++it) {
      custom_keys.insert(it.key());
    }
  }
  for (const Condition& c : conds) {
    if (!standard.count(c.key) && !custom_keys.count(c.key)) {
      return CwError(400, absl::StrCat("Invalid attribute key: ", c.key), "attribute_key",
                     "invalid");
    }
  }
  return std::nullopt;
}

bool MatchOne(const Condition& c, const std::vector<std::string>& item_values) {
  bool equal = false, contains = false;
  for (const std::string& raw : item_values) {
    const std::string v = Lower(raw);
    for (const std::string& want : c.values) {
      equal = equal || v == want;
      contains = contains || v.find(want) != std::string::npos;
    }
  }
  if (c.op == "equal_to") return equal;
  if (c.op == "not_equal_to") return !equal;
  if (c.op == "contains") return contains;
  return !contains;  // does_not_contain
}

// AND binds tighter than OR, as in the SQL Chatwoot builds.
bool MatchAll(const std::vector<Condition>& conds,
              const std::function<std::vector<std::string>(const std::string&)>& attr) {
  bool result = false;
  bool group = true;
  for (size_t i = 0; i < conds.size(); ++i) {
    group = group && MatchOne(conds[i], attr(conds[i].key));
    if (conds[i].query_operator == "or" || i + 1 == conds.size()) {
      result = result || group;
      group = true;
    }
  }
  return result;
}

std::vector<std::string> JsonAttr(const Json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {""};
  if (it->is_string()) return {it->get<std::string>()};
  return {it->dump()};
}

// ---- rendering ----

Json RenderInbox(const Inbox& i) {
  return Json{{"id", i.id},
              {"avatar_url", ""},
              {"channel_id", i.channel_id},
              {"name", i.name},
              {"channel_type", i.channel_type},
              {"provider", NullIfEmpty(i.provider)}};
}

Json RenderContactInbox(const Account& a, const ContactInboxLink& link) {
  auto it = a.inboxes.find(link.inbox_id);
  return Json{{"source_id", link.source_id},
              {"inbox", it == a.inboxes.end() ? Json(nullptr) : RenderInbox(it->second)}};
}

// The spec's contact_list_item.
Json RenderContact(const Account& a, const Contact& c) {
  Json inboxes = Json::array();
  for (const auto& link : c.inboxes) inboxes.push_back(RenderContactInbox(a, link));
  return Json{{"additional_attributes", c.additional_attributes},
              {"availability_status", "offline"},
              {"email", NullIfEmpty(c.email)},
              {"id", c.id},
              {"name", c.name},
              {"phone_number", NullIfEmpty(c.phone_number)},
              {"blocked", c.blocked},
              {"identifier", NullIfEmpty(c.identifier)},
              {"thumbnail", c.thumbnail},
              {"custom_attributes", c.custom_attributes},
              {"last_activity_at", NullIfZero(c.last_activity_at)},
              {"created_at", c.created_at},
              {"contact_inboxes", inboxes}};
}

Json RenderSender(const Contact& c) {
  return Json{{"additional_attributes", c.additional_attributes},
              {"availability_status", "offline"},
              {"email", NullIfEmpty(c.email)},
              {"id", c.id},
              {"name", c.name},
              {"phone_number", NullIfEmpty(c.phone_number)},
              {"blocked", c.blocked},
              {"identifier", NullIfEmpty(c.identifier)},
              {"thumbnail", c.thumbnail},
              {"custom_attributes", c.custom_attributes},
              {"last_activity_at", NullIfZero(c.last_activity_at)},
              {"created_at", c.created_at}};
}

// The spec's `user` schema. Like Chatwoot, it carries the user's access_token and
// pubsub_token: the gateway must not hand them on.
Json RenderUser(const Account& a, const Agent& g) {
  return Json{
      {"id", g.id},
      {"access_token", absl::StrCat("sandbox-user-", g.id, "-secret-access-token")},
      {"account_id", a.id},
      {"available_name", g.name},
      {"avatar_url", ""},
      {"confirmed", true},
      {"display_name", nullptr},
      {"message_signature", nullptr},
      {"email", g.email},
      {"hmac_identifier", absl::StrCat("hmac-", g.id)},
      {"inviter_id", nullptr},
      {"name", g.name},
      {"provider", "email"},
      {"pubsub_token", absl::StrCat("sandbox-user-", g.id, "-secret-pubsub-token")},
      {"role", g.role},
      {"ui_settings", Json::object()},
      {"uid", g.email},
      {"type", nullptr},
      {"custom_attributes", Json::object()},
      {"accounts", Json::array({Json{{"id", a.id},
                                     {"name", a.name},
                                     {"status", "active"},
                                     {"active_at", IsoTime(1700000000)},
                                     {"role", g.role},
                                     {"permissions", Json::array({g.role})},
                                     {"availability", g.availability_status},
                                     {"availability_status", g.availability_status},
                                     {"auto_offline", true},
                                     {"custom_role_id", nullptr},
                                     {"custom_role", nullptr}}})}};
}

// The spec's `agent` schema.
Json RenderAgent(const Account& a, const Agent& g) {
  return Json{{"id", g.id},
              {"account_id", a.id},
              {"availability_status", g.availability_status},
              {"auto_offline", true},
              {"confirmed", true},
              {"email", g.email},
              {"available_name", g.name},
              {"name", g.name},
              {"role", g.role},
              {"thumbnail", ""},
              {"custom_role_id", nullptr}};
}

Json RenderMessage(const Account& a, const Conversation& c, const Message& m) {
  Json sender = nullptr;
  if (m.sender_type == "agent") {
    if (auto it = a.agents.find(m.sender_id); it != a.agents.end()) {
      sender = Json{{"id", it->second.id},
                    {"name", it->second.name},
                    {"available_name", it->second.name},
                    {"avatar_url", ""},
                    {"type", "user"},
                    {"availability_status", it->second.availability_status},
                    {"thumbnail", ""}};
    }
  } else if (m.sender_type == "contact") {
    if (auto it = a.contacts.find(m.sender_id); it != a.contacts.end()) {
      sender = RenderSender(it->second);
      sender["type"] = "contact";
    }
  }
  Json out{{"id", m.id},
              {"content", m.content},
              {"account_id", a.id},
              {"inbox_id", c.inbox_id},
              {"conversation_id", c.id},
              {"message_type", m.message_type},
              {"created_at", m.created_at},
              {"updated_at", m.updated_at},
              {"private", m.is_private},
              {"status", m.status},
              {"source_id", NullIfEmpty(m.source_id)},
              {"content_type", m.content_type},
              {"content_attributes", m.content_attributes},
              {"sender_type", NullIfEmpty(m.sender_type)},
              {"sender_id", NullIfZero(m.sender_id)},
              {"external_source_ids", Json::object()},
              {"additional_attributes", m.additional_attributes},
              {"processed_message_content", m.content},
              {"sentiment", Json::object()},
              {"conversation",
               Json{{"id", c.id},
                    {"assignee_id", c.assignee_id.has_value() ? Json(*c.assignee_id) : Json()},
                    {"unread_count", 0},
                    {"last_activity_at", c.last_activity_at}}},
              {"sender", sender}};
  // Chatwoot's jbuilder adds attachments only when the message has some.
  if (!m.attachments.empty()) {
    Json attachments = Json::array();
    int64_t n = 0;
    for (Json att : m.attachments) {
      att["id"] = m.id * 100 + (++n);
      att["message_id"] = m.id;
      att["account_id"] = a.id;
      attachments.push_back(std::move(att));
    }
    out["attachments"] = std::move(attachments);
  }
  return out;
}

const Message* LastNonActivity(const Conversation& c) {
  for (auto it = c.messages.rbegin(); it != c.messages.rend(); ++it) {
    if (it->message_type != 2) return &*it;
  }
  return nullptr;
}

Json RenderConversation(const Account& a, const Conversation& c) {
  Json messages = Json::array();
  for (const Message& m : c.messages) messages.push_back(RenderMessage(a, c, m));
  const Message* last = LastNonActivity(c);
  Json meta = {{"channel", a.inboxes.count(c.inbox_id) ? a.inboxes.at(c.inbox_id).channel_type
                                                          : ""},
               {"hmac_verified", false}};
  if (auto it = a.contacts.find(c.contact_id); it != a.contacts.end()) {
    meta["sender"] = RenderSender(it->second);
  }
  if (c.assignee_id.has_value()) {
    if (auto it = a.agents.find(*c.assignee_id); it != a.agents.end()) {
      meta["assignee"] = RenderUser(a, it->second);
    }
  }
  return Json{{"id", c.id},
              {"messages", messages},
              {"account_id", a.id},
              {"uuid", c.uuid},
              {"additional_attributes", c.additional_attributes},
              {"agent_last_seen_at", 0},
              {"assignee_last_seen_at", 0},
              {"can_reply", true},
              {"contact_last_seen_at", 0},
              {"custom_attributes", c.custom_attributes},
              {"inbox_id", c.inbox_id},
              {"labels", LabelsJson(c.labels)},
              {"muted", false},
              {"snoozed_until", NullIfZero(c.snoozed_until)},
              {"status", c.status},
              {"created_at", c.created_at},
              {"updated_at", c.updated_at},
              // The spec types `timestamp` as a string.
              {"timestamp", absl::StrCat(c.last_activity_at)},
              {"first_reply_created_at", c.first_reply_created_at},
              {"unread_count", 0},
              {"last_non_activity_message", last == nullptr ? Json() : RenderMessage(a, c, *last)},
              {"last_activity_at", c.last_activity_at},
              {"priority", NullIfEmpty(c.priority)},
              {"waiting_since", c.waiting_since},
              {"sla_policy_id", NullIfZero(c.sla_policy_id)},
              {"applied_sla", nullptr},
              {"sla_events", Json::array()},
              {"meta", meta}};
}

Json RenderReportingEvent(const Account& a, const Conversation& c, const ReportingEvent& e) {
  return Json{{"id", e.id},
              {"name", e.name},
              {"value", e.value},
              {"value_in_business_hours", e.value},
              {"event_start_time", IsoTime(e.start)},
              {"event_end_time", IsoTime(e.end)},
              {"account_id", a.id},
              {"conversation_id", c.id},
              {"inbox_id", c.inbox_id},
              {"user_id", NullIfZero(e.user_id)},
              {"created_at", IsoTime(e.end)},
              {"updated_at", IsoTime(e.end)}};
}

Json RenderGroupMember(const Account& a, int64_t group_id, const GroupMembership& m) {
  Json contact = nullptr;
  if (auto it = a.contacts.find(m.contact_id); it != a.contacts.end()) {
    contact = Json{{"id", it->second.id},
                   {"name", it->second.name},
                   {"phone_number", NullIfEmpty(it->second.phone_number)},
                   {"identifier", NullIfEmpty(it->second.identifier)},
                   {"thumbnail", it->second.thumbnail}};
  }
  return Json{{"id", m.id},
              {"role", m.role},
              {"is_active", m.active},
              {"group_contact_id", group_id},
              {"contact", contact}};
}

Json RenderInvite(const Group& g) {
  return Json{{"invite_code", g.invite_code},
              {"invite_url", absl::StrCat("https://chat.whatsapp.com/", g.invite_code)}};
}

bool IsResolvedContact(const Contact& c) {
  return !c.identifier.empty() || !c.email.empty() || !c.phone_number.empty();
}

// Members shown in lists: active ones, the inbox's own member first, then by record id.
std::vector<const GroupMembership*> ActiveMembers(const Group& g) {
  std::vector<const GroupMembership*> out;
  for (const auto& m : g.members) {
    if (m.active) out.push_back(&m);
  }
  std::stable_sort(out.begin(), out.end(), [](const GroupMembership* x, const GroupMembership* y) {
    if (x->inbox_member != y->inbox_member) return x->inbox_member;
    return x->id < y->id;
  });
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Seed, reset, dump.

ChatwootState::ChatwootState(Dialect dialect) : dialect_(dialect) { Reset(); }

void ChatwootState::Reset() {
  absl::MutexLock lock(&mu_);
  accounts_.clear();
  rng_.seed(20240601);
  SeedLocked();
}

std::string ChatwootState::NewInviteCodeLocked() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string code;
  for (int i = 0; i < 22; ++i) code.push_back(kAlphabet[rng_() % (sizeof(kAlphabet) - 1)]);
  return code;
}

Contact& ChatwootState::ContactForPhoneLocked(Account& a, const std::string& digits) {
  const std::string phone = absl::StrCat("+", digits);
  for (auto& [id, c] : a.contacts) {
    if (c.phone_number == phone) return c;
  }
  Contact c;
  c.id = a.next_contact_id++;
  c.name = phone;
  c.phone_number = phone;
  c.identifier = ParticipantJid(digits);
  c.created_at = Now();
  c.inboxes.push_back({kWhatsAppInbox, digits});
  return a.contacts[c.id] = std::move(c);
}

void ChatwootState::SeedLocked() {
  Account& a = accounts_[kSeedAccount];
  a.id = kSeedAccount;
  a.name = "Sandbox Account";
  a.inboxes[kWebInbox] = {kWebInbox, "Website", "Channel::WebWidget", "", 11, ""};
  a.inboxes[kWhatsAppInbox] = {kWhatsAppInbox, "WhatsApp", "Channel::Whatsapp", "baileys", 12,
                               kWhatsAppInboxPhone};
  a.inboxes[kApiInbox] = {kApiInbox, "API", "Channel::Api", "", 13, ""};
  a.agents[1] = {1, "Sandbox Admin", "admin@sandbox.test", "administrator", "online"};
  a.agents[2] = {2, "Alice Agent", "alice@sandbox.test", "agent", "online"};
  a.agents[3] = {3, "Bob Agent", "bob@sandbox.test", "agent", "offline"};
  a.teams[1] = {1, "support"};
  a.teams[2] = {2, "sales"};

  auto add_contact = [&](Contact c) -> Contact& {
    c.id = a.next_contact_id++;
    return a.contacts[c.id] = std::move(c);
  };
  Contact ana;
  ana.name = "Ana Souza";
  ana.email = "ana@example.com";
  ana.phone_number = "+5511987654321";
  ana.created_at = 1700000000;
  ana.last_activity_at = 1700000500;
  ana.labels = {"vip"};
  ana.custom_attributes = {{"plan", "pro"}};
  ana.additional_attributes = {{"city", "Sao Paulo"}, {"country_code", "BR"}};
  ana.inboxes = {{kWhatsAppInbox, "5511987654321"}, {kWebInbox, "web-ana-0001"}};
  Contact& ana_ref = add_contact(std::move(ana));
  Contact bruno;
  bruno.name = "Bruno Lima";
  bruno.email = "bruno@example.com";
  bruno.created_at = 1700000100;
  bruno.additional_attributes = {{"city", "Lisbon"}, {"country_code", "PT"}};
  bruno.inboxes = {{kWebInbox, "web-bruno-0002"}};
  Contact& bruno_ref = add_contact(std::move(bruno));
  Contact carla;
  carla.name = "Carla Dias";
  carla.phone_number = "+5521976543210";
  carla.identifier = "crm-3";
  carla.created_at = 1700000200;
  carla.inboxes = {{kApiInbox, "api-carla-0003"}};
  add_contact(std::move(carla));

  // A group someone else created: the inbox is an admin, Grace the creator.
  Contact& inbox_member = ContactForPhoneLocked(a, "5511900000000");
  inbox_member.name = "WhatsApp";
  inbox_member.created_at = 1700000300;
  Contact& grace = ContactForPhoneLocked(a, "5511911110000");
  grace.name = "Grace Seed";
  grace.created_at = 1700000300;
  Contact& heidi = ContactForPhoneLocked(a, "5511922220000");
  heidi.name = "Heidi Seed";
  heidi.created_at = 1700000300;
  Contact group_contact;
  group_contact.name = "Sandbox Seed Group";
  group_contact.identifier = absl::StrFormat("120363%012d@g.us", 0);
  group_contact.created_at = 1700000400;
  group_contact.inboxes = {{kWhatsAppInbox, group_contact.identifier}};
  Group g;
  g.jid = group_contact.identifier;
  g.description = "Seeded WhatsApp group";
  g.invite_code = NewInviteCodeLocked();
  g.inbox_id = kWhatsAppInbox;
  g.settings = {{"announce", false},
                {"restrict", false},
                {"join_approval_mode", true},
                {"member_add_mode", false}};
  g.members = {{a.next_member_id++, grace.id, "admin", true, true, false},
               {a.next_member_id++, inbox_member.id, "admin", true, false, true},
               {a.next_member_id++, heidi.id, "member", true, false, false}};
  g.pending = {{"5511933330000", "invite_link", 1700000450}};
  group_contact.group = std::move(g);
  Contact& group_ref = add_contact(std::move(group_contact));

  auto add_conversation = [&](Conversation c) -> Conversation& {
    c.id = a.next_conversation_id++;
    c.uuid = absl::StrFormat("00000000-0000-4000-8000-%012d", c.id);
    return a.conversations[c.id] = std::move(c);
  };
  Conversation c1;
  c1.inbox_id = kWhatsAppInbox;
  c1.contact_id = ana_ref.id;
  c1.source_id = "5511987654321";
  c1.status = "open";
  c1.assignee_id = 2;
  c1.labels = {"vip"};
  c1.created_at = 1700000400;
  c1.updated_at = 1700000500.5;
  c1.last_activity_at = 1700000500;
  c1.first_reply_created_at = 1700000500;
  c1.messages.push_back({a.next_message_id++, "Olá, preciso de ajuda", 0, false, "text",
                         Json::object(), Json::object(), "sent", "wamid-1", "contact",
                         ana_ref.id, 1700000400, 1700000400});
  c1.messages.push_back({a.next_message_id++, "Hi Ana, how can we help?", 1, false, "text",
                         Json::object(), Json::object(), "delivered", "", "agent", 2,
                         1700000500, 1700000500});
  c1.events.push_back({a.next_event_id++, "first_response", 100, 1700000400, 1700000500, 2});
  add_conversation(std::move(c1));
  Conversation c2;
  c2.inbox_id = kWebInbox;
  c2.contact_id = bruno_ref.id;
  c2.source_id = "web-bruno-0002";
  c2.status = "pending";
  c2.created_at = 1700000600;
  c2.updated_at = 1700000600;
  c2.last_activity_at = 1700000600;
  c2.waiting_since = 1700000600;
  c2.additional_attributes = {{"browser_language", "pt"}};
  c2.messages.push_back({a.next_message_id++, "Is anyone there?", 0, false, "text",
                         Json::object(), Json::object(), "sent", "", "contact", bruno_ref.id,
                         1700000600, 1700000600});
  add_conversation(std::move(c2));
  Conversation c3;
  c3.inbox_id = kWhatsAppInbox;
  c3.contact_id = group_ref.id;
  c3.source_id = group_ref.identifier;
  c3.status = "open";
  c3.created_at = 1700000400;
  c3.updated_at = 1700000400;
  c3.last_activity_at = 1700000400;
  add_conversation(std::move(c3));
}

Json ChatwootState::Dump() const {
  absl::ReaderMutexLock lock(&mu_);
  Json out = Json::object();
  for (const auto& [id, a] : accounts_) {
    Json contacts = Json::array();
    for (const auto& [cid, c] : a.contacts) {
      Json j = RenderContact(a, c);
      j["labels"] = LabelsJson(c.labels);
      if (c.group.has_value()) {
        const Group& g = *c.group;
        Json members = Json::array();
        for (const auto& m : g.members) {
          Json mj = RenderGroupMember(a, c.id, m);
          mj["creator"] = m.creator;
          mj["inbox_member"] = m.inbox_member;
          members.push_back(mj);
        }
        Json pending = Json::array();
        for (const auto& p : g.pending) pending.push_back(p.phone);
        j["group"] = Json{{"jid", g.jid},         {"description", g.description},
                          {"invite_code", g.invite_code}, {"settings", g.settings},
                          {"members", members},   {"pending", pending},
                          {"left", g.left}};
      }
      contacts.push_back(j);
    }
    Json conversations = Json::array();
    for (const auto& [vid, c] : a.conversations) {
      Json j = RenderConversation(a, c);
      j["contact_id"] = c.contact_id;
      j["team_id"] = c.team_id.has_value() ? Json(*c.team_id) : Json();
      conversations.push_back(j);
    }
    out[absl::StrCat(id)] = Json{{"contacts", contacts}, {"conversations", conversations}};
  }
  return Json{{"accounts", out}};
}

bool ChatwootState::HasAccount(int64_t account_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return accounts_.count(account_id) > 0;
}

Account* ChatwootState::AccountLocked(int64_t id) {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? nullptr : &it->second;
}

#define CW_ACCOUNT(r)                                                   \
  absl::MutexLock lock(&mu_);                                           \
  Account* account_ptr = AccountLocked((r).account_id);                 \
  if (account_ptr == nullptr) return NotFound("Account");               \
  Account& a = *account_ptr

#define CW_TRY(expr)               \
  if (auto err_ = (expr)) return *err_

// ---------------------------------------------------------------------------------------------
// Contacts.

Json ChatwootState::ContactListLocked(const Account& a, std::vector<const Contact*> contacts,
                                      const CwRequest& r, ApiResult* error) const {
  int64_t page = 1;
  if (auto err = ParsePositive(r.Query("page"), "page", 1, &page)) {
    *error = *err;
    return Json();
  }
  const std::string sort = r.Query("sort").value_or("");
  const bool desc = absl::StartsWith(sort, "-");
  const std::string key = desc ? sort.substr(1) : sort;
  if (!key.empty() && key != "name" && key != "email" && key != "phone_number" &&
      key != "last_activity_at") {
    *error = CwError(400, absl::StrCat("Invalid sort attribute: ", sort), "sort", "invalid");
    return Json();
  }
  auto field = [&key](const Contact* c) -> std::string {
    if (key == "name") return Lower(c->name);
    if (key == "email") return Lower(c->email);
    if (key == "phone_number") return c->phone_number;
    return absl::StrFormat("%020d", c->last_activity_at);
  };
  std::stable_sort(contacts.begin(), contacts.end(), [&](const Contact* x, const Contact* y) {
    if (!key.empty()) {
      const std::string fx = field(x), fy = field(y);
      if (fx != fy) return desc ? fx > fy : fx < fy;
    }
    return x->id < y->id;
  });
  Json payload = Json::array();
  const size_t start = static_cast<size_t>((page - 1) * kContactsPerPage);
  for (size_t i = start; i < contacts.size() && i < start + kContactsPerPage; ++i) {
    payload.push_back(RenderContact(a, *contacts[i]));
  }
  // The spec types current_page as a string.
  return Json{{"meta", {{"count", contacts.size()}, {"current_page", absl::StrCat(page)}}},
              {"payload", payload}};
}

ApiResult ChatwootState::ListContacts(const CwRequest& r) {
  CW_ACCOUNT(r);
  std::vector<const Contact*> list;
  for (const auto& [id, c] : a.contacts) {
    if (IsResolvedContact(c)) list.push_back(&c);
  }
  ApiResult error;
  Json body = ContactListLocked(a, std::move(list), r, &error);
  return body.is_null() ? error : Ok(std::move(body));
}

namespace {

// Fields of a contact create/update body. `clear` lists fields set to null (update only).
struct ContactFields {
  std::optional<std::string> name, email, phone_number, identifier, avatar_url;
  std::optional<bool> blocked;
  std::optional<Json> additional_attributes, custom_attributes;
  std::set<std::string> cleared;
};

MaybeError ParseContactFields(const Json& body, int status, ContactFields* f) {
  CW_TRY(GetString(body, "name", &f->name, status));
  CW_TRY(GetString(body, "email", &f->email, status));
  CW_TRY(GetString(body, "phone_number", &f->phone_number, status));
  CW_TRY(GetString(body, "identifier", &f->identifier, status));
  CW_TRY(GetString(body, "avatar_url", &f->avatar_url, status));
  CW_TRY(GetBool(body, "blocked", &f->blocked, status));
  CW_TRY(GetObject(body, "additional_attributes", &f->additional_attributes, status));
  CW_TRY(GetObject(body, "custom_attributes", &f->custom_attributes, status));
  for (const char* key : {"email", "phone_number", "identifier"}) {
    auto it = body.find(key);
    if (it != body.end() && (it->is_null() || (it->is_string() && it->get<std::string>().empty()))) {
      f->cleared.insert(key);
    }
  }
  if (f->email.has_value() && !f->email->empty() && !IsEmail(*f->email)) {
    return CwError(status, "Email is invalid", "email", "invalid");
  }
  if (f->phone_number.has_value() && !f->phone_number->empty() && !IsE164(*f->phone_number)) {
    return CwError(status, "Phone number should be in e164 format", "phone_number", "invalid");
  }
  if (f->avatar_url.has_value() && !f->avatar_url->empty() &&
      !absl::StartsWith(*f->avatar_url, "http://") &&
      !absl::StartsWith(*f->avatar_url, "https://")) {
    return CwError(status, "Avatar url is invalid", "avatar_url", "invalid");
  }
  if (f->name.has_value() && Utf8Length(*f->name) > 255) {
    return CwError(status, "Name is too long (maximum is 255 characters)", "name", "too_long");
  }
  return std::nullopt;
}

// Email, phone and identifier are unique in an account.
MaybeError CheckUnique(const Account& a, int64_t self, const ContactFields& f, int status) {
  for (const auto& [id, c] : a.contacts) {
    if (id == self) continue;
    if (f.email.has_value() && !f.email->empty() && Lower(c.email) == Lower(*f.email)) {
      return CwError(status, "Email has already been taken", "email", "taken");
    }
    if (f.phone_number.has_value() && !f.phone_number->empty() &&
        c.phone_number == *f.phone_number) {
      return CwError(status, "Phone number has already been taken", "phone_number", "taken");
    }
    if (f.identifier.has_value() && !f.identifier->empty() && c.identifier == *f.identifier) {
      return CwError(status, "Identifier has already been taken", "identifier", "taken");
    }
  }
  return std::nullopt;
}

void ApplyContactFields(const ContactFields& f, Contact* c) {
  if (f.name.has_value()) c->name = *f.name;
  if (f.email.has_value()) c->email = *f.email;
  if (f.phone_number.has_value()) c->phone_number = *f.phone_number;
  if (f.identifier.has_value()) c->identifier = *f.identifier;
  for (const std::string& key : f.cleared) {
    if (key == "email") c->email.clear();
    if (key == "phone_number") c->phone_number.clear();
    if (key == "identifier") c->identifier.clear();
  }
  if (f.avatar_url.has_value()) c->thumbnail = *f.avatar_url;
  if (f.blocked.has_value()) c->blocked = *f.blocked;
  // Attributes are merged, as Chatwoot does on update.
  if (f.additional_attributes.has_value()) c->additional_attributes.update(*f.additional_attributes);
  if (f.custom_attributes.has_value()) c->custom_attributes.update(*f.custom_attributes);
}

std::string DigitsOf(const std::string& phone) {
  return absl::StartsWith(phone, "+") ? phone.substr(1) : phone;
}

}  // namespace

ApiResult ChatwootState::CreateContact(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_TRY(RequireObject(r, 400));
  const bool live = dialect_ == Dialect::kLive;
  std::optional<int64_t> inbox_id;
  CW_TRY(GetInt(r.body, "inbox_id", &inbox_id, 400));
  // Chatwoot creates a contact without an inbox; the spec requires one.
  if (!inbox_id.has_value() && !live) {
    return CwError(400, "inbox_id is required", "inbox_id", "missing");
  }
  auto inbox = inbox_id.has_value() ? a.inboxes.find(*inbox_id) : a.inboxes.end();
  if (inbox_id.has_value() && inbox == a.inboxes.end()) {
    return CwError(400, "Inbox not found", "inbox_id", "invalid");
  }
  ContactFields f;
  CW_TRY(ParseContactFields(r.body, 400, &f));
  CW_TRY(CheckUnique(a, 0, f, 400));
  Contact c;
  ApplyContactFields(f, &c);
  std::string source_id;
  if (!inbox_id.has_value()) {
    // No contact inbox.
  } else if (inbox->second.channel_type == "Channel::Whatsapp") {
    if (c.phone_number.empty()) {
      return CwError(400, "phone_number is required for a WhatsApp inbox", "phone_number",
                     "missing");
    }
    source_id = DigitsOf(c.phone_number);
  } else {
    source_id = absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", rng_() & 0xffffffff,
                                rng_() & 0xffff, rng_() & 0xfff, rng_() & 0xfff,
                                rng_() & 0xffffffffffff);
  }
  c.id = a.next_contact_id++;
  c.created_at = Now();
  if (c.name.empty()) {
    c.name = !c.email.empty() ? c.email.substr(0, c.email.find('@'))
             : !c.phone_number.empty() ? c.phone_number
                                       : absl::StrCat("Contact ", c.id);
  }
  if (inbox_id.has_value()) c.inboxes.push_back({*inbox_id, source_id});
  Contact& stored = a.contacts[c.id] = std::move(c);
  if (live) {
    // contacts/create.json.jbuilder: {payload: {contact, contact_inbox}}.
    Json contact_inbox = nullptr;
    if (!stored.inboxes.empty()) {
      contact_inbox = RenderContactInbox(a, stored.inboxes.front());
    }
    return Ok(Json{{"payload",
                    {{"contact", RenderContact(a, stored)}, {"contact_inbox", contact_inbox}}}});
  }
  // The spec's extended_contact: the `contact` schema ({payload: [...]}) plus id and
  // availability_status.
  return Ok(Json{{"id", stored.id},
                 {"availability_status", "offline"},
                 {"payload", Json::array({RenderContact(a, stored)})}});
}

ApiResult ChatwootState::GetContact(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  return Ok(Json{{"payload", RenderContact(a, it->second)}});
}

ApiResult ChatwootState::UpdateContact(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  CW_TRY(RequireObject(r));
  ContactFields f;
  CW_TRY(ParseContactFields(r.body, 422, &f));
  CW_TRY(CheckUnique(a, it->first, f, 422));
  ApplyContactFields(f, &it->second);
  if (dialect_ == Dialect::kLive) return Ok(Json{{"payload", RenderContact(a, it->second)}});
  // The spec's contact_base: id plus the `contact` schema ({payload: [...]}). The spec says 204,
  // which cannot carry that body; Chatwoot answers 200.
  return Ok(Json{{"id", it->first}, {"payload", Json::array({RenderContact(a, it->second)})}});
}

ApiResult ChatwootState::DeleteContact(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  const int64_t id = it->first;
  a.contacts.erase(it);
  for (auto c = a.conversations.begin(); c != a.conversations.end();) {
    c = c->second.contact_id == id ? a.conversations.erase(c) : std::next(c);
  }
  for (auto& [gid, g] : a.contacts) {
    if (!g.group.has_value()) continue;
    auto& members = g.group->members;
    members.erase(std::remove_if(members.begin(), members.end(),
                                 [id](const GroupMembership& m) { return m.contact_id == id; }),
                  members.end());
  }
  return NoContent();
}

ApiResult ChatwootState::ListContactConversations(const CwRequest& r) {
  CW_ACCOUNT(r);
  if (!a.contacts.count(r.ids[0])) return NotFound("Contact");
  std::vector<const Conversation*> list;
  for (const auto& [id, c] : a.conversations) {
    if (c.contact_id == r.ids[0]) list.push_back(&c);
  }
  std::stable_sort(list.begin(), list.end(), [](const Conversation* x, const Conversation* y) {
    return x->last_activity_at > y->last_activity_at;
  });
  Json payload = Json::array();
  for (const Conversation* c : list) payload.push_back(RenderConversation(a, *c));
  return Ok(Json{{"payload", payload}});
}

ApiResult ChatwootState::ListContactLabels(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  return Ok(Json{{"payload", LabelsJson(it->second.labels)}});
}

ApiResult ChatwootState::SetContactLabels(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  std::set<std::string> labels;
  CW_TRY(ParseLabels(r, &labels));
  it->second.labels = std::move(labels);  // the spec: overwrites the existing list
  return Ok(Json{{"payload", LabelsJson(it->second.labels)}});
}

ApiResult ChatwootState::SearchContacts(const CwRequest& r) {
  CW_ACCOUNT(r);
  const std::string q = r.Query("q").value_or("");
  if (q.empty()) {
    return CwError(422, "Specify search string with parameter q", "q", "missing");
  }
  std::vector<const Contact*> list;
  for (const auto& [id, c] : a.contacts) {
    if (!IsResolvedContact(c)) continue;
    if (ContainsFold(c.name, q) || ContainsFold(c.email, q) || ContainsFold(c.phone_number, q) ||
        ContainsFold(c.identifier, q)) {
      list.push_back(&c);
    }
  }
  ApiResult error;
  Json body = ContactListLocked(a, std::move(list), r, &error);
  return body.is_null() ? error : Ok(std::move(body));
}

ApiResult ChatwootState::FilterContacts(const CwRequest& r) {
  CW_ACCOUNT(r);
  std::vector<Condition> conds;
  CW_TRY(ParseConditions(r, &conds));
  static const std::set<std::string> kStandard = {
      "name", "email", "phone_number", "identifier", "country_code", "city",
      "company", "blocked", "labels", "created_at", "last_activity_at"};
  CW_TRY(CheckFilterKeys(conds, a.contacts, kStandard));
  std::vector<const Contact*> list;
  for (const auto& entry : a.contacts) {
    // A named reference: C++17 lambdas cannot capture structured bindings.
    const auto& c = entry.second;
    auto attr = [&c](const std::string& key) -> std::vector<std::string> {
      if (key == "name") return {c.name};
      if (key == "email") return {c.email};
      if (key == "phone_number") return {c.phone_number};
      if (key == "identifier") return {c.identifier};
      if (key == "blocked") return {c.blocked ? "true" : "false"};
      if (key == "created_at") return {absl::StrCat(c.created_at)};
      if (key == "last_activity_at") return {absl::StrCat(c.last_activity_at)};
      if (key == "labels") {
        std::vector<std::string> v(c.labels.begin(), c.labels.end());
        if (v.empty()) v.push_back("");
        return v;
      }
      if (key == "country_code" || key == "city" || key == "company") {
        return JsonAttr(c.additional_attributes, key);
      }
      return JsonAttr(c.custom_attributes, key);
    };
    if (MatchAll(conds, attr)) list.push_back(&c);
  }
  ApiResult error;
  Json body = ContactListLocked(a, std::move(list), r, &error);
  return body.is_null() ? error : Ok(std::move(body));
}

ApiResult ChatwootState::CreateContactInbox(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  CW_TRY(RequireObject(r));
  std::optional<int64_t> inbox_id;
  CW_TRY(GetInt(r.body, "inbox_id", &inbox_id));
  if (!inbox_id.has_value()) return CwError(422, "inbox_id is required", "inbox_id", "missing");
  auto inbox = a.inboxes.find(*inbox_id);
  if (inbox == a.inboxes.end()) return CwError(422, "Inbox not found", "inbox_id", "invalid");
  std::optional<std::string> source_id;
  CW_TRY(GetString(r.body, "source_id", &source_id));
  Contact& c = it->second;
  if (!source_id.has_value() || source_id->empty()) {
    if (inbox->second.channel_type == "Channel::Whatsapp") {
      if (c.phone_number.empty()) {
        return CwError(422, "The contact has no phone number for a WhatsApp inbox", "source_id",
                       "invalid");
      }
      source_id = DigitsOf(c.phone_number);
    } else {
      source_id = absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", rng_() & 0xffffffff,
                                  rng_() & 0xffff, rng_() & 0xfff, rng_() & 0xfff,
                                  rng_() & 0xffffffffffff);
    }
  }
  for (const auto& [id, other] : a.contacts) {
    for (const auto& link : other.inboxes) {
      if (link.inbox_id != *inbox_id || link.source_id != *source_id) continue;
      if (id == c.id) return Ok(RenderContactInbox(a, link));  // already there
      return CwError(422, "Source has already been taken", "source_id", "taken");
    }
  }
  c.inboxes.push_back({*inbox_id, *source_id});
  return Ok(RenderContactInbox(a, c.inboxes.back()));
}

ApiResult ChatwootState::ListContactableInboxes(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  const Contact& c = it->second;
  Json payload = Json::array();
  for (const auto& [id, inbox] : a.inboxes) {
    const ContactInboxLink* link = nullptr;
    for (const auto& l : c.inboxes) {
      if (l.inbox_id == id) {
        link = &l;
        break;
      }
    }
    if (link != nullptr) {
      payload.push_back(RenderContactInbox(a, *link));
    } else if (inbox.channel_type == "Channel::Whatsapp" && !c.phone_number.empty()) {
      payload.push_back(RenderContactInbox(a, {id, DigitsOf(c.phone_number)}));
    }
  }
  return Ok(Json{{"payload", payload}});
}

ApiResult ChatwootState::MergeContacts(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_TRY(RequireObject(r, 400));
  std::optional<int64_t> base_id, mergee_id;
  CW_TRY(GetInt(r.body, "base_contact_id", &base_id, 400));
  CW_TRY(GetInt(r.body, "mergee_contact_id", &mergee_id, 400));
  if (!base_id.has_value() || !mergee_id.has_value()) {
    return CwError(400, "base_contact_id and mergee_contact_id are required");
  }
  if (*base_id == *mergee_id) {
    return CwError(400, "base_contact_id and mergee_contact_id must differ", "mergee_contact_id",
                   "invalid");
  }
  auto base_it = a.contacts.find(*base_id);
  auto mergee_it = a.contacts.find(*mergee_id);
  if (base_it == a.contacts.end() || mergee_it == a.contacts.end()) return NotFound("Contact");
  Contact& base = base_it->second;
  Contact mergee = std::move(mergee_it->second);
  a.contacts.erase(mergee_it);
  if (base.email.empty()) base.email = mergee.email;
  if (base.phone_number.empty()) base.phone_number = mergee.phone_number;
  if (base.identifier.empty()) base.identifier = mergee.identifier;
  base.labels.insert(mergee.labels.begin(), mergee.labels.end());
  // The base contact's attributes win.
  Json custom = mergee.custom_attributes;
  custom.update(base.custom_attributes);
  base.custom_attributes = custom;
  Json additional = mergee.additional_attributes;
  additional.update(base.additional_attributes);
  base.additional_attributes = additional;
  for (const auto& link : mergee.inboxes) base.inboxes.push_back(link);
  base.last_activity_at = std::max(base.last_activity_at, mergee.last_activity_at);
  for (auto& [id, c] : a.conversations) {
    if (c.contact_id == mergee.id) c.contact_id = base.id;
  }
  for (auto& [id, g] : a.contacts) {
    if (!g.group.has_value()) continue;
    for (auto& m : g.group->members) {
      if (m.contact_id == mergee.id) m.contact_id = base.id;
    }
  }
  return Ok(Json{{"id", base.id}, {"payload", Json::array({RenderContact(a, base)})}});
}

// ---------------------------------------------------------------------------------------------
// Groups.

Contact* ChatwootState::GroupContactLocked(Account& a, int64_t id, ApiResult* error) {
  auto it = a.contacts.find(id);
  if (it == a.contacts.end()) {
    *error = NotFound("Contact");
    return nullptr;
  }
  if (!it->second.group.has_value()) {
    *error = CwError(422, "Contact is not a group", "id", "not_a_group");
    return nullptr;
  }
  if (it->second.group->left) {
    *error = CwError(422, "The inbox is no longer a participant of this group", "id",
                     "not_a_participant");
    return nullptr;
  }
  return &it->second;
}

#define CW_GROUP(a, r)                                        \
  ApiResult group_error;                                      \
  Contact* group_contact = GroupContactLocked(a, (r).ids[0], &group_error); \
  if (group_contact == nullptr) return group_error;           \
  Group& g = *group_contact->group

ApiResult ChatwootState::SyncGroup(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  const Contact& c = it->second;
  if (!c.group.has_value()) return CwError(400, "Contact is not a group", "id", "not_a_group");
  // Members "from the most recent open/pending group conversation": none once it was left.
  bool open = false;
  for (const auto& [id, conv] : a.conversations) {
    open = open || (conv.contact_id == c.id && (conv.status == "open" || conv.status == "pending"));
  }
  Json members = Json::array();
  if (open) {
    for (const GroupMembership* m : ActiveMembers(*c.group)) {
      Json j = RenderGroupMember(a, c.id, *m);
      j.erase("group_contact_id");
      if (j["contact"].is_object()) j["contact"].erase("thumbnail");
      members.push_back(j);
    }
  }
  Json inboxes = Json::array();
  for (const auto& link : c.inboxes) inboxes.push_back(RenderContactInbox(a, link));
  return Ok(Json{{"payload",
                  {{"id", c.id},
                   {"name", c.name},
                   {"email", NullIfEmpty(c.email)},
                   {"phone_number", NullIfEmpty(c.phone_number)},
                   {"identifier", c.identifier},
                   {"thumbnail", c.thumbnail},
                   {"custom_attributes", c.custom_attributes},
                   {"contact_inboxes", inboxes},
                   {"group_members", members}}}});
}

ApiResult ChatwootState::ListGroupMembers(const CwRequest& r) {
  CW_ACCOUNT(r);
  auto it = a.contacts.find(r.ids[0]);
  if (it == a.contacts.end()) return NotFound("Contact");
  int64_t page = 1, per_page = kDefaultMembersPerPage;
  CW_TRY(ParsePositive(r.Query("page"), "page", 1, &page));
  CW_TRY(ParsePositive(r.Query("per_page"), "per_page", kDefaultMembersPerPage, &per_page));
  per_page = std::min<int64_t>(per_page, kMaxMembersPerPage);
  std::vector<const GroupMembership*> members;
  std::string inbox_phone;
  if (it->second.group.has_value()) {
    members = ActiveMembers(*it->second.group);
    if (auto inbox = a.inboxes.find(it->second.group->inbox_id); inbox != a.inboxes.end()) {
      inbox_phone = inbox->second.phone_number;
    }
  }
  Json payload = Json::array();
  const size_t start = static_cast<size_t>((page - 1) * per_page);
  for (size_t i = start; i < members.size() && i < start + per_page; ++i) {
    payload.push_back(RenderGroupMember(a, it->first, *members[i]));
  }
  return Ok(Json{{"payload", payload},
                 {"meta",
                  {{"total_count", members.size()},
                   {"page", page},
                   {"per_page", per_page},
                   {"inbox_phone_number", inbox_phone}}}});
}

namespace {

MaybeError ParseParticipants(const Json& body, std::vector<std::string>* out) {
  std::optional<std::vector<std::string>> participants;
  CW_TRY(GetStringArray(body, "participants", &participants));
  if (!participants.has_value() || participants->empty()) {
    return CwError(422, "participants must be a non-empty array of phone numbers",
                   "participants", "missing");
  }
  for (const std::string& p : *participants) {
    if (!IsParticipant(p)) {
      return CwError(422,
                     absl::StrCat("Invalid participant '", p,
                                  "': expected an E.164 phone number without '+'"),
                     "participants", "invalid");
    }
    if (std::find(out->begin(), out->end(), p) == out->end()) out->push_back(p);
  }
  return std::nullopt;
}

}  // namespace

ApiResult ChatwootState::AddGroupMembers(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  CW_TRY(RequireObject(r));
  std::vector<std::string> participants;
  CW_TRY(ParseParticipants(r.body, &participants));
  for (const std::string& p : participants) {
    Contact& member = ContactForPhoneLocked(a, p);
    auto existing = std::find_if(g.members.begin(), g.members.end(),
                                 [&](const GroupMembership& m) { return m.contact_id == member.id; });
    if (existing != g.members.end()) {
      existing->active = true;  // re-adding a former member reactivates the record
      continue;
    }
    g.members.push_back({a.next_member_id++, member.id, "member", true, false, false});
    g.pending.erase(std::remove_if(g.pending.begin(), g.pending.end(),
                                   [&](const JoinRequest& j) { return j.phone == p; }),
                    g.pending.end());
  }
  return NoContent();
}

namespace {

GroupMembership* FindMember(Group& g, int64_t member_id) {
  for (auto& m : g.members) {
    if (m.id == member_id && m.active) return &m;
  }
  return nullptr;
}

}  // namespace

ApiResult ChatwootState::UpdateGroupMemberRole(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> role;
  CW_TRY(GetString(r.body, "role", &role));
  if (!role.has_value()) return CwError(422, "role is required", "role", "missing");
  if (*role != "admin" && *role != "member") {
    return CwError(422, absl::StrCat("Invalid role '", *role, "': expected admin or member"),
                   "role", "invalid");
  }
  GroupMembership* m = FindMember(g, r.ids[1]);
  if (m == nullptr) return NotFound("Group member");
  if (m->creator) {
    return CwError(422, "The group creator cannot be modified", "member_id",
                   "group_creator_not_modifiable");
  }
  m->role = *role;
  return NoContent();
}

ApiResult ChatwootState::RemoveGroupMember(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  GroupMembership* m = FindMember(g, r.ids[1]);
  if (m == nullptr) return NotFound("Group member");
  if (m->creator) {
    return CwError(422, "The group creator cannot be removed", "member_id",
                   "group_creator_not_modifiable");
  }
  if (m->inbox_member) {
    return CwError(422, "The inbox cannot remove itself; leave the group instead", "member_id",
                   "invalid");
  }
  m->active = false;
  return NoContent();
}

ApiResult ChatwootState::UpdateGroupMetadata(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> subject, description;
  CW_TRY(GetString(r.body, "subject", &subject));
  CW_TRY(GetString(r.body, "description", &description));
  if ((!subject.has_value() || subject->empty()) && !description.has_value()) {
    return CwError(422, "At least one of subject or description must be provided", "subject",
                   "missing");
  }
  if (subject.has_value() && Utf8Length(*subject) > 100) {
    return CwError(422, "subject is too long (maximum is 100 characters)", "subject", "too_long");
  }
  if (subject.has_value() && !subject->empty()) group_contact->name = *subject;
  if (description.has_value()) {
    g.description = *description;
    group_contact->additional_attributes["description"] = *description;
  }
  return Ok(Json{{"id", group_contact->id},
                 {"name", group_contact->name},
                 {"additional_attributes", group_contact->additional_attributes}});
}

ApiResult ChatwootState::GetGroupInvite(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  return Ok(RenderInvite(g));
}

ApiResult ChatwootState::RevokeGroupInvite(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  std::string code;
  do {
    code = NewInviteCodeLocked();
  } while (code == g.invite_code);
  g.invite_code = code;
  return Ok(RenderInvite(g));
}

ApiResult ChatwootState::ListGroupJoinRequests(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  Json payload = Json::array();
  for (const JoinRequest& j : g.pending) {
    payload.push_back(Json{{"jid", ParticipantJid(j.phone)},
                           {"phone_number", j.phone},
                           {"request_method", j.request_method},
                           {"request_time", j.request_time}});
  }
  return Ok(Json{{"payload", payload}});
}

ApiResult ChatwootState::HandleGroupJoinRequests(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> action;
  CW_TRY(GetString(r.body, "request_action", &action));
  if (!action.has_value()) {
    return CwError(422, "request_action is required", "request_action", "missing");
  }
  if (*action != "approve" && *action != "reject") {
    return CwError(422, absl::StrCat("Invalid request_action '", *action,
                                     "': expected approve or reject"),
                   "request_action", "invalid");
  }
  // Participants may be phone numbers or JIDs (<digits>@s.whatsapp.net).
  std::optional<std::vector<std::string>> raw;
  CW_TRY(GetStringArray(r.body, "participants", &raw));
  if (!raw.has_value() || raw->empty()) {
    return CwError(422, "participants must be a non-empty array", "participants", "missing");
  }
  std::vector<std::string> phones;
  for (std::string p : *raw) {
    if (absl::EndsWith(p, "@s.whatsapp.net")) p = p.substr(0, p.find('@'));
    auto pending = std::find_if(g.pending.begin(), g.pending.end(),
                                [&](const JoinRequest& j) { return j.phone == p; });
    if (pending == g.pending.end()) {
      return CwError(422, absl::StrCat("No pending join request from ", p), "participants",
                     "not_pending");
    }
    phones.push_back(p);
  }
  for (const std::string& p : phones) {
    g.pending.erase(std::remove_if(g.pending.begin(), g.pending.end(),
                                   [&](const JoinRequest& j) { return j.phone == p; }),
                    g.pending.end());
    if (*action != "approve") continue;
    Contact& member = ContactForPhoneLocked(a, p);
    auto existing = std::find_if(g.members.begin(), g.members.end(),
                                 [&](const GroupMembership& m) { return m.contact_id == member.id; });
    if (existing != g.members.end()) {
      existing->active = true;
    } else {
      g.members.push_back({a.next_member_id++, member.id, "member", true, false, false});
    }
  }
  return NoContent();
}

ApiResult ChatwootState::UpdateGroupAdminSetting(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> property;
  std::optional<bool> enabled;
  CW_TRY(GetString(r.body, "property", &property));
  CW_TRY(GetBool(r.body, "enabled", &enabled));
  if (!property.has_value()) return CwError(422, "property is required", "property", "missing");
  if (!g.settings.count(*property)) {
    return CwError(422,
                   absl::StrCat("Invalid property '", *property,
                                "': expected announce, restrict, join_approval_mode or "
                                "member_add_mode"),
                   "property", "invalid");
  }
  if (!enabled.has_value()) return CwError(422, "enabled is required", "enabled", "missing");
  g.settings[*property] = *enabled;
  return NoContent();
}

ApiResult ChatwootState::LeaveGroup(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_GROUP(a, r);
  g.left = true;
  for (auto& m : g.members) {
    if (m.inbox_member) m.active = false;
  }
  for (auto& [id, c] : a.conversations) {
    if (c.contact_id == group_contact->id && (c.status == "open" || c.status == "pending")) {
      SetStatusLocked(a, c, "resolved", 0);
    }
  }
  return NoContent();
}

ApiResult ChatwootState::CreateGroup(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_TRY(RequireObject(r));
  std::optional<int64_t> inbox_id;
  std::optional<std::string> subject;
  CW_TRY(GetInt(r.body, "inbox_id", &inbox_id));
  CW_TRY(GetString(r.body, "subject", &subject));
  if (!inbox_id.has_value()) return CwError(422, "inbox_id is required", "inbox_id", "missing");
  auto inbox = a.inboxes.find(*inbox_id);
  if (inbox == a.inboxes.end()) {
    return CwError(403, "You do not have access to this inbox", "inbox_id", "forbidden");
  }
  if (inbox->second.channel_type != "Channel::Whatsapp") {
    return CwError(422, "This inbox does not support WhatsApp groups", "inbox_id", "unsupported");
  }
  if (!subject.has_value() || subject->empty()) {
    return CwError(422, "subject is required", "subject", "missing");
  }
  if (Utf8Length(*subject) > 100) {
    return CwError(422, "subject is too long (maximum is 100 characters)", "subject", "too_long");
  }
  std::vector<std::string> participants;
  CW_TRY(ParseParticipants(r.body, &participants));

  const std::string inbox_digits = DigitsOf(inbox->second.phone_number);
  Contact& self = ContactForPhoneLocked(a, inbox_digits);
  if (self.name == self.phone_number) self.name = inbox->second.name;
  const int64_t self_id = self.id;
  Group g;
  g.jid = absl::StrFormat("120363%012d@g.us", a.next_group_serial++);
  g.invite_code = NewInviteCodeLocked();
  g.inbox_id = *inbox_id;
  g.settings = {{"announce", false},
                {"restrict", false},
                {"join_approval_mode", false},
                {"member_add_mode", false}};
  // The account's own number creates the group: it is the creator (an admin for good).
  g.members.push_back({a.next_member_id++, self_id, "admin", true, true, true});
  for (const std::string& p : participants) {
    if (p == inbox_digits) continue;
    const int64_t member_id = ContactForPhoneLocked(a, p).id;
    g.members.push_back({a.next_member_id++, member_id, "member", true, false, false});
  }
  Contact group_contact;
  group_contact.id = a.next_contact_id++;
  group_contact.name = *subject;
  group_contact.identifier = g.jid;
  group_contact.created_at = Now();
  group_contact.inboxes = {{*inbox_id, g.jid}};
  group_contact.group = std::move(g);
  Contact& stored = a.contacts[group_contact.id] = std::move(group_contact);

  Conversation conv;
  conv.id = a.next_conversation_id++;
  conv.uuid = absl::StrFormat("00000000-0000-4000-8000-%012d", conv.id);
  conv.inbox_id = *inbox_id;
  conv.contact_id = stored.id;
  conv.source_id = stored.identifier;
  conv.created_at = Now();
  conv.updated_at = NowFloat();
  conv.last_activity_at = conv.created_at;
  a.conversations[conv.id] = std::move(conv);
  return Ok(Json{{"group_jid", stored.identifier}, {"subject", stored.name}});
}

ApiResult ChatwootState::SimulateInviteJoin(const Json& body) {
  if (!body.is_object()) return CwError(400, "body must be a JSON object");
  absl::MutexLock lock(&mu_);
  std::optional<int64_t> account_id;
  std::optional<std::string> code, phone;
  CW_TRY(GetInt(body, "account_id", &account_id, 400));
  CW_TRY(GetString(body, "invite_code", &code, 400));
  CW_TRY(GetString(body, "phone_number", &phone, 400));
  Account* a = AccountLocked(account_id.value_or(kSeedAccount));
  if (a == nullptr) return NotFound("Account");
  if (!phone.has_value() || !IsParticipant(*phone)) {
    return CwError(400, "phone_number must be an E.164 number without '+'", "phone_number");
  }
  for (auto& [id, c] : a->contacts) {
    if (!c.group.has_value() || c.group->left || !code.has_value() ||
        c.group->invite_code != *code) {
      continue;
    }
    Group& g = *c.group;
    Contact& person = ContactForPhoneLocked(*a, *phone);
    for (auto& m : g.members) {
      if (m.contact_id == person.id && m.active) {
        return CwError(409, "Already a member of this group", "phone_number", "member");
      }
    }
    if (g.settings["join_approval_mode"]) {
      for (const auto& p : g.pending) {
        if (p.phone == *phone) return CwError(409, "A join request is already pending");
      }
      g.pending.push_back({*phone, "invite_link", Now()});
      return Ok(Json{{"status", "pending"}, {"group_contact_id", c.id}});
    }
    auto existing = std::find_if(g.members.begin(), g.members.end(),
                                 [&](const GroupMembership& m) { return m.contact_id == person.id; });
    int64_t member_id;
    if (existing != g.members.end()) {
      existing->active = true;
      member_id = existing->id;
    } else {
      member_id = a->next_member_id++;
      g.members.push_back({member_id, person.id, "member", true, false, false});
    }
    return Ok(Json{{"status", "joined"}, {"group_contact_id", c.id}, {"member_id", member_id}});
  }
  return CwError(404, "The invite code is not valid (revoked or unknown)", "invite_code",
                 "invalid");
}

// ---------------------------------------------------------------------------------------------
// Conversations.

Conversation* ChatwootState::ConversationLocked(Account& a, int64_t id, ApiResult* error) {
  auto it = a.conversations.find(id);
  if (it == a.conversations.end()) {
    *error = NotFound("Conversation");
    return nullptr;
  }
  return &it->second;
}

#define CW_CONVERSATION(a, r)                                      \
  ApiResult conversation_error;                                    \
  Conversation* conv_ptr = ConversationLocked(a, (r).ids[0], &conversation_error); \
  if (conv_ptr == nullptr) return conversation_error;              \
  Conversation& c = *conv_ptr

void ChatwootState::AddActivityLocked(Account& a, Conversation& c, const std::string& text) {
  Message m;
  m.id = a.next_message_id++;
  m.content = text;
  m.message_type = 2;
  m.content_type = "text";
  m.created_at = m.updated_at = Now();
  c.messages.push_back(std::move(m));
  c.updated_at = NowFloat();
}

void ChatwootState::SetStatusLocked(Account& a, Conversation& c, const std::string& status,
                                    int64_t snoozed_until) {
  const std::string before = c.status;
  const int64_t now = Now();
  c.status = status;
  c.snoozed_until = status == "snoozed" ? snoozed_until : 0;
  c.updated_at = NowFloat();
  if (before == status) return;
  const std::string& actor = a.agents.at(kTokenUser).name;
  if (status == "resolved") {
    c.events.push_back({a.next_event_id++, "conversation_resolved",
                        static_cast<double>(now - c.created_at), c.created_at, now,
                        c.assignee_id.value_or(kTokenUser)});
    AddActivityLocked(a, c, absl::StrCat("Conversation was marked resolved by ", actor));
  } else if (status == "open") {
    if (before == "resolved") {
      c.events.push_back({a.next_event_id++, "conversation_opened", 0, now, now, 0});
    }
    AddActivityLocked(a, c, absl::StrCat("Conversation was reopened by ", actor));
  } else if (status == "snoozed") {
    AddActivityLocked(a, c, absl::StrCat("Conversation was snoozed by ", actor));
  } else {
    AddActivityLocked(a, c, absl::StrCat("Conversation was marked pending by ", actor));
  }
}

namespace {

// Filters shared by conversations list and meta.
struct ConversationQuery {
  std::string status = "open";
  std::string q;
  std::optional<int64_t> inbox_id, team_id;
  std::vector<std::string> labels;
};

MaybeError ParseConversationQuery(const CwRequest& r, ConversationQuery* out) {
  if (auto s = r.Query("status")) {
    if (*s != "all" && *s != "open" && *s != "resolved" && *s != "pending" && *s != "snoozed") {
      return CwError(400, absl::StrCat("Invalid status '", *s, "'"), "status", "invalid");
    }
    out->status = *s;
  }
  out->q = r.Query("q").value_or("");
  for (auto [name, field] : {std::pair{"inbox_id", &out->inbox_id},
                             std::pair{"team_id", &out->team_id}}) {
    if (auto v = r.Query(name)) {
      int64_t id;
      if (!ParseInt64(*v, &id)) {
        return CwError(400, absl::StrCat(name, " must be an integer"), name, "invalid");
      }
      *field = id;
    }
  }
  out->labels = r.QueryAll("labels");
  return std::nullopt;
}

bool MatchesQuery(const Conversation& c, const ConversationQuery& q) {
  if (q.status != "all" && c.status != q.status) return false;
  if (q.inbox_id.has_value() && c.inbox_id != *q.inbox_id) return false;
  if (q.team_id.has_value() && c.team_id != q.team_id) return false;
  for (const auto& l : q.labels) {
    if (!c.labels.count(l)) return false;
  }
  if (!q.q.empty()) {
    bool found = false;
    for (const auto& m : c.messages) found = found || ContainsFold(m.content, q.q);
    if (!found) return false;
  }
  return true;
}

Json Counts(const std::vector<const Conversation*>& list) {
  int64_t mine = 0, unassigned = 0, assigned = 0;
  for (const Conversation* c : list) {
    if (!c->assignee_id.has_value()) {
      ++unassigned;
    } else {
      ++assigned;
      if (*c->assignee_id == kTokenUser) ++mine;
    }
  }
  return Json{{"mine_count", mine},
              {"unassigned_count", unassigned},
              {"assigned_count", assigned},
              {"all_count", list.size()}};
}

bool MatchesAssignee(const Conversation& c, const std::string& type) {
  if (type == "me") return c.assignee_id == std::optional<int64_t>(kTokenUser);
  if (type == "unassigned") return !c.assignee_id.has_value();
  if (type == "assigned") return c.assignee_id.has_value();
  return true;
}

}  // namespace

Json ChatwootState::ConversationListLocked(const Account& a,
                                           std::vector<const Conversation*> list,
                                           const CwRequest& r, const std::string& assignee_type,
                                           ApiResult* error) const {
  int64_t page = 1;
  if (auto err = ParsePositive(r.Query("page"), "page", 1, &page)) {
    *error = *err;
    return Json();
  }
  std::stable_sort(list.begin(), list.end(), [](const Conversation* x, const Conversation* y) {
    if (x->last_activity_at != y->last_activity_at) return x->last_activity_at > y->last_activity_at;
    return x->id > y->id;
  });
  const Json meta = Counts(list);
  std::vector<const Conversation*> shown;
  for (const Conversation* c : list) {
    if (MatchesAssignee(*c, assignee_type)) shown.push_back(c);
  }
  Json payload = Json::array();
  const size_t start = static_cast<size_t>((page - 1) * kConversationsPerPage);
  for (size_t i = start; i < shown.size() && i < start + kConversationsPerPage; ++i) {
    payload.push_back(RenderConversation(a, *shown[i]));
  }
  return Json{{"data", {{"meta", meta}, {"payload", payload}}}};
}

ApiResult ChatwootState::GetConversationCounts(const CwRequest& r) {
  CW_ACCOUNT(r);
  ConversationQuery q;
  CW_TRY(ParseConversationQuery(r, &q));
  std::vector<const Conversation*> list;
  for (const auto& [id, c] : a.conversations) {
    if (MatchesQuery(c, q)) list.push_back(&c);
  }
  return Ok(Json{{"meta", Counts(list)}});
}

ApiResult ChatwootState::ListConversations(const CwRequest& r) {
  CW_ACCOUNT(r);
  ConversationQuery q;
  CW_TRY(ParseConversationQuery(r, &q));
  const std::string assignee_type = r.Query("assignee_type").value_or("all");
  if (assignee_type != "me" && assignee_type != "unassigned" && assignee_type != "all" &&
      assignee_type != "assigned") {
    return CwError(400, absl::StrCat("Invalid assignee_type '", assignee_type, "'"),
                   "assignee_type", "invalid");
  }
  std::vector<const Conversation*> list;
  for (const auto& [id, c] : a.conversations) {
    if (MatchesQuery(c, q)) list.push_back(&c);
  }
  ApiResult error;
  Json body = ConversationListLocked(a, std::move(list), r, assignee_type, &error);
  return body.is_null() ? error : Ok(std::move(body));
}

namespace {

const std::set<std::string>& Priorities() {
  static const auto* const kPriorities =
      new std::set<std::string>{"urgent", "high", "medium", "low", "none"};
  return *kPriorities;
}

MaybeError ParseTemplateParams(const Json& body, std::optional<Json>* out) {
  CW_TRY(GetObject(body, "template_params", out));
  if (!out->has_value()) return std::nullopt;
  const Json& t = **out;
  for (const char* key : {"name", "language"}) {
    auto it = t.find(key);
    if (it == t.end() || !it->is_string() || it->get<std::string>().empty()) {
      return CwError(422, absl::StrCat("template_params.", key, " is required"),
                     absl::StrCat("template_params.", key), "missing");
    }
  }
  if (auto it = t.find("category"); it != t.end() && !it->is_null()) {
    static const std::set<std::string> kCategories = {"UTILITY", "MARKETING", "SHIPPING_UPDATE",
                                                      "TICKET_UPDATE", "ISSUE_RESOLUTION"};
    if (!it->is_string() || !kCategories.count(it->get<std::string>())) {
      return CwError(422, "template_params.category is invalid", "template_params.category",
                     "invalid");
    }
  }
  if (auto it = t.find("processed_params"); it != t.end() && !it->is_null()) {
    if (!it->is_object()) {
      return CwError(422, "template_params.processed_params must be an object",
                     "template_params.processed_params", "invalid");
    }
    if (auto header = it->find("header"); header != it->end() && header->is_object()) {
      if (auto type = header->find("media_type"); type != header->end() && !type->is_null() &&
          (!type->is_string() || (*type != "image" && *type != "video" && *type != "document"))) {
        return CwError(422, "template_params.processed_params.header.media_type is invalid",
                       "media_type", "invalid");
      }
    }
  }
  return std::nullopt;
}

}  // namespace

ApiResult ChatwootState::CreateConversation(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> source_id, status, snoozed_until;
  std::optional<int64_t> inbox_id, contact_id, assignee_id, team_id;
  std::optional<Json> additional, custom, message;
  CW_TRY(GetString(r.body, "source_id", &source_id));
  CW_TRY(GetInt(r.body, "inbox_id", &inbox_id));
  CW_TRY(GetInt(r.body, "contact_id", &contact_id));
  CW_TRY(GetString(r.body, "status", &status));
  CW_TRY(GetInt(r.body, "assignee_id", &assignee_id));
  CW_TRY(GetInt(r.body, "team_id", &team_id));
  CW_TRY(GetString(r.body, "snoozed_until", &snoozed_until));
  CW_TRY(GetObject(r.body, "additional_attributes", &additional));
  CW_TRY(GetObject(r.body, "custom_attributes", &custom));
  CW_TRY(GetObject(r.body, "message", &message));
  // Chatwoot builds the contact inbox for contact_id + inbox_id; the spec needs source_id.
  const bool build_source = dialect_ == Dialect::kLive && contact_id.has_value() &&
                            (!source_id.has_value() || source_id->empty());
  if (!build_source && (!source_id.has_value() || source_id->empty())) {
    return CwError(422, "source_id is required", "source_id", "missing");
  }
  if (!inbox_id.has_value()) return CwError(422, "inbox_id is required", "inbox_id", "missing");
  if (build_source) {
    // The contact's existing source id in that inbox, else a new one.
    source_id.reset();
    if (auto it = a.contacts.find(*contact_id); it != a.contacts.end()) {
      for (const auto& link : it->second.inboxes) {
        if (link.inbox_id == *inbox_id) source_id = link.source_id;
      }
    }
    if (!source_id.has_value()) {
      source_id = absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", rng_() & 0xffffffff,
                                  rng_() & 0xffff, rng_() & 0xfff, rng_() & 0xfff,
                                  rng_() & 0xffffffffffff);
    }
  }
  if (!a.inboxes.count(*inbox_id)) return NotFound("Inbox");
  if (status.has_value() && *status != "open" && *status != "resolved" && *status != "pending") {
    return CwError(422, absl::StrCat("Invalid status '", *status, "'"), "status", "invalid");
  }
  if (assignee_id.has_value() && !a.agents.count(*assignee_id)) {
    return CwError(422, "Assignee is not an agent of this account", "assignee_id", "invalid");
  }
  if (team_id.has_value() && !a.teams.count(*team_id)) {
    return CwError(422, "Team not found", "team_id", "invalid");
  }
  std::optional<Json> template_params;
  if (message.has_value()) {
    auto content = message->find("content");
    if (content == message->end() || !content->is_string() ||
        content->get<std::string>().empty()) {
      return CwError(422, "message.content is required", "message.content", "missing");
    }
    CW_TRY(ParseTemplateParams(*message, &template_params));
  }
  // The contact: through its contact inbox (inbox + source id), or the given contact.
  Contact* contact = nullptr;
  for (auto& [id, c] : a.contacts) {
    for (const auto& link : c.inboxes) {
      if (link.inbox_id == *inbox_id && link.source_id == *source_id) contact = &c;
    }
  }
  if (contact_id.has_value()) {
    auto it = a.contacts.find(*contact_id);
    if (it == a.contacts.end()) return NotFound("Contact");
    if (contact != nullptr && contact != &it->second) {
      return CwError(422, "source_id belongs to another contact", "source_id", "invalid");
    }
    if (contact == nullptr) it->second.inboxes.push_back({*inbox_id, *source_id});
    contact = &it->second;
  }
  if (contact == nullptr) {
    return CwError(422, "No contact inbox with this source_id in this inbox", "source_id",
                   "invalid");
  }
  Conversation c;
  c.id = a.next_conversation_id++;
  c.uuid = absl::StrFormat("00000000-0000-4000-8000-%012d", c.id);
  c.inbox_id = *inbox_id;
  c.contact_id = contact->id;
  c.source_id = *source_id;
  c.status = status.value_or("open");
  c.assignee_id = assignee_id;
  c.team_id = team_id;
  if (additional.has_value()) c.additional_attributes = *additional;
  if (custom.has_value()) c.custom_attributes = *custom;
  if (snoozed_until.has_value()) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, *snoozed_until, &t, &err)) {
      c.snoozed_until = absl::ToUnixSeconds(t);
    }
  }
  c.created_at = Now();
  c.updated_at = NowFloat();
  c.last_activity_at = c.created_at;
  if (message.has_value()) {
    Message m;
    m.id = a.next_message_id++;
    m.content = (*message)["content"].get<std::string>();
    m.message_type = template_params.has_value() ? 3 : 1;
    m.sender_type = "agent";
    m.sender_id = kTokenUser;
    m.created_at = m.updated_at = c.created_at;
    if (template_params.has_value()) m.additional_attributes["template_params"] = *template_params;
    c.messages.push_back(std::move(m));
  }
  contact->last_activity_at = c.created_at;
  const int64_t id = c.id;
  a.conversations[id] = std::move(c);
  return Ok(Json{{"id", id}, {"account_id", a.id}, {"inbox_id", *inbox_id}});
}

ApiResult ChatwootState::FilterConversations(const CwRequest& r) {
  CW_ACCOUNT(r);
  std::vector<Condition> conds;
  CW_TRY(ParseConditions(r, &conds));
  static const std::set<std::string> kStandard = {
      "status", "assignee_id", "inbox_id", "team_id", "priority", "labels",
      "display_id", "contact_id", "browser_language", "referer", "created_at",
      "last_activity_at"};
  CW_TRY(CheckFilterKeys(conds, a.conversations, kStandard));
  std::vector<const Conversation*> list;
  for (const auto& entry : a.conversations) {
    // A named reference: C++17 lambdas cannot capture structured bindings.
    const auto& c = entry.second;
    auto attr = [&c](const std::string& key) -> std::vector<std::string> {
      if (key == "status") return {c.status};
      if (key == "assignee_id") return {c.assignee_id ? absl::StrCat(*c.assignee_id) : ""};
      if (key == "team_id") return {c.team_id ? absl::StrCat(*c.team_id) : ""};
      if (key == "inbox_id") return {absl::StrCat(c.inbox_id)};
      if (key == "priority") return {c.priority};
      if (key == "display_id") return {absl::StrCat(c.id)};
      if (key == "contact_id") return {absl::StrCat(c.contact_id)};
      if (key == "created_at") return {absl::StrCat(c.created_at)};
      if (key == "last_activity_at") return {absl::StrCat(c.last_activity_at)};
      if (key == "labels") {
        std::vector<std::string> v(c.labels.begin(), c.labels.end());
        if (v.empty()) v.push_back("");
        return v;
      }
      if (key == "browser_language" || key == "referer") {
        return JsonAttr(c.additional_attributes, key);
      }
      return JsonAttr(c.custom_attributes, key);
    };
    if (MatchAll(conds, attr)) list.push_back(&c);
  }
  ApiResult error;
  Json body = ConversationListLocked(a, std::move(list), r, "all", &error);
  return body.is_null() ? error : Ok(std::move(body));
}

ApiResult ChatwootState::GetConversation(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  return Ok(RenderConversation(a, c));
}

ApiResult ChatwootState::UpdateConversation(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> priority;
  std::optional<int64_t> sla_policy_id;
  CW_TRY(GetString(r.body, "priority", &priority));
  CW_TRY(GetInt(r.body, "sla_policy_id", &sla_policy_id));
  if (priority.has_value() && !Priorities().count(*priority)) {
    return CwError(422, absl::StrCat("Invalid priority '", *priority, "'"), "priority",
                   "invalid");
  }
  if (priority.has_value()) c.priority = *priority == "none" ? "" : *priority;
  if (sla_policy_id.has_value()) c.sla_policy_id = *sla_policy_id;
  c.updated_at = NowFloat();
  return NoContent();
}

ApiResult ChatwootState::ToggleStatus(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  std::optional<std::string> status;
  std::optional<int64_t> snoozed_until;
  if (dialect_ == Dialect::kLive && !r.body.is_object()) {
    // Chatwoot: without a status, toggle_status toggles between open and resolved.
  } else {
    CW_TRY(RequireObject(r));
    CW_TRY(GetString(r.body, "status", &status));
    CW_TRY(GetInt(r.body, "snoozed_until", &snoozed_until));
  }
  if (!status.has_value() && dialect_ == Dialect::kLive) {
    status = c.status == "open" ? "resolved" : "open";
  }
  if (!status.has_value()) return CwError(422, "status is required", "status", "missing");
  if (*status != "open" && *status != "resolved" && *status != "pending" &&
      *status != "snoozed") {
    return CwError(422, absl::StrCat("Invalid status '", *status, "'"), "status", "invalid");
  }
  SetStatusLocked(a, c, *status, snoozed_until.value_or(0));
  return Ok(Json{{"meta", Json::object()},
                 {"payload",
                  {{"success", true}, {"current_status", c.status}, {"conversation_id", c.id}}}});
}

ApiResult ChatwootState::TogglePriority(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> priority;
  CW_TRY(GetString(r.body, "priority", &priority));
  if (!priority.has_value()) return CwError(422, "priority is required", "priority", "missing");
  if (!Priorities().count(*priority)) {
    return CwError(422, absl::StrCat("Invalid priority '", *priority, "'"), "priority",
                   "invalid");
  }
  c.priority = *priority == "none" ? "" : *priority;
  c.updated_at = NowFloat();
  return NoContent();
}

ApiResult ChatwootState::UpdateCustomAttributes(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<Json> custom;
  CW_TRY(GetObject(r.body, "custom_attributes", &custom));
  if (!custom.has_value()) {
    return CwError(422, "custom_attributes is required", "custom_attributes", "missing");
  }
  c.custom_attributes = *custom;
  c.updated_at = NowFloat();
  return Ok(Json{{"custom_attributes", c.custom_attributes}});
}

ApiResult ChatwootState::AssignConversation(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<int64_t> assignee_id, team_id;
  CW_TRY(GetInt(r.body, "assignee_id", &assignee_id));
  CW_TRY(GetInt(r.body, "team_id", &team_id));
  const std::string& actor = a.agents.at(kTokenUser).name;
  if (r.body.contains("assignee_id")) {
    if (!assignee_id.has_value()) {  // null: unassign
      c.assignee_id.reset();
      AddActivityLocked(a, c, absl::StrCat("Conversation unassigned by ", actor));
      return NoContent();
    }
    auto agent = a.agents.find(*assignee_id);
    if (agent == a.agents.end()) {
      return CwError(422, "Assignee is not an agent of this account", "assignee_id", "invalid");
    }
    c.assignee_id = *assignee_id;
    AddActivityLocked(a, c, absl::StrCat("Assigned to ", agent->second.name, " by ", actor));
    return Ok(RenderUser(a, agent->second));
  }
  if (team_id.has_value()) {
    auto team = a.teams.find(*team_id);
    if (team == a.teams.end()) return CwError(422, "Team not found", "team_id", "invalid");
    c.team_id = *team_id;
    AddActivityLocked(a, c, absl::StrCat("Assigned to ", team->second.name, " team by ", actor));
    if (dialect_ == Dialect::kLive) {
      // assignments_controller renders the team (teams/_team.json.jbuilder).
      return Ok(Json{{"id", team->second.id},
                     {"name", team->second.name},
                     {"description", nullptr},
                     {"allow_auto_assign", true},
                     {"account_id", a.id},
                     {"is_member", false}});
    }
    return NoContent();
  }
  return CwError(422, "assignee_id or team_id is required", "assignee_id", "missing");
}

ApiResult ChatwootState::ListConversationLabels(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  return Ok(Json{{"payload", LabelsJson(c.labels)}});
}

ApiResult ChatwootState::SetConversationLabels(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  std::set<std::string> labels;
  CW_TRY(ParseLabels(r, &labels));
  c.labels = std::move(labels);  // the spec: overwrites the existing list
  c.updated_at = NowFloat();
  return Ok(Json{{"payload", LabelsJson(c.labels)}});
}

ApiResult ChatwootState::ListReportingEvents(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  std::vector<const ReportingEvent*> events;
  for (const auto& e : c.events) events.push_back(&e);
  std::stable_sort(events.begin(), events.end(),
                   [](const ReportingEvent* x, const ReportingEvent* y) { return x->end < y->end; });
  Json out = Json::array();  // a bare array, as the spec says
  for (const ReportingEvent* e : events) out.push_back(RenderReportingEvent(a, c, *e));
  return Ok(out);
}

// ---------------------------------------------------------------------------------------------
// Messages.

ApiResult ChatwootState::ListMessages(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  Json payload = Json::array();
  for (const Message& m : c.messages) payload.push_back(RenderMessage(a, c, m));
  Json contact = Json{{"payload", Json::array()}};
  if (auto it = a.contacts.find(c.contact_id); it != a.contacts.end()) {
    contact["payload"].push_back(RenderContact(a, it->second));
  }
  Json assignee = nullptr;
  if (c.assignee_id.has_value()) {
    if (auto it = a.agents.find(*c.assignee_id); it != a.agents.end()) {
      assignee = RenderAgent(a, it->second);
    }
  }
  return Ok(Json{{"meta",
                  {{"labels", LabelsJson(c.labels)},
                   {"additional_attributes", c.additional_attributes},
                   {"contact", contact},
                   {"assignee", assignee},
                   {"agent_last_seen_at", IsoTime(c.last_activity_at)},
                   {"assignee_last_seen_at", IsoTime(c.last_activity_at)}}},
                 {"payload", payload}});
}

ApiResult ChatwootState::CreateMessage(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> content, message_type, content_type;
  std::optional<bool> is_private;
  std::optional<Json> content_attributes, template_params;
  std::optional<int64_t> campaign_id;
  CW_TRY(GetString(r.body, "content", &content));
  CW_TRY(GetString(r.body, "message_type", &message_type));
  CW_TRY(GetString(r.body, "content_type", &content_type));
  CW_TRY(GetBool(r.body, "private", &is_private));
  CW_TRY(GetObject(r.body, "content_attributes", &content_attributes));
  CW_TRY(GetInt(r.body, "campaign_id", &campaign_id));
  CW_TRY(ParseTemplateParams(r.body, &template_params));
  // A message may be attachments only (multipart create).
  if ((!content.has_value() || content->empty()) && r.attachments.empty()) {
    return CwError(422, "content is required", "content", "missing");
  }
  if (message_type.has_value() && *message_type != "outgoing" && *message_type != "incoming") {
    return CwError(422, absl::StrCat("Invalid message_type '", *message_type,
                                     "': expected outgoing or incoming"),
                   "message_type", "invalid");
  }
  static const std::set<std::string> kContentTypes = {"text", "input_email", "cards",
                                                      "input_select", "form", "article"};
  if (content_type.has_value() && !kContentTypes.count(*content_type)) {
    return CwError(422, absl::StrCat("Invalid content_type '", *content_type, "'"),
                   "content_type", "invalid");
  }
  if (template_params.has_value()) {
    auto inbox = a.inboxes.find(c.inbox_id);
    if (inbox == a.inboxes.end() || inbox->second.channel_type != "Channel::Whatsapp") {
      return CwError(422, "Templates can only be sent to WhatsApp conversations",
                     "template_params", "unsupported");
    }
  }
  const bool incoming = message_type == std::optional<std::string>("incoming");
  const int64_t now = Now();
  Message m;
  m.id = a.next_message_id++;
  m.content = content.value_or("");
  m.attachments = r.attachments;
  m.message_type = incoming ? 0 : (template_params.has_value() ? 3 : 1);
  m.is_private = is_private.value_or(false);
  m.content_type = content_type.value_or("text");
  if (content_attributes.has_value()) m.content_attributes = *content_attributes;
  if (template_params.has_value()) m.additional_attributes["template_params"] = *template_params;
  if (campaign_id.has_value()) m.additional_attributes["campaign_id"] = *campaign_id;
  m.sender_type = incoming ? "contact" : "agent";
  m.sender_id = incoming ? c.contact_id : kTokenUser;
  m.created_at = m.updated_at = now;
  c.last_activity_at = now;
  c.updated_at = NowFloat();
  if (incoming) {
    if (c.waiting_since == 0) c.waiting_since = now;
    // A reply from the contact reopens a resolved or snoozed conversation.
    if (c.status == "resolved" || c.status == "snoozed") SetStatusLocked(a, c, "open", 0);
    if (auto it = a.contacts.find(c.contact_id); it != a.contacts.end()) {
      it->second.last_activity_at = now;
    }
  } else if (!m.is_private) {
    if (c.first_reply_created_at == 0) {
      c.first_reply_created_at = now;
      c.events.push_back({a.next_event_id++, "first_response",
                          static_cast<double>(now - c.created_at), c.created_at, now, kTokenUser});
    } else if (c.waiting_since != 0) {
      c.events.push_back({a.next_event_id++, "reply_time",
                          static_cast<double>(now - c.waiting_since), c.waiting_since, now,
                          kTokenUser});
    }
    c.waiting_since = 0;
  }
  c.messages.push_back(std::move(m));
  return Ok(RenderMessage(a, c, c.messages.back()));
}

ApiResult ChatwootState::DeleteMessage(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  for (Message& m : c.messages) {
    if (m.id != r.ids[1]) continue;
    // Chatwoot keeps the record and blanks it.
    m.content = "This message was deleted";
    m.content_type = "text";
    m.content_attributes = Json{{"deleted", true}};
    m.updated_at = Now();
    return NoContent();
  }
  return NotFound("Message");
}

ApiResult ChatwootState::UpdateMessage(const CwRequest& r) {
  CW_ACCOUNT(r);
  CW_CONVERSATION(a, r);
  CW_TRY(RequireObject(r));
  std::optional<std::string> content;
  std::optional<Json> content_attributes;
  CW_TRY(GetString(r.body, "content", &content));
  CW_TRY(GetObject(r.body, "content_attributes", &content_attributes));
  if (!content.has_value() && !content_attributes.has_value()) {
    return CwError(422, "content or content_attributes is required", "content", "missing");
  }
  for (Message& m : c.messages) {
    if (m.id != r.ids[1]) continue;
    if (content.has_value()) m.content = *content;
    if (content_attributes.has_value()) {
      for (auto it = content_attributes->begin(); it != content_attributes->end(); ++it) {
        m.content_attributes[it.key()] = it.value();
      }
    }
    m.updated_at = Now();
    return Ok(RenderMessage(a, c, m));
  }
  return NotFound("Message");
}

ApiResult ChatwootState::ListInboxes(const CwRequest& r) {
  CW_ACCOUNT(r);
  Json payload = Json::array();
  for (const auto& [id, inbox] : a.inboxes) payload.push_back(RenderInbox(inbox));
  return Ok(Json{{"payload", payload}});
}

ApiResult ChatwootState::ListAgents(const CwRequest& r) {
  CW_ACCOUNT(r);
  Json out = Json::array();
  for (const auto& [id, agent] : a.agents) out.push_back(RenderAgent(a, agent));
  return Ok(out);
}

#undef CW_ACCOUNT
#undef CW_TRY
#undef CW_GROUP
#undef CW_CONVERSATION

}  // namespace chatwoot
}  // namespace sandbox
