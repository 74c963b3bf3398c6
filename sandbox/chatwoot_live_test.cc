// The Chatwoot emulator's live dialect (Chatwoot's Rails behaviour, per specs/live-api.md):
// form and multipart message bodies, toggle_status without a body, conversation create
// without source_id, contact create without inbox_id, 422 {message, attributes}, the team
// assignment reply, contact reply envelopes, Rails `labels[]=` arrays, inboxes, agents and
// message PATCH. The openapi dialect's spec shaping is checked at the end.
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox_server.h"

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr char kToken[] = "cw-live-token";
constexpr char kBase[] = "/api/v1/accounts/1";

class ChatwootLiveTest : public ::testing::Test {
 protected:
  void Start(Dialect dialect) {
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.chatwoot_token = kToken;
    options.rate_limits = false;
    options.threads = 8;
    options.chatwoot_dialect = dialect;
    server_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }
  void SetUp() override { Start(Dialect::kLive); }
  void TearDown() override { server_.reset(); }

  struct Reply {
    int status = 0;
    Json body;
  };
  static Reply Of(const httplib::Result& res) {
    EXPECT_TRUE(res);
    if (!res) return {};
    return {res->status, res->body.empty() ? Json() : Json::parse(res->body, nullptr, false)};
  }
  httplib::Client Client() const {
    httplib::Client cli("127.0.0.1", server_->port());
    cli.set_read_timeout(10, 0);
    cli.set_default_headers({{"api_access_token", kToken}});
    return cli;
  }
  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& type = "application/json") {
    httplib::Client cli = Client();
    const std::string full = std::string(kBase) + path;
    if (method == "GET") return Of(cli.Get(full.c_str()));
    if (method == "PATCH") return Of(cli.Patch(full.c_str(), body, type.c_str()));
    if (method == "PUT") return Of(cli.Put(full.c_str(), body, type.c_str()));
    if (body.empty() && method == "POST") return Of(cli.Post(full.c_str()));
    return Of(cli.Post(full.c_str(), body, type.c_str()));
  }

  std::unique_ptr<SandboxServer> server_;
};

TEST_F(ChatwootLiveTest, MessageCreateAcceptsJsonFormAndMultipart) {
  Reply r = Send("POST", "/conversations/1/messages", R"({"content":"json","private":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["content"], "json");
  EXPECT_EQ(r.body["private"], true);

  r = Send("POST", "/conversations/1/messages",
           "content=hello+form&message_type=outgoing&private=false",
           "application/x-www-form-urlencoded");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["content"], "hello form");
  EXPECT_EQ(r.body["private"], false);
  EXPECT_FALSE(r.body.contains("attachments"));

  httplib::Client cli = Client();
  httplib::MultipartFormDataItems items = {
      {"content", "with a file", "", ""},
      {"private", "true", "", ""},
      {"attachments[]", "PNGDATA", "photo.png", "image/png"},
  };
  r = Of(cli.Post((std::string(kBase) + "/conversations/1/messages").c_str(), items));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["content"], "with a file");
  EXPECT_EQ(r.body["private"], true);
  ASSERT_EQ(r.body["attachments"].size(), 1u);
  EXPECT_EQ(r.body["attachments"][0]["file_type"], "image");
  EXPECT_EQ(r.body["attachments"][0]["extension"], "png");
  EXPECT_EQ(r.body["attachments"][0]["file_size"], 7);

  // Validation errors are 422 {message, attributes}.
  r = Send("POST", "/conversations/1/messages", "private=true",
           "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body, (Json{{"message", "content is required"}, {"attributes", {"content"}}}));
}

TEST_F(ChatwootLiveTest, ToggleStatusWithoutBodyToggles) {
  Reply r = Send("POST", "/conversations/1/toggle_status");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["payload"]["current_status"], "resolved");
  r = Send("POST", "/conversations/1/toggle_status");
  EXPECT_EQ(r.body["payload"]["current_status"], "open");
  r = Send("POST", "/conversations/1/toggle_status", R"({"status":"pending"})");
  EXPECT_EQ(r.body["payload"]["current_status"], "pending");
}

