// End-to-end tests of the sandbox's Chatwoot emulator: a real SandboxServer on a free 127.0.0.1
// port, driven over HTTP with httplib::Client. Shapes and status codes follow
// specs/chatwoot-openapi.json.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox_server.h"

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr char kToken[] = "cw-test-token";
constexpr char kBase[] = "/api/v1/accounts/1";
// Seed data (chatwoot_state.cc).
constexpr int64_t kAna = 1;
constexpr int64_t kBruno = 2;
constexpr int64_t kCarla = 3;
constexpr int64_t kSeedGroup = 7;
constexpr int64_t kAnaConversation = 1;
constexpr int64_t kWhatsAppInbox = 2;
constexpr int64_t kApiInbox = 3;

class ChatwootSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*rate_limits=*/false, 3000); }
  void TearDown() override { server_.reset(); }

  void StartServer(bool rate_limits, int per_minute) {
    server_.reset();
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.chatwoot_token = kToken;
    options.chatwoot_rate_limit_per_minute = per_minute;
    options.rate_limits = rate_limits;
    options.threads = 8;
    // The original tests: the spec (openapi) dialect; chatwoot_live_test.cc covers live.
    options.chatwoot_dialect = Dialect::kOpenapi;
    server_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    port_ = server_->port();
  }

  std::unique_ptr<httplib::Client> Client(const std::string& token = kToken) const {
    auto cli = std::make_unique<httplib::Client>("127.0.0.1", port_);
    cli->set_read_timeout(10, 0);
    if (!token.empty()) cli->set_default_headers({{"api_access_token", token}});
    return cli;
  }

  struct Reply {
    int status = 0;
    std::string raw;
    Json body;
  };

  // METHOD kBase+path with an optional JSON body.
  Reply Call(const std::string& method, const std::string& path, const Json& body = nullptr,
             const std::string& token = kToken) {
    auto cli = Client(token);
    const std::string full = std::string(kBase) + path;
    const std::string text = body.is_null() ? "" : body.dump();
    auto send = [&]() -> httplib::Result {
      if (method == "GET") return cli->Get(full.c_str());
      if (method == "POST") return cli->Post(full.c_str(), text, "application/json");
      if (method == "PUT") return cli->Put(full.c_str(), text, "application/json");
      if (method == "PATCH") return cli->Patch(full.c_str(), text, "application/json");
      return cli->Delete(full.c_str(), text, "application/json");
    };
    httplib::Result res = send();
    Reply r;
    if (!res) {
      ADD_FAILURE() << method << " " << full << ": no response";
      return r;
    }
    r.status = res->status;
    r.raw = res->body;
    r.body = Json::parse(res->body, nullptr, false);
    return r;
  }

  Json Requests(const std::string& query = "") {
    auto res = Client("")->Get(("/__admin/requests" + query).c_str());
    EXPECT_TRUE(res);
    return Json::parse(res->body)["requests"];
  }

  Reply Join(const std::string& code, const std::string& phone) {
    auto res = Client("")->Post("/__admin/chatwoot/join",
                                Json{{"invite_code", code}, {"phone_number", phone}}.dump(),
                                "application/json");
    Reply r;
    if (!res) return r;
    r.status = res->status;
    r.body = Json::parse(res->body, nullptr, false);
    return r;
  }

  // Creates a group through the API and returns its group contact id.
  int64_t CreateGroup(const std::vector<std::string>& participants) {
    Reply created = Call("POST", "/groups",
                         {{"inbox_id", kWhatsAppInbox}, {"subject", "Story group"},
                          {"participants", participants}});
    EXPECT_EQ(created.status, 200) << created.raw;
    const std::string jid = created.body.value("group_jid", "");
    EXPECT_TRUE(jid.find("@g.us") != std::string::npos) << created.raw;
    Reply found = Call("GET", "/contacts/search?q=" + jid.substr(0, jid.find('@')));
    EXPECT_EQ(found.status, 200);
    EXPECT_EQ(found.body["payload"].size(), 1u) << found.raw;
    return found.body["payload"].empty() ? 0 : found.body["payload"][0]["id"].get<int64_t>();
  }

  static std::vector<int64_t> Ids(const Json& items) {
    std::vector<int64_t> out;
    for (const auto& i : items) out.push_back(i["id"].get<int64_t>());
    return out;
  }

  std::unique_ptr<SandboxServer> server_;
  int port_ = 0;
};

void ExpectError(const Json& body, const std::string& message_part) {
  ASSERT_TRUE(body.is_object()) << body;
  EXPECT_NE(body.value("error", "").find(message_part), std::string::npos) << body;
  EXPECT_EQ(body.value("description", ""), body.value("error", ""));
  ASSERT_TRUE(body["errors"].is_array());
  EXPECT_EQ(body["errors"][0]["message"], body["error"]);
}

// ---- pipeline ----

