// The engine features the Chatwoot mirror relies on: the "chatwoot_fixed_page" and
// "chatwoot_page" pagination hooks over Chatwoot's envelopes, "slice" over {payload: [...]},
// `gateway.v1.rest_number` enum codes, snake_case json_name, and required optional bools.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "chatwoot/v1/group_service.pb.h"
#include "chatwoot/v1/message_service.pb.h"
#include "chatwoot/v1/contact_service.pb.h"
#include "chatwoot/v1/resources.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/upstream/status_details.h"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/pagination.h"
#include "upstream/binding/validation.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::BadRequestFieldOf;
using ::gateway::testing::ErrorInfoOf;
using nlohmann::json;
using Params = std::vector<std::pair<std::string, std::string>>;

const Pagination& Hook(const char* name) {
  const Pagination* hook = FindPagination(name);
  EXPECT_NE(hook, nullptr) << name;
  return *hook;
}

Params Query(const char* hook, int page_size, const std::string& cursor) {
  auto params = Hook(hook).Query(page_size, cursor);
  EXPECT_TRUE(params.ok()) << params.status();
  return params.ok() ? *params : Params{{"error", ""}};
}

std::string Next(const char* hook, int page_size, const std::string& cursor, json& body) {
  auto next = Hook(hook).NextCursor(page_size, cursor, body);
  EXPECT_TRUE(next.ok()) << next.status();
  return next.ok() ? *next : "<error>";
}

// Items first..last (inclusive).
json Range(int first, int last) {
  json items = json::array();
  for (int i = first; i <= last; ++i) items.push_back(i);
  return items;
}

// A contacts page as Chatwoot sends it: 15 per page, meta.count = total.
json ContactsPage(int first, int last, int total, int page) {
  return {{"meta", {{"count", total}, {"current_page", std::to_string(page)}}},
          {"payload", Range(first, last)}};
}

// A conversations page: {data: {meta: counts, payload}}, with no total for the listed items.
json ConversationsPage(int first, int last) {
  return {{"data",
           {{"meta", {{"mine_count", 0}, {"assigned_count", 0}, {"unassigned_count", 999},
                      {"all_count", 999}}},
            {"payload", first <= last ? Range(first, last) : json::array()}}}};
}

void ExpectBadCursor(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_PAGE_TOKEN");
}

// ---- chatwoot_fixed_page ----

TEST(ChatwootFixedPage, QuerySendsOnlyThePageNumber) {
  EXPECT_EQ(Query("chatwoot_fixed_page", 0, ""), (Params{{"page", "1"}}));
  EXPECT_EQ(Query("chatwoot_fixed_page", 5, ""), (Params{{"page", "1"}}));
  EXPECT_EQ(Query("chatwoot_fixed_page", 5, "10:15"), (Params{{"page", "1"}}));
  EXPECT_EQ(Query("chatwoot_fixed_page", 5, "15:15"), (Params{{"page", "2"}}));
  EXPECT_EQ(Query("chatwoot_fixed_page", 0, "50:25"), (Params{{"page", "3"}}));
  for (const char* cursor : {"x", "5", "5:0", ":", "a:b", "-1:15", "1:15:2", "1:-15"}) {
    SCOPED_TRACE(cursor);
    ExpectBadCursor(Hook("chatwoot_fixed_page").Query(5, cursor).status());
    json body = ContactsPage(1, 15, 40, 1);
    ExpectBadCursor(Hook("chatwoot_fixed_page").NextCursor(5, cursor, body).status());
  }
}

TEST(ChatwootFixedPage, WholeUpstreamPagesWithATotal) {
  json body = ContactsPage(1, 15, 40, 1);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "", body), "15:15");
  EXPECT_EQ(body["payload"], Range(1, 15));
  body = ContactsPage(16, 30, 40, 2);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "15:15", body), "30:15");
  body = ContactsPage(31, 40, 40, 3);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "30:15", body), "");
  EXPECT_EQ(body["payload"], Range(31, 40));
  // Exactly two full pages: no empty third page.
  body = ContactsPage(16, 30, 30, 2);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "15:15", body), "");
}

TEST(ChatwootFixedPage, PageSizeSmallerThanTheUpstreamPageSlicesIt) {
  // page_size 4 over 15-item upstream pages, 20 contacts in all: every item exactly once.
  std::vector<int> seen;
  std::string cursor;
  int calls = 0;
  do {
    ASSERT_LT(++calls, 20);
    const Params q = Query("chatwoot_fixed_page", 4, cursor);
    ASSERT_EQ(q.size(), 1u);
    const int page = std::stoi(q[0].second);
    json body = page == 1 ? ContactsPage(1, 15, 20, 1) : ContactsPage(16, 20, 20, 2);
    cursor = Next("chatwoot_fixed_page", 4, cursor, body);
    ASSERT_LE(body["payload"].size(), 4u);
    for (const auto& item : body["payload"]) seen.push_back(item.get<int>());
  } while (!cursor.empty());
  std::vector<int> want;
  for (int i = 1; i <= 20; ++i) want.push_back(i);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(calls, 6);  // 4+4+4+3 from page 1, 4+1 from page 2
}

