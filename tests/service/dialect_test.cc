// Dialects end to end inside the gateway: the route table each dialect compiles, the exact
// upstream requests it builds, and decoding of live-shaped replies (fixtures in testdata/live,
// written from what the live services send) with the drift they leave.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "chatwoot/v1/account_service.pb.h"
#include "chatwoot/v1/contact_service.pb.h"
#include "chatwoot/v1/conversation_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.pb.h"
#include "respondio/v2/conversation_service.pb.h"
#include "respondio/v2/custom_field_service.pb.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/tag_service.pb.h"
#include "service/route_table.h"
#include "upstream/binding/drift_report.h"
#include "upstream/pipeline/dispatcher.h"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using upstream::DriftKind;
using upstream::DriftReport;

RouteTable Build(const std::string& respondio, const std::string& chatwoot) {
  auto table = RouteTable::Build({}, {{"respondio", respondio}, {"chatwoot", chatwoot}});
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : RouteTable();
}

const RouteTable& Live() {
  static const RouteTable* const table = new RouteTable(Build("live", "live"));
  return *table;
}
const RouteTable& Openapi() {
  static const RouteTable* const table = new RouteTable(Build("openapi", "openapi"));
  return *table;
}

std::string Fixture(const std::string& name) {
  std::ifstream in("tests/service/testdata/live/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Request {
  std::string verb, path_and_query;
  json body;  // null when there is none
};

Request Expand(const RouteTable& table, const std::string& rpc,
               const google::protobuf::Message& request,
               std::vector<std::pair<std::string, std::string>> extra = {}) {
  const upstream::Route* route = table.Find(rpc);
  EXPECT_NE(route, nullptr) << rpc;
  if (route == nullptr) return {};
  auto parts = upstream::BuildUpstreamRequest(*route, request, {{"account_id", "1"}}, extra);
  EXPECT_TRUE(parts.ok()) << parts.status();
  if (!parts.ok()) return {};
  return {route->binding.method(), parts->path_and_query,
          parts->has_body ? json::parse(parts->body) : json()};
}

template <typename Reply>
Reply Decode(const RouteTable& table, const std::string& rpc, const std::string& body,
             DriftReport* drift, const std::string& cursor = "", int page_size = 0) {
  const upstream::Route* route = table.Find(rpc);
  EXPECT_NE(route, nullptr) << rpc;
  Reply reply;
  if (route == nullptr) return reply;
  auto bytes = upstream::DecodeReply(*route, route->binding.upstream(), cursor, page_size, body,
                                     drift);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (bytes.ok()) {
    EXPECT_TRUE(reply.ParseFromString(*bytes));
  }
  return reply;
}

int64_t Count(const DriftReport& drift, const std::string& rpc, const std::string& field,
              DriftKind kind) {
  for (const auto& e : drift.Snapshot()) {
    if (e.rpc == rpc && e.field == field && e.kind == kind) return e.count;
  }
  return 0;
}

// ---- route tables ----

struct Line {
  const char* rpc;
  const char* verb;
  const char* path;
};

// The live paths: respond.io's own clients' (formerly service/respondio_client_paths.json) and
// those of live-api.md.
constexpr Line kRespondioLive[] = {
    {"/respondio.v2.ContactService/CreateContact", "POST", "/contact/{identifier}"},
    {"/respondio.v2.ContactService/ListContacts", "POST", "/contact/list"},
    {"/respondio.v2.ContactService/ListContactChannels", "GET", "/contact/{identifier}/channels"},
    {"/respondio.v2.ContactService/UpdateContactLifecycle", "POST",
     "/contact/{identifier}/lifecycle/update"},
    {"/respondio.v2.ConversationService/UpdateConversationStatus", "POST",
     "/contact/{identifier}/conversation/status"},
    {"/respondio.v2.CustomFieldService/ListCustomFields", "GET", "/space/custom_field"},
    {"/respondio.v2.CustomFieldService/CreateCustomField", "POST", "/space/custom_field"},
    {"/respondio.v2.CustomFieldService/GetCustomField", "GET",
     "/space/custom_field/{custom_field_id}"},
    {"/respondio.v2.MessageService/ListMessages", "GET", "/contact/{identifier}/message/list"},
    {"/respondio.v2.TagService/ListTags", "GET", "/space/tag"},
    {"/respondio.v2.TagService/CreateTag", "POST", "/space/tag"},
    {"/respondio.v2.TagService/UpdateTag", "PUT", "/space/tag"},
    {"/respondio.v2.TagService/DeleteTag", "DELETE", "/space/tag"},
};

constexpr Line kRespondioOpenapi[] = {
    {"/respondio.v2.ContactService/CreateContact", "POST", "/contact"},
    {"/respondio.v2.ContactService/ListContacts", "GET", "/contact/list"},
    {"/respondio.v2.ContactService/ListContactChannels", "GET", "/contact/{identifier}/channel"},
    {"/respondio.v2.ConversationService/UpdateConversationStatus", "POST",
     "/contact/{identifier}/conversation"},
    {"/respondio.v2.CustomFieldService/ListCustomFields", "GET", "/custom_field"},
    {"/respondio.v2.TagService/UpdateTag", "PUT", "/tag/{tag_id}"},
    {"/respondio.v2.TagService/DeleteTag", "DELETE", "/tag/{tag_id}"},
};

TEST(DialectRoutes, LivePaths) {
  for (const Line& l : kRespondioLive) {
    SCOPED_TRACE(l.rpc);
    const upstream::Route* route = Live().Find(l.rpc);
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->dialect, "live");
    EXPECT_EQ(route->binding.method(), l.verb);
    EXPECT_EQ(route->binding.path(), l.path);
  }
}

