// The respond.io emulator's live dialect (specs/live-api.md facts, written
// into these tests): /v2 prefix, live request bodies and replies, unknown
// body fields rejected by name, workspace tags keyed by name, custom fields
// with data types, WhatsApp templates, {code, message} errors.
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox_server.h"

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr char kToken[] = "live-token";

class RespondioLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.respondio_token = kToken;
    options.rate_limits = false;
    options.threads = 8;
    // The default dialect is live.
    server_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    port_ = server_->port();
  }
  void TearDown() override { server_.reset(); }

  struct Reply {
    int status = 0;
    Json body;
  };
  Reply Send(const std::string& method, const std::string& path,
             const std::string& body = "") {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_read_timeout(10, 0);
    httplib::Headers h = {{"Authorization", std::string("Bearer ") + kToken}};
    auto call = [&]() -> httplib::Result {
      if (method == "GET") return cli.Get(path.c_str(), h);
      if (method == "POST") return cli.Post(path.c_str(), h, body, "application/json");
      if (method == "PUT") return cli.Put(path.c_str(), h, body, "application/json");
      return cli.Delete(path.c_str(), h, body, "application/json");
    };
    httplib::Result res = call();
    EXPECT_TRUE(res) << method << " " << path;
    if (!res) return {};
    return {res->status, Json::parse(res->body, nullptr, false)};
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::unique_ptr<SandboxServer> server_;
  int port_ = 0;
};

TEST_F(RespondioLiveTest, ServedUnderV2AndAtTheRoot) {
  for (const char* path : {"/v2/contact/id:12345", "/contact/id:12345"}) {
    Reply r = Send("GET", path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body["id"], 12345) << path;
  }
  Reply r = Send("GET", "/v2/nothing");
  EXPECT_EQ(r.status, 404);
  // Live errors are {code, message}.
  EXPECT_EQ(r.body, (Json{{"code", 404}, {"message", "Cannot GET /v2/nothing"}}));
}

