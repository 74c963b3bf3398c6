// In-memory data model of the Chatwoot emulator: accounts with inboxes, agents, teams,
// contacts (group contacts carry a WhatsApp group), conversations, messages and reporting
// events. Thread-safe: every public method takes the state mutex.
//
// Each operation receives the already routed and authenticated request (account id, numeric
// path ids, query parameters, the parsed JSON body), applies Chatwoot's rules and renders the
// spec's JSON shapes (specs/chatwoot-openapi.json). Errors are Chatwoot-shaped (see ErrorJson).
#ifndef SANDBOX_CHATWOOT_STATE_H_
#define SANDBOX_CHATWOOT_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "sandbox/http_util.h"

namespace sandbox {
namespace chatwoot {

// Page sizes Chatwoot uses.
inline constexpr int kContactsPerPage = 15;
inline constexpr int kConversationsPerPage = 25;
inline constexpr int kDefaultMembersPerPage = 10;
inline constexpr int kMaxMembersPerPage = 100;

// The seed: account 1 with these inboxes and agents.
inline constexpr int64_t kSeedAccount = 1;
inline constexpr int64_t kWebInbox = 1;
inline constexpr int64_t kWhatsAppInbox = 2;
inline constexpr int64_t kApiInbox = 3;
inline constexpr char kWhatsAppInboxPhone[] = "+5511900000000";
// The agent the API token belongs to ("me").
inline constexpr int64_t kTokenUser = 1;

// {"error": msg, "description": msg, "errors": [{"field", "message", "code"}]}: the spec's
// bad_request_error ({description, errors}) plus Chatwoot's own top-level "error".
Json ErrorJson(std::string_view message, std::string_view field = "",
               std::string_view code = "");
ApiResult CwError(int status, std::string_view message, std::string_view field = "",
                  std::string_view code = "");

// One routed request.
struct CwRequest {
  int64_t account_id = 0;
  std::vector<int64_t> ids;  // numeric path parameters, in path order
  std::vector<std::pair<std::string, std::string>> query;
  Json body;  // parsed JSON body (or a form / multipart body as an object); null when none
  // Files of a multipart body: [{file_type, extension, file_name, file_size}].
  Json attachments = Json::array();
  // Rails' array parameters (live dialect): only `name[]` collects values; a repeated plain
  // `name` keeps its last value.
  bool rails_arrays = false;