TEST(DialectRoutes, OpenapiPaths) {
  for (const Line& l : kRespondioOpenapi) {
    SCOPED_TRACE(l.rpc);
    const upstream::Route* route = Openapi().Find(l.rpc);
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->dialect, "openapi");
    EXPECT_EQ(route->binding.method(), l.verb);
    EXPECT_EQ(route->binding.path(), l.path);
  }
}

TEST(DialectRoutes, PrintRoutesNamesTheDialectOnEveryLine) {
  for (const RouteTable* table : {&Live(), &Openapi()}) {
    const std::string printed = table->PrintRoutes();
    const std::string want = table == &Live() ? "live" : "openapi";
    int lines = 0;
    for (absl::string_view text : absl::StrSplit(printed, '\n', absl::SkipEmpty())) {
      const json line = json::parse(text.begin(), text.end());
      EXPECT_EQ(line["dialect"], want) << text;
      ++lines;
    }
    EXPECT_EQ(lines, static_cast<int>(table->routes().size()));
  }
}

TEST(DialectRoutes, UnknownDialectIsAnError) {
  auto table = RouteTable::Build({}, {{"respondio", "soap"}});
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("soap"));
}

TEST(DialectRoutes, EveryRouteKnowsTheOtherDialectsReplyShape) {
  const upstream::Route* channels = Live().Find("/respondio.v2.ContactService/ListContactChannels");
  ASSERT_NE(channels, nullptr);
  ASSERT_EQ(channels->reply_shapes.size(), 2u);  // live: whole reply; openapi: `items`
  EXPECT_EQ(channels->reply_shapes[0].dialect, "live");
  EXPECT_EQ(channels->reply_shapes[0].response_field, nullptr);
  EXPECT_EQ(channels->reply_shapes[1].dialect, "openapi");
  ASSERT_NE(channels->reply_shapes[1].response_field, nullptr);
  EXPECT_EQ(channels->reply_shapes[1].response_field->name(), "items");
}

// ---- the requests each dialect sends ----

