#include "upstream/binding/route.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gateway/v1/annotations.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "respondio/v2/conversation_service.pb.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/tag_service.pb.h"
#include "test.pb.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::BadRequestFieldOf;
using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;
using nlohmann::json;

const google::protobuf::MethodDescriptor* Method(const std::string& full_name) {
  const auto* method =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name);
  EXPECT_NE(method, nullptr) << full_name;
  return method;
}

// The route as the proto declares it.
Route DeclaredRoute(const std::string& full_name) {
  const auto* method = Method(full_name);
  auto route = CompileRoute(method, method->options().GetExtension(gateway::v1::binding),
                            method->options().GetExtension(gateway::v1::policy));
  EXPECT_TRUE(route.ok()) << route.status();
  return route.ok() ? *std::move(route) : Route();
}

gateway::v1::Binding MakeBinding(const std::string& method, const std::string& path,
                                 const std::string& body = "") {
  gateway::v1::Binding binding;
  binding.set_upstream("test");
  binding.set_method(method);
  binding.set_path(path);
  binding.set_body(body);
  return binding;
}

Route TestRoute(const std::string& rpc, const gateway::v1::Binding& binding) {
  auto route = CompileRoute(Method(absl::StrCat("gatewaytest.v1.TestService.", rpc)), binding,
                            gateway::v1::Policy());
  EXPECT_TRUE(route.ok()) << route.status();
  return route.ok() ? *std::move(route) : Route();
}

UpstreamRequestParts Build(const Route& route, const google::protobuf::Message& request,
                           const PathDefaults& defaults = {},
                           const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  auto parts = BuildUpstreamRequest(route, request, defaults, extra);
  EXPECT_TRUE(parts.ok()) << parts.status();
  return parts.ok() ? *std::move(parts) : UpstreamRequestParts();
}

void ExpectInvalidField(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
  EXPECT_EQ(BadRequestFieldOf(status), field);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_ARGUMENT");
}

// ---- path expansion and percent-encoding ----

TEST(PathExpansion, SlashAndQuestionMarkInIdentifierStayInsideTheSegment) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  respondio::v2::GetContactRequest request;
  request.set_identifier("email:a/b?c@x.io");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query, "/contact/email:a%2Fb%3Fc@x.io");
  EXPECT_EQ(parts.body, "");
  EXPECT_FALSE(parts.has_body);
}

TEST(PathExpansion, PlusOfPhoneIdentifierIsEscaped) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  respondio::v2::GetContactRequest request;
  request.set_identifier("phone:+60123456789");
  EXPECT_EQ(Build(route, request).path_and_query, "/contact/phone:%2B60123456789");
}

TEST(PathExpansion, SpaceHashPercentAndUnicodeAreEscaped) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  respondio::v2::GetContactRequest request;
  request.set_identifier("email:a b#c%d@x.io");
  EXPECT_EQ(Build(route, request).path_and_query, "/contact/email:a%20b%23c%25d@x.io");
  request.set_identifier("email:jos\xC3\xA9@x.io");  // josé
  EXPECT_EQ(Build(route, request).path_and_query, "/contact/email:jos%C3%A9@x.io");
}

TEST(PercentEncodePathSegment, EscapesEverythingButUnreservedColonAndAt) {
  EXPECT_EQ(PercentEncodePathSegment("AZaz09-._~:@"), "AZaz09-._~:@");
  EXPECT_EQ(PercentEncodePathSegment("a/b"), "a%2Fb");
  EXPECT_EQ(PercentEncodePathSegment("a?b"), "a%3Fb");
  EXPECT_EQ(PercentEncodePathSegment("a b"), "a%20b");
  EXPECT_EQ(PercentEncodePathSegment("#"), "%23");
  EXPECT_EQ(PercentEncodePathSegment("100%"), "100%25");
  EXPECT_EQ(PercentEncodePathSegment("+"), "%2B");
  EXPECT_EQ(PercentEncodePathSegment("&=;,"), "%26%3D%3B%2C");
  EXPECT_EQ(PercentEncodePathSegment("\xC3\xA9"), "%C3%A9");               // é
  EXPECT_EQ(PercentEncodePathSegment("\xE6\x97\xA5"), "%E6%97%A5");        // 日
  EXPECT_EQ(PercentEncodePathSegment("\xF0\x9F\x98\x80"), "%F0%9F%98%80");  // 😀
  EXPECT_EQ(PercentEncodePathSegment(".."), "..");
  EXPECT_EQ(PercentEncodePathSegment(""), "");
}

