// In-memory data model of the respond.io emulator. Thread-safe: every public
// method takes the state mutex. Inputs are already syntactically validated by
// respondio_routes.cc; this class applies the business rules (existence,
// uniqueness, references) and renders respond.io-shaped JSON.
#ifndef SANDBOX_RESPONDIO_STATE_H_
#define SANDBOX_RESPONDIO_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "sandbox/http_util.h"

namespace sandbox {
namespace respondio {

// A contact identifier: id:<digits>, email:<address> or phone:+<digits>.
struct Identifier {
  enum class Kind { kId, kEmail, kPhone };
  Kind kind = Kind::kId;
  int64_t id = 0;      // kId
  std::string value;   // kEmail / kPhone (the part after the prefix)
  std::string ToString() const;
};

// Parses a decoded identifier. On failure returns false and sets *error.
bool ParseIdentifier(std::string_view s, Identifier* out, std::string* error);

// Syntactic checks shared by routes and state.
bool IsValidEmail(std::string_view s);
bool IsValidPhone(std::string_view s);  // "+" then 1..15 digits

// One optional scalar field of a create/update body. present && !value means
// an explicit JSON null (clears the field on update).
struct FieldUpdate {
  bool present = false;
  std::optional<std::string> value;
};

struct CustomFieldUpdate {
  std::string name;
  std::optional<std::string> value;  // nullopt clears
};

struct ContactPatch {
  FieldUpdate first_name;
  FieldUpdate last_name;
  FieldUpdate email;
  FieldUpdate phone;
  FieldUpdate language;
  FieldUpdate profile_pic;
  FieldUpdate country_code;
  std::vector<CustomFieldUpdate> custom_fields;
};

struct MessageInput {
  std::optional<int64_t> channel_id;
  Json message;  // validated MessageContent
};

// A workspace tag's attributes (description, colour and emoji exist in the
// live dialect only; the openapi dialect's Tag is {id, name}).
struct TagInput {
  std::string name;
  std::optional<std::string> description;
  std::optional<std::string> color_code;
  std::optional<std::string> emoji;
};

struct CustomFieldInput {
  std::string name;
  std::string type;  // the live dialect calls it dataType
  std::vector<std::string> options;  // live: allowedValues
  std::optional<std::string> slug;   // live only; derived from name if unset
  std::optional<std::string> description;
};

struct ConversationStatusInput {
  std::string status;  // "open" | "close"
  std::optional<int64_t> closing_note_id;
  std::optional<std::string> category;
  std::optional<std::string> summary;
};

class RespondioState {
 public:
  // `dialect` decides how records are rendered (field names, assignee as a
  // user object or an email, tag and custom-field attributes).
  explicit RespondioState(Dialect dialect = Dialect::kLive);
  Dialect dialect() const { return dialect_; }

  // Restores the seed data and resets all counters.
  void Reset();
  // Whole state, for GET /__admin/state.
  Json Dump() const;

  // Contacts.
  ApiResult CreateContact(const ContactPatch& patch);
  ApiResult CreateOrUpdateContact(const Identifier& ident,
                                  const ContactPatch& patch);
  ApiResult GetContact(const Identifier& ident) const;
  // The contact's conversation as the conversation endpoints answer it (for webhooks).
  ApiResult GetConversation(const Identifier& ident) const;
  ApiResult UpdateContact(const Identifier& ident, const ContactPatch& patch);
  ApiResult DeleteContact(const Identifier& ident);
  // All contacts (optionally filtered by a case-insensitive substring of
  // name, email or phone), ordered by id.
  std::vector<std::pair<int64_t, Json>> ListContacts(
      const std::string& search) const;
  ApiResult MergeContacts(int64_t primary_id, int64_t secondary_id);
  ApiResult UpdateLifecycle(const Identifier& ident,
                            const std::optional<std::string>& name);

  // Contact tags.
  ApiResult AddTags(const Identifier& ident,
                    const std::vector<std::string>& tags);
  ApiResult RemoveTags(const Identifier& ident,
                       const std::vector<std::string>& tags);

  // Contact channels.
  ApiResult ListContactChannels(const Identifier& ident) const;
  ApiResult GetContactChannel(const Identifier& ident,
                              int64_t channel_id) const;

  // Messages.
  ApiResult SendMessage(const Identifier& ident, const MessageInput& input);
  ApiResult GetMessage(const Identifier& ident, int64_t message_id) const;
  // On success (status 200) fills *items ordered by messageId.
  ApiResult ListMessages(const Identifier& ident,
                         std::vector<std::pair<int64_t, Json>>* items) const;

  // Conversations and comments.
  ApiResult SetConversationStatus(const Identifier& ident,
                                  const ConversationStatusInput& input);
  ApiResult AssignConversation(const Identifier& ident,
                               const std::optional<std::string>& assignee);
  ApiResult CreateComment(const Identifier& ident, const std::string& text);

