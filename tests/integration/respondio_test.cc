// respond.io end to end: gRPC call -> gateway -> sandbox upstream, on loopback processes.
// Each test resets the sandbox, calls the gateway, and asserts both the reply and what the
// upstream received.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.grpc.pb.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/conversation_service.grpc.pb.h"
#include "respondio/v2/custom_field_service.grpc.pb.h"
#include "respondio/v2/message_service.grpc.pb.h"
#include "respondio/v2/space_service.grpc.pb.h"
#include "respondio/v2/tag_service.grpc.pb.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

using ::testing::Contains;
using ::testing::Not;
using nlohmann::json;
namespace rio = ::respondio::v2;

// Seed data of the sandbox.
constexpr int64_t kAda = 12345;
constexpr int64_t kSecond = 67890;
constexpr int64_t kWhatsAppChannel = 123;

class RespondioTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sandbox_ = Sandbox::Start({"--rate_limits=false"}).release();
    ASSERT_NE(sandbox_, nullptr);
    // The sandbox is reset between tests, behind the gateway's back: no reply cache here (the
    // cache has its own tests in shared_budget_test).
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--cache_max_bytes=0"})
                   .release();
    ASSERT_NE(gateway_, nullptr);
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete sandbox_;
  }
  void SetUp() override {
    ASSERT_NE(gateway_, nullptr);
    sandbox_->Reset();
    contacts_ = rio::ContactService::NewStub(gateway_->channel());
    messages_ = rio::MessageService::NewStub(gateway_->channel());
    conversations_ = rio::ConversationService::NewStub(gateway_->channel());
    comments_ = rio::CommentService::NewStub(gateway_->channel());
    tags_ = rio::TagService::NewStub(gateway_->channel());
    fields_ = rio::CustomFieldService::NewStub(gateway_->channel());
    space_ = rio::SpaceService::NewStub(gateway_->channel());
  }

  // The only request the sandbox saw since the last reset/clear.
  json OnlyRequest() {
    json requests = sandbox_->Requests();
    EXPECT_EQ(requests.size(), 1u) << requests.dump(2);
    return requests.empty() ? json::object() : requests.back();
  }

  static json Body(const json& request) {
    const std::string body = request.value("body", "");
    return body.empty() ? json() : json::parse(body, nullptr, false);
  }

  rio::Contact MustGet(const std::string& identifier) {
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    grpc::Status status = contacts_->GetContact(Context().get(), request, &reply);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return reply.contact();
  }

  static Sandbox* sandbox_;
  static Gateway* gateway_;
  std::unique_ptr<rio::ContactService::Stub> contacts_;
  std::unique_ptr<rio::MessageService::Stub> messages_;
  std::unique_ptr<rio::ConversationService::Stub> conversations_;
  std::unique_ptr<rio::CommentService::Stub> comments_;
  std::unique_ptr<rio::TagService::Stub> tags_;
  std::unique_ptr<rio::CustomFieldService::Stub> fields_;
  std::unique_ptr<rio::SpaceService::Stub> space_;
};

Sandbox* RespondioTest::sandbox_ = nullptr;
Gateway* RespondioTest::gateway_ = nullptr;

// ---- ContactService ----