TEST(PercentEncodeQuery, AlsoEscapesColonAndAt) {
  EXPECT_EQ(PercentEncodeQuery("id:1"), "id%3A1");
  EXPECT_EQ(PercentEncodeQuery("a@b"), "a%40b");
  EXPECT_EQ(PercentEncodeQuery("a b&c=d+e"), "a%20b%26c%3Dd%2Be");
  EXPECT_EQ(PercentEncodeQuery("AZaz09-._~"), "AZaz09-._~");
}

TEST(PathExpansion, EmptyPathFieldIsInvalidArgumentNamingTheField) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  respondio::v2::GetContactRequest request;
  auto parts = BuildUpstreamRequest(route, request, {});
  ExpectInvalidField(parts.status(), "identifier");
}

TEST(PathExpansion, NumericPlaceholders) {
  const Route route = DeclaredRoute("respondio.v2.MessageService.GetMessage");
  respondio::v2::GetMessageRequest request;
  request.set_identifier("id:42");
  request.set_message_id(9007199254740993);  // 2^53 + 1: exact, not via double
  EXPECT_EQ(Build(route, request).path_and_query, "/contact/id:42/message/9007199254740993");

  request.set_message_id(0);
  ExpectInvalidField(BuildUpstreamRequest(route, request, {}).status(), "message_id");
}

TEST(PathExpansion, PathDefaultsFillZeroOrEmptyFields) {
  const Route route = TestRoute(
      "Search", MakeBinding("GET", "/api/v1/accounts/{account_id}/inboxes/{inbox}/search"));
  gatewaytest::v1::SearchRequest request;
  request.set_inbox("main");
  EXPECT_EQ(Build(route, request, {{"account_id", "1"}}).path_and_query,
            "/api/v1/accounts/1/inboxes/main/search");
  // A set field wins over the default.
  request.set_account_id(7);
  EXPECT_EQ(Build(route, request, {{"account_id", "1"}}).path_and_query,
            "/api/v1/accounts/7/inboxes/main/search");
  // Default values are encoded like field values.
  request.set_inbox("");
  EXPECT_EQ(Build(route, request, {{"inbox", "a/b"}}).path_and_query,
            "/api/v1/accounts/7/inboxes/a%2Fb/search");
  // No default: the field is named.
  request.set_account_id(0);
  ExpectInvalidField(BuildUpstreamRequest(route, request, {{"inbox", "x"}}).status(),
                     "account_id");
}

TEST(PathExpansion, DottedPlaceholderReachesIntoSubMessage) {
  const Route route = TestRoute("Nested", MakeBinding("POST", "/scope/{scope.name}/notes", "*"));
  gatewaytest::v1::NestedRequest request;
  request.mutable_scope()->set_name("a/b");
  request.set_note("hi");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query, "/scope/a%2Fb/notes");
  EXPECT_EQ(json::parse(parts.body), json::parse(R"({"note":"hi"})"));

  request.clear_scope();
  ExpectInvalidField(BuildUpstreamRequest(route, request, {}).status(), "scope.name");
}

// ---- query parameters ----

TEST(QueryParameters, FieldsNotInPathOrBodyBecomeQueryParameters) {
  const Route route = TestRoute("Search", MakeBinding("GET", "/search/{account_id}"));
  gatewaytest::v1::SearchRequest request;
  request.set_account_id(3);
  request.set_query("hello world&x=1");
  request.set_limit(5);
  request.set_archived(true);
  request.set_color(gatewaytest::v1::COLOR_DARK_RED);
  request.add_labels("a");
  request.add_labels("b c");
  request.add_ids(1);
  request.add_ids(2);
  request.set_sort_order("id:desc");
  // Standard fields are never sent.
  request.set_page_size(10);
  request.set_page_token("tok");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query,
            "/search/3?query=hello%20world%26x%3D1&limit=5&archived=true&color=dark_red"
            "&labels=a&labels=b%20c&ids=1&ids=2&sortOrder=id%3Adesc");
  EXPECT_FALSE(parts.has_body);
  EXPECT_EQ(parts.body, "");
}