TEST_F(ChatwootSandboxTest, ApiAccessTokenIsRequired) {
  Reply r = Call("GET", "/contacts", nullptr, "");
  EXPECT_EQ(r.status, 401);
  ExpectError(r.body, "Invalid Access Token");
  EXPECT_EQ(Call("GET", "/contacts", nullptr, "wrong").status, 401);
  // A respond.io bearer token is not a Chatwoot token.
  auto cli = Client("");
  cli->set_default_headers({{"Authorization", std::string("Bearer ") + kToken}});
  EXPECT_EQ(cli->Get((std::string(kBase) + "/contacts").c_str())->status, 401);
  EXPECT_EQ(Call("GET", "/contacts").status, 200);
}

TEST_F(ChatwootSandboxTest, RoutingErrors) {
  EXPECT_EQ(Call("GET", "/nothing").status, 404);
  EXPECT_EQ(Call("PATCH", "/contacts").status, 405);
  Reply r = Call("GET", "/contacts/abc");
  EXPECT_EQ(r.status, 404);
  auto cli = Client();
  EXPECT_EQ(cli->Get("/api/v1/accounts/99/contacts")->status, 404);
  EXPECT_EQ(cli->Get("/api/v1/accounts/x/contacts")->status, 404);
  r = Call("POST", "/contacts/1/labels");
  EXPECT_EQ(r.status, 422);  // no body
  auto bad = cli->Post((std::string(kBase) + "/contacts/1/labels").c_str(), "{oops",
                       "application/json");
  EXPECT_EQ(bad->status, 400);
}

TEST_F(ChatwootSandboxTest, RequestLogNamesOperationIdsAndFaultsApply) {
  Call("GET", "/contacts/1");
  Call("GET", "/contacts/1/group_members");
  Json log = Requests("?endpoint=contactDetails");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["path"], "/api/v1/accounts/1/contacts/1");
  EXPECT_EQ(log[0]["status"], 200);
  EXPECT_EQ(log[0]["headers"]["api_access_token"], kToken);
  EXPECT_EQ(Requests("?endpoint=contact-group-members-list").size(), 1u);

  auto res = Client("")->Post("/__admin/faults",
                              R"({"endpoint":"contactDetails","fault":"status","status":503})",
                              "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Call("GET", "/contacts/1").status, 503);
  EXPECT_EQ(Call("GET", "/contacts/1").status, 200);
  // The endpoint table lists the 42 operations plus the inbox and agent lists.
  auto endpoints = Json::parse(Client("")->Get("/__admin/endpoints")->body);
  int chatwoot = 0;
  for (const auto& e : endpoints.is_array() ? endpoints : endpoints["endpoints"]) {
    if (e["api"] == "chatwoot") ++chatwoot;
  }
  EXPECT_EQ(chatwoot, 44);
}

TEST_F(ChatwootSandboxTest, RateLimitIsPerClientIpPerMinuteAcrossEndpoints) {
  StartServer(/*rate_limits=*/true, 5);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Call("GET", "/contacts").status, 200);
  EXPECT_EQ(Call("GET", "/conversations").status, 200);
  EXPECT_EQ(Call("GET", "/contacts/1").status, 200);
  // Unauthenticated requests do not count.
  EXPECT_EQ(Call("GET", "/contacts", nullptr, "wrong").status, 401);
  auto res = Client()->Get((std::string(kBase) + "/contacts/2").c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_GE(std::stoi(res->get_header_value("Retry-After")), 1);
  EXPECT_LE(std::stoi(res->get_header_value("Retry-After")), 60);
  // respond.io's buckets are separate.
  httplib::Client rio("127.0.0.1", port_);
  rio.set_default_headers({{"Authorization", "Bearer sandbox-token"}});
  EXPECT_EQ(rio.Get("/contact/id:12345")->status, 200);
}