TEST(DialectRequests, CreateContactSendsCustomFieldsSnakeCaseInLive) {
  respondio::v2::CreateContactRequest r;
  r.set_identifier("email:ada@example.com");
  r.set_first_name("Ada");
  r.set_email("ada@example.com");
  auto* cf = r.add_custom_fields();
  cf->set_name("plan");
  cf->set_value("gold");
  Request live = Expand(Live(), "/respondio.v2.ContactService/CreateContact", r);
  EXPECT_EQ(live.verb, "POST");
  EXPECT_EQ(live.path_and_query, "/contact/email:ada@example.com");
  EXPECT_EQ(live.body, json::parse(R"({"firstName":"Ada","email":"ada@example.com",
                                       "custom_fields":[{"name":"plan","value":"gold"}]})"));
  Request openapi = Expand(Openapi(), "/respondio.v2.ContactService/CreateContact", r);
  EXPECT_EQ(openapi.path_and_query, "/contact");
  EXPECT_EQ(openapi.body, json::parse(R"({"firstName":"Ada","email":"ada@example.com",
                                          "customFields":[{"name":"plan","value":"gold"}]})"));
}

TEST(DialectRequests, ListContactsIsAPostWithTheFilterInLive) {
  respondio::v2::ListContactsRequest r;
  r.set_search("ada");
  r.set_timezone("Asia/Kuala_Lumpur");
  (*r.mutable_filter()->mutable_fields())["$and"].mutable_list_value();
  Request live = Expand(Live(), "/respondio.v2.ContactService/ListContacts", r,
                        {{"cursorId", "5"}, {"limit", "2"}});
  EXPECT_EQ(live.verb, "POST");
  EXPECT_EQ(live.path_and_query, "/contact/list?cursorId=5&limit=2");
  EXPECT_EQ(live.body,
            json::parse(R"({"search":"ada","timezone":"Asia/Kuala_Lumpur","filter":{"$and":[]}})"));
  Request openapi = Expand(Openapi(), "/respondio.v2.ContactService/ListContacts", r,
                           {{"cursorId", "5"}, {"limit", "2"}});
  EXPECT_EQ(openapi.verb, "GET");
  EXPECT_EQ(openapi.path_and_query, "/contact/list?search=ada&cursorId=5&limit=2");
  EXPECT_TRUE(openapi.body.is_null());
}

TEST(DialectRequests, OpenConversationSendsEmptyCategoryAndSummaryInLive) {
  respondio::v2::UpdateConversationStatusRequest r;
  r.set_identifier("id:1001");
  r.set_status(respondio::v2::CONVERSATION_STATUS_OPEN);
  r.set_closing_note_id(3);
  Request live = Expand(Live(), "/respondio.v2.ConversationService/UpdateConversationStatus", r);
  EXPECT_EQ(live.path_and_query, "/contact/id:1001/conversation/status");
  EXPECT_EQ(live.body, json::parse(R"({"status":"open","category":"","summary":""})"));
  Request openapi =
      Expand(Openapi(), "/respondio.v2.ConversationService/UpdateConversationStatus", r);
  EXPECT_EQ(openapi.path_and_query, "/contact/id:1001/conversation");
  EXPECT_EQ(openapi.body, json::parse(R"({"status":"open","closingNoteId":3})"));
}

