#include "sandbox/respondio_state.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sandbox {
namespace respondio {

namespace {

// Seed timestamps are fixed so that responses are reproducible.
constexpr int64_t kSeedCreated = 1700000000;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

Json OptString(const std::optional<std::string>& s) {
  return s.has_value() ? Json(*s) : Json(nullptr);
}

Json OptInt(const std::optional<int64_t>& v) {
  return v.has_value() ? Json(*v) : Json(nullptr);
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Validates a custom field value against its definition. Returns an error
// message or "".
std::string CheckCustomFieldValue(const std::string& name,
                                  const std::string& type,
                                  const std::vector<std::string>& options,
                                  const std::string& value) {
  if (type == "number") {
    const char* begin = value.c_str();
    char* end = nullptr;
    double d = std::strtod(begin, &end);
    if (value.empty() || end != begin + value.size() || !std::isfinite(d) ||
        std::isspace(static_cast<unsigned char>(value[0]))) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not a number");
    }
  } else if (type == "date") {
    bool ok = value.size() >= 10 && IsDigits(value.substr(0, 4)) &&
              value[4] == '-' && IsDigits(value.substr(5, 2)) &&
              value[7] == '-' && IsDigits(value.substr(8, 2)) &&
              (value.size() == 10 || value[10] == 'T');
    if (!ok) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not a date (YYYY-MM-DD)");
    }
  } else if (type == "list") {
    if (std::find(options.begin(), options.end(), value) == options.end()) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not one of its options [",
                          absl::StrJoin(options, ", "), "]");
    }
  } else if (type == "checkbox") {
    if (value != "true" && value != "false") {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' must be \"true\" or \"false\"");
    }
  } else if (type == "email") {
    if (!IsValidEmail(value)) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not an email address");
    }
  } else if (type == "time") {
    bool ok = (value.size() == 5 || value.size() == 8) &&
              IsDigits(value.substr(0, 2)) && value[2] == ':' &&
              IsDigits(value.substr(3, 2)) &&
              (value.size() == 5 ||
               (value[5] == ':' && IsDigits(value.substr(6, 2))));
    if (!ok) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not a time (HH:MM[:SS])");
    }
  } else if (type == "url") {
    if (!StartsWith(value, "http://") && !StartsWith(value, "https://")) {
      return absl::StrCat("customFields: value '", value, "' of field '", name,
                          "' is not an http(s) URL");
    }
  }
  return "";
}

bool ContainsIgnoreCase(const std::optional<std::string>& hay,
                        const std::string& needle_lower) {
  return hay.has_value() &&
         AsciiLower(*hay).find(needle_lower) != std::string::npos;
}

}  // namespace

std::string Identifier::ToString() const {
  switch (kind) {
    case Kind::kId:
      return absl::StrCat("id:", id);
    case Kind::kEmail:
      return absl::StrCat("email:", value);
    case Kind::kPhone:
      return absl::StrCat("phone:", value);
  }
  return "";
}

bool IsValidEmail(std::string_view s) {
  if (s.size() < 3 || s.size() > 320) return false;
  size_t at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= s.size()) {
    return false;
  }
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        static_cast<unsigned char>(c) < 0x20) {
      return false;
    }
  }
  return s.substr(at + 1).find('@') == std::string_view::npos;
}

bool IsValidPhone(std::string_view s) {
  return s.size() >= 2 && s.size() <= 16 && s[0] == '+' &&
         IsDigits(s.substr(1));
}

bool ParseIdentifier(std::string_view s, Identifier* out, std::string* error) {
  if (StartsWith(s, "id:")) {
    std::string_view digits = s.substr(3);
    int64_t v = 0;
    if (!IsDigits(digits) || !ParseInt64(digits, &v) || v <= 0) {
      *error = absl::StrCat("invalid identifier '", std::string(s),
                            "': id must be a positive integer");
      return false;
    }
    out->kind = Identifier::Kind::kId;
    out->id = v;
    return true;
  }
  if (StartsWith(s, "email:")) {
    std::string_view email = s.substr(6);
    if (!IsValidEmail(email)) {
      *error = absl::StrCat("invalid identifier '", std::string(s),
                            "': not a valid email address");
      return false;
    }
    out->kind = Identifier::Kind::kEmail;
    out->value = std::string(email);
    return true;
  }
  if (StartsWith(s, "phone:")) {
    std::string_view phone = s.substr(6);
    if (!IsValidPhone(phone)) {
      *error = absl::StrCat(
          "invalid identifier '", std::string(s),
          "': phone must be in E.164 format, '+' followed by digits");
      return false;
    }
    out->kind = Identifier::Kind::kPhone;
    out->value = std::string(phone);
    return true;
  }
  *error = absl::StrCat("invalid identifier '", std::string(s),
                        "': expected id:<id>, email:<email> or phone:<phone>");
  return false;
}