TEST_F(ChatwootLiveTest, ContactCreateWithoutInboxAndEnvelopes) {
  Reply r = Send("POST", "/contacts", R"({"name":"No Inbox","email":"noinbox@example.com"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.body["payload"]["contact"].is_object()) << r.body;
  EXPECT_EQ(r.body["payload"]["contact"]["email"], "noinbox@example.com");
  EXPECT_TRUE(r.body["payload"]["contact_inbox"].is_null());
  const int64_t id = r.body["payload"]["contact"]["id"];

  r = Send("POST", "/contacts", R"({"name":"Api","inbox_id":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["payload"]["contact_inbox"]["inbox"]["id"], 3);

  r = Send("GET", "/contacts/" + std::to_string(id));
  EXPECT_EQ(r.body["payload"]["id"], id);
  r = Send("PUT", "/contacts/" + std::to_string(id), R"({"name":"Renamed"})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["payload"]["name"], "Renamed");
  EXPECT_FALSE(r.body.contains("id"));

  // Conversation create with contact_id + inbox_id and no source_id.
  r = Send("POST", "/conversations",
           "{\"contact_id\":" + std::to_string(id) + ",\"inbox_id\":3}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["inbox_id"], 3);
  r = Send("GET", "/contacts/" + std::to_string(id));
  EXPECT_EQ(r.body["payload"]["contact_inbox"].is_null(), true);
  EXPECT_EQ(r.body["payload"]["contact_inboxes"].size(), 1u);

  r = Send("POST", "/contacts", R"({"email":"not an email"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_TRUE(r.body["attributes"].is_array());
}

TEST_F(ChatwootLiveTest, TeamAssignmentAnswersWithTheTeam) {
  Reply r = Send("POST", "/conversations/1/assignments", R"({"team_id":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["id"], 2);
  EXPECT_EQ(r.body["name"], "sales");
  r = Send("POST", "/conversations/1/assignments", R"({"assignee_id":3})");
  EXPECT_EQ(r.body["id"], 3);
  EXPECT_EQ(r.body["name"], "Bob Agent");
}

TEST_F(ChatwootLiveTest, RailsArrayQueryParameters) {
  ASSERT_EQ(Send("POST", "/conversations/1/labels", R"({"labels":["a","b"]})").status, 200);
  auto count = [&](const std::string& query) {
    Reply r = Send("GET", "/conversations?status=all&" + query);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body["data"]["payload"].size();
  };
  EXPECT_EQ(count("labels[]=a&labels[]=b"), 1u);
  EXPECT_EQ(count("labels[]=a&labels[]=zzz"), 0u);
  // A repeated plain parameter keeps only its last value, as Rails does.
  EXPECT_EQ(count("labels=zzz&labels=a"), 1u);
  EXPECT_EQ(count("labels=a&labels=zzz"), 0u);
}

TEST_F(ChatwootLiveTest, InboxesAgentsAndMessageUpdate) {
  Reply r = Send("GET", "/inboxes");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["payload"].size(), 3u);
  EXPECT_TRUE(r.body["payload"][0].contains("provider"));
  r = Send("GET", "/agents");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.body.is_array());
  EXPECT_EQ(r.body[0]["availability_status"], "online");

  r = Send("POST", "/conversations/1/messages", R"({"content":"draft"})");
  const int64_t id = r.body["id"];
  r = Send("PATCH", "/conversations/1/messages/" + std::to_string(id),
           R"({"content":"edited","content_attributes":{"x":1}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["content"], "edited");
  EXPECT_EQ(r.body["content_attributes"]["x"], 1);
  // Fields live replies carry as null.
  EXPECT_TRUE(r.body.contains("source_id"));
  EXPECT_TRUE(r.body["source_id"].is_null());
  EXPECT_EQ(Send("PATCH", "/conversations/1/messages/99999", R"({"content":"x"})").status, 404);
  r = Send("GET", "/conversations/2");
  EXPECT_TRUE(r.body.contains("snoozed_until"));
  EXPECT_TRUE(r.body["priority"].is_null());
}

TEST_F(ChatwootLiveTest, OpenapiDialectShapesRepliesToTheSpec) {
  server_.reset();
  Start(Dialect::kOpenapi);
  Reply r = Send("GET", "/conversations/2");
  ASSERT_EQ(r.status, 200);
  // Not nullable in the spec: omitted, never null.
  EXPECT_FALSE(r.body.contains("snoozed_until"));
  EXPECT_FALSE(r.body.contains("priority"));
  r = Send("GET", "/agents");
  EXPECT_EQ(r.body[0]["availability_status"], "available");
  // Openapi has no message PATCH, no form bodies, and toggle_status needs a status.
  EXPECT_EQ(Send("PATCH", "/conversations/1/messages/1", R"({"content":"x"})").status, 405);
  EXPECT_EQ(Send("POST", "/conversations/1/toggle_status").status, 422);
  EXPECT_EQ(Send("POST", "/contacts", R"({"name":"x"})").status, 400);
  r = Send("POST", "/conversations/1/messages", "content=x", "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace sandbox