TEST(DialectRequests, AssignByUserIdEmailOrIdentifier) {
  const std::string rpc = "/respondio.v2.ConversationService/AssignConversation";
  respondio::v2::AssignConversationRequest by_id;
  by_id.set_identifier("id:1001");
  by_id.set_user_id(7);
  EXPECT_EQ(Expand(Live(), rpc, by_id).body, json::parse(R"({"assignee":7})"));
  EXPECT_EQ(Expand(Openapi(), rpc, by_id).body, json::parse(R"({"assignee":"id:7"})"));

  respondio::v2::AssignConversationRequest by_email;
  by_email.set_identifier("id:1001");
  by_email.set_user_email("grace@example.com");
  EXPECT_EQ(Expand(Live(), rpc, by_email).body, json::parse(R"({"assignee":"grace@example.com"})"));
  EXPECT_EQ(Expand(Openapi(), rpc, by_email).body,
            json::parse(R"({"assignee":"email:grace@example.com"})"));

  respondio::v2::AssignConversationRequest by_identifier;
  by_identifier.set_identifier("id:1001");
  by_identifier.set_assignee("id:9");
  EXPECT_EQ(Expand(Live(), rpc, by_identifier).body, json::parse(R"({"assignee":9})"));
  EXPECT_EQ(Expand(Openapi(), rpc, by_identifier).body, json::parse(R"({"assignee":"id:9"})"));

  respondio::v2::AssignConversationRequest nobody;
  nobody.set_identifier("id:1001");
  EXPECT_EQ(Expand(Live(), rpc, nobody).body, json::parse(R"({"assignee":null})"));
  EXPECT_EQ(Expand(Openapi(), rpc, nobody).body, json::parse(R"({"assignee":null})"));
}