RespondioState::RespondioState(Dialect dialect) : dialect_(dialect) {
  absl::MutexLock lock(&mu_);
  SeedLocked();
}

void RespondioState::Reset() {
  absl::MutexLock lock(&mu_);
  SeedLocked();
}

void RespondioState::SeedLocked() {
  contacts_.clear();
  messages_.clear();
  comments_.clear();
  tags_.clear();
  custom_fields_.clear();
  channels_.clear();
  users_.clear();
  closing_notes_.clear();
  templates_.clear();

  users_[1] = User{1, "Alex", "Agent", "agent@example.com", "agent"};
  users_[2] = User{2, "Morgan", "Admin", "admin@example.com", "owner"};
  users_[3] = User{3, "Sam", "Manager", "manager@example.com", "manager"};

  channels_[123] = Channel{
      123, "WhatsApp", "whatsapp",
      Json{{"phoneNumber", "+60100000000"},
           {"wabaId", "100000000000001"},
           {"phoneNumberId", "200000000000001"}}};
  channels_[124] = Channel{124, "Messenger", "messenger",
                           Json{{"pageId", "300000000000001"},
                                {"pageName", "Sandbox Page"}}};
  channels_[125] = Channel{125, "Telegram", "telegram",
                           Json{{"botUsername", "sandbox_bot"}}};

  closing_notes_[1] = ClosingNote{1, "Resolved", "The issue was resolved."};
  closing_notes_[2] = ClosingNote{2, "Spam", "Spam or irrelevant."};
  closing_notes_[3] =
      ClosingNote{3, "No response", "The contact stopped responding."};

  // WhatsApp templates of channel 123 (the only WhatsApp channel).
  templates_[1] = Template{
      1, 123, "order_update", "en", "UTILITY", "APPROVED",
      Json::array({Json{{"type", "BODY"},
                        {"text", "Your order {{1}} has shipped."}}})};
  templates_[2] = Template{
      2, 123, "welcome", "pt_BR", "MARKETING", "APPROVED",
      Json::array({Json{{"type", "BODY"}, {"text", "Bem-vindo!"}}})};

  // Names differ from the examples of respond.io's request collection (tag
  // "vip", custom field "account_tier"), which must run against the seed.
  tags_[1] = Tag{1, "customer", "Paying customers", "#2E7D32", std::nullopt};
  tags_[2] = Tag{2, "newsletter", std::nullopt, std::nullopt, std::nullopt};
  next_tag_id_ = 3;

  custom_fields_[1] =
      CustomField{1, "tier", "list", {"free", "pro"}, "tier", std::nullopt};
  custom_fields_[2] =
      CustomField{2, "company", "text", {}, "company", "Employer"};
  next_custom_field_id_ = 3;

  Contact ada;
  ada.id = 12345;
  ada.first_name = "Ada";
  ada.last_name = "Lovelace";
  // Not the collection's example contact (ada@example.com, +60123456789).
  ada.email = "ada.lovelace@example.com";
  ada.phone = "+60123450001";
  ada.language = "en";
  ada.country_code = "MY";
  ada.created = kSeedCreated;
  ada.tags = {"customer"};
  ada.custom_fields = {{"tier", "pro"}};
  ada.channel_ids = {123};
  ada.conversation_status = "open";
  ada.opened = kSeedCreated;
  contacts_[ada.id] = ada;

  Contact charles;
  charles.id = 67890;
  charles.first_name = "Charles";
  charles.last_name = "Babbage";
  charles.email = "charles@example.com";
  charles.phone = "+60198765432";
  charles.language = "en";
  charles.country_code = "MY";
  charles.created = kSeedCreated + 100;
  charles.channel_ids = {123};
  charles.conversation_status = "open";
  charles.opened = kSeedCreated + 100;
  contacts_[charles.id] = charles;

  next_contact_id_ = 1000;
  next_message_id_ = 1;
  next_comment_id_ = 1;
}

// ---------------------------------------------------------------------------
// Rendering.

// The assigned user: live {id, firstName, lastName, email}, openapi the plain
// email; null when unassigned.
Json RespondioState::UserRefLocked(std::optional<int64_t> user_id) const {
  if (!user_id.has_value()) return nullptr;
  const User* u = FindUserLocked(*user_id);
  if (u == nullptr) return nullptr;
  if (dialect_ == Dialect::kOpenapi) return u->email;
  return Json{{"id", u->id},
              {"firstName", u->first_name},
              {"lastName", u->last_name},
              {"email", u->email}};
}