TEST(ChatwootFixedPage, PageSizeLargerThanTheUpstreamPageGivesOneUpstreamPage) {
  json body = ContactsPage(1, 15, 40, 1);
  EXPECT_EQ(Next("chatwoot_fixed_page", 100, "", body), "15:15");
  EXPECT_EQ(body["payload"].size(), 15u);
}

TEST(ChatwootFixedPage, ConversationCountsAreNeverTakenForTheTotal) {
  // all_count (999) counts conversations of every assignee; the full-page rule decides instead.
  json body = ConversationsPage(1, 25);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "", body), "25:25");
  body = ConversationsPage(26, 31);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "25:25", body), "");
  EXPECT_EQ(body["data"]["payload"], Range(26, 31));
  // Sliced: the rest of the upstream page first.
  body = ConversationsPage(1, 25);
  EXPECT_EQ(Next("chatwoot_fixed_page", 10, "", body), "10:25");
  EXPECT_EQ(body["data"]["payload"], Range(1, 10));
  // The meta (counts) survives the trimming.
  EXPECT_EQ(body["data"]["meta"]["all_count"], 999);
}

TEST(ChatwootFixedPage, WithoutATotalTheLastPageMayBeEmpty) {
  json body = ConversationsPage(1, 3);  // a short first page: could be full, cannot tell
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "", body), "3:3");
  EXPECT_EQ(Query("chatwoot_fixed_page", 0, "3:3"), (Params{{"page", "2"}}));
  body = ConversationsPage(1, 0);
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "3:3", body), "");
  EXPECT_TRUE(body["data"]["payload"].empty());
}

TEST(ChatwootFixedPage, EmptyOrShrunkListEnds) {
  json body = ContactsPage(1, 0, 0, 1);
  body["payload"] = json::array();
  EXPECT_EQ(Next("chatwoot_fixed_page", 0, "", body), "");
  // The caller was at offset 12 of a 15-item page, but the page now holds 10 items.
  body = ContactsPage(1, 10, 10, 1);
  EXPECT_EQ(Next("chatwoot_fixed_page", 5, "12:15", body), "");
  EXPECT_TRUE(body["payload"].empty());
  // Not a list at all.
  body = json::parse(R"({"error":"x"})");
  EXPECT_EQ(Next("chatwoot_fixed_page", 5, "", body), "");
}

// ---- chatwoot_page (group members: per_page honoured) ----

TEST(ChatwootPage, MetaPerPageWinsWhenNoPageSizeWasAsked) {
  json body = {{"meta", {{"total_count", 25}, {"page", 1}, {"per_page", 10}}},
               {"payload", Range(1, 10)}};
  EXPECT_EQ(Next("chatwoot_page", 0, "", body), "2");
  body = {{"meta", {{"total_count", 25}, {"page", 3}, {"per_page", 10}}},
          {"payload", Range(21, 25)}};
  EXPECT_EQ(Next("chatwoot_page", 0, "3", body), "");
  // The upstream capped per_page below what was asked.
  body = {{"meta", {{"total_count", 25}, {"page", 2}, {"per_page", 10}}},
          {"payload", Range(11, 20)}};
  EXPECT_EQ(Next("chatwoot_page", 50, "2", body), "3");
}

TEST(ChatwootPage, AllCountIsNotATotal) {
  json body = ConversationsPage(1, 2);
  EXPECT_EQ(Next("chatwoot_page", 2, "", body), "2");  // full page
  body = ConversationsPage(1, 2);
  EXPECT_EQ(Next("chatwoot_page", 5, "", body), "");  // short page
}

// ---- slice over {payload: [...]} ----

TEST(Slice, ServesChatwootPayloadArrays) {
  json body = {{"meta", {{"labels", {"a"}}}}, {"payload", Range(1, 7)}};
  EXPECT_EQ(Next("slice", 3, "", body), "3");
  EXPECT_EQ(body["payload"], Range(1, 3));
  EXPECT_EQ(body["meta"]["labels"][0], "a");
  body = {{"payload", Range(1, 7)}};
  EXPECT_EQ(Next("slice", 3, "6", body), "");
  EXPECT_EQ(body["payload"], Range(7, 7));
}

// ---- JSON codec ----