TEST_F(ChatwootSandboxTest, ResetRestoresTheSeed) {
  EXPECT_EQ(Call("DELETE", "/contacts/1").status, 200);
  EXPECT_EQ(Call("GET", "/contacts/1").status, 404);
  ASSERT_EQ(Client("")->Post("/__admin/reset", "", "application/json")->status, 200);
  Reply r = Call("GET", "/contacts/1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["payload"]["name"], "Ana Souza");
  auto state = Json::parse(Client("")->Get("/__admin/state")->body);
  EXPECT_TRUE(state["chatwoot"]["accounts"].contains("1")) << state.dump().substr(0, 200);
}

// ---- contacts ----

TEST_F(ChatwootSandboxTest, ContactLifecycle) {
  Reply created = Call("POST", "/contacts",
                       {{"inbox_id", kApiInbox},
                        {"name", "Dora"},
                        {"email", "dora@example.com"},
                        {"phone_number", "+4915112345678"},
                        {"custom_attributes", {{"tier", "gold"}}}});
  ASSERT_EQ(created.status, 200) << created.raw;
  // extended_contact: {id, availability_status, payload: [contact]}
  const int64_t id = created.body["id"];
  EXPECT_EQ(created.body["availability_status"], "offline");
  ASSERT_EQ(created.body["payload"].size(), 1u);
  const Json& c = created.body["payload"][0];
  EXPECT_EQ(c["id"], id);
  EXPECT_EQ(c["email"], "dora@example.com");
  EXPECT_EQ(c["identifier"], nullptr);
  EXPECT_EQ(c["contact_inboxes"][0]["inbox"]["id"], kApiInbox);
  EXPECT_EQ(c["custom_attributes"]["tier"], "gold");

  Reply got = Call("GET", "/contacts/" + std::to_string(id));
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body["payload"]["name"], "Dora");

  Reply updated = Call("PUT", "/contacts/" + std::to_string(id),
                       {{"name", "Dora M."}, {"custom_attributes", {{"since", 2020}}}});
  ASSERT_EQ(updated.status, 200) << updated.raw;
  EXPECT_EQ(updated.body["id"], id);
  EXPECT_EQ(updated.body["payload"][0]["name"], "Dora M.");
  EXPECT_EQ(updated.body["payload"][0]["custom_attributes"],
            (Json{{"tier", "gold"}, {"since", 2020}}));  // merged

  // Uniqueness and formats.
  Reply dup = Call("POST", "/contacts", {{"inbox_id", kApiInbox}, {"email", "dora@example.com"}});
  EXPECT_EQ(dup.status, 400);
  ExpectError(dup.body, "Email has already been taken");
  EXPECT_EQ(Call("POST", "/contacts", {{"inbox_id", kApiInbox}, {"phone_number", "4915"}}).status,
            400);
  EXPECT_EQ(Call("POST", "/contacts", {{"name", "no inbox"}}).status, 400);
  EXPECT_EQ(Call("POST", "/contacts", {{"inbox_id", kWhatsAppInbox}, {"name", "no phone"}}).status,
            400);
  EXPECT_EQ(Call("PUT", "/contacts/" + std::to_string(id), {{"email", "ana@example.com"}}).status,
            422);
  EXPECT_EQ(Call("PUT", "/contacts/999", {{"name", "x"}}).status, 404);

  Reply deleted = Call("DELETE", "/contacts/" + std::to_string(id));
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.raw, "");
  Reply gone = Call("GET", "/contacts/" + std::to_string(id));
  EXPECT_EQ(gone.status, 404);
  ExpectError(gone.body, "Contact not found");
}

TEST_F(ChatwootSandboxTest, ContactListPagesOfFifteenWithStringCurrentPage) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(Call("POST", "/contacts",
                   {{"inbox_id", kApiInbox},
                    {"name", "Bulk " + std::to_string(100 + i)},
                    {"email", "bulk" + std::to_string(i) + "@example.com"}})
                  .status,
              200);
  }
  Reply page1 = Call("GET", "/contacts");
  ASSERT_EQ(page1.status, 200);
  const int64_t total = page1.body["meta"]["count"];
  EXPECT_EQ(total, 7 + 20);  // 7 resolved seed contacts
  EXPECT_EQ(page1.body["meta"]["current_page"], "1");
  EXPECT_EQ(page1.body["payload"].size(), 15u);
  Reply page2 = Call("GET", "/contacts?page=2");
  EXPECT_EQ(page2.body["meta"]["current_page"], "2");
  EXPECT_EQ(page2.body["payload"].size(), 12u);
  std::set<int64_t> all;
  for (auto id : Ids(page1.body["payload"])) all.insert(id);
  for (auto id : Ids(page2.body["payload"])) all.insert(id);
  EXPECT_EQ(all.size(), 27u);
  EXPECT_EQ(Call("GET", "/contacts?page=3").body["payload"].size(), 0u);
  EXPECT_EQ(Call("GET", "/contacts?page=0").status, 400);
  EXPECT_EQ(Call("GET", "/contacts?sort=shoe").status, 400);
  Reply sorted = Call("GET", "/contacts?sort=-name");
  EXPECT_EQ(sorted.body["payload"][0]["name"], "WhatsApp");
  // Unresolved contacts (no identifier, e-mail or phone) are not listed.
  Reply bare = Call("POST", "/contacts", {{"inbox_id", kApiInbox}, {"name", "Nobody"}});
  ASSERT_EQ(bare.status, 200);
  EXPECT_EQ(Call("GET", "/contacts").body["meta"]["count"], 27);
}