Json RespondioState::ContactJsonLocked(const Contact& c) const {
  Json custom = Json::array();
  for (const auto& [name, value] : c.custom_fields) {
    custom.push_back(Json{{"name", name}, {"value", value}});
  }
  Json contact = {{"id", c.id},
                  {"firstName", OptString(c.first_name)},
                  {"lastName", OptString(c.last_name)},
                  {"email", OptString(c.email)},
                  {"phone", OptString(c.phone)},
                  {"language", OptString(c.language)},
                  {"profilePic", OptString(c.profile_pic)},
                  {"countryCode", OptString(c.country_code)},
                  {"assignee", UserRefLocked(c.assignee_user_id)},
                  {"tags", c.tags}};
  // The dialects name three fields differently: the live service's lifecycle/created_at/custom_fields
  // against the OpenAPI document's status/created/customFields.
  const bool live = dialect_ == Dialect::kLive;
  contact[live ? "lifecycle" : "status"] = OptString(c.lifecycle);
  contact[live ? "created_at" : "created"] = c.created;
  contact[live ? "custom_fields" : "customFields"] = std::move(custom);
  return contact;
}

Json RespondioState::ConversationJsonLocked(const Contact& c) const {
  Json assignee = UserRefLocked(c.assignee_user_id);
  return Json{{"contactId", c.id},
              {"status", c.conversation_status},
              {"assignee", assignee},
              {"opened", OptInt(c.opened)},
              {"closed", OptInt(c.closed)},
              {"closingNoteId", OptInt(c.closing_note_id)},
              {"category", OptString(c.category)},
              {"summary", OptString(c.summary)}};
}

Json RespondioState::MessageJson(const Message& m) {
  return Json{{"messageId", m.id},   {"contactId", m.contact_id},
              {"channelId", m.channel_id}, {"traffic", m.traffic},
              {"message", m.content}, {"timestamp", m.timestamp},
              {"status", m.status}};
}

Json RespondioState::ChannelJson(const Channel& ch) {
  return Json{{"id", ch.id},
              {"name", ch.name},
              {"source", ch.source},
              {"meta", ch.meta}};
}

Json RespondioState::UserJson(const User& u) {
  return Json{{"id", u.id},
              {"firstName", u.first_name},
              {"lastName", u.last_name},
              {"email", u.email},
              {"role", u.role}};
}

Json RespondioState::CustomFieldJson(const CustomField& f) const {
  if (dialect_ == Dialect::kLive) {
    return Json{{"id", f.id},
                {"name", f.name},
                {"slug", f.slug},
                {"description", OptString(f.description)},
                {"dataType", f.type},
                {"allowedValues", f.options}};
  }
  Json j{{"id", f.id}, {"name", f.name}, {"type", f.type}};
  if (f.type == "list") j["options"] = f.options;
  return j;
}

Json RespondioState::TagJson(const Tag& t) const {
  if (dialect_ == Dialect::kOpenapi) return Json{{"id", t.id}, {"name", t.name}};
  return Json{{"id", t.id},
              {"name", t.name},
              {"description", OptString(t.description)},
              {"colorCode", OptString(t.color_code)},
              {"emoji", OptString(t.emoji)}};
}

Json RespondioState::TemplateJson(const Template& t) {
  return Json{{"id", t.id},
              {"channelId", t.channel_id},
              {"name", t.name},
              {"languageCode", t.language_code},
              {"category", t.category},
              {"status", t.status},
              {"components", t.components}};
}

Json RespondioState::Dump() const {
  absl::ReaderMutexLock lock(&mu_);
  Json contacts = Json::array();
  for (const auto& [id, c] : contacts_) {
    Json j = ContactJsonLocked(c);
    j["channels"] = c.channel_ids;
    j["conversation"] = ConversationJsonLocked(c);
    contacts.push_back(std::move(j));
  }
  Json messages = Json::array();
  for (const auto& [id, m] : messages_) messages.push_back(MessageJson(m));
  Json comments = Json::array();
  for (const Comment& c : comments_) {
    comments.push_back(Json{{"commentId", c.id},
                            {"contactId", c.contact_id},
                            {"text", c.text},
                            {"created", c.created}});
  }
  Json tags = Json::array();
  for (const auto& [id, t] : tags_) tags.push_back(TagJson(t));
  Json fields = Json::array();
  for (const auto& [id, f] : custom_fields_) {
    fields.push_back(CustomFieldJson(f));
  }
  return Json{{"contacts", contacts},     {"messages", messages},
              {"comments", comments},     {"tags", tags},
              {"customFields", fields},
              {"nextIds",
               {{"contact", next_contact_id_},
                {"message", next_message_id_},
                {"comment", next_comment_id_},
                {"tag", next_tag_id_},
                {"customField", next_custom_field_id_}}}};
}

// ---------------------------------------------------------------------------
// Lookup helpers.

RespondioState::Contact* RespondioState::FindLocked(const Identifier& ident) {
  return const_cast<Contact*>(
      static_cast<const RespondioState*>(this)->FindLocked(ident));
}