TEST_F(RespondioLiveTest, ContactShape) {
  Reply r = Send("GET", "/v2/contact/id:12345");
  ASSERT_EQ(r.status, 200);
  const Json& c = r.body;
  EXPECT_EQ(c["custom_fields"], (Json::array({{{"name", "tier"}, {"value", "pro"}}})));
  EXPECT_EQ(c["created_at"], 1700000000);
  EXPECT_TRUE(c.contains("lifecycle"));
  EXPECT_TRUE(c["lifecycle"].is_null());
  EXPECT_TRUE(c["assignee"].is_null());
  EXPECT_EQ(c["tags"], Json::array({"customer"}));
  for (const char* gone : {"customFields", "created", "status"}) {
    EXPECT_FALSE(c.contains(gone)) << gone;
  }
  // Assign by user id (a number): the contact's assignee is the user object.
  r = Send("POST", "/v2/contact/id:12345/conversation/assignee", R"({"assignee":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = Send("GET", "/v2/contact/id:12345");
  EXPECT_EQ(r.body["assignee"], (Json{{"id", 1},
                                      {"firstName", "Alex"},
                                      {"lastName", "Agent"},
                                      {"email", "agent@example.com"}}));
  // By plain email; the openapi "email:" form is not a live assignee.
  r = Send("POST", "/v2/contact/id:12345/conversation/assignee",
           R"({"assignee":"manager@example.com"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["assignee"]["id"], 3);
  r = Send("POST", "/v2/contact/id:12345/conversation/assignee",
           R"({"assignee":"email:manager@example.com"})");
  EXPECT_EQ(r.status, 400);
  r = Send("POST", "/v2/contact/id:12345/conversation/assignee", R"({"assignee":99})");
  EXPECT_EQ(r.status, 404);
  r = Send("POST", "/v2/contact/id:12345/conversation/assignee", R"({"assignee":null})");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.body["assignee"].is_null());
}

TEST_F(RespondioLiveTest, CreateUpdateDeleteContact) {
  Reply r = Send("POST", "/v2/contact/email:grace@example.com",
                 R"({"firstName":"Grace","lastName":"Hopper","phone":"+15550001",)"
                 R"("custom_fields":[{"name":"company","value":"Navy"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, (Json{{"code", 200}, {"message", "Contact created successfully"}}));
  r = Send("GET", "/v2/contact/email:grace@example.com");
  ASSERT_EQ(r.status, 200);
  const int64_t id = r.body["id"];
  EXPECT_EQ(r.body["phone"], "+15550001");
  // The custom field value is kept, not silently dropped.
  EXPECT_EQ(r.body["custom_fields"],
            (Json::array({{{"name", "company"}, {"value", "Navy"}}})));
  // Duplicate: 400.
  r = Send("POST", "/v2/contact/email:grace@example.com", R"({"firstName":"G"})");
  EXPECT_EQ(r.status, 400);
  r = Send("POST", "/v2/contact/id:5", R"({"firstName":"G"})");
  EXPECT_EQ(r.status, 400);

  r = Send("PUT", "/v2/contact/id:" + std::to_string(id), R"({"lastName":"H."})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, (Json{{"contactId", id}}));
  r = Send("POST", "/v2/contact/create_or_update/phone:+15550002", R"({"firstName":"New"})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.body["contactId"].is_number_integer());
  EXPECT_EQ(r.body.size(), 1u);
  r = Send("DELETE", "/v2/contact/id:" + std::to_string(id));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, (Json{{"contactId", id}}));
  // The openapi create path is not live.
  r = Send("POST", "/v2/contact", R"({"firstName":"X"})");
  EXPECT_EQ(r.status, 404);
}

TEST_F(RespondioLiveTest, UnknownBodyFieldsAreRejectedByName) {
  // The openapi spelling of custom fields is not understood by the live API:
  // a 400 naming it, never a 200 that loses the value.
  Reply r = Send("PUT", "/v2/contact/id:12345",
                 R"({"customFields":[{"name":"company","value":"X"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["message"].get<std::string>().find("'customFields'"), std::string::npos)
      << r.body;
  r = Send("POST", "/v2/contact/id:12345/conversation/status",
           R"({"status":"close","closingNoteId":1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["message"].get<std::string>().find("closingNoteId"), std::string::npos);
  r = Send("POST", "/v2/contact/id:12345/message",
           R"({"message":{"type":"quick_reply","text":"t","quickReplies":[{"title":"a"}]}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["message"].get<std::string>().find("unknown field 'message."),
            std::string::npos)
      << r.body;
  r = Send("POST", "/v2/space/tag", R"({"name":"x","color":"red"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["message"].get<std::string>().find("'color'"), std::string::npos);
}

TEST_F(RespondioLiveTest, ListContactsPostAndPaginationKeepsPrefix) {
  for (int i = 0; i < 3; ++i) {
    Reply r = Send("POST", "/v2/contact/email:p" + std::to_string(i) + "@example.com",
                   R"({"firstName":"P"})");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  Reply r = Send("POST", "/v2/contact/list?limit=2",
                 R"({"search":"","timezone":"Asia/Kuala_Lumpur","filter":{"$and":[]}})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.body["items"].size(), 2u);
  const int64_t second = r.body["items"][1]["id"];
  EXPECT_EQ(r.body["pagination"]["next"],
            Url("/v2/contact/list?cursorId=" + std::to_string(second) + "&limit=2"));
  EXPECT_TRUE(r.body["pagination"]["previous"].is_null());
  // At the root the URLs carry no prefix.
  r = Send("POST", "/contact/list?limit=2&cursorId=" + std::to_string(second), "{}");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["pagination"]["previous"], Url("/contact/list?limit=2"));
  // search filters.
  r = Send("POST", "/v2/contact/list", R"({"search":"lovelace"})");
  ASSERT_EQ(r.body["items"].size(), 1u);
  EXPECT_EQ(r.body["items"][0]["id"], 12345);
  // GET is the openapi verb: live reads "list" as a (bad) identifier.
  r = Send("GET", "/v2/contact/list");
  EXPECT_EQ(r.status, 400);
  r = Send("POST", "/v2/contact/list", R"({"query":"x"})");
  EXPECT_EQ(r.status, 400);
}

TEST_F(RespondioLiveTest, ChannelsAndSpaceLists) {
  Reply r = Send("GET", "/v2/contact/id:12345/channels?limit=10");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["items"].size(), 1u);
  EXPECT_EQ(r.body["items"][0]["id"], 123);
  EXPECT_TRUE(r.body["pagination"]["next"].is_null());
  EXPECT_EQ(Send("GET", "/v2/contact/id:12345/channel").status, 404);
  EXPECT_EQ(Send("GET", "/v2/contact/id:12345/channel/123").body["source"], "whatsapp");
  for (const char* path : {"/v2/space/channel", "/v2/space/closing_notes", "/v2/space/user",
                           "/v2/space/tag", "/v2/space/custom_field"}) {
    r = Send("GET", path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_TRUE(r.body["items"].is_array()) << path;
    EXPECT_TRUE(r.body["pagination"].contains("next")) << path;
  }
  r = Send("GET", "/v2/space/user?limit=1");
  EXPECT_EQ(r.body["pagination"]["next"], Url("/v2/space/user?cursorId=1&limit=1"));
  EXPECT_EQ(Send("GET", "/v2/space/user/2").body["role"], "owner");
}

TEST_F(RespondioLiveTest, MessageKinds) {
  const std::string send = "/v2/contact/id:12345/message";
  for (const char* message : {
           R"({"type":"text","text":"hi","messageTag":"ACCOUNT_UPDATE"})",
           R"({"type":"attachment","attachment":{"type":"image","url":"https://x.io/a.png"}})",
           R"({"type":"quick_reply","title":"Pick","replies":["Yes","No"]})",
           R"({"type":"custom_payload","payload":{"card":{"id":1}}})",
           R"({"type":"email","message":"Body","subject":"Hi","cc":["a@x.io"],"bcc":[],)"
           R"("attachments":[{"type":"file","url":"https://x.io/f.pdf"}],"replyToMessageId":"m1"})",
           R"({"type":"whatsapp_template","template":{"name":"order_update","languageCode":"en",)"
           R"("components":[]}})"}) {
    Reply r = Send("POST", send, std::string(R"({"channelId":123,"message":)") + message + "}");
    ASSERT_EQ(r.status, 200) << message << " " << r.body;
    // Live send answers {messageId} only.
    ASSERT_EQ(r.body.size(), 1u) << r.body;
    const int64_t id = r.body["messageId"];
    Reply got = Send("GET", "/v2/contact/id:12345/message/" + std::to_string(id));
    ASSERT_EQ(got.status, 200);
    EXPECT_EQ(got.body["message"], Json::parse(message));
  }
  for (const char* bad : {
           R"({"type":"quick_reply","title":"Pick","replies":[]})",
           R"({"type":"custom_payload","payload":"x"})",
           R"({"type":"email","subject":"no body"})",
           R"({"type":"email","message":"b","cc":["not-an-email"]})",
           R"({"type":"sticker"})"}) {
    Reply r = Send("POST", send, std::string(R"({"channelId":123,"message":)") + bad + "}");
    EXPECT_EQ(r.status, 400) << bad;
  }
  // Message history.
  Reply r = Send("GET", "/v2/contact/id:12345/message/list?limit=4");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["items"].size(), 4u);
  EXPECT_EQ(r.body["pagination"]["next"],
            Url("/v2/contact/id:12345/message/list?cursorId=4&limit=4"));
}

TEST_F(RespondioLiveTest, ConversationCommentLifecycle) {
  Reply r = Send("POST", "/v2/contact/id:12345/conversation/status",
                 R"({"status":"close","category":"Resolved","summary":"done"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["status"], "close");
  EXPECT_EQ(r.body["summary"], "done");
  // Open with empty category and summary, as the live clients send it.
  r = Send("POST", "/v2/contact/id:12345/conversation/status",
           R"({"status":"open","category":"","summary":""})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["status"], "open");
  EXPECT_EQ(Send("POST", "/v2/contact/id:12345/conversation", R"({"status":"open"})").status,
            404);
  r = Send("POST", "/v2/contact/id:12345/comment", R"({"text":"note"})");
  EXPECT_EQ(r.status, 200);
  r = Send("POST", "/v2/contact/id:12345/lifecycle/update", R"({"name":"Customer"})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, (Json{{"code", 200}, {"message", "Lifecycle updated successfully"}}));
  EXPECT_EQ(Send("GET", "/v2/contact/id:12345").body["lifecycle"], "Customer");
  r = Send("POST", "/v2/contact/id:12345/lifecycle/update", R"({"name":null})");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(Send("GET", "/v2/contact/id:12345").body["lifecycle"].is_null());
}

TEST_F(RespondioLiveTest, WorkspaceTagsKeyedByName) {
  Reply r = Send("POST", "/v2/space/tag",
                 R"({"name":"vip","description":"Top","colorCode":"#FF0000","emoji":"⭐"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["name"], "vip");
  EXPECT_EQ(r.body["colorCode"], "#FF0000");
  EXPECT_EQ(Send("POST", "/v2/space/tag", R"({"name":"vip"})").status, 400);
  EXPECT_EQ(Send("POST", "/v2/contact/id:12345/tag", R"(["vip"])").status, 200);

  r = Send("PUT", "/v2/space/tag", R"({"currentName":"vip","name":"gold","emoji":"🥇"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["name"], "gold");
  EXPECT_EQ(r.body["description"], "Top");  // kept
  EXPECT_EQ(r.body["emoji"], "🥇");
  EXPECT_EQ(Send("GET", "/v2/contact/id:12345").body["tags"], Json::array({"customer", "gold"}));
  EXPECT_EQ(Send("PUT", "/v2/space/tag", R"({"currentName":"nope","name":"x"})").status, 404);
  EXPECT_EQ(Send("PUT", "/v2/space/tag/1", R"({"name":"x"})").status, 404);

  r = Send("DELETE", "/v2/space/tag", R"({"name":"gold"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["code"], 200);
  EXPECT_EQ(Send("GET", "/v2/contact/id:12345").body["tags"], Json::array({"customer"}));
  EXPECT_EQ(Send("DELETE", "/v2/space/tag", R"({"name":"gold"})").status, 404);
  r = Send("GET", "/v2/space/tag");
  ASSERT_EQ(r.body["items"].size(), 2u);
  EXPECT_EQ(r.body["items"][0]["description"], "Paying customers");
}

TEST_F(RespondioLiveTest, CustomFieldsWithDataTypes) {
  Reply r = Send("GET", "/v2/space/custom_field/1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, (Json{{"id", 1},
                          {"name", "tier"},
                          {"slug", "tier"},
                          {"description", nullptr},
                          {"dataType", "list"},
                          {"allowedValues", {"free", "pro"}}}));
  for (const char* type : {"text", "email", "number", "date", "time", "checkbox", "url"}) {
    r = Send("POST", "/v2/space/custom_field",
             Json{{"name", std::string("f_") + type}, {"dataType", type},
                  {"description", "d"}}.dump());
    ASSERT_EQ(r.status, 200) << type << r.body;
    EXPECT_EQ(r.body["dataType"], type);
    EXPECT_EQ(r.body["slug"], std::string("f_") + type);
  }
  r = Send("POST", "/v2/space/custom_field",
           R"({"name":"Plan Level","slug":"plan","dataType":"list","allowedValues":["a","b"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["slug"], "plan");
  EXPECT_EQ(Send("POST", "/v2/space/custom_field", R"({"name":"x","type":"text"})").status,
            400);
  EXPECT_EQ(Send("POST", "/v2/space/custom_field", R"({"name":"y","dataType":"list"})").status,
            400);
  // Values are checked against the new types.
  r = Send("PUT", "/v2/contact/id:12345",
           R"({"custom_fields":[{"name":"f_email","value":"nope"}]})");
  EXPECT_EQ(r.status, 400);
  r = Send("PUT", "/v2/contact/id:12345",
           R"({"custom_fields":[{"name":"f_time","value":"09:30"},{"name":"f_email","value":"a@b.io"}]})");
  EXPECT_EQ(r.status, 200) << r.body;
  r = Send("GET", "/v2/space/custom_field?limit=2");
  EXPECT_EQ(r.body["items"].size(), 2u);
  EXPECT_EQ(r.body["pagination"]["next"], Url("/v2/space/custom_field?cursorId=2&limit=2"));
}

TEST_F(RespondioLiveTest, WhatsAppTemplates) {
  Reply r = Send("GET", "/v2/space/channel/123/mtm");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["items"].size(), 2u);
  EXPECT_EQ(r.body["items"][0]["name"], "order_update");
  r = Send("GET", "/v2/space/mtm/2");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["data"]["languageCode"], "pt_BR");
  EXPECT_EQ(r.body["data"]["status"], "APPROVED");
  EXPECT_EQ(Send("GET", "/v2/space/mtm/9").status, 404);
  EXPECT_EQ(Send("GET", "/v2/space/channel/999/mtm").status, 404);
  r = Send("GET", "/v2/space/channel/124/mtm");
  EXPECT_EQ(r.body["items"].size(), 0u);
}

TEST_F(RespondioLiveTest, RequestLogRecordsTheRequestExactly) {
  Send("POST", "/v2/contact/list?limit=2&cursorId=0", R"({"search":"a b"})");
  httplib::Client cli("127.0.0.1", port_);
  auto res = cli.Get("/__admin/requests");
  ASSERT_TRUE(res);
  Json log = Json::parse(res->body)["requests"];
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["method"], "POST");
  EXPECT_EQ(log[0]["path"], "/v2/contact/list");
  EXPECT_EQ(log[0]["query"], "limit=2&cursorId=0");
  EXPECT_EQ(log[0]["body"], R"({"search":"a b"})");
  EXPECT_EQ(log[0]["endpoint"], "list_contacts");
}

}  // namespace
}  // namespace sandbox
