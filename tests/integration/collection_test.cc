// The 17 example requests of respond.io's request collection, sent as gRPC calls, must reach the
// upstream as the same HTTP method, path and JSON body. The examples are transcribed below
// (fixtures of this repo; the collection itself is not read at run time).
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.grpc.pb.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/conversation_service.grpc.pb.h"
#include "respondio/v2/custom_field_service.grpc.pb.h"
#include "respondio/v2/message_service.grpc.pb.h"
#include "respondio/v2/tag_service.grpc.pb.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

using nlohmann::json;
namespace rio = ::respondio::v2;

constexpr char kIdentifier[] = "id:12345";

struct Example {
  std::string name;
  std::string method;
  std::string path;  // as in the collection, with {identifier} and {messageId}
  std::string body;  // "" for none
  // Sends the example through the gateway.
  std::function<void(const std::shared_ptr<grpc::Channel>&, int64_t message_id)> call;
};

template <typename Stub, typename Request, typename Response>
void Send(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
          Stub* stub, const Request& request) {
  Response response;
  // The outcome may be an upstream error (e.g. a duplicate); only the wire matters here.
  (stub->*method)(Context().get(), request, &response);
}

std::vector<Example> Examples() {
  std::vector<Example> e;
  auto contacts = [](auto ch) { return rio::ContactService::NewStub(ch); };
  e.push_back({"Create a contact", "POST", "/contact",
               R"({"firstName":"Ada","email":"ada@example.com","phone":"+60123456789"})",
               [&](auto ch, int64_t) {
                 rio::CreateContactRequest r;
                 r.set_first_name("Ada");
                 r.set_email("ada@example.com");
                 r.set_phone("+60123456789");
                 Send(&rio::ContactService::Stub::CreateContact, contacts(ch).get(), r);
               }});
  e.push_back({"Get a contact", "GET", "/contact/{identifier}", "", [&](auto ch, int64_t) {
                 rio::GetContactRequest r;
                 r.set_identifier(kIdentifier);
                 Send(&rio::ContactService::Stub::GetContact, contacts(ch).get(), r);
               }});
  e.push_back({"Update a contact", "PUT", "/contact/{identifier}", R"({"firstName":"Ada"})",
               [&](auto ch, int64_t) {
                 rio::UpdateContactRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_first_name("Ada");
                 Send(&rio::ContactService::Stub::UpdateContact, contacts(ch).get(), r);
               }});
  e.push_back({"Delete a contact", "DELETE", "/contact/{identifier}", "", [&](auto ch, int64_t) {
                 rio::DeleteContactRequest r;
                 r.set_identifier(kIdentifier);
                 Send(&rio::ContactService::Stub::DeleteContact, contacts(ch).get(), r);
               }});
  e.push_back({"List contacts", "GET", "/contact/list", "", [&](auto ch, int64_t) {
                 rio::ListContactsRequest r;
                 Send(&rio::ContactService::Stub::ListContacts, contacts(ch).get(), r);
               }});
  e.push_back({"Merge contacts", "POST", "/contact/merge",
               R"({"primaryContactId":12345,"secondaryContactId":67890})", [&](auto ch, int64_t) {
                 rio::MergeContactsRequest r;
                 r.set_primary_contact_id(12345);
                 r.set_secondary_contact_id(67890);
                 Send(&rio::ContactService::Stub::MergeContacts, contacts(ch).get(), r);
               }});
  e.push_back({"List a contact's channels", "GET", "/contact/{identifier}/channel", "",
               [&](auto ch, int64_t) {
                 rio::ListContactChannelsRequest r;
                 r.set_identifier(kIdentifier);
                 Send(&rio::ContactService::Stub::ListContactChannels, contacts(ch).get(), r);
               }});
  e.push_back({"Send a message", "POST", "/contact/{identifier}/message",
               R"({"channelId":123,"message":{"type":"text","text":"Hello from respond.io"}})",
               [&](auto ch, int64_t) {
                 rio::SendMessageRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_channel_id(123);
                 r.mutable_message()->set_type(rio::MESSAGE_TYPE_TEXT);
                 r.mutable_message()->set_text("Hello from respond.io");
                 Send(&rio::MessageService::Stub::SendMessage,
                      rio::MessageService::NewStub(ch).get(), r);
               }});
  e.push_back({"Get a message", "GET", "/contact/{identifier}/message/{messageId}", "",
               [&](auto ch, int64_t message_id) {
                 rio::GetMessageRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_message_id(message_id);
                 Send(&rio::MessageService::Stub::GetMessage,
                      rio::MessageService::NewStub(ch).get(), r);
               }});
  e.push_back({"Open or close a conversation", "POST", "/contact/{identifier}/conversation",
               R"({"status":"close"})", [&](auto ch, int64_t) {
                 rio::UpdateConversationStatusRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_status(rio::CONVERSATION_STATUS_CLOSE);
                 Send(&rio::ConversationService::Stub::UpdateConversationStatus,
                      rio::ConversationService::NewStub(ch).get(), r);
               }});
  e.push_back({"Assign or unassign a conversation", "POST",
               "/contact/{identifier}/conversation/assignee",
               R"({"assignee":"email:agent@example.com"})", [&](auto ch, int64_t) {
                 rio::AssignConversationRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_assignee("email:agent@example.com");
                 Send(&rio::ConversationService::Stub::AssignConversation,
                      rio::ConversationService::NewStub(ch).get(), r);
               }});
  e.push_back({"Create a comment", "POST", "/contact/{identifier}/comment",
               R"({"text":"Following up @[agent@example.com]"})", [&](auto ch, int64_t) {
                 rio::CreateCommentRequest r;
                 r.set_identifier(kIdentifier);
                 r.set_text("Following up @[agent@example.com]");
                 Send(&rio::CommentService::Stub::CreateComment,
                      rio::CommentService::NewStub(ch).get(), r);
               }});
  e.push_back({"Add tags to a contact", "POST", "/contact/{identifier}/tag",
               R"(["vip","newsletter"])", [&](auto ch, int64_t) {
                 rio::AddContactTagsRequest r;
                 r.set_identifier(kIdentifier);
                 r.add_tags("vip");
                 r.add_tags("newsletter");
                 Send(&rio::TagService::Stub::AddContactTags, rio::TagService::NewStub(ch).get(), r);
               }});
  e.push_back({"Remove tags from a contact", "DELETE", "/contact/{identifier}/tag", R"(["vip"])",
               [&](auto ch, int64_t) {
                 rio::RemoveContactTagsRequest r;
                 r.set_identifier(kIdentifier);
                 r.add_tags("vip");
                 Send(&rio::TagService::Stub::RemoveContactTags,
                      rio::TagService::NewStub(ch).get(), r);
               }});
  e.push_back({"Create a tag", "POST", "/tag", R"({"name":"vip"})", [&](auto ch, int64_t) {
                 rio::CreateTagRequest r;
                 r.set_name("vip");
                 Send(&rio::TagService::Stub::CreateTag, rio::TagService::NewStub(ch).get(), r);
               }});
  e.push_back({"List custom fields", "GET", "/custom_field", "", [&](auto ch, int64_t) {
                 rio::ListCustomFieldsRequest r;
                 Send(&rio::CustomFieldService::Stub::ListCustomFields,
                      rio::CustomFieldService::NewStub(ch).get(), r);
               }});
  e.push_back({"Create a custom field", "POST", "/custom_field",
               R"({"name":"account_tier","type":"list","options":["free","pro"]})",
               [&](auto ch, int64_t) {
                 rio::CreateCustomFieldRequest r;
                 r.set_name("account_tier");
                 r.set_type(rio::CUSTOM_FIELD_TYPE_LIST);
                 r.add_options("free");
                 r.add_options("pro");
                 Send(&rio::CustomFieldService::Stub::CreateCustomField,
                      rio::CustomFieldService::NewStub(ch).get(), r);
               }});
  return e;
}