const RespondioState::Contact* RespondioState::FindLocked(
    const Identifier& ident) const {
  switch (ident.kind) {
    case Identifier::Kind::kId: {
      auto it = contacts_.find(ident.id);
      return it == contacts_.end() ? nullptr : &it->second;
    }
    case Identifier::Kind::kEmail: {
      std::string want = AsciiLower(ident.value);
      for (const auto& [id, c] : contacts_) {
        if (c.email.has_value() && AsciiLower(*c.email) == want) return &c;
      }
      return nullptr;
    }
    case Identifier::Kind::kPhone:
      for (const auto& [id, c] : contacts_) {
        if (c.phone.has_value() && *c.phone == ident.value) return &c;
      }
      return nullptr;
  }
  return nullptr;
}

ApiResult RespondioState::NotFound(const Identifier& ident) const {
  return Error(404, absl::StrCat("Contact not found: ", ident.ToString()));
}

const RespondioState::Channel* RespondioState::FindChannelLocked(
    int64_t id) const {
  auto it = channels_.find(id);
  return it == channels_.end() ? nullptr : &it->second;
}

const RespondioState::User* RespondioState::FindUserLocked(int64_t id) const {
  auto it = users_.find(id);
  return it == users_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// Contacts.

std::optional<ApiResult> RespondioState::ValidatePatchLocked(
    const ContactPatch& patch, int64_t self_id) const {
  if (patch.email.present && patch.email.value.has_value()) {
    std::string want = AsciiLower(*patch.email.value);
    for (const auto& [id, c] : contacts_) {
      if (id != self_id && c.email.has_value() &&
          AsciiLower(*c.email) == want) {
        return Error(400, absl::StrCat("email: a contact with email ",
                                       *patch.email.value,
                                       " already exists (id:", id, ")"));
      }
    }
  }
  if (patch.phone.present && patch.phone.value.has_value()) {
    for (const auto& [id, c] : contacts_) {
      if (id != self_id && c.phone.has_value() &&
          *c.phone == *patch.phone.value) {
        return Error(400, absl::StrCat("phone: a contact with phone ",
                                       *patch.phone.value,
                                       " already exists (id:", id, ")"));
      }
    }
  }
  for (const CustomFieldUpdate& u : patch.custom_fields) {
    const CustomField* def = nullptr;
    for (const auto& [id, f] : custom_fields_) {
      if (f.name == u.name) def = &f;
    }
    if (def == nullptr) {
      return Error(400, absl::StrCat("customFields: unknown custom field '",
                                     u.name, "'"));
    }
    if (u.value.has_value()) {
      std::string err =
          CheckCustomFieldValue(def->name, def->type, def->options, *u.value);
      if (!err.empty()) return Error(400, err);
    }
  }
  return std::nullopt;
}

void RespondioState::ApplyPatchLocked(const ContactPatch& patch, Contact* c) {
  auto apply = [](const FieldUpdate& u, std::optional<std::string>* field) {
    if (u.present) *field = u.value;
  };
  apply(patch.first_name, &c->first_name);
  apply(patch.last_name, &c->last_name);
  apply(patch.email, &c->email);
  apply(patch.phone, &c->phone);
  apply(patch.language, &c->language);
  apply(patch.profile_pic, &c->profile_pic);
  apply(patch.country_code, &c->country_code);
  for (const CustomFieldUpdate& u : patch.custom_fields) {
    auto it = std::find_if(
        c->custom_fields.begin(), c->custom_fields.end(),
        [&](const std::pair<std::string, std::string>& p) {
          return p.first == u.name;
        });
    if (!u.value.has_value()) {
      if (it != c->custom_fields.end()) c->custom_fields.erase(it);
    } else if (it != c->custom_fields.end()) {
      it->second = *u.value;
    } else {
      c->custom_fields.emplace_back(u.name, *u.value);
    }
  }
}

ApiResult RespondioState::CreateLocked(const ContactPatch& patch) {
  auto has = [](const FieldUpdate& u) {
    return u.present && u.value.has_value() && !u.value->empty();
  };
  if (!has(patch.first_name) && !has(patch.last_name) && !has(patch.email) &&
      !has(patch.phone)) {
    return Error(400,
                 "at least one of firstName, lastName, email or phone is "
                 "required");
  }
  if (auto err = ValidatePatchLocked(patch, /*self_id=*/0)) return *err;
  while (contacts_.count(next_contact_id_) > 0) ++next_contact_id_;
  Contact c;
  c.id = next_contact_id_++;
  c.created = UnixSecondsNow();
  ApplyPatchLocked(patch, &c);
  auto [it, inserted] = contacts_.emplace(c.id, std::move(c));
  return Ok(ContactJsonLocked(it->second));
}

ApiResult RespondioState::CreateContact(const ContactPatch& patch) {
  absl::MutexLock lock(&mu_);
  return CreateLocked(patch);
}

ApiResult RespondioState::CreateOrUpdateContact(const Identifier& ident,
                                                const ContactPatch& patch) {
  absl::MutexLock lock(&mu_);
  if (Contact* c = FindLocked(ident)) {
    if (auto err = ValidatePatchLocked(patch, c->id)) return *err;
    ApplyPatchLocked(patch, c);
    return Ok(ContactJsonLocked(*c));
  }
  if (ident.kind == Identifier::Kind::kId) {
    return Error(404, absl::StrCat("Contact not found: ", ident.ToString(),
                                   " (contacts cannot be created with a "
                                   "chosen id; use email: or phone:)"));
  }
  ContactPatch create = patch;
  FieldUpdate& f =
      ident.kind == Identifier::Kind::kEmail ? create.email : create.phone;
  if (!f.present || !f.value.has_value()) {
    f.present = true;
    f.value = ident.value;
  }
  return CreateLocked(create);
}

ApiResult RespondioState::GetContact(const Identifier& ident) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  return Ok(ContactJsonLocked(*c));
}