TEST_F(ChatwootSandboxTest, SearchAndFilter) {
  Reply missing = Call("GET", "/contacts/search");
  EXPECT_EQ(missing.status, 422);
  ExpectError(missing.body, "parameter q");
  EXPECT_EQ(Ids(Call("GET", "/contacts/search?q=ANA%40example").body["payload"]),
            std::vector<int64_t>{kAna});
  EXPECT_EQ(Ids(Call("GET", "/contacts/search?q=crm-3").body["payload"]),
            std::vector<int64_t>{kCarla});
  EXPECT_EQ(Ids(Call("GET", "/contacts/search?q=%2B5521").body["payload"]),
            std::vector<int64_t>{kCarla});

  // (country_code = BR AND name contains "ana") OR email = bruno@example.com
  Reply f = Call("POST", "/contacts/filter",
                 {{"payload",
                   {{{"attribute_key", "country_code"},
                     {"filter_operator", "equal_to"},
                     {"values", {"br"}},
                     {"query_operator", "AND"}},
                    {{"attribute_key", "name"},
                     {"filter_operator", "contains"},
                     {"values", {"ana"}},
                     {"query_operator", "OR"}},
                    {{"attribute_key", "email"},
                     {"filter_operator", "equal_to"},
                     {"values", {"bruno@example.com"}},
                     {"query_operator", nullptr}}}}});
  ASSERT_EQ(f.status, 200) << f.raw;
  EXPECT_EQ(Ids(f.body["payload"]), (std::vector<int64_t>{kAna, kBruno}));
  EXPECT_EQ(f.body["meta"]["count"], 2);
  Reply custom = Call("POST", "/contacts/filter",
                      {{"payload",
                        {{{"attribute_key", "plan"},
                          {"filter_operator", "not_equal_to"},
                          {"values", {"pro"}}}}}});
  ASSERT_EQ(custom.status, 200);
  for (auto id : Ids(custom.body["payload"])) EXPECT_NE(id, kAna);
  EXPECT_EQ(Call("POST", "/contacts/filter",
                 {{"payload",
                   {{{"attribute_key", "shoe_size"},
                     {"filter_operator", "equal_to"},
                     {"values", {"42"}}}}}})
                .status,
            400);
  EXPECT_EQ(Call("POST", "/contacts/filter",
                 {{"payload",
                   {{{"attribute_key", "name"}, {"filter_operator", "like"}, {"values", {"a"}}}}}})
                .status,
            400);
  EXPECT_EQ(Call("POST", "/contacts/filter", Json::object()).status, 400);
}

TEST_F(ChatwootSandboxTest, LabelsAreOverwritten) {
  Reply set = Call("POST", "/contacts/1/labels", {{"labels", {"billing", "support"}}});
  ASSERT_EQ(set.status, 200);
  EXPECT_EQ(set.body["payload"], (Json{"billing", "support"}));  // "vip" is gone
  EXPECT_EQ(Call("GET", "/contacts/1/labels").body["payload"], (Json{"billing", "support"}));
  EXPECT_EQ(Call("POST", "/contacts/1/labels", {{"labels", Json::array()}}).body["payload"],
            Json::array());
  EXPECT_EQ(Call("POST", "/contacts/1/labels", {{"labels", {""}}}).status, 422);
  EXPECT_EQ(Call("GET", "/contacts/999/labels").status, 404);
  Reply conv = Call("POST", "/conversations/1/labels", {{"labels", {"a", "b"}}});
  EXPECT_EQ(conv.body["payload"], (Json{"a", "b"}));
  EXPECT_EQ(Call("GET", "/conversations/1/labels").body["payload"], (Json{"a", "b"}));
}

TEST_F(ChatwootSandboxTest, ContactInboxesAndMerge) {
  Reply ci = Call("POST", "/contacts/2/contact_inboxes", {{"inbox_id", kApiInbox},
                                                         {"source_id", "bruno-api"}});
  ASSERT_EQ(ci.status, 200) << ci.raw;
  EXPECT_EQ(ci.body["source_id"], "bruno-api");
  EXPECT_EQ(ci.body["inbox"]["channel_type"], "Channel::Api");
  EXPECT_EQ(Call("POST", "/contacts/3/contact_inboxes",
                 {{"inbox_id", kApiInbox}, {"source_id", "bruno-api"}})
                .status,
            422);
  EXPECT_EQ(Call("POST", "/contacts/2/contact_inboxes", {{"inbox_id", 77}}).status, 422);
  EXPECT_EQ(Call("POST", "/contacts/2/contact_inboxes", Json::object()).status, 422);
  // Carla has a phone: the WhatsApp inbox is contactable without a contact inbox.
  Reply contactable = Call("GET", "/contacts/3/contactable_inboxes");
  ASSERT_EQ(contactable.status, 200);
  std::set<int64_t> inboxes;
  for (const auto& i : contactable.body["payload"]) inboxes.insert(i["inbox"]["id"].get<int64_t>());
  EXPECT_EQ(inboxes, (std::set<int64_t>{kWhatsAppInbox, kApiInbox}));

  EXPECT_EQ(Call("POST", "/actions/contact_merge",
                 {{"base_contact_id", 1}, {"mergee_contact_id", 1}})
                .status,
            400);
  EXPECT_EQ(Call("POST", "/actions/contact_merge",
                 {{"base_contact_id", 1}, {"mergee_contact_id", 999}})
                .status,
            404);
  Reply merged = Call("POST", "/actions/contact_merge",
                      {{"base_contact_id", kCarla}, {"mergee_contact_id", kBruno}});
  ASSERT_EQ(merged.status, 200) << merged.raw;
  EXPECT_EQ(merged.body["id"], kCarla);
  EXPECT_EQ(merged.body["payload"][0]["email"], "bruno@example.com");  // filled from the mergee
  EXPECT_EQ(Call("GET", "/contacts/2").status, 404);
  // Bruno's conversation moved to Carla.
  EXPECT_EQ(Ids(Call("GET", "/contacts/3/conversations").body["payload"]),
            std::vector<int64_t>{2});
}

