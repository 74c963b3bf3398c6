// The respond.io emulator's openapi dialect against respond.io's own documents, transcribed
// into sandbox/testdata/ (nothing here reads specs/ at run time):
// - the request collection runs top to bottom against a fresh sandbox, every request 2xx;
// - every reply validates against the OpenAPI document's schema for its operation (types,
//   enums, nullable: a null the document does not allow is a failure).
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox_server.h"

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr char kToken[] = "openapi-token";

Json LoadFixture(const std::string& name) {
  std::ifstream in("sandbox/testdata/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return Json::parse(ss.str());
}

// A small OpenAPI 3.0 schema checker: $ref, type, nullable, enum, properties, items,
// required. Unknown members are allowed (the document sets no additionalProperties: false).
class SchemaChecker {
 public:
  explicit SchemaChecker(Json schemas) : schemas_(std::move(schemas)) {}

  // Problems found, "" when `value` validates.
  std::string Check(const Json& value, const Json& schema) const {
    std::vector<std::string> errors;
    Walk(value, schema, "$", &errors);
    std::string out;
    for (const auto& e : errors) out += e + "\n";
    return out;
  }

 private:
  void Walk(const Json& v, const Json& schema, const std::string& path,
            std::vector<std::string>* errors) const {
    if (schema.contains("$ref")) {
      std::string ref = schema["$ref"];
      const std::string prefix = "#/components/schemas/";
      Walk(v, schemas_.at(ref.substr(prefix.size())), path, errors);
      return;
    }
    if (v.is_null()) {
      if (!schema.value("nullable", false)) errors->push_back(path + " is null, not nullable");
      return;
    }
    const std::string type = schema.value("type", "");
    bool ok = type.empty() || (type == "object" && v.is_object()) ||
              (type == "array" && v.is_array()) || (type == "string" && v.is_string()) ||
              (type == "integer" && v.is_number_integer()) ||
              (type == "number" && v.is_number()) || (type == "boolean" && v.is_boolean());
    if (!ok) {
      errors->push_back(path + " is " + v.type_name() + ", expected " + type);
      return;
    }
    if (schema.contains("enum") &&
        std::find(schema["enum"].begin(), schema["enum"].end(), v) == schema["enum"].end()) {
      errors->push_back(path + " = " + v.dump() + " is not in the enum");
    }
    if (v.is_object()) {
      if (schema.contains("required")) {
        for (const Json& name : schema["required"]) {
          if (!v.contains(name.get<std::string>())) {
            errors->push_back(path + "." + name.get<std::string>() + " is required");
          }
        }
      }
      if (schema.contains("properties")) {
        for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
          if (v.contains(it.key())) Walk(v[it.key()], it.value(), path + "." + it.key(), errors);
        }
      }
    }
    if (v.is_array() && schema.contains("items")) {
      for (size_t i = 0; i < v.size(); ++i) {
        Walk(v[i], schema["items"], path + "[" + std::to_string(i) + "]", errors);
      }
    }
  }

  Json schemas_;
};

class RespondioOpenapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.respondio_token = kToken;
    options.rate_limits = false;
    options.threads = 8;
    options.respondio_dialect = Dialect::kOpenapi;
    server_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    Json doc = LoadFixture("respondio_openapi_schemas.json");
    checker_ = std::make_unique<SchemaChecker>(doc["schemas"]);
    operations_ = doc["operations"];
  }
  void TearDown() override { server_.reset(); }

  struct Reply {
    int status = 0;
    std::string raw;
    Json body;
  };
  Reply Send(const std::string& method, const std::string& path, const std::string& body) {
    httplib::Client cli("127.0.0.1", server_->port());
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
    return {res->status, res->body, Json::parse(res->body, nullptr, false)};
  }
  // The reply of `operation_id` checked against its documented schema.
  void ExpectValid(const std::string& operation_id, const Reply& reply) {
    const Json& schema = operations_.at(operation_id)["reply"];
    if (schema.is_null()) return;  // no body documented
    EXPECT_EQ(checker_->Check(reply.body, schema), "") << operation_id << ": " << reply.raw;
  }

  std::unique_ptr<SandboxServer> server_;
  std::unique_ptr<SchemaChecker> checker_;
  Json operations_;
};

TEST_F(RespondioOpenapiTest, CheckerRejectsWhatTheDocumentDoesNotAllow) {
  Json contact = {{"id", 1}, {"firstName", nullptr}};
  EXPECT_NE(checker_->Check(contact, {{"$ref", "#/components/schemas/Contact"}}), "");
  contact = {{"id", 1}, {"assignee", nullptr}, {"tags", {"a"}}};
  EXPECT_EQ(checker_->Check(contact, {{"$ref", "#/components/schemas/Contact"}}), "");
  EXPECT_NE(checker_->Check(Json{{"status", "closed"}},
                            {{"$ref", "#/components/schemas/Conversation"}}),
            "");
  EXPECT_NE(checker_->Check(Json{{"id", "1"}}, {{"$ref", "#/components/schemas/Channel"}}), "");
}