ApiResult RespondioState::GetConversation(const Identifier& ident) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  return Ok(ConversationJsonLocked(*c));
}

ApiResult RespondioState::UpdateContact(const Identifier& ident,
                                        const ContactPatch& patch) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  if (auto err = ValidatePatchLocked(patch, c->id)) return *err;
  ApplyPatchLocked(patch, c);
  return Ok(ContactJsonLocked(*c));
}

ApiResult RespondioState::DeleteContact(const Identifier& ident) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  int64_t id = c->id;
  contacts_.erase(id);
  for (auto it = messages_.begin(); it != messages_.end();) {
    it = it->second.contact_id == id ? messages_.erase(it) : std::next(it);
  }
  comments_.erase(std::remove_if(comments_.begin(), comments_.end(),
                                 [id](const Comment& cm) {
                                   return cm.contact_id == id;
                                 }),
                  comments_.end());
  return Ok(Json{{"contactId", id}});
}

std::vector<std::pair<int64_t, Json>> RespondioState::ListContacts(
    const std::string& search) const {
  absl::ReaderMutexLock lock(&mu_);
  std::string needle = AsciiLower(search);
  std::vector<std::pair<int64_t, Json>> out;
  for (const auto& [id, c] : contacts_) {
    if (!needle.empty()) {
      std::optional<std::string> full_name;
      if (c.first_name.has_value() || c.last_name.has_value()) {
        full_name = absl::StrCat(c.first_name.value_or(""), " ",
                                 c.last_name.value_or(""));
      }
      if (!ContainsIgnoreCase(full_name, needle) &&
          !ContainsIgnoreCase(c.email, needle) &&
          !ContainsIgnoreCase(c.phone, needle)) {
        continue;
      }
    }
    out.emplace_back(id, ContactJsonLocked(c));
  }
  return out;
}

ApiResult RespondioState::MergeContacts(int64_t primary_id,
                                        int64_t secondary_id) {
  absl::MutexLock lock(&mu_);
  if (primary_id == secondary_id) {
    return Error(400, "primaryContactId and secondaryContactId must differ");
  }
  auto p_it = contacts_.find(primary_id);
  if (p_it == contacts_.end()) {
    return Error(404, absl::StrCat("Contact not found: id:", primary_id));
  }
  auto s_it = contacts_.find(secondary_id);
  if (s_it == contacts_.end()) {
    return Error(404, absl::StrCat("Contact not found: id:", secondary_id));
  }
  Contact& p = p_it->second;
  Contact s = std::move(s_it->second);
  contacts_.erase(s_it);

  auto fill = [](std::optional<std::string>* dst,
                 const std::optional<std::string>& src) {
    if (!dst->has_value() && src.has_value()) *dst = src;
  };
  fill(&p.first_name, s.first_name);
  fill(&p.last_name, s.last_name);
  fill(&p.email, s.email);
  fill(&p.phone, s.phone);
  fill(&p.language, s.language);
  fill(&p.profile_pic, s.profile_pic);
  fill(&p.country_code, s.country_code);
  fill(&p.lifecycle, s.lifecycle);
  for (const std::string& t : s.tags) {
    if (std::find(p.tags.begin(), p.tags.end(), t) == p.tags.end()) {
      p.tags.push_back(t);
    }
  }
  for (const auto& [name, value] : s.custom_fields) {
    bool present = std::any_of(
        p.custom_fields.begin(), p.custom_fields.end(),
        // C++17 lambdas cannot capture structured bindings (clang rejects it): capture a copy.
        [&key = name](const std::pair<std::string, std::string>& f) {
          return f.first == key;
        });
    if (!present) p.custom_fields.emplace_back(name, value);
  }
  for (int64_t ch : s.channel_ids) {
    if (std::find(p.channel_ids.begin(), p.channel_ids.end(), ch) ==
        p.channel_ids.end()) {
      p.channel_ids.insert(p.channel_ids.begin(), ch);
    }
  }
  if (!p.assignee_user_id.has_value()) p.assignee_user_id = s.assignee_user_id;
  for (auto& [id, m] : messages_) {
    if (m.contact_id == secondary_id) m.contact_id = primary_id;
  }
  for (Comment& c : comments_) {
    if (c.contact_id == secondary_id) c.contact_id = primary_id;
  }
  return Ok(ContactJsonLocked(p));
}