// ---- conversations and messages ----

TEST_F(ChatwootSandboxTest, ConversationLifecycle) {
  Reply created = Call("POST", "/conversations",
                       {{"source_id", "api-carla-0003"},
                        {"inbox_id", kApiInbox},
                        {"custom_attributes", {{"order", "A-1"}}},
                        {"message", {{"content", "Your order shipped"}}}});
  ASSERT_EQ(created.status, 200) << created.raw;
  const int64_t id = created.body["id"];
  EXPECT_EQ(created.body["account_id"], 1);
  EXPECT_EQ(created.body["inbox_id"], kApiInbox);
  const std::string path = "/conversations/" + std::to_string(id);
  EXPECT_EQ(Call("POST", "/conversations", {{"source_id", "nobody"}, {"inbox_id", kApiInbox}})
                .status,
            422);
  EXPECT_EQ(Call("POST", "/conversations", {{"inbox_id", kApiInbox}}).status, 422);

  Reply got = Call("GET", path);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body["status"], "open");
  EXPECT_EQ(got.body["meta"]["sender"]["id"], kCarla);
  EXPECT_EQ(got.body["messages"][0]["message_type"], 1);  // outgoing, as an integer
  EXPECT_TRUE(got.body["timestamp"].is_string());           // the spec's type
  EXPECT_EQ(got.body["priority"], nullptr);

  EXPECT_EQ(Call("PATCH", path, {{"priority", "high"}}).status, 200);
  EXPECT_EQ(Call("GET", path).body["priority"], "high");
  EXPECT_EQ(Call("PATCH", path, {{"priority", "meh"}}).status, 422);
  EXPECT_EQ(Call("POST", path + "/toggle_priority", {{"priority", "none"}}).status, 200);
  EXPECT_EQ(Call("GET", path).body["priority"], nullptr);
  EXPECT_EQ(Call("POST", path + "/toggle_priority", Json::object()).status, 422);

  Reply toggled = Call("POST", path + "/toggle_status", {{"status", "resolved"}});
  ASSERT_EQ(toggled.status, 200);
  EXPECT_EQ(toggled.body["payload"],
            (Json{{"success", true}, {"current_status", "resolved"}, {"conversation_id", id}}));
  EXPECT_EQ(toggled.body["meta"], Json::object());
  EXPECT_EQ(Call("POST", path + "/toggle_status", {{"status", "closed"}}).status, 422);
  Reply snoozed = Call("POST", path + "/toggle_status",
                       {{"status", "snoozed"}, {"snoozed_until", 1900000000}});
  EXPECT_EQ(Call("GET", path).body["snoozed_until"], 1900000000);

  Reply custom = Call("POST", path + "/custom_attributes", {{"custom_attributes", {{"x", 1}}}});
  ASSERT_EQ(custom.status, 200);
  EXPECT_EQ(custom.body, (Json{{"custom_attributes", {{"x", 1}}}}));
  EXPECT_EQ(Call("POST", path + "/custom_attributes", Json::object()).status, 422);

  Reply assigned = Call("POST", path + "/assignments", {{"assignee_id", 3}});
  ASSERT_EQ(assigned.status, 200);
  EXPECT_EQ(assigned.body["name"], "Bob Agent");
  EXPECT_EQ(assigned.body["role"], "agent");
  EXPECT_TRUE(assigned.body.contains("access_token"));  // the spec's user schema has it
  EXPECT_EQ(Call("POST", path + "/assignments", {{"assignee_id", 42}}).status, 422);
  EXPECT_EQ(Call("POST", path + "/assignments", {{"team_id", 1}}).status, 200);
  EXPECT_EQ(Call("POST", path + "/assignments", Json::object()).status, 422);

  EXPECT_EQ(Call("GET", "/conversations/999").status, 404);
  EXPECT_EQ(Call("POST", "/conversations/999/toggle_status", {{"status", "open"}}).status, 404);
}