TEST(ChatwootCodec, IntegerEnumCodesMapThroughRestNumber) {
  for (const auto& [code, want] : std::vector<std::pair<int, chatwoot::v1::MessageType>>{
           {0, chatwoot::v1::MESSAGE_TYPE_INCOMING},
           {1, chatwoot::v1::MESSAGE_TYPE_OUTGOING},
           {2, chatwoot::v1::MESSAGE_TYPE_ACTIVITY},
           {3, chatwoot::v1::MESSAGE_TYPE_TEMPLATE},
           {4, chatwoot::v1::MESSAGE_TYPE_UNSPECIFIED},
           {-1, chatwoot::v1::MESSAGE_TYPE_UNSPECIFIED}}) {
    SCOPED_TRACE(code);
    chatwoot::v1::Message message;
    ASSERT_TRUE(DecodeMessage(json{{"message_type", code}}, &message).ok());
    EXPECT_EQ(message.message_type(), want);
  }
  // Strings still decode by REST name.
  chatwoot::v1::Message message;
  ASSERT_TRUE(DecodeMessage(json{{"message_type", "incoming"}}, &message).ok());
  EXPECT_EQ(message.message_type(), chatwoot::v1::MESSAGE_TYPE_INCOMING);
  // Requests send the REST string, never the code.
  chatwoot::v1::CreateMessageRequest request;
  request.set_content("hi");
  request.set_message_type(chatwoot::v1::MESSAGE_TYPE_INCOMING);
  EXPECT_EQ(EncodeMessage(request)["message_type"], "incoming");
}

TEST(ChatwootCodec, SnakeCaseNamesAndRestValues) {
  chatwoot::v1::CreateContactRequest request;
  request.set_inbox_id(3);
  request.set_phone_number("+5511999999999");
  request.set_avatar_url("https://x.example/a.png");
  const json encoded = EncodeMessage(request);
  EXPECT_EQ(encoded, (json{{"inbox_id", 3},
                           {"phone_number", "+5511999999999"},
                           {"avatar_url", "https://x.example/a.png"}}));
  chatwoot::v1::ListContactsRequest list;
  list.set_sort(chatwoot::v1::CONTACT_SORT_LAST_ACTIVITY_AT_DESC);
  EXPECT_EQ(EncodeMessage(list)["sort"], "-last_activity_at");
  chatwoot::v1::FilterCondition condition;
  condition.set_query_operator(chatwoot::v1::QUERY_OPERATOR_AND);
  condition.set_filter_operator(chatwoot::v1::FILTER_OPERATOR_DOES_NOT_CONTAIN);
  EXPECT_EQ(EncodeMessage(condition),
            (json{{"filter_operator", "does_not_contain"}, {"query_operator", "AND"}}));
}

TEST(ChatwootCodec, CurrentPageDecodesFromStringOrNumber) {
  chatwoot::v1::ListContactsResponse reply;
  ASSERT_TRUE(DecodeMessage(json::parse(R"({"meta":{"count":3,"current_page":"2"}})"), &reply).ok());
  EXPECT_EQ(reply.meta().current_page(), 2);
  ASSERT_TRUE(DecodeMessage(json::parse(R"({"meta":{"count":3,"current_page":1}})"), &reply).ok());
  EXPECT_EQ(reply.meta().current_page(), 1);
}

// ---- validation ----

TEST(ChatwootValidation, RequiredOptionalBoolMustBeSetButMayBeFalse) {
  chatwoot::v1::UpdateGroupAdminSettingRequest request;
  request.set_id(7);
  request.set_property(chatwoot::v1::GROUP_PROPERTY_ANNOUNCE);
  absl::Status status = ValidateRequest(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BadRequestFieldOf(status), "enabled");
  request.set_enabled(false);
  EXPECT_TRUE(ValidateRequest(request).ok());
  request.set_property(chatwoot::v1::GROUP_PROPERTY_UNSPECIFIED);
  status = ValidateRequest(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BadRequestFieldOf(status), "property");
}

TEST(ChatwootValidation, ParticipantsAreE164WithoutPlus) {
  chatwoot::v1::AddGroupMembersRequest request;
  request.set_id(7);
  EXPECT_EQ(BadRequestFieldOf(ValidateRequest(request)), "participants");  // at least one
  request.add_participants("5511999999999");
  EXPECT_TRUE(ValidateRequest(request).ok());
  for (const char* bad : {"+5511999999999", "55 11 99999", "0551199999999", "1234567", "abc"}) {
    SCOPED_TRACE(bad);
    request.set_participants(0, bad);
    const absl::Status status = ValidateRequest(request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(BadRequestFieldOf(status), "participants[0]");
  }
}

}  // namespace
}  // namespace gateway::upstream