ApiResult RespondioState::UpdateLifecycle(
    const Identifier& ident, const std::optional<std::string>& name) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  c->lifecycle = name;
  return Ok(ContactJsonLocked(*c));
}

// ---------------------------------------------------------------------------
// Contact tags.

ApiResult RespondioState::AddTags(const Identifier& ident,
                                  const std::vector<std::string>& tags) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  for (const std::string& t : tags) {
    if (std::find(c->tags.begin(), c->tags.end(), t) == c->tags.end()) {
      c->tags.push_back(t);
    }
  }
  return Ok(Json{{"contactId", c->id}});
}

ApiResult RespondioState::RemoveTags(const Identifier& ident,
                                     const std::vector<std::string>& tags) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  for (const std::string& t : tags) {
    c->tags.erase(std::remove(c->tags.begin(), c->tags.end(), t),
                  c->tags.end());
  }
  return Ok(Json{{"contactId", c->id}});
}

// ---------------------------------------------------------------------------
// Contact channels.

ApiResult RespondioState::ListContactChannels(const Identifier& ident) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  std::vector<int64_t> ids = c->channel_ids;
  std::sort(ids.begin(), ids.end());
  Json out = Json::array();
  for (int64_t id : ids) {
    if (const Channel* ch = FindChannelLocked(id)) {
      out.push_back(ChannelJson(*ch));
    }
  }
  return Ok(out);
}

ApiResult RespondioState::GetContactChannel(const Identifier& ident,
                                            int64_t channel_id) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  const Channel* ch = FindChannelLocked(channel_id);
  if (ch == nullptr ||
      std::find(c->channel_ids.begin(), c->channel_ids.end(), channel_id) ==
          c->channel_ids.end()) {
    return Error(404, absl::StrCat("Channel ", channel_id,
                                   " not found for contact id:", c->id));
  }
  return Ok(ChannelJson(*ch));
}

// ---------------------------------------------------------------------------
// Messages.

ApiResult RespondioState::SendMessage(const Identifier& ident,
                                      const MessageInput& input) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  int64_t channel_id = 0;
  if (input.channel_id.has_value()) {
    channel_id = *input.channel_id;
    if (FindChannelLocked(channel_id) == nullptr) {
      return Error(404, absl::StrCat("channelId: channel ", channel_id,
                                     " not found in this workspace"));
    }
  } else {
    if (c->channel_ids.empty()) {
      return Error(400, absl::StrCat("contact id:", c->id,
                                     " has no channel yet; give channelId"));
    }
    channel_id = c->channel_ids.back();
  }
  const Channel* ch = FindChannelLocked(channel_id);
  if (input.message.value("type", "") == "whatsapp_template" &&
      ch->source != "whatsapp") {
    return Error(400, absl::StrCat("message.type: whatsapp_template needs a "
                                   "WhatsApp channel, channel ",
                                   channel_id, " is ", ch->source));
  }
  // The channel becomes the contact's most recently used one.
  c->channel_ids.erase(
      std::remove(c->channel_ids.begin(), c->channel_ids.end(), channel_id),
      c->channel_ids.end());
  c->channel_ids.push_back(channel_id);

  Message m;
  m.id = next_message_id_++;
  m.contact_id = c->id;
  m.channel_id = channel_id;
  m.traffic = "outgoing";
  m.content = input.message;
  m.timestamp = UnixSecondsNow();
  m.status = "sent";
  messages_[m.id] = m;
  return Ok(Json{{"messageId", m.id}, {"status", "queued"}});
}

ApiResult RespondioState::GetMessage(const Identifier& ident,
                                     int64_t message_id) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  auto it = messages_.find(message_id);
  if (it == messages_.end() || it->second.contact_id != c->id) {
    return Error(404, absl::StrCat("Message ", message_id,
                                   " not found for contact id:", c->id));
  }
  return Ok(MessageJson(it->second));
}

ApiResult RespondioState::ListMessages(
    const Identifier& ident,
    std::vector<std::pair<int64_t, Json>>* items) const {
  absl::ReaderMutexLock lock(&mu_);
  const Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  items->clear();
  for (const auto& [id, m] : messages_) {
    if (m.contact_id == c->id) items->emplace_back(id, MessageJson(m));
  }
  return Ok(Json::object());
}

// ---------------------------------------------------------------------------
// Conversations and comments.