TEST(DialectRequests, WorkspaceTagsByNameInLive) {
  respondio::v2::UpdateTagRequest update;
  update.set_tag_id(4);
  update.set_current_name("vip");
  update.set_name("VIP");
  update.set_color_code("#FF0000");
  update.set_emoji("⭐");
  Request live = Expand(Live(), "/respondio.v2.TagService/UpdateTag", update);
  EXPECT_EQ(live.verb, "PUT");
  EXPECT_EQ(live.path_and_query, "/space/tag");
  EXPECT_EQ(live.body,
            json::parse(R"({"name":"VIP","currentName":"vip","colorCode":"#FF0000","emoji":"⭐"})"));
  Request openapi = Expand(Openapi(), "/respondio.v2.TagService/UpdateTag", update);
  EXPECT_EQ(openapi.path_and_query, "/tag/4");
  EXPECT_EQ(openapi.body, json::parse(R"({"name":"VIP"})"));

  respondio::v2::DeleteTagRequest del;
  del.set_tag_id(4);
  del.set_name("VIP");
  live = Expand(Live(), "/respondio.v2.TagService/DeleteTag", del);
  EXPECT_EQ(live.verb, "DELETE");
  EXPECT_EQ(live.path_and_query, "/space/tag");
  EXPECT_EQ(live.body, json::parse(R"({"name":"VIP"})"));
  openapi = Expand(Openapi(), "/respondio.v2.TagService/DeleteTag", del);
  EXPECT_EQ(openapi.path_and_query, "/tag/4");
  EXPECT_TRUE(openapi.body.is_null());
}

TEST(DialectRequests, CustomFieldDefinitionInLiveNames) {
  respondio::v2::CreateCustomFieldRequest r;
  r.set_name("Plan");
  r.set_type(respondio::v2::CUSTOM_FIELD_TYPE_LIST);
  r.add_options("free");
  r.add_options("gold");
  r.set_description("Subscription plan");
  r.set_slug("plan");
  Request live = Expand(Live(), "/respondio.v2.CustomFieldService/CreateCustomField", r);
  EXPECT_EQ(live.path_and_query, "/space/custom_field");
  EXPECT_EQ(live.body, json::parse(R"({"name":"Plan","dataType":"list",
      "allowedValues":["free","gold"],"description":"Subscription plan","slug":"plan"})"));
  Request openapi = Expand(Openapi(), "/respondio.v2.CustomFieldService/CreateCustomField", r);
  EXPECT_EQ(openapi.path_and_query, "/custom_field");
  EXPECT_EQ(openapi.body, json::parse(R"({"name":"Plan","type":"list","options":["free","gold"]})"));
}

TEST(DialectRequests, ChatwootLabelsAsRailsArraysInLive) {
  chatwoot::v1::ListConversationsRequest r;
  r.add_labels("billing");
  r.add_labels("vip");
  Request live = Expand(Live(), "/chatwoot.v1.ConversationService/ListConversations", r);
  EXPECT_THAT(live.path_and_query, HasSubstr("labels[]=billing&labels[]=vip"));
  Request openapi = Expand(Openapi(), "/chatwoot.v1.ConversationService/ListConversations", r);
  EXPECT_THAT(openapi.path_and_query, HasSubstr("labels=billing&labels=vip"));
}

// ---- live-shaped replies ----

TEST(LiveReplies, GetContactKeepsCustomFieldsLifecycleCreatedAtAndTheAssigneeUser) {
  DriftReport drift;
  for (const RouteTable* table : {&Live(), &Openapi()}) {  // decoded whichever is spoken
    auto reply = Decode<respondio::v2::GetContactResponse>(
        *table, "/respondio.v2.ContactService/GetContact", Fixture("respondio_get_contact.json"),
        &drift);
    const respondio::v2::Contact& c = reply.contact();
    EXPECT_EQ(c.id(), 1001);
    EXPECT_EQ(c.first_name(), "Ada");
    EXPECT_EQ(c.lifecycle(), "Customer");
    EXPECT_EQ(c.created(), 1700000000);
    ASSERT_EQ(c.custom_fields_size(), 2);
    EXPECT_EQ(c.custom_fields(1).name(), "seats");
    EXPECT_EQ(c.custom_fields(1).value(), "12");
    EXPECT_FALSE(c.has_assignee());
    EXPECT_EQ(c.assignee_user().id(), 7);
    EXPECT_EQ(c.assignee_user().email(), "grace@example.com");
    EXPECT_THAT(c.tags(), ::testing::ElementsAre("vip", "newsletter"));
  }
  EXPECT_TRUE(drift.Snapshot().empty()) << drift.ToJson();
}

TEST(LiveReplies, ListContactsPagesByTheNextUrl) {
  DriftReport drift;
  auto reply = Decode<respondio::v2::ListContactsResponse>(
      Live(), "/respondio.v2.ContactService/ListContacts", Fixture("respondio_list_contacts.json"),
      &drift, "", 2);
  ASSERT_EQ(reply.items_size(), 2);
  EXPECT_EQ(reply.items(0).custom_fields(0).value(), "gold");
  EXPECT_FALSE(reply.next_page_token().empty());
  EXPECT_TRUE(drift.Snapshot().empty()) << drift.ToJson();
}

TEST(LiveReplies, ChannelAndCustomFieldListsAreItemsWithPagination) {
  DriftReport drift;
  auto channels = Decode<respondio::v2::ListContactChannelsResponse>(
      Live(), "/respondio.v2.ContactService/ListContactChannels",
      Fixture("respondio_list_channels.json"), &drift);
  ASSERT_EQ(channels.items_size(), 2);
  EXPECT_EQ(channels.items(0).source(), "whatsapp");
  EXPECT_TRUE(channels.next_page_token().empty());

  auto fields = Decode<respondio::v2::ListCustomFieldsResponse>(
      Live(), "/respondio.v2.CustomFieldService/ListCustomFields",
      Fixture("respondio_list_custom_fields.json"), &drift, "", 2);
  ASSERT_EQ(fields.items_size(), 2);
  EXPECT_EQ(fields.items(0).type(), respondio::v2::CUSTOM_FIELD_TYPE_LIST);
  EXPECT_THAT(fields.items(0).options(), ::testing::ElementsAre("free", "gold"));
  EXPECT_EQ(fields.items(0).slug(), "plan");
  EXPECT_EQ(fields.items(0).description(), "Subscription plan");
  EXPECT_EQ(fields.items(1).type(), respondio::v2::CUSTOM_FIELD_TYPE_TIME);
  EXPECT_EQ(fields.items(1).type_raw(), "time");
  EXPECT_FALSE(fields.next_page_token().empty());
  EXPECT_TRUE(drift.Snapshot().empty()) << drift.ToJson();
}

TEST(LiveReplies, OpenapiBareArrayOnALiveRouteDecodesAndCountsAsEnvelope) {
  DriftReport drift;
  auto channels = Decode<respondio::v2::ListContactChannelsResponse>(
      Live(), "/respondio.v2.ContactService/ListContactChannels",
      R"([{"id": 11, "name": "WhatsApp", "source": "whatsapp"}])", &drift);
  ASSERT_EQ(channels.items_size(), 1);
  EXPECT_EQ(channels.items(0).id(), 11);
  EXPECT_EQ(Count(drift, "/respondio.v2.ContactService/ListContactChannels", "(reply)",
                  DriftKind::kEnvelope),
            1);
}

TEST(LiveReplies, WritesThatAnswerWithoutTheResourceSayWhatTheyCarry) {
  DriftReport drift;
  auto created = Decode<respondio::v2::CreateContactResponse>(
      Live(), "/respondio.v2.ContactService/CreateContact", Fixture("respondio_create_contact.json"),
      &drift);
  EXPECT_FALSE(created.has_contact());
  EXPECT_EQ(created.code(), 200);
  EXPECT_EQ(created.message(), "Contact created successfully");
  auto updated = Decode<respondio::v2::UpdateContactResponse>(
      Live(), "/respondio.v2.ContactService/UpdateContact", Fixture("respondio_contact_id.json"),
      &drift);
  EXPECT_FALSE(updated.has_contact());
  EXPECT_EQ(updated.contact_id(), 1001);
  auto deleted = Decode<respondio::v2::DeleteContactResponse>(
      Live(), "/respondio.v2.ContactService/DeleteContact", Fixture("respondio_contact_id.json"),
      &drift);
  EXPECT_EQ(deleted.contact_id(), 1001);
  auto sent = Decode<respondio::v2::SendMessageResponse>(
      Live(), "/respondio.v2.MessageService/SendMessage", Fixture("respondio_send_message.json"),
      &drift);
  EXPECT_EQ(sent.message_id(), 555001);
  EXPECT_TRUE(drift.Snapshot().empty()) << drift.ToJson();
}

TEST(LiveReplies, ChatwootContactCreateAndUpdatePayloads) {
  DriftReport drift;
  for (const RouteTable* table : {&Live(), &Openapi()}) {
    auto created = Decode<chatwoot::v1::CreateContactResponse>(
        *table, "/chatwoot.v1.ContactService/CreateContact", Fixture("chatwoot_create_contact.json"),
        &drift);
    ASSERT_EQ(created.payload_size(), 1);
    EXPECT_EQ(created.payload(0).id(), 31);
    EXPECT_EQ(created.payload(0).email(), "ada@example.com");
    EXPECT_EQ(created.contact_inbox().inbox().id(), 2);
    EXPECT_EQ(created.contact_inbox().source_id(), "5e5f0a1c-8f5a-4bd9-9f2c-0c7f0c1d2e3f");
    auto updated = Decode<chatwoot::v1::UpdateContactResponse>(
        *table, "/chatwoot.v1.ContactService/UpdateContact", Fixture("chatwoot_update_contact.json"),
        &drift);
    ASSERT_EQ(updated.payload_size(), 1);
    EXPECT_EQ(updated.payload(0).name(), "Ada L.");
  }
  // Spoken openapi, answered live: the contact-create envelope is counted once.
  EXPECT_EQ(Count(drift, "/chatwoot.v1.ContactService/CreateContact", "(reply)",
                  DriftKind::kEnvelope),
            1);
}

TEST(LiveReplies, ChatwootAgentsKeepTheRawAvailability) {
  DriftReport drift;
  auto agents = Decode<chatwoot::v1::ListAgentsResponse>(
      Live(), "/chatwoot.v1.AccountService/ListAgents", Fixture("chatwoot_list_agents.json"),
      &drift);
  ASSERT_EQ(agents.payload_size(), 2);
  EXPECT_EQ(agents.payload(0).availability_status(), chatwoot::v1::AGENT_AVAILABILITY_STATUS_ONLINE);
  EXPECT_EQ(agents.payload(0).availability_status_raw(), "online");
  EXPECT_EQ(agents.payload(1).availability_status_raw(), "busy");
  auto inboxes = Decode<chatwoot::v1::ListInboxesResponse>(
      Live(), "/chatwoot.v1.AccountService/ListInboxes", Fixture("chatwoot_list_inboxes.json"),
      &drift);
  ASSERT_EQ(inboxes.payload_size(), 2);
  EXPECT_EQ(inboxes.payload(1).provider(), "whatsapp_cloud");
  EXPECT_TRUE(drift.Snapshot().empty()) << drift.ToJson();
}

// ---- drift: each kind, with its count ----

TEST(Drift, EachKindIsCountedPerRpcAndField) {
  DriftReport drift;
  const std::string rpc = "/chatwoot.v1.AccountService/ListAgents";
  const std::string body = R"([
    {"id": 1, "availability_status": "away", "mood": "happy", "confirmed": "yes"},
    {"id": 2, "availability_status": "away", "mood": "calm", "confirmed": true}
  ])";
  for (int i = 0; i < 2; ++i) {
    auto agents = Decode<chatwoot::v1::ListAgentsResponse>(Live(), rpc, body, &drift);
    ASSERT_EQ(agents.payload_size(), 2);
    // Never dropped silently: the unknown value is visible as sent.
    EXPECT_EQ(agents.payload(0).availability_status(),
              chatwoot::v1::AGENT_AVAILABILITY_STATUS_UNSPECIFIED);
    EXPECT_EQ(agents.payload(0).availability_status_raw(), "away");
    EXPECT_EQ(agents.payload(0).id(), 1);  // the mismatch skipped only `confirmed`
    EXPECT_TRUE(agents.payload(1).confirmed());
  }
  EXPECT_EQ(Count(drift, rpc, "payload[].availability_status", DriftKind::kUnknownEnum), 4);
  EXPECT_EQ(Count(drift, rpc, "payload[].mood", DriftKind::kUnknownField), 4);
  EXPECT_EQ(Count(drift, rpc, "payload[].confirmed", DriftKind::kTypeMismatch), 2);
  // A bare array where Chatwoot's {payload: [...]} was declared is the openapi shape: no drift
  // for ListAgents (declared bare), but an envelope for ListInboxes.
  EXPECT_EQ(Count(drift, rpc, "(reply)", DriftKind::kEnvelope), 0);
  Decode<chatwoot::v1::ListInboxesResponse>(Live(), "/chatwoot.v1.AccountService/ListInboxes",
                                            R"([{"id": 2}])", &drift);
  EXPECT_EQ(Count(drift, "/chatwoot.v1.AccountService/ListInboxes", "(reply)",
                  DriftKind::kEnvelope),
            1);
  const json report = json::parse(drift.ToJson());
  ASSERT_TRUE(report.is_array());
  bool saw_sample = false;
  for (const json& e : report) {
    for (const char* key : {"rpc", "field", "kind", "count", "first_seen", "sample"}) {
      EXPECT_TRUE(e.contains(key)) << key;
    }
    if (e["field"] == "payload[].mood") {
      EXPECT_EQ(e["sample"], "happy");
      saw_sample = true;
    }
  }
  EXPECT_TRUE(saw_sample);
}

TEST(Drift, SamplesAreTruncatedTo64Bytes) {
  DriftReport drift;
  const std::string long_value(200, 'x');
  Decode<respondio::v2::GetContactResponse>(
      Live(), "/respondio.v2.ContactService/GetContact",
      json{{"id", 1}, {"biography", long_value}}.dump(), &drift);
  const auto entries = drift.Snapshot();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].field, "contact.biography");
  EXPECT_EQ(entries[0].sample, std::string(64, 'x'));
}

}  // namespace
}  // namespace gateway::service