  std::optional<std::string> Query(std::string_view name) const;
  // All values of an array query parameter: `name` and `name[]` (openapi), or Rails' reading
  // (rails_arrays).
  std::vector<std::string> QueryAll(std::string_view name) const;
};

struct Inbox {
  int64_t id = 0;
  std::string name;
  std::string channel_type;  // "Channel::WebWidget", "Channel::Whatsapp", "Channel::Api"
  std::string provider;      // "" when none
  int64_t channel_id = 0;
  std::string phone_number;  // WhatsApp inboxes
};

struct Agent {
  int64_t id = 0;
  std::string name;
  std::string email;
  std::string role;  // "agent" | "administrator"
  std::string availability_status;
};

struct Team {
  int64_t id = 0;
  std::string name;
};

struct ContactInboxLink {
  int64_t inbox_id = 0;
  std::string source_id;
};

struct GroupMembership {
  int64_t id = 0;          // the member_id of the member routes
  int64_t contact_id = 0;  // the member's contact
  std::string role;        // "admin" | "member"
  bool active = true;
  bool creator = false;    // cannot be demoted or removed
  bool inbox_member = false;  // the inbox's own WhatsApp number (pinned first)
};

struct JoinRequest {
  std::string phone;  // digits, no '+'
  std::string request_method;
  int64_t request_time = 0;
};

struct Group {
  std::string jid;
  std::string description;
  std::string invite_code;
  int64_t inbox_id = 0;
  std::map<std::string, bool> settings;  // announce, restrict, join_approval_mode, member_add_mode
  std::vector<GroupMembership> members;
  std::vector<JoinRequest> pending;
  bool left = false;
};

struct Contact {
  int64_t id = 0;
  std::string name;
  std::string email;
  std::string phone_number;
  std::string identifier;
  std::string thumbnail;
  bool blocked = false;
  Json additional_attributes = Json::object();
  Json custom_attributes = Json::object();
  int64_t created_at = 0;
  int64_t last_activity_at = 0;  // 0: never
  std::set<std::string> labels;
  std::vector<ContactInboxLink> inboxes;
  std::optional<Group> group;
};

struct Message {
  int64_t id = 0;
  std::string content;
  int message_type = 1;  // 0 incoming, 1 outgoing, 2 activity, 3 template
  bool is_private = false;
  std::string content_type = "text";
  Json content_attributes = Json::object();
  Json additional_attributes = Json::object();
  std::string status = "sent";
  std::string source_id;
  std::string sender_type;  // "contact" | "agent" | "" (activity)
  int64_t sender_id = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  // From a multipart create (last: the seed builds messages positionally).
  Json attachments = Json::array();
};

struct ReportingEvent {
  int64_t id = 0;
  std::string name;
  double value = 0;
  int64_t start = 0;
  int64_t end = 0;
  int64_t user_id = 0;
};

struct Conversation {
  int64_t id = 0;
  std::string uuid;
  int64_t inbox_id = 0;
  int64_t contact_id = 0;
  std::string source_id;
  std::string status = "open";  // open | resolved | pending | snoozed
  std::string priority;         // "" = null
  int64_t snoozed_until = 0;
  std::optional<int64_t> assignee_id;
  std::optional<int64_t> team_id;
  std::set<std::string> labels;
  Json custom_attributes = Json::object();
  Json additional_attributes = Json::object();
  int64_t sla_policy_id = 0;
  int64_t created_at = 0;
  double updated_at = 0;
  int64_t last_activity_at = 0;
  int64_t first_reply_created_at = 0;
  int64_t waiting_since = 0;
  std::vector<Message> messages;
  std::vector<ReportingEvent> events;
};

struct Account {
  int64_t id = 0;
  std::string name;
  std::map<int64_t, Inbox> inboxes;
  std::map<int64_t, Agent> agents;
  std::map<int64_t, Team> teams;
  std::map<int64_t, Contact> contacts;
  std::map<int64_t, Conversation> conversations;
  int64_t next_contact_id = 1;
  int64_t next_conversation_id = 1;
  int64_t next_message_id = 1;
  int64_t next_member_id = 1;
  int64_t next_event_id = 1;
  int64_t next_group_serial = 1;
};

class ChatwootState {
 public:
  // `dialect` selects the live (Chatwoot's Rails code) or openapi (the spec) behaviour where
  // they differ: contact create/update replies, optional inbox_id/source_id, toggle_status
  // without a body, the team assignment reply.
  explicit ChatwootState(Dialect dialect = Dialect::kLive);
  Dialect dialect() const { return dialect_; }

  // Restores the seed data and resets all counters (and the invite-code generator).
  void Reset();
  // Whole state, for GET /__admin/state.
  Json Dump() const;
  // Whether the account exists.
  bool HasAccount(int64_t account_id) const;

  // Contacts.
  ApiResult ListContacts(const CwRequest& r);
  ApiResult CreateContact(const CwRequest& r);
  ApiResult GetContact(const CwRequest& r);
  ApiResult UpdateContact(const CwRequest& r);
  ApiResult DeleteContact(const CwRequest& r);
  ApiResult ListContactConversations(const CwRequest& r);
  ApiResult ListContactLabels(const CwRequest& r);
  ApiResult SetContactLabels(const CwRequest& r);
  ApiResult SearchContacts(const CwRequest& r);
  ApiResult FilterContacts(const CwRequest& r);
  ApiResult CreateContactInbox(const CwRequest& r);
  ApiResult ListContactableInboxes(const CwRequest& r);
  ApiResult MergeContacts(const CwRequest& r);