ApiResult RespondioState::SetConversationStatus(
    const Identifier& ident, const ConversationStatusInput& input) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  std::optional<int64_t> note_id = input.closing_note_id;
  if (note_id.has_value() && closing_notes_.count(*note_id) == 0) {
    return Error(404,
                 absl::StrCat("closingNoteId: closing note ", *note_id,
                              " not found"));
  }
  if (input.status == "open") {
    if (c->conversation_status != "open") {
      c->conversation_status = "open";
      c->opened = UnixSecondsNow();
      c->closed.reset();
      c->closing_note_id.reset();
      c->category.reset();
      c->summary.reset();
    }
  } else {
    if (!note_id.has_value() && input.category.has_value()) {
      for (const auto& [id, n] : closing_notes_) {
        if (AsciiLower(n.category) == AsciiLower(*input.category)) note_id = id;
      }
    }
    c->conversation_status = "close";
    c->closed = UnixSecondsNow();
    c->closing_note_id = note_id;
    c->category = input.category;
    if (!c->category.has_value() && note_id.has_value()) {
      c->category = closing_notes_[*note_id].category;
    }
    c->summary = input.summary;
  }
  return Ok(ConversationJsonLocked(*c));
}

ApiResult RespondioState::AssignConversation(
    const Identifier& ident, const std::optional<std::string>& assignee) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  if (!assignee.has_value()) {
    c->assignee_user_id.reset();
    return Ok(ConversationJsonLocked(*c));
  }
  const std::string& a = *assignee;
  const User* user = nullptr;
  if (StartsWith(a, "id:")) {
    int64_t uid = 0;
    if (!IsDigits(a.substr(3)) || !ParseInt64(a.substr(3), &uid)) {
      return Error(400, absl::StrCat("assignee: invalid user identifier '", a,
                                     "'"));
    }
    user = FindUserLocked(uid);
  } else if (StartsWith(a, "email:")) {
    std::string want = AsciiLower(a.substr(6));
    if (!IsValidEmail(want)) {
      return Error(400, absl::StrCat("assignee: invalid user identifier '", a,
                                     "'"));
    }
    for (const auto& [id, u] : users_) {
      if (AsciiLower(u.email) == want) user = &u;
    }
  } else {
    return Error(400, absl::StrCat("assignee: expected email:<email>, "
                                   "id:<userId> or null, got '",
                                   a, "'"));
  }
  if (user == nullptr) {
    return Error(404, absl::StrCat("assignee: user ", a,
                                   " not found in this workspace"));
  }
  c->assignee_user_id = user->id;
  return Ok(ConversationJsonLocked(*c));
}

ApiResult RespondioState::CreateComment(const Identifier& ident,
                                        const std::string& text) {
  absl::MutexLock lock(&mu_);
  Contact* c = FindLocked(ident);
  if (c == nullptr) return NotFound(ident);
  Comment cm{next_comment_id_++, c->id, text, UnixSecondsNow()};
  comments_.push_back(cm);
  return Ok(Json{{"commentId", cm.id}});
}

// ---------------------------------------------------------------------------
// Workspace tags.

ApiResult RespondioState::ListTags() const {
  absl::ReaderMutexLock lock(&mu_);
  Json out = Json::array();
  for (const auto& [id, t] : tags_) out.push_back(TagJson(t));
  return Ok(out);
}

ApiResult RespondioState::CreateTag(const TagInput& input) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, t] : tags_) {
    if (t.name == input.name) {
      return Error(400, absl::StrCat("name: tag '", input.name,
                                     "' already exists (id ", id, ")"));
    }
  }
  Tag t{next_tag_id_++, input.name, input.description, input.color_code,
        input.emoji};
  tags_[t.id] = t;
  return Ok(TagJson(t));
}

ApiResult RespondioState::UpdateTag(int64_t tag_id, const TagInput& input) {
  absl::MutexLock lock(&mu_);
  auto it = tags_.find(tag_id);
  if (it == tags_.end()) {
    return Error(404, absl::StrCat("Tag not found: ", tag_id));
  }
  return RenameTagLocked(&it->second, input);
}

ApiResult RespondioState::UpdateTagByName(const std::string& current_name,
                                          const TagInput& input) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, t] : tags_) {
    if (t.name == current_name) return RenameTagLocked(&t, input);
  }
  return Error(404, absl::StrCat("currentName: tag '", current_name,
                                 "' not found"));
}

ApiResult RespondioState::RenameTagLocked(Tag* tag, const TagInput& input) {
  const std::string& name = input.name;
  for (const auto& [id, t] : tags_) {
    if (id != tag->id && t.name == name) {
      return Error(400, absl::StrCat("name: tag '", name,
                                     "' already exists (id ", id, ")"));
    }
  }
  std::string old = tag->name;
  tag->name = name;
  // Attributes the request does not carry are kept.
  if (input.description.has_value()) tag->description = input.description;
  if (input.color_code.has_value()) tag->color_code = input.color_code;
  if (input.emoji.has_value()) tag->emoji = input.emoji;
  // Renaming a workspace tag renames it on every contact.
  for (auto& [id, c] : contacts_) {
    bool has_new =
        std::find(c.tags.begin(), c.tags.end(), name) != c.tags.end();
    for (auto t = c.tags.begin(); t != c.tags.end();) {
      if (*t == old && old != name) {
        if (has_new) {
          t = c.tags.erase(t);
          continue;
        }
        *t = name;
        has_new = true;
      }
      ++t;
    }
  }
  return Ok(TagJson(*tag));
}