TEST_F(ChatwootSandboxTest, ConversationListsCountsAndFilters) {
  // Seed: 1 open (Ana, assigned to 2, label vip), 2 pending (Bruno), 3 open (seed group).
  Reply counts = Call("GET", "/conversations/meta");
  ASSERT_EQ(counts.status, 200);
  EXPECT_EQ(counts.body["meta"], (Json{{"mine_count", 0},
                                       {"unassigned_count", 1},
                                       {"assigned_count", 1},
                                       {"all_count", 2}}));
  EXPECT_EQ(Call("GET", "/conversations/meta?status=all").body["meta"]["all_count"], 3);
  EXPECT_EQ(Call("GET", "/conversations/meta?status=bogus").status, 400);

  Reply list = Call("GET", "/conversations?status=all&assignee_type=unassigned");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["data"]["meta"]["all_count"], 3);
  EXPECT_EQ(Ids(list.body["data"]["payload"]).size(), 2u);
  EXPECT_EQ(Ids(Call("GET", "/conversations?labels[]=vip").body["data"]["payload"]),
            std::vector<int64_t>{kAnaConversation});
  EXPECT_EQ(Ids(Call("GET", "/conversations?labels=vip").body["data"]["payload"]),
            std::vector<int64_t>{kAnaConversation});
  EXPECT_EQ(Ids(Call("GET", "/conversations?q=ajuda").body["data"]["payload"]),
            std::vector<int64_t>{kAnaConversation});
  EXPECT_EQ(Call("GET", "/conversations?assignee_type=nobody").status, 400);

  // 30 more open conversations: pages of 25.
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(Call("POST", "/conversations",
                   {{"source_id", "web-ana-0001"}, {"inbox_id", 1}, {"contact_id", kAna}})
                  .status,
              200);
  }
  EXPECT_EQ(Call("GET", "/conversations").body["data"]["payload"].size(), 25u);
  EXPECT_EQ(Call("GET", "/conversations?page=2").body["data"]["payload"].size(), 7u);

  Reply filtered = Call("POST", "/conversations/filter?page=1",
                        {{"payload",
                          {{{"attribute_key", "status"},
                            {"filter_operator", "equal_to"},
                            {"values", {"pending"}},
                            {"query_operator", "OR"}},
                           {{"attribute_key", "browser_language"},
                            {"filter_operator", "equal_to"},
                            {"values", {"pt"}}}}}});
  ASSERT_EQ(filtered.status, 200) << filtered.raw;
  EXPECT_EQ(Ids(filtered.body["data"]["payload"]), std::vector<int64_t>{2});
}

TEST_F(ChatwootSandboxTest, MessagesAndReportingEvents) {
  const std::string path = "/conversations/2";  // Bruno, pending, waiting for a reply
  Reply sent = Call("POST", path + "/messages", {{"content", "Hello Bruno"}});
  ASSERT_EQ(sent.status, 200) << sent.raw;
  EXPECT_EQ(sent.body["message_type"], 1);
  EXPECT_EQ(sent.body["content"], "Hello Bruno");
  EXPECT_EQ(sent.body["conversation_id"], 2);
  EXPECT_EQ(sent.body["sender_type"], "agent");
  const int64_t message_id = sent.body["id"];
  Reply note = Call("POST", path + "/messages",
                    {{"content", "internal"}, {"private", true}, {"content_type", "text"}});
  EXPECT_EQ(note.body["private"], true);
  EXPECT_EQ(Call("POST", path + "/messages", {{"content", "x"}, {"message_type", "activity"}})
                .status,
            422);
  EXPECT_EQ(Call("POST", path + "/messages", Json::object()).status, 422);
  EXPECT_EQ(Call("POST", path + "/messages",
                 {{"content", "t"}, {"template_params", {{"name", "x"}, {"language", "en"}}}})
                .status,
            422);  // templates only on WhatsApp

  // An incoming reply reopens a resolved conversation.
  ASSERT_EQ(Call("POST", path + "/toggle_status", {{"status", "resolved"}}).status, 200);
  Reply incoming = Call("POST", path + "/messages",
                        {{"content", "one more thing"}, {"message_type", "incoming"}});
  EXPECT_EQ(incoming.body["message_type"], 0);
  EXPECT_EQ(incoming.body["sender_type"], "contact");
  EXPECT_EQ(Call("GET", path).body["status"], "open");

  Reply list = Call("GET", path + "/messages");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["meta"]["contact"]["payload"][0]["id"], kBruno);
  EXPECT_EQ(list.body["meta"]["assignee"], nullptr);
  std::vector<int> types;
  for (const auto& m : list.body["payload"]) types.push_back(m["message_type"].get<int>());
  // incoming, outgoing, private note, resolved activity, reopened activity, incoming
  EXPECT_EQ(types, (std::vector<int>{0, 1, 1, 2, 2, 0}));

  Reply events = Call("GET", path + "/reporting_events");
  ASSERT_EQ(events.status, 200);
  ASSERT_TRUE(events.body.is_array());
  std::vector<std::string> names;
  for (const auto& e : events.body) names.push_back(e["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"first_response", "conversation_resolved",
                                             "conversation_opened"}));

  Reply deleted = Call("DELETE", path + "/messages/" + std::to_string(message_id));
  EXPECT_EQ(deleted.status, 200);
  const Json after = Call("GET", path + "/messages").body["payload"][1];
  EXPECT_EQ(after["content"], "This message was deleted");
  EXPECT_EQ(after["content_attributes"]["deleted"], true);
  EXPECT_EQ(Call("DELETE", path + "/messages/9999").status, 404);
  EXPECT_EQ(Call("GET", "/conversations/999/messages").status, 404);
}