TEST(QueryParameters, DefaultValuesAreOmittedAndRestValueUsed) {
  const Route route = TestRoute("Search", MakeBinding("GET", "/search/{account_id}"));
  gatewaytest::v1::SearchRequest request;
  request.set_account_id(3);
  EXPECT_EQ(Build(route, request).path_and_query, "/search/3");
  request.set_color(gatewaytest::v1::COLOR_BLUE);
  EXPECT_EQ(Build(route, request).path_and_query, "/search/3?color=azure");
}

TEST(QueryParameters, ExtraQueryIsAppendedAfterFieldParameters) {
  const Route route = TestRoute("Search", MakeBinding("GET", "/search/{account_id}"));
  gatewaytest::v1::SearchRequest request;
  request.set_account_id(3);
  request.set_limit(2);
  EXPECT_EQ(Build(route, request, {}, {{"cursorId", "55"}, {"limit", "10"}}).path_and_query,
            "/search/3?limit=2&cursorId=55&limit=10");

  const Route list = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  respondio::v2::ListContactsRequest list_request;
  list_request.set_page_size(10);
  list_request.set_page_token("opaque");
  EXPECT_EQ(Build(list, list_request, {}, {{"cursorId", "123"}, {"limit", "10"}}).path_and_query,
            "/contact/list?cursorId=123&limit=10");
}

// ---- bodies ----

TEST(Body, StarExcludesPathFieldsRequestIdPageSizeAndPageToken) {
  const Route route = TestRoute("Search", MakeBinding("POST", "/search/{account_id}", "*"));
  gatewaytest::v1::SearchRequest request;
  request.set_account_id(3);
  request.set_inbox("main");
  request.set_limit(5);
  request.add_ids(9007199254740993);
  request.set_page_size(10);
  request.set_page_token("tok");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  const UpstreamRequestParts parts = Build(route, request);
  // With body "*" nothing goes to the query string.
  EXPECT_EQ(parts.path_and_query, "/search/3");
  EXPECT_TRUE(parts.has_body);
  EXPECT_EQ(json::parse(parts.body),
            json::parse(R"({"inbox":"main","limit":5,"ids":[9007199254740993]})"));
}

TEST(Body, StarOnRespondioUpdateContact) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.UpdateContact");
  respondio::v2::UpdateContactRequest request;
  request.set_identifier("id:1");
  request.set_first_name("Ann");
  request.set_country_code("MY");
  auto* field = request.add_custom_fields();
  field->set_name("plan");
  field->set_value("gold");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(route.binding.method(), "PUT");
  EXPECT_EQ(parts.path_and_query, "/contact/id:1");
  EXPECT_EQ(json::parse(parts.body),
            json::parse(R"({"firstName":"Ann","countryCode":"MY",
                            "customFields":[{"name":"plan","value":"gold"}]})"));
}

TEST(Body, EmptyStarBodyIsAnEmptyObject) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.CreateContact");
  respondio::v2::CreateContactRequest request;
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_TRUE(parts.has_body);
  EXPECT_EQ(parts.body, "{}");
}

TEST(Body, TagsFieldIsSentAsBareArray) {
  const Route route = DeclaredRoute("respondio.v2.TagService.AddContactTags");
  respondio::v2::AddContactTagsRequest request;
  request.set_identifier("id:1");
  request.add_tags("vip");
  request.add_tags("newsletter");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(route.binding.method(), "POST");
  EXPECT_EQ(parts.path_and_query, "/contact/id:1/tag");
  EXPECT_TRUE(parts.has_body);
  EXPECT_EQ(parts.body, R"(["vip","newsletter"])");
}