TEST_F(RespondioOpenapiTest, CollectionRunsTopToBottomWithEveryRequest2xx) {
  Json collection = LoadFixture("respondio_collection.json");
  ASSERT_EQ(collection["requests"].size(), 17u);
  int64_t message_id = 0;
  for (const Json& r : collection["requests"]) {
    const std::string name = r["name"];
    // The collection's URLs carry the /v2 base path; the sandbox serves it.
    std::string path = r["url"].get<std::string>().substr(std::string("https://api.respond.io").size());
    for (auto it = r["variables"].begin(); it != r["variables"].end(); ++it) {
      std::string value = it.value();
      if (value == "$messageId") value = std::to_string(message_id);
      const std::string placeholder = "{" + it.key() + "}";
      path.replace(path.find(placeholder), placeholder.size(), value);
    }
    const std::string body = r["body"].is_string() ? r["body"].get<std::string>() : "";
    Reply reply = Send(r["method"], path, body);
    EXPECT_GE(reply.status, 200) << name << ": " << reply.raw;
    EXPECT_LT(reply.status, 300) << name << " " << path << ": " << reply.raw;
    ExpectValid(r["operationId"], reply);
    if (reply.body.is_object() && reply.body.contains("messageId")) {
      message_id = reply.body["messageId"];
    }
  }
  EXPECT_GT(message_id, 0);
}

TEST_F(RespondioOpenapiTest, EveryReplyValidatesAgainstTheDocument) {
  // Sparse records: unset fields must be omitted, not null.
  Reply r = Send("POST", "/contact", R"({"firstName":"Only"})");
  ASSERT_EQ(r.status, 200) << r.raw;
  ExpectValid("createContact", r);
  EXPECT_FALSE(r.body.contains("lastName"));
  EXPECT_FALSE(r.body.contains("status"));
  EXPECT_TRUE(r.body["assignee"].is_null());  // nullable: kept
  const std::string id = "id:" + std::to_string(r.body["id"].get<int64_t>());

  ExpectValid("getContact", Send("GET", "/contact/" + id, ""));
  ExpectValid("getContact", Send("GET", "/contact/id:12345", ""));
  ExpectValid("updateContact",
              Send("PUT", "/contact/" + id, R"({"lastName":null,"countryCode":"MY"})"));
  ExpectValid("createOrUpdateContact",
              Send("POST", "/contact/create_or_update/email:new@example.com", R"({})"));
  r = Send("GET", "/contact/list?limit=2", "");
  ExpectValid("listContacts", r);
  EXPECT_EQ(r.body["pagination"]["hasMore"], true);
  r = Send("GET", "/contact/list?limit=100", "");
  ExpectValid("listContacts", r);
  EXPECT_TRUE(r.body["pagination"]["cursorId"].is_null());
  EXPECT_EQ(r.body["pagination"]["hasMore"], false);
  ExpectValid("listContactChannels", Send("GET", "/contact/id:12345/channel", ""));
  r = Send("POST", "/contact/id:12345/message",
           R"({"message":{"type":"quick_reply","text":"Pick","quickReplies":[{"title":"A"}]}})");
  ASSERT_EQ(r.status, 200) << r.raw;
  ExpectValid("sendMessage", r);
  ExpectValid("getMessage",
              Send("GET", "/contact/id:12345/message/" + std::to_string(r.body["messageId"].get<int64_t>()), ""));
  r = Send("POST", "/contact/id:12345/conversation", R"({"status":"open"})");
  ExpectValid("updateConversationStatus", r);
  r = Send("POST", "/contact/id:12345/conversation", R"({"status":"close","closingNoteId":2})");
  ExpectValid("updateConversationStatus", r);
  EXPECT_EQ(r.body["closingNoteId"], 2);
  ExpectValid("createTag", Send("POST", "/tag", R"({"name":"fresh"})"));
  ExpectValid("listCustomFields", Send("GET", "/custom_field", ""));
  ExpectValid("createCustomField", Send("POST", "/custom_field", R"({"name":"n","type":"number"})"));
  ExpectValid("mergeContacts", Send("POST", "/contact/merge",
                                    R"({"primaryContactId":12345,"secondaryContactId":67890})"));
  // Errors carry the document's Error schema (message, status).
  r = Send("GET", "/contact/id:999999", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(checker_->Check(r.body, {{"$ref", "#/components/schemas/Error"}}), "");
  EXPECT_EQ(r.body["status"], 404);
}

}  // namespace
}  // namespace sandbox