  // Groups (ids[0] is the group contact).
  ApiResult SyncGroup(const CwRequest& r);
  ApiResult ListGroupMembers(const CwRequest& r);
  ApiResult AddGroupMembers(const CwRequest& r);
  ApiResult UpdateGroupMemberRole(const CwRequest& r);
  ApiResult RemoveGroupMember(const CwRequest& r);
  ApiResult UpdateGroupMetadata(const CwRequest& r);
  ApiResult GetGroupInvite(const CwRequest& r);
  ApiResult RevokeGroupInvite(const CwRequest& r);
  ApiResult ListGroupJoinRequests(const CwRequest& r);
  ApiResult HandleGroupJoinRequests(const CwRequest& r);
  ApiResult UpdateGroupAdminSetting(const CwRequest& r);
  ApiResult LeaveGroup(const CwRequest& r);
  ApiResult CreateGroup(const CwRequest& r);

  // Conversations (ids[0] is the conversation).
  ApiResult GetConversationCounts(const CwRequest& r);
  ApiResult ListConversations(const CwRequest& r);
  ApiResult CreateConversation(const CwRequest& r);
  ApiResult FilterConversations(const CwRequest& r);
  ApiResult GetConversation(const CwRequest& r);
  ApiResult UpdateConversation(const CwRequest& r);
  ApiResult ToggleStatus(const CwRequest& r);
  ApiResult TogglePriority(const CwRequest& r);
  ApiResult UpdateCustomAttributes(const CwRequest& r);
  ApiResult AssignConversation(const CwRequest& r);
  ApiResult ListConversationLabels(const CwRequest& r);
  ApiResult SetConversationLabels(const CwRequest& r);
  ApiResult ListReportingEvents(const CwRequest& r);

  // Messages (ids[0] is the conversation, ids[1] the message).
  ApiResult ListMessages(const CwRequest& r);
  ApiResult CreateMessage(const CwRequest& r);
  ApiResult DeleteMessage(const CwRequest& r);
  // Live only: PATCH of a message (content, content_attributes).
  ApiResult UpdateMessage(const CwRequest& r);
  // Inboxes {payload: [inbox]} and agents (a bare array).
  ApiResult ListInboxes(const CwRequest& r);
  ApiResult ListAgents(const CwRequest& r);

  // Test support (POST /__admin/chatwoot/join): someone opens an invite link. With join
  // approval on, a pending join request appears; otherwise the person joins at once. A revoked
  // or unknown code is 404. Body: {"invite_code": "...", "phone_number": "<digits>",
  // "account_id": 1 (optional)}.
  ApiResult SimulateInviteJoin(const Json& body);

 private:
  void SeedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Account* AccountLocked(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewInviteCodeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The contact with this phone number ("+digits"), created when missing.
  Contact& ContactForPhoneLocked(Account& a, const std::string& digits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Group of a group contact; on failure *error is set (404 unknown contact, 422 not a group or
  // left).
  Contact* GroupContactLocked(Account& a, int64_t id, ApiResult* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Conversation* ConversationLocked(Account& a, int64_t id, ApiResult* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddActivityLocked(Account& a, Conversation& c, const std::string& text)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetStatusLocked(Account& a, Conversation& c, const std::string& status,
                       int64_t snoozed_until) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Json ContactListLocked(const Account& a, std::vector<const Contact*> contacts,
                         const CwRequest& r, ApiResult* error) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Json ConversationListLocked(const Account& a, std::vector<const Conversation*> list,
                              const CwRequest& r, const std::string& assignee_type,
                              ApiResult* error) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Dialect dialect_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Account> accounts_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chatwoot
}  // namespace sandbox

#endif  // SANDBOX_CHATWOOT_STATE_H_