ApiResult RespondioState::DeleteTag(int64_t tag_id) {
  absl::MutexLock lock(&mu_);
  if (tags_.count(tag_id) == 0) {
    return Error(404, absl::StrCat("Tag not found: ", tag_id));
  }
  return DeleteTagLocked(tag_id);
}

ApiResult RespondioState::DeleteTagByName(const std::string& name) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, t] : tags_) {
    if (t.name == name) return DeleteTagLocked(id);
  }
  return Error(404, absl::StrCat("name: tag '", name, "' not found"));
}

ApiResult RespondioState::DeleteTagLocked(int64_t tag_id) {
  auto it = tags_.find(tag_id);
  std::string name = it->second.name;
  tags_.erase(it);
  // Deleting a workspace tag removes it from every contact.
  for (auto& [id, c] : contacts_) {
    c.tags.erase(std::remove(c.tags.begin(), c.tags.end(), name),
                 c.tags.end());
  }
  return Ok(Json{{"tagId", tag_id}});
}

// ---------------------------------------------------------------------------
// Custom fields.

ApiResult RespondioState::ListCustomFields() const {
  absl::ReaderMutexLock lock(&mu_);
  Json out = Json::array();
  for (const auto& [id, f] : custom_fields_) out.push_back(CustomFieldJson(f));
  return Ok(out);
}

ApiResult RespondioState::CreateCustomField(const CustomFieldInput& input) {
  absl::MutexLock lock(&mu_);
  std::string slug = input.slug.value_or("");
  if (slug.empty()) {
    for (char ch : AsciiLower(input.name)) {
      slug.push_back(std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_');
    }
  }
  for (const auto& [id, f] : custom_fields_) {
    if (f.name == input.name) {
      return Error(400, absl::StrCat("name: custom field '", input.name,
                                     "' already exists (id ", id, ")"));
    }
    if (f.slug == slug) {
      return Error(400, absl::StrCat("slug: custom field slug '", slug,
                                     "' already exists (id ", id, ")"));
    }
  }
  CustomField f{next_custom_field_id_++, input.name, input.type,
                input.options, slug, input.description};
  custom_fields_[f.id] = f;
  return Ok(CustomFieldJson(f));
}

ApiResult RespondioState::GetCustomField(int64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = custom_fields_.find(id);
  if (it == custom_fields_.end()) {
    return Error(404, absl::StrCat("Custom field not found: ", id));
  }
  return Ok(CustomFieldJson(it->second));
}

// ---------------------------------------------------------------------------
// Space.

std::vector<std::pair<int64_t, Json>> RespondioState::ListSpaceChannels()
    const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<int64_t, Json>> out;
  for (const auto& [id, ch] : channels_) out.emplace_back(id, ChannelJson(ch));
  return out;
}

std::vector<std::pair<int64_t, Json>> RespondioState::ListClosingNotes()
    const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<int64_t, Json>> out;
  for (const auto& [id, n] : closing_notes_) {
    out.emplace_back(id, Json{{"id", n.id},
                              {"title", n.category},
                              {"category", n.category},
                              {"description", n.description}});
  }
  return out;
}

std::vector<std::pair<int64_t, Json>> RespondioState::ListSpaceUsers() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<int64_t, Json>> out;
  for (const auto& [id, u] : users_) out.emplace_back(id, UserJson(u));
  return out;
}

ApiResult RespondioState::ListTemplates(int64_t channel_id) const {
  absl::ReaderMutexLock lock(&mu_);
  if (FindChannelLocked(channel_id) == nullptr) {
    return Error(404, absl::StrCat("Channel not found: ", channel_id));
  }
  Json out = Json::array();
  for (const auto& [id, t] : templates_) {
    if (t.channel_id == channel_id) out.push_back(TemplateJson(t));
  }
  return Ok(out);
}

ApiResult RespondioState::GetTemplate(int64_t template_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = templates_.find(template_id);
  if (it == templates_.end()) {
    return Error(404, absl::StrCat("Template not found: ", template_id));
  }
  return Ok(Json{{"data", TemplateJson(it->second)}});
}

ApiResult RespondioState::GetSpaceUser(int64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  const User* u = FindUserLocked(id);
  if (u == nullptr) return Error(404, absl::StrCat("User not found: ", id));
  return Ok(UserJson(*u));
}

}  // namespace respondio
}  // namespace sandbox