  // Workspace tags (a JSON array ordered by id). By id (openapi) or keyed by
  // name (live: PUT/DELETE /space/tag with currentName / name).
  ApiResult ListTags() const;
  ApiResult CreateTag(const TagInput& tag);
  ApiResult UpdateTag(int64_t tag_id, const TagInput& tag);
  ApiResult UpdateTagByName(const std::string& current_name,
                            const TagInput& tag);
  ApiResult DeleteTag(int64_t tag_id);
  ApiResult DeleteTagByName(const std::string& name);

  // Custom fields (list: a JSON array ordered by id).
  ApiResult ListCustomFields() const;
  ApiResult CreateCustomField(const CustomFieldInput& field);
  ApiResult GetCustomField(int64_t id) const;

  // WhatsApp message templates of a space channel (a JSON array ordered by
  // id; 404 for an unknown channel) and one template as {data: template}.
  ApiResult ListTemplates(int64_t channel_id) const;
  ApiResult GetTemplate(int64_t template_id) const;

  // Space.
  std::vector<std::pair<int64_t, Json>> ListSpaceChannels() const;
  std::vector<std::pair<int64_t, Json>> ListClosingNotes() const;
  std::vector<std::pair<int64_t, Json>> ListSpaceUsers() const;
  ApiResult GetSpaceUser(int64_t id) const;

 private:
  struct Contact {
    int64_t id = 0;
    std::optional<std::string> first_name;
    std::optional<std::string> last_name;
    std::optional<std::string> email;
    std::optional<std::string> phone;
    std::optional<std::string> language;
    std::optional<std::string> profile_pic;
    std::optional<std::string> country_code;
    std::optional<std::string> lifecycle;  // rendered as "status"
    int64_t created = 0;
    std::vector<std::string> tags;
    std::vector<std::pair<std::string, std::string>> custom_fields;
    std::vector<int64_t> channel_ids;  // most recently used last
    // Conversation.
    std::string conversation_status = "close";
    std::optional<int64_t> assignee_user_id;
    std::optional<int64_t> opened;
    std::optional<int64_t> closed;
    std::optional<int64_t> closing_note_id;
    std::optional<std::string> category;
    std::optional<std::string> summary;
  };
  struct Message {
    int64_t id = 0;
    int64_t contact_id = 0;
    int64_t channel_id = 0;
    std::string traffic;
    Json content;
    int64_t timestamp = 0;
    std::string status;
  };
  struct Comment {
    int64_t id = 0;
    int64_t contact_id = 0;
    std::string text;
    int64_t created = 0;
  };
  struct Tag {
    int64_t id = 0;
    std::string name;
    std::optional<std::string> description;
    std::optional<std::string> color_code;
    std::optional<std::string> emoji;
  };
  struct CustomField {
    int64_t id = 0;
    std::string name;
    std::string type;
    std::vector<std::string> options;
    std::string slug;
    std::optional<std::string> description;
  };
  struct Template {
    int64_t id = 0;
    int64_t channel_id = 0;
    std::string name;
    std::string language_code;
    std::string category;
    std::string status;
    Json components;
  };
  struct Channel {
    int64_t id = 0;
    std::string name;
    std::string source;
    Json meta;
  };
  struct User {
    int64_t id = 0;
    std::string first_name;
    std::string last_name;
    std::string email;
    std::string role;
  };
  struct ClosingNote {
    int64_t id = 0;
    std::string category;
    std::string description;
  };

  void SeedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Contact* FindLocked(const Identifier& ident)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Contact* FindLocked(const Identifier& ident) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ApiResult NotFound(const Identifier& ident) const;
  // Checks uniqueness and custom fields; returns an error result or nullopt.
  std::optional<ApiResult> ValidatePatchLocked(const ContactPatch& patch,
                                               int64_t self_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ApplyPatchLocked(const ContactPatch& patch, Contact* c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ApiResult CreateLocked(const ContactPatch& patch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Json ContactJsonLocked(const Contact& c) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Json ConversationJsonLocked(const Contact& c) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Json UserRefLocked(std::optional<int64_t> user_id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  static Json MessageJson(const Message& m);
  static Json ChannelJson(const Channel& ch);
  static Json UserJson(const User& u);
  Json CustomFieldJson(const CustomField& f) const;
  Json TagJson(const Tag& t) const;
  static Json TemplateJson(const Template& t);
  ApiResult RenameTagLocked(Tag* tag, const TagInput& input)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ApiResult DeleteTagLocked(int64_t tag_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Channel* FindChannelLocked(int64_t id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  const User* FindUserLocked(int64_t id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Dialect dialect_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Contact> contacts_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Message> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<Comment> comments_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Tag> tags_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, CustomField> custom_fields_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Channel> channels_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, User> users_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, ClosingNote> closing_notes_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Template> templates_ ABSL_GUARDED_BY(mu_);
  int64_t next_contact_id_ ABSL_GUARDED_BY(mu_) = 1000;
  int64_t next_message_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_comment_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_tag_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_custom_field_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace respondio
}  // namespace sandbox

#endif  // SANDBOX_RESPONDIO_STATE_H_