TEST(Body, DeleteCarriesABody) {
  const Route route = DeclaredRoute("respondio.v2.TagService.RemoveContactTags");
  respondio::v2::RemoveContactTagsRequest request;
  request.set_identifier("email:ann@example.com");
  request.add_tags("vip");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(route.binding.method(), "DELETE");
  EXPECT_EQ(parts.path_and_query, "/contact/email:ann@example.com/tag");
  EXPECT_TRUE(parts.has_body);
  EXPECT_EQ(parts.body, R"(["vip"])");
}

TEST(Body, EmptyRepeatedBodyFieldIsAnEmptyArray) {
  const Route route = DeclaredRoute("respondio.v2.TagService.AddContactTags");
  respondio::v2::AddContactTagsRequest request;
  request.set_identifier("id:1");
  EXPECT_EQ(Build(route, request).body, "[]");
}

TEST(Body, DeleteWithoutBody) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.DeleteContact");
  respondio::v2::DeleteContactRequest request;
  request.set_identifier("id:9");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  const UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query, "/contact/id:9");
  EXPECT_FALSE(parts.has_body);
}

TEST(Body, AssignConversationSendsNullWhenAssigneeUnset) {
  const Route route = DeclaredRoute("respondio.v2.ConversationService.AssignConversation");
  respondio::v2::AssignConversationRequest request;
  request.set_identifier("id:5");
  UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query, "/contact/id:5/conversation/assignee");
  EXPECT_EQ(parts.body, R"({"assignee":null})");

  request.set_assignee("email:agent@example.com");
  parts = Build(route, request);
  EXPECT_EQ(parts.body, R"({"assignee":"email:agent@example.com"})");
}

TEST(Body, SendMessageWritesInt64AsNumberAndEnumAsRestString) {
  const Route route = DeclaredRoute("respondio.v2.MessageService.SendMessage");
  respondio::v2::SendMessageRequest request;
  request.set_identifier("id:1");
  request.set_channel_id(123);
  request.mutable_message()->set_type(respondio::v2::MESSAGE_TYPE_TEXT);
  request.mutable_message()->set_text("Hello");
  request.set_request_id("123e4567-e89b-12d3-a456-426614174000");
  UpstreamRequestParts parts = Build(route, request);
  EXPECT_EQ(parts.path_and_query, "/contact/id:1/message");
  const json body = json::parse(parts.body);
  EXPECT_EQ(body, json::parse(R"({"channelId":123,"message":{"type":"text","text":"Hello"}})"));
  EXPECT_TRUE(body["channelId"].is_number_integer());

  // A 64-bit id beyond double precision stays exact.
  request.set_channel_id(9007199254740993);
  request.mutable_message()->set_type(respondio::v2::MESSAGE_TYPE_QUICK_REPLY);
  parts = Build(route, request);
  EXPECT_THAT(parts.body, HasSubstr(R"("channelId":9007199254740993)"));
  EXPECT_EQ(json::parse(parts.body)["message"]["type"], "quick_reply");
}

// ---- compilation ----

TEST(CompileRoute, DeclaredRouteResolvesStandardFields) {
  const Route list = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  EXPECT_EQ(list.rpc, "/respondio.v2.ContactService/ListContacts");
  EXPECT_TRUE(list.is_read());
  ASSERT_NE(list.pagination, nullptr);
  ASSERT_NE(list.page_size_field, nullptr);
  EXPECT_EQ(list.page_size_field->name(), "page_size");
  ASSERT_NE(list.page_token_field, nullptr);
  ASSERT_NE(list.next_page_token_field, nullptr);
  EXPECT_EQ(list.response_field, nullptr);

  const Route get = DeclaredRoute("respondio.v2.ContactService.GetContact");
  EXPECT_EQ(get.pagination, nullptr);
  ASSERT_NE(get.response_field, nullptr);
  EXPECT_EQ(get.response_field->name(), "contact");
  ASSERT_EQ(get.path.size(), 2u);
  EXPECT_EQ(get.path[0].literal, "/contact/");
  EXPECT_EQ(get.path[1].placeholder, "identifier");

  const Route tags = DeclaredRoute("respondio.v2.TagService.AddContactTags");
  ASSERT_NE(tags.body_field, nullptr);
  EXPECT_EQ(tags.body_field->name(), "tags");
  ASSERT_NE(tags.request_id_field, nullptr);
  EXPECT_FALSE(tags.is_read());
}