// ---- groups ----

TEST_F(ChatwootSandboxTest, GroupStory) {
  const int64_t group = CreateGroup({"5511911112222", "5511933334444"});
  ASSERT_GT(group, 0);
  const std::string path = "/contacts/" + std::to_string(group);

  EXPECT_EQ(Call("POST", path + "/group_members", {{"participants", {"5511955556666"}}}).status,
            200);
  Reply bad = Call("POST", path + "/group_members", {{"participants", {"+5511955556666"}}});
  EXPECT_EQ(bad.status, 422);
  ExpectError(bad.body, "Invalid participant");

  // Members: the inbox's own number first, then by record id; 2 per page.
  Reply page1 = Call("GET", path + "/group_members?page=1&per_page=2");
  ASSERT_EQ(page1.status, 200);
  EXPECT_EQ(page1.body["meta"]["total_count"], 4);
  EXPECT_EQ(page1.body["meta"]["per_page"], 2);
  EXPECT_EQ(page1.body["meta"]["inbox_phone_number"], "+5511900000000");
  ASSERT_EQ(page1.body["payload"].size(), 2u);
  const Json& self = page1.body["payload"][0];
  EXPECT_EQ(self["contact"]["phone_number"], "+5511900000000");
  EXPECT_EQ(self["role"], "admin");
  EXPECT_EQ(self["group_contact_id"], group);
  Reply page2 = Call("GET", path + "/group_members?page=2&per_page=2");
  EXPECT_EQ(page2.body["payload"].size(), 2u);
  EXPECT_EQ(Call("GET", path + "/group_members?page=3&per_page=2").body["payload"].size(), 0u);
  EXPECT_EQ(Call("GET", path + "/group_members?per_page=0").status, 400);

  // The creator (the inbox's own number) cannot be demoted or removed.
  const std::string creator = std::to_string(self["id"].get<int64_t>());
  Reply demote = Call("PATCH", path + "/group_members/" + creator, {{"role", "member"}});
  EXPECT_EQ(demote.status, 422);
  ExpectError(demote.body, "group creator cannot be modified");
  EXPECT_EQ(Call("DELETE", path + "/group_members/" + creator).status, 422);

  const std::string member = std::to_string(page1.body["payload"][1]["id"].get<int64_t>());
  EXPECT_EQ(Call("PATCH", path + "/group_members/" + member, {{"role", "admin"}}).status, 200);
  EXPECT_EQ(Call("GET", path + "/group_members").body["payload"][1]["role"], "admin");
  EXPECT_EQ(Call("PATCH", path + "/group_members/" + member, {{"role", "owner"}}).status, 422);
  EXPECT_EQ(Call("PATCH", path + "/group_members/9999", {{"role", "admin"}}).status, 404);
  EXPECT_EQ(Call("DELETE", path + "/group_members/" + member).status, 200);
  EXPECT_EQ(Call("GET", path + "/group_members").body["meta"]["total_count"], 3);

  // Metadata.
  Reply meta = Call("PATCH", path + "/group_metadata",
                    {{"subject", "Renamed"}, {"description", "About us"}});
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.body["name"], "Renamed");
  EXPECT_EQ(meta.body["additional_attributes"]["description"], "About us");
  EXPECT_EQ(Call("PATCH", path + "/group_metadata", Json::object()).status, 422);

  // Invite: a revoked code stops working.
  Reply invite = Call("GET", path + "/group_invite");
  ASSERT_EQ(invite.status, 200);
  const std::string old_code = invite.body["invite_code"];
  EXPECT_EQ(invite.body["invite_url"], "https://chat.whatsapp.com/" + old_code);
  Reply revoked = Call("POST", path + "/group_invite/revoke");
  ASSERT_EQ(revoked.status, 200);
  const std::string new_code = revoked.body["invite_code"];
  EXPECT_NE(new_code, old_code);
  EXPECT_EQ(Call("GET", path + "/group_invite").body["invite_code"], new_code);
  EXPECT_EQ(Join(old_code, "5511977778888").status, 404);

  // Join approval: a join through the link becomes a pending request.
  EXPECT_EQ(Call("PATCH", path + "/group_admin",
                 {{"property", "join_approval_mode"}, {"enabled", true}})
                .status,
            200);
  EXPECT_EQ(Call("PATCH", path + "/group_admin", {{"property", "color"}, {"enabled", true}}).status,
            422);
  EXPECT_EQ(Call("PATCH", path + "/group_admin", {{"property", "announce"}}).status, 422);
  Reply join = Join(new_code, "5511977778888");
  ASSERT_EQ(join.status, 200);
  EXPECT_EQ(join.body["status"], "pending");
  EXPECT_EQ(Join(new_code, "5511966667777").body["status"], "pending");
  Reply pending = Call("GET", path + "/group_join_requests");
  ASSERT_EQ(pending.status, 200);
  ASSERT_EQ(pending.body["payload"].size(), 2u);
  EXPECT_EQ(pending.body["payload"][0]["phone_number"], "5511977778888");
  EXPECT_EQ(pending.body["payload"][0]["jid"], "5511977778888@s.whatsapp.net");
  EXPECT_EQ(Call("POST", path + "/group_join_requests/handle",
                 {{"participants", {"5511900001111"}}, {"request_action", "approve"}})
                .status,
            422);  // nothing pending from that number
  EXPECT_EQ(Call("POST", path + "/group_join_requests/handle",
                 {{"participants", {"5511977778888"}}, {"request_action", "maybe"}})
                .status,
            422);
  EXPECT_EQ(Call("POST", path + "/group_join_requests/handle",
                 {{"participants", {"5511977778888"}}, {"request_action", "approve"}})
                .status,
            200);
  EXPECT_EQ(Call("POST", path + "/group_join_requests/handle",
                 {{"participants", {"5511966667777@s.whatsapp.net"}}, {"request_action", "reject"}})
                .status,
            200);
  EXPECT_EQ(Call("GET", path + "/group_join_requests").body["payload"].size(), 0u);
  EXPECT_EQ(Call("GET", path + "/group_members").body["meta"]["total_count"], 4);

  // Sync.
  Reply sync = Call("POST", path + "/sync_group");
  ASSERT_EQ(sync.status, 200);
  EXPECT_EQ(sync.body["payload"]["id"], group);
  EXPECT_EQ(sync.body["payload"]["group_members"].size(), 4u);
  EXPECT_EQ(Call("POST", "/contacts/1/sync_group").status, 400);  // Ana is no group

  // Leave: conversations resolved, provider calls refused.
  EXPECT_EQ(Call("POST", path + "/group_admin/leave").status, 200);
  Reply conversations = Call("GET", path + "/conversations");  // must outlive the loop
  for (const auto& c : conversations.body["payload"]) {
    EXPECT_EQ(c["status"], "resolved");
  }
  Reply after = Call("GET", path + "/group_invite");
  EXPECT_EQ(after.status, 422);
  ExpectError(after.body, "no longer a participant");
  EXPECT_EQ(Call("POST", path + "/group_admin/leave").status, 422);
  EXPECT_EQ(Call("POST", path + "/sync_group").body["payload"]["group_members"].size(), 0u);
  EXPECT_EQ(Join(new_code, "5511944443333").status, 404);
}