TEST(CollectionTest, EveryExampleReachesTheUpstreamUnchanged) {
  auto sandbox = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(sandbox, nullptr);
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox->base_url(), "--cache_max_bytes=0"});
  ASSERT_NE(gateway, nullptr);
  const std::vector<Example> examples = Examples();
  ASSERT_EQ(examples.size(), 17u);
  for (const Example& example : examples) {
    SCOPED_TRACE(example.name);
    sandbox->Reset();
    // "Get a message" needs a message to exist.
    rio::SendMessageRequest send;
    send.set_identifier(kIdentifier);
    send.mutable_message()->set_type(rio::MESSAGE_TYPE_TEXT);
    send.mutable_message()->set_text("seed");
    rio::SendMessageResponse sent;
    ASSERT_TRUE(rio::MessageService::NewStub(gateway->channel())
                    ->SendMessage(Context().get(), send, &sent)
                    .ok());
    sandbox->ClearRequests();

    example.call(gateway->channel(), sent.message_id());

    const json requests = sandbox->Requests();
    ASSERT_EQ(requests.size(), 1u) << requests.dump(2);
    const json& got = requests[0];
    const std::string want_path =
        absl::StrReplaceAll(example.path, {{"{identifier}", kIdentifier},
                                           {"{messageId}", std::to_string(sent.message_id())}});
    EXPECT_EQ(got["method"], example.method);
    EXPECT_EQ(got["path"], want_path);
    if (example.body.empty()) {
      EXPECT_EQ(got["body"], "");
    } else {
      EXPECT_EQ(json::parse(got["body"].get<std::string>()), json::parse(example.body));
    }
    EXPECT_EQ(got["headers"].value("authorization", ""), "Bearer sandbox-token");
  }
}

}  // namespace
}  // namespace gateway::testing