TEST(CompileRoute, LowerCaseVerbIsNormalized) {
  const auto* method = Method("respondio.v2.ContactService.GetContact");
  gateway::v1::Binding binding = method->options().GetExtension(gateway::v1::binding);
  binding.set_method("get");
  auto route = CompileRoute(method, binding, gateway::v1::Policy());
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->binding.method(), "GET");
}

// Compiles GetContact's binding after `edit` and expects an INVALID_ARGUMENT naming the RPC and
// `problem`.
void ExpectRouteError(const std::string& rpc, void (*edit)(gateway::v1::Binding*),
                      const std::string& problem) {
  const auto* method = Method(rpc);
  gateway::v1::Binding binding = method->options().GetExtension(gateway::v1::binding);
  edit(&binding);
  auto route = CompileRoute(method, binding, gateway::v1::Policy());
  ASSERT_FALSE(route.ok());
  EXPECT_EQ(route.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(route.status().message()), HasSubstr(rpc));
  EXPECT_THAT(std::string(route.status().message()), HasSubstr(problem));
  EXPECT_EQ(ErrorInfoOf(route.status()).reason(), "INVALID_ROUTE");
  EXPECT_EQ(ErrorInfoOf(route.status()).metadata().at("rpc"), rpc);
}

TEST(CompileRoute, PlaceholderNamingNoField) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_path("/contact/{contact_identifier}"); },
      "{contact_identifier}");
  ExpectRouteError(
      "respondio.v2.MessageService.SendMessage",
      [](gateway::v1::Binding* b) { b->set_path("/contact/{message.nope}"); }, "{message.nope}");
}

TEST(CompileRoute, PlaceholderNamingAMessageField) {
  ExpectRouteError(
      "respondio.v2.MessageService.SendMessage",
      [](gateway::v1::Binding* b) { b->set_path("/contact/{message}"); }, "not a scalar");
}

TEST(CompileRoute, UnclosedPlaceholder) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_path("/contact/{identifier"); }, "unclosed");
}

TEST(CompileRoute, UnknownBodyField) {
  ExpectRouteError(
      "respondio.v2.TagService.AddContactTags",
      [](gateway::v1::Binding* b) { b->set_body("labels"); }, "body field 'labels'");
}

TEST(CompileRoute, UnknownResponseField) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_response_body("person"); },
      "response_body field 'person'");
}

TEST(CompileRoute, BadVerb) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_method("FETCH"); }, "'FETCH'");
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact", [](gateway::v1::Binding* b) { b->set_method(""); },
      "unsupported HTTP method");
}

TEST(CompileRoute, UnknownPaginationHook) {
  ExpectRouteError(
      "respondio.v2.ContactService.ListContacts",
      [](gateway::v1::Binding* b) { b->set_pagination("offset_magic"); }, "'offset_magic'");
}

TEST(CompileRoute, PaginationWithoutPageFields) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_pagination("respondio_cursor"); }, "page_size");
}

TEST(CompileRoute, MissingUpstreamOrRelativePath) {
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact", [](gateway::v1::Binding* b) { b->set_upstream(""); },
      "no upstream");
  ExpectRouteError(
      "respondio.v2.ContactService.GetContact",
      [](gateway::v1::Binding* b) { b->set_path("contact/{identifier}"); }, "must start with '/'");
}

TEST(CompileRoute, MessageFieldCannotBeAQueryParameter) {
  ExpectRouteError(
      "respondio.v2.MessageService.SendMessage", [](gateway::v1::Binding* b) { b->set_body(""); },
      "field message would be a query parameter");
}

// ---- cache-tag templates ----