TEST_F(RespondioTest, CreateContactReturnsTheNewContact) {
  rio::CreateContactRequest request;
  request.set_first_name("Grace");
  request.set_last_name("Hopper");
  request.set_email("grace@example.com");
  request.set_phone("+60111111111");
  rio::CreateContactResponse reply;
  grpc::Status status = contacts_->CreateContact(Context().get(), request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  json sent = OnlyRequest();
  EXPECT_EQ(sent["method"], "POST");
  EXPECT_EQ(sent["path"], "/contact");
  EXPECT_EQ(Body(sent), json::parse(R"({"firstName":"Grace","lastName":"Hopper",
      "email":"grace@example.com","phone":"+60111111111"})"));
  EXPECT_EQ(MustGet("email:grace@example.com").first_name(), "Grace");
}

TEST_F(RespondioTest, CreateOrUpdateContactCreatesThenUpdates) {
  rio::CreateOrUpdateContactRequest request;
  request.set_identifier("email:new@example.com");
  request.set_email("new@example.com");
  request.set_first_name("First");
  rio::CreateOrUpdateContactResponse reply;
  ASSERT_TRUE(contacts_->CreateOrUpdateContact(Context().get(), request, &reply).ok());
  const rio::Contact created = MustGet("email:new@example.com");
  EXPECT_EQ(created.first_name(), "First");
  request.set_first_name("Second");
  ASSERT_TRUE(contacts_->CreateOrUpdateContact(Context().get(), request, &reply).ok());
  const rio::Contact updated = MustGet("email:new@example.com");
  EXPECT_EQ(updated.first_name(), "Second");
  EXPECT_EQ(updated.id(), created.id());
}

TEST_F(RespondioTest, ListContactsPagesThroughEveryContactOnce) {
  for (int i = 0; i < 5; ++i) {
    rio::CreateContactRequest create;
    create.set_first_name(absl::StrCat("Page", i));
    create.set_email(absl::StrCat("page", i, "@example.com"));
    rio::CreateContactResponse created;
    ASSERT_TRUE(contacts_->CreateContact(Context().get(), create, &created).ok());
  }
  std::set<int64_t> seen;
  std::string token;
  int pages = 0;
  do {
    rio::ListContactsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    rio::ListContactsResponse reply;
    grpc::Status status = contacts_->ListContacts(Context().get(), request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(reply.items_size(), 2);
    for (const auto& c : reply.items()) EXPECT_TRUE(seen.insert(c.id()).second) << c.id();
    token = reply.next_page_token();
    ASSERT_LT(++pages, 20);
  } while (!token.empty());
  EXPECT_EQ(seen.size(), 7u);  // two seeded + five created
  EXPECT_THAT(seen, Contains(kAda));
  // The gateway asked the upstream with its cursor parameters.
  json requests = sandbox_->Requests();
  EXPECT_EQ(requests.back()["path"], "/contact/list");
  EXPECT_THAT(requests.back()["query"].get<std::string>(), ::testing::HasSubstr("limit=2"));
  EXPECT_THAT(requests.back()["query"].get<std::string>(), ::testing::HasSubstr("cursorId="));
}

TEST_F(RespondioTest, GetContactByIdEmailAndPhone) {
  for (const std::string identifier :
       {"id:12345", "email:ada.lovelace@example.com", "phone:+60123450001"}) {
    rio::Contact contact = MustGet(identifier);
    EXPECT_EQ(contact.id(), kAda) << identifier;
    EXPECT_EQ(contact.first_name(), "Ada") << identifier;
    EXPECT_EQ(contact.email(), "ada.lovelace@example.com") << identifier;
  }
}

TEST_F(RespondioTest, PathParametersAreEncodedSoTheyCannotChangeThePath) {
  rio::CreateContactRequest create;
  create.set_first_name("Odd");
  create.set_email("a/b?c@x.io");
  rio::CreateContactResponse created;
  ASSERT_TRUE(contacts_->CreateContact(Context().get(), create, &created).ok());
  sandbox_->ClearRequests();
  rio::Contact contact = MustGet("email:a/b?c@x.io");
  EXPECT_EQ(contact.first_name(), "Odd");
  json sent = OnlyRequest();
  EXPECT_EQ(sent["raw_path"], "/contact/email:a%2Fb%3Fc@x.io");
  EXPECT_EQ(sent["path"], "/contact/email:a/b?c@x.io");
  EXPECT_EQ(sent["query"], "");
}

TEST_F(RespondioTest, UpdateContactChangesOnlyGivenFields) {
  rio::UpdateContactRequest request;
  request.set_identifier("id:12345");
  request.set_last_name("Lovelace");
  rio::UpdateContactResponse reply;
  ASSERT_TRUE(contacts_->UpdateContact(Context().get(), request, &reply).ok());
  json sent = OnlyRequest();
  EXPECT_EQ(sent["method"], "PUT");
  EXPECT_EQ(Body(sent), json::parse(R"({"lastName":"Lovelace"})"));
  rio::Contact contact = MustGet("id:12345");
  EXPECT_EQ(contact.last_name(), "Lovelace");
  EXPECT_EQ(contact.first_name(), "Ada");
}

TEST_F(RespondioTest, DeleteContactRemovesIt) {
  rio::DeleteContactRequest request;
  request.set_identifier("id:67890");
  rio::DeleteContactResponse reply;
  ASSERT_TRUE(contacts_->DeleteContact(Context().get(), request, &reply).ok());
  rio::GetContactRequest get;
  get.set_identifier("id:67890");
  rio::GetContactResponse got;
  EXPECT_EQ(contacts_->GetContact(Context().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(RespondioTest, MergeContactsKeepsThePrimary) {
  rio::AddContactTagsRequest tag;
  tag.set_identifier("id:67890");
  tag.add_tags("from-secondary");
  rio::AddContactTagsResponse tagged;
  ASSERT_TRUE(tags_->AddContactTags(Context().get(), tag, &tagged).ok());
  rio::MergeContactsRequest request;
  request.set_primary_contact_id(kAda);
  request.set_secondary_contact_id(kSecond);
  rio::MergeContactsResponse reply;
  grpc::Status status = contacts_->MergeContacts(Context().get(), request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.contact().id(), kAda);
  EXPECT_THAT(MustGet("id:12345").tags(), Contains("from-secondary"));
  rio::GetContactRequest get;
  get.set_identifier("id:67890");
  rio::GetContactResponse got;
  EXPECT_EQ(contacts_->GetContact(Context().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(RespondioTest, ListAndGetContactChannels) {
  rio::ListContactChannelsRequest list;
  list.set_identifier("id:12345");
  rio::ListContactChannelsResponse channels;
  grpc::Status status = contacts_->ListContactChannels(Context().get(), list, &channels);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(channels.items_size(), 1);
  EXPECT_EQ(channels.items(0).id(), kWhatsAppChannel);
  EXPECT_EQ(channels.next_page_token(), "");

  rio::GetContactChannelRequest get;
  get.set_identifier("id:12345");
  get.set_channel_id(kWhatsAppChannel);
  rio::GetContactChannelResponse channel;
  status = contacts_->GetContactChannel(Context().get(), get, &channel);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(channel.channel().id(), kWhatsAppChannel);
  EXPECT_EQ(channel.channel().source(), "whatsapp");
  EXPECT_EQ(sandbox_->Requests().back()["path"], "/contact/id:12345/channel/123");
}

// ---- MessageService ----

TEST_F(RespondioTest, SendMessageThenGetItBack) {
  rio::SendMessageRequest send;
  send.set_identifier("phone:+60123450001");
  send.set_channel_id(kWhatsAppChannel);
  send.mutable_message()->set_type(rio::MESSAGE_TYPE_TEXT);
  send.mutable_message()->set_text("Hello from the gateway");
  rio::SendMessageResponse sent;
  grpc::Status status = messages_->SendMessage(Context().get(), send, &sent);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(sent.message_id(), 0);
  EXPECT_FALSE(sent.status().empty());

  rio::GetMessageRequest get;
  get.set_identifier("id:12345");
  get.set_message_id(sent.message_id());
  rio::GetMessageResponse got;
  status = messages_->GetMessage(Context().get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.message().message_id(), sent.message_id());
  EXPECT_EQ(got.message().contact_id(), kAda);
  EXPECT_EQ(got.message().channel_id(), kWhatsAppChannel);
  EXPECT_EQ(got.message().traffic(), rio::MESSAGE_TRAFFIC_OUTGOING);
  EXPECT_EQ(got.message().message().type(), rio::MESSAGE_TYPE_TEXT);
  EXPECT_EQ(got.message().message().text(), "Hello from the gateway");
}

TEST_F(RespondioTest, GetUnknownMessageIsNotFound) {
  rio::GetMessageRequest get;
  get.set_identifier("id:12345");
  get.set_message_id(987654321);
  rio::GetMessageResponse got;
  EXPECT_EQ(messages_->GetMessage(Context().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// ---- ConversationService ----

TEST_F(RespondioTest, CloseAndReopenConversation) {
  rio::UpdateConversationStatusRequest request;
  request.set_identifier("id:12345");
  request.set_status(rio::CONVERSATION_STATUS_CLOSE);
  rio::UpdateConversationStatusResponse reply;
  grpc::Status status = conversations_->UpdateConversationStatus(Context().get(), request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Body(OnlyRequest()), json::parse(R"({"status":"close"})"));
  EXPECT_EQ(reply.conversation().status(), rio::CONVERSATION_STATUS_CLOSE);
  request.set_status(rio::CONVERSATION_STATUS_OPEN);
  ASSERT_TRUE(conversations_->UpdateConversationStatus(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.conversation().status(), rio::CONVERSATION_STATUS_OPEN);
}

TEST_F(RespondioTest, AssignThenUnassignWithExplicitNull) {
  rio::AssignConversationRequest assign;
  assign.set_identifier("id:12345");
  assign.set_assignee("email:agent@example.com");
  rio::AssignConversationResponse reply;
  grpc::Status status = conversations_->AssignConversation(Context().get(), assign, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Body(OnlyRequest()), json::parse(R"({"assignee":"email:agent@example.com"})"));
  sandbox_->ClearRequests();
  rio::AssignConversationRequest unassign;
  unassign.set_identifier("id:12345");
  ASSERT_TRUE(conversations_->AssignConversation(Context().get(), unassign, &reply).ok());
  EXPECT_EQ(Body(OnlyRequest()), json::parse(R"({"assignee":null})"));
}

// ---- CommentService ----

TEST_F(RespondioTest, CreateCommentAndRejectOverlongText) {
  rio::CreateCommentRequest request;
  request.set_identifier("id:12345");
  request.set_text(std::string(1000, 'x'));
  rio::CreateCommentResponse reply;
  grpc::Status status = comments_->CreateComment(Context().get(), request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(OnlyRequest()["path"], "/contact/id:12345/comment");
  sandbox_->ClearRequests();
  request.set_text(std::string(1001, 'x'));
  status = comments_->CreateComment(Context().get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(BadRequestOf(status).has_value());
  EXPECT_EQ(BadRequestOf(status)->field_violations(0).field(), "text");
  EXPECT_TRUE(sandbox_->Requests().empty()) << "validation must not spend upstream budget";
}

// ---- TagService ----

TEST_F(RespondioTest, AddAndRemoveContactTags) {
  rio::AddContactTagsRequest add;
  add.set_identifier("id:12345");
  add.add_tags("vip");
  add.add_tags("newsletter");
  rio::AddContactTagsResponse added;
  ASSERT_TRUE(tags_->AddContactTags(Context().get(), add, &added).ok());
  EXPECT_EQ(Body(OnlyRequest()), json::parse(R"(["vip","newsletter"])"));
  EXPECT_THAT(MustGet("id:12345").tags(), Contains("vip"));

  rio::RemoveContactTagsRequest remove;
  remove.set_identifier("id:12345");
  remove.add_tags("vip");
  rio::RemoveContactTagsResponse removed;
  ASSERT_TRUE(tags_->RemoveContactTags(Context().get(), remove, &removed).ok());
  const rio::Contact contact = MustGet("id:12345");
  EXPECT_THAT(contact.tags(), Not(Contains("vip")));
  EXPECT_THAT(contact.tags(), Contains("newsletter"));
}

TEST_F(RespondioTest, TooManyTagsIsRejectedBeforeTheUpstream) {
  rio::AddContactTagsRequest add;
  add.set_identifier("id:12345");
  for (int i = 0; i < 11; ++i) add.add_tags(absl::StrCat("t", i));
  rio::AddContactTagsResponse added;
  grpc::Status status = tags_->AddContactTags(Context().get(), add, &added);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("field"), "tags");
  EXPECT_TRUE(sandbox_->Requests().empty());
}

TEST_F(RespondioTest, WorkspaceTagLifecycle) {
  rio::CreateTagRequest create;
  create.set_name("gold");
  rio::CreateTagResponse created;
  grpc::Status status = tags_->CreateTag(Context().get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(created.tag().id(), 0);
  EXPECT_EQ(created.tag().name(), "gold");

  rio::UpdateTagRequest update;
  update.set_tag_id(created.tag().id());
  update.set_name("platinum");
  rio::UpdateTagResponse updated;
  ASSERT_TRUE(tags_->UpdateTag(Context().get(), update, &updated).ok());
  EXPECT_EQ(sandbox_->Requests().back()["path"], absl::StrCat("/tag/", created.tag().id()));
  EXPECT_EQ(Body(sandbox_->Requests().back()), json::parse(R"({"name":"platinum"})"));

  rio::DeleteTagRequest remove;
  remove.set_tag_id(created.tag().id());
  rio::DeleteTagResponse removed;
  ASSERT_TRUE(tags_->DeleteTag(Context().get(), remove, &removed).ok());
  EXPECT_EQ(tags_->DeleteTag(Context().get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// ---- CustomFieldService ----

TEST_F(RespondioTest, CustomFieldsListCreateGet) {
  rio::CreateCustomFieldRequest create;
  create.set_name("plan");
  create.set_type(rio::CUSTOM_FIELD_TYPE_LIST);
  create.add_options("free");
  create.add_options("pro");
  rio::CreateCustomFieldResponse created;
  grpc::Status status = fields_->CreateCustomField(Context().get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Body(OnlyRequest()), json::parse(R"({"name":"plan","type":"list","options":["free","pro"]})"));
  EXPECT_GT(created.custom_field().id(), 0);
  EXPECT_EQ(created.custom_field().type(), rio::CUSTOM_FIELD_TYPE_LIST);

  rio::ListCustomFieldsRequest list;
  rio::ListCustomFieldsResponse fields;
  ASSERT_TRUE(fields_->ListCustomFields(Context().get(), list, &fields).ok());
  bool found = false;
  for (const auto& f : fields.items()) found = found || f.name() == "plan";
  EXPECT_TRUE(found);

  rio::GetCustomFieldRequest get;
  get.set_custom_field_id(created.custom_field().id());
  rio::GetCustomFieldResponse got;
  status = fields_->GetCustomField(Context().get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.custom_field().name(), "plan");
  EXPECT_EQ(got.custom_field().options_size(), 2);
}

TEST_F(RespondioTest, CreateCustomFieldNeedsAType) {
  rio::CreateCustomFieldRequest create;
  create.set_name("plan");
  rio::CreateCustomFieldResponse created;
  grpc::Status status = fields_->CreateCustomField(Context().get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadRequestOf(status)->field_violations(0).field(), "type");
  EXPECT_TRUE(sandbox_->Requests().empty());
}

// ---- SpaceService ----

TEST_F(RespondioTest, SpaceListsAndUser) {
  rio::ListSpaceChannelsRequest channels_request;
  rio::ListSpaceChannelsResponse channels;
  grpc::Status status = space_->ListSpaceChannels(Context().get(), channels_request, &channels);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(channels.items_size(), 2);
  EXPECT_EQ(channels.items(0).id(), kWhatsAppChannel);

  rio::ListClosingNotesRequest notes_request;
  rio::ListClosingNotesResponse notes;
  status = space_->ListClosingNotes(Context().get(), notes_request, &notes);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(notes.items_size(), 1);
  EXPECT_GT(notes.items(0).id(), 0);

  rio::ListSpaceUsersRequest users_request;
  users_request.set_page_size(1);
  rio::ListSpaceUsersResponse users;
  status = space_->ListSpaceUsers(Context().get(), users_request, &users);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(users.items_size(), 1);
  EXPECT_FALSE(users.next_page_token().empty());
  users_request.set_page_token(users.next_page_token());
  rio::ListSpaceUsersResponse more;
  ASSERT_TRUE(space_->ListSpaceUsers(Context().get(), users_request, &more).ok());
  ASSERT_EQ(more.items_size(), 1);
  EXPECT_NE(more.items(0).id(), users.items(0).id());

  rio::GetSpaceUserRequest get;
  get.set_user_id(users.items(0).id());
  rio::GetSpaceUserResponse user;
  status = space_->GetSpaceUser(Context().get(), get, &user);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(user.user().id(), users.items(0).id());
  EXPECT_FALSE(user.user().email().empty());
}

// ---- the error model ----

TEST_F(RespondioTest, UnknownContactIsNotFoundWithErrorInfo) {
  rio::GetContactRequest request;
  request.set_identifier("id:999999");
  rio::GetContactResponse reply;
  grpc::Status status = contacts_->GetContact(Context().get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  const google::rpc::ErrorInfo info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), "UPSTREAM_NOT_FOUND");
  EXPECT_EQ(info.domain(), "respondio");
  EXPECT_EQ(info.metadata().at("upstream_status"), "404");
}

TEST_F(RespondioTest, UpstreamRateLimitIsResourceExhaustedWithRetryInfo) {
  sandbox_->AddFault({{"path_regex", "^/contact/"},
                      {"method", "GET"},
                      {"fault", "status"},
                      {"status", 429},
                      {"retry_after", 3},
                      {"count", 1}});
  rio::GetContactRequest request;
  request.set_identifier("id:12345");
  rio::GetContactResponse reply;
  // The gateway would wait out Retry-After and retry a read; a deadline shorter than that gets
  // the upstream's answer at once.
  grpc::Status status = contacts_->GetContact(Context(absl::Seconds(2)).get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_RATE_LIMITED");
  ASSERT_TRUE(RetryInfoOf(status).has_value());
  EXPECT_EQ(RetryInfoOf(status)->retry_delay().seconds(), 3);
  ASSERT_TRUE(QuotaFailureOf(status).has_value());
  EXPECT_EQ(QuotaFailureOf(status)->violations(0).subject(), "contact_get");
}

TEST_F(RespondioTest, InvalidIdentifierNeverReachesTheUpstream) {
  for (const std::string bad : {"12345", "id:", "id:12a", "email:nope", "phone:60123"}) {
    rio::GetContactRequest request;
    request.set_identifier(bad);
    rio::GetContactResponse reply;
    grpc::Status status = contacts_->GetContact(Context().get(), request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    ASSERT_TRUE(BadRequestOf(status).has_value()) << bad;
    EXPECT_EQ(BadRequestOf(status)->field_violations(0).field(), "identifier");
  }
  EXPECT_TRUE(sandbox_->Requests().empty());
}

TEST_F(RespondioTest, MalformedPageTokenIsInvalidArgument) {
  rio::ListContactsRequest request;
  request.set_page_token("not-a-token");
  rio::ListContactsResponse reply;
  grpc::Status status = contacts_->ListContacts(Context().get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_PAGE_TOKEN");
  request.set_page_token("");
  request.set_page_size(101);
  EXPECT_EQ(contacts_->ListContacts(Context().get(), request, &reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(sandbox_->Requests().empty());
}

TEST(RespondioAuthTest, RejectedUpstreamTokenIsInternalNotUnauthenticated) {
  auto sandbox = Sandbox::Start();
  ASSERT_NE(sandbox, nullptr);
  const std::string token_file = WriteTempFile("wrong-token", "not-the-sandbox-token\n");
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox->base_url(),
                                 "--respondio_token_file=" + token_file});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::ContactService::NewStub(gateway->channel());
  rio::GetContactRequest request;
  request.set_identifier("id:12345");
  rio::GetContactResponse reply;
  grpc::Status status = stub->GetContact(Context().get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_AUTH_REJECTED");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("upstream_status"), "401");
  EXPECT_EQ(status.error_message().find("not-the-sandbox-token"), std::string::npos)
      << "the token must never appear in errors";
  EXPECT_EQ(gateway->process().output().find("not-the-sandbox-token"), std::string::npos);
}

TEST(RespondioUnconfiguredTest, UnreachableUpstreamIsUnavailable) {
  const int port = FreePort();  // nothing listens there
  auto gateway = Gateway::Start({absl::StrCat("--respondio_base_url=http://127.0.0.1:", port)});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::ContactService::NewStub(gateway->channel());
  rio::GetContactRequest request;
  request.set_identifier("id:1");
  rio::GetContactResponse reply;
  grpc::Status status = stub->GetContact(Context().get(), request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_UNREACHABLE");
}

}  // namespace
}  // namespace gateway::testing