TEST_F(ChatwootSandboxTest, GroupRequestsAreChecked) {
  EXPECT_EQ(Call("POST", "/groups", {{"inbox_id", 1}, {"subject", "x"}, {"participants", {"5511911112222"}}})
                .status,
            422);  // not a WhatsApp inbox
  EXPECT_EQ(Call("POST", "/groups", {{"inbox_id", 99}, {"subject", "x"}, {"participants", {"5511911112222"}}})
                .status,
            403);
  EXPECT_EQ(Call("POST", "/groups", {{"inbox_id", kWhatsAppInbox}, {"participants", {"5511911112222"}}})
                .status,
            422);
  EXPECT_EQ(Call("POST", "/groups", {{"inbox_id", kWhatsAppInbox}, {"subject", "x"}, {"participants", Json::array()}})
                .status,
            422);
  // Group operations on a contact that is no group, or on no contact.
  EXPECT_EQ(Call("GET", "/contacts/1/group_invite").status, 422);
  EXPECT_EQ(Call("GET", "/contacts/999/group_invite").status, 404);
  EXPECT_EQ(Call("GET", "/contacts/1/group_members").body["meta"]["total_count"], 0);
  // The seeded group: Grace created it, so she cannot be demoted; one request is pending.
  Reply members = Call("GET", "/contacts/" + std::to_string(kSeedGroup) + "/group_members");
  ASSERT_EQ(members.status, 200);
  EXPECT_EQ(members.body["payload"][0]["contact"]["phone_number"], "+5511900000000");
  const std::string grace = std::to_string(members.body["payload"][1]["id"].get<int64_t>());
  EXPECT_EQ(Call("PATCH", "/contacts/" + std::to_string(kSeedGroup) + "/group_members/" + grace,
                 {{"role", "member"}})
                .status,
            422);
  EXPECT_EQ(Call("GET", "/contacts/" + std::to_string(kSeedGroup) + "/group_join_requests")
                .body["payload"]
                .size(),
            1u);
}

}  // namespace
}  // namespace sandbox