// Compiles `rpc`'s declared binding with `policy` (tag templates only).
absl::StatusOr<Route> WithPolicy(const std::string& rpc, const std::string& policy_text) {
  const auto* method = Method(rpc);
  gateway::v1::Policy policy;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(policy_text, &policy));
  return CompileRoute(method, method->options().GetExtension(gateway::v1::binding), policy);
}

TEST(TagTemplates, CompiledWithTheRouteAndExpandedWithoutLookups) {
  auto get = WithPolicy("respondio.v2.ContactService.GetContact",
                        R"(cache_tags: "contact:{identifier}" cache_tags: "contacts"
                           aliases: "contact:id:{contact.id}")");
  ASSERT_TRUE(get.ok()) << get.status();
  ASSERT_EQ(get->cache_tags.size(), 2u);
  respondio::v2::GetContactRequest request;
  request.set_identifier("id:1");
  EXPECT_EQ(ExpandTag(get->cache_tags[0], request), "contact:id:1");
  EXPECT_EQ(ExpandTag(get->cache_tags[1], request), "contacts");
  respondio::v2::GetContactResponse reply;
  reply.mutable_contact()->set_id(12);
  ASSERT_EQ(get->aliases.size(), 1u);
  EXPECT_EQ(ExpandTag(get->aliases[0], reply), "contact:id:12");
  // An unset placeholder names nothing.
  EXPECT_EQ(ExpandTag(get->aliases[0], respondio::v2::GetContactResponse()), "");

  auto merge = WithPolicy("respondio.v2.ContactService.MergeContacts",
                          R"(invalidates: "contact:id:{primary_contact_id}"
                             invalidates: "contact:id:{secondary_contact_id}")");
  ASSERT_TRUE(merge.ok()) << merge.status();
  respondio::v2::MergeContactsRequest m;
  m.set_primary_contact_id(42);
  EXPECT_EQ(ExpandTag(merge->invalidates[0], m), "contact:id:42");
  EXPECT_EQ(ExpandTag(merge->invalidates[1], m), "");
}

TEST(TagTemplates, BadTemplateIsAStartUpError) {
  for (const char* policy : {R"(cache_tags: "contact:{nope}")", R"(invalidates: "contact:{identifier")",
                             R"(aliases: "contact:{identifier}")",  // a request field, not the reply's
                             R"(cache_tags: "{contact}")"}) {
    auto route = WithPolicy("respondio.v2.ContactService.GetContact", policy);
    ASSERT_FALSE(route.ok()) << policy;
    EXPECT_EQ(ErrorInfoOf(route.status()).reason(), "INVALID_ROUTE") << policy;
  }
}

TEST(Route, OneNotionOfARead) {
  EXPECT_TRUE(WithPolicy("respondio.v2.ContactService.GetContact", "")->read);
  EXPECT_FALSE(WithPolicy("respondio.v2.CommentService.CreateComment", "")->read);
  // A POST the policy declares retry_safe (a search) is a read.
  EXPECT_TRUE(WithPolicy("respondio.v2.CommentService.CreateComment", "retry_safe: true")->read);
}

TEST(ExpandTemplate, ExpandsKnownPlaceholdersOnly) {
  respondio::v2::GetContactRequest get;
  get.set_identifier("id:1");
  EXPECT_EQ(ExpandTemplate("contact:{identifier}", get), "contact:id:1");
  EXPECT_EQ(ExpandTemplate("contacts", get), "contacts");
  EXPECT_EQ(ExpandTemplate("contact:{nope}", get), "contact:{nope}");
  EXPECT_EQ(ExpandTemplate("contact:{identifier", get), "contact:{identifier");

  respondio::v2::MergeContactsRequest merge;
  merge.set_primary_contact_id(42);
  EXPECT_EQ(ExpandTemplate("contact:id:{primary_contact_id}", merge), "contact:id:42");
  EXPECT_EQ(ExpandTemplate("contact:id:{secondary_contact_id}", merge), "contact:id:");

  respondio::v2::SendMessageRequest send;
  send.mutable_message()->set_text("hi");
  EXPECT_EQ(ExpandTemplate("{message.text}/{message}", send), "hi/{message}");
}

}  // namespace
}  // namespace gateway::upstream
