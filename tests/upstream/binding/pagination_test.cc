#include "upstream/binding/pagination.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

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

std::string Next(const char* hook, int page_size, const std::string& cursor,
                 const std::string& body) {
  json parsed = json::parse(body);
  return Next(hook, page_size, cursor, parsed);
}

void ExpectBadCursor(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_PAGE_TOKEN");
}

TEST(FindPagination, KnownHooks) {
  EXPECT_NE(FindPagination("respondio_cursor"), nullptr);
  EXPECT_NE(FindPagination("chatwoot_page"), nullptr);
  EXPECT_NE(FindPagination("slice"), nullptr);
  EXPECT_EQ(FindPagination(""), nullptr);
  EXPECT_EQ(FindPagination("cursor"), nullptr);
  EXPECT_EQ(FindPagination("respondio_cursor"), FindPagination("respondio_cursor"));
}

// ---- respondio_cursor ----

TEST(RespondioCursor, QueryParameters) {
  EXPECT_EQ(Query("respondio_cursor", 0, ""), Params{});
  EXPECT_EQ(Query("respondio_cursor", 10, ""), (Params{{"limit", "10"}}));
  EXPECT_EQ(Query("respondio_cursor", 100, "123"), (Params{{"cursorId", "123"}, {"limit", "100"}}));
  EXPECT_EQ(Query("respondio_cursor", 0, "123"), (Params{{"cursorId", "123"}}));
}

TEST(RespondioCursor, NonDigitCursorIsRejected) {
  for (const char* cursor : {"12a", "-5", "1 2", "abc", "12345678901234567890"}) {
    SCOPED_TRACE(cursor);
    ExpectBadCursor(Hook("respondio_cursor").Query(10, cursor).status());
  }
}

TEST(RespondioCursor, NextFromPaginationNextUrl) {
  EXPECT_EQ(Next("respondio_cursor", 10, "", R"({
      "items": [{"id": 455}, {"id": 456}],
      "pagination": {
        "next": "https://api.respond.io/v2/contact/list?cursorId=456&limit=10",
        "previous": null
      }})"),
            "456");
  EXPECT_EQ(Next("respondio_cursor", 10, "", R"({"pagination":{
      "next": "https://api.respond.io/v2/contact/list?limit=10&cursorId=789"}})"),
            "789");
}

TEST(RespondioCursor, NextFromCursorIdAndHasMore) {
  EXPECT_EQ(Next("respondio_cursor", 10, "", R"({"items":[],"pagination":{"cursorId":789,"hasMore":true}})"),
            "789");
  EXPECT_EQ(Next("respondio_cursor", 10, "", R"({"pagination":{"cursorId":"790","hasMore":true}})"),
            "790");
}

TEST(RespondioCursor, LastPageHasNoCursor) {
  for (const char* body : {
           R"({"items":[{"id":1}],"pagination":{"next":null,"previous":"https://x/?cursorId=1"}})",
           R"({"items":[{"id":1}],"pagination":{"next":""}})",
           R"({"items":[{"id":1}],"pagination":{"next":"https://api.respond.io/v2/contact/list"}})",
           R"({"items":[{"id":1}],"pagination":{"next":"https://x/?cursorId=abc"}})",
           R"({"items":[{"id":1}],"pagination":{"cursorId":789,"hasMore":false}})",
           R"({"items":[{"id":1}],"pagination":{"cursorId":null,"hasMore":true}})",
           R"({"items":[{"id":1}],"pagination":{"hasMore":true}})",
           R"({"items":[{"id":1}],"pagination":{"cursorId":789}})",
           R"({"items":[{"id":1}]})",
           R"({"items":[{"id":1}],"pagination":null})",
           R"([1,2,3])",
       }) {
    SCOPED_TRACE(body);
    EXPECT_EQ(Next("respondio_cursor", 10, "", body), "");
  }
}

TEST(RespondioCursor, BodyIsLeftUntouched) {
  json body = json::parse(R"({"items":[{"id":1},{"id":2}],"pagination":{"cursorId":2,"hasMore":true}})");
  const json before = body;
  EXPECT_EQ(Next("respondio_cursor", 1, "", body), "2");
  EXPECT_EQ(body, before);
}

// ---- slice ----

json Numbers(int n) {
  json items = json::array();
  for (int i = 0; i < n; ++i) items.push_back(i);
  return items;
}

TEST(Slice, ServesAWholeListPageByPage) {
  std::vector<std::string> cursors;
  std::vector<json> pages;
  std::string cursor;
  do {
    EXPECT_EQ(Query("slice", 100, cursor), Params{});  // the upstream always sends everything
    json body = Numbers(250);
    cursor = Next("slice", 100, cursor, body);
    cursors.push_back(cursor);
    pages.push_back(body);
  } while (!cursor.empty() && cursors.size() < 10);
  EXPECT_EQ(cursors, (std::vector<std::string>{"100", "200", ""}));
  ASSERT_EQ(pages.size(), 3u);
  ASSERT_EQ(pages[0].size(), 100u);
  ASSERT_EQ(pages[1].size(), 100u);
  ASSERT_EQ(pages[2].size(), 50u);
  EXPECT_EQ(pages[0].front(), 0);
  EXPECT_EQ(pages[0].back(), 99);
  EXPECT_EQ(pages[1].front(), 100);
  EXPECT_EQ(pages[1].back(), 199);
  EXPECT_EQ(pages[2].front(), 200);
  EXPECT_EQ(pages[2].back(), 249);
}

TEST(Slice, TrimsItemsOfAnObjectBody) {
  json body = {{"items", Numbers(5)}, {"total", 5}};
  EXPECT_EQ(Next("slice", 2, "2", body), "4");
  EXPECT_EQ(body, json::parse(R"({"items":[2,3],"total":5})"));
}

TEST(Slice, DefaultPageSizeIsHundred) {
  json body = Numbers(101);
  EXPECT_EQ(Next("slice", 0, "", body), "100");
  EXPECT_EQ(body.size(), 100u);
}

TEST(Slice, ExactMultipleEndsWithoutAnEmptyPage) {
  json body = Numbers(200);
  EXPECT_EQ(Next("slice", 100, "100", body), "");
  EXPECT_EQ(body.size(), 100u);
}

TEST(Slice, CursorBeyondTheEndGivesAnEmptyLastPage) {
  json body = Numbers(5);
  EXPECT_EQ(Next("slice", 10, "300", body), "");
  EXPECT_EQ(body, json::array());
}

TEST(Slice, BadCursorIsRejected) {
  for (const char* cursor : {"abc", "-1", "1.5"}) {
    SCOPED_TRACE(cursor);
    ExpectBadCursor(Hook("slice").Query(10, cursor).status());
    json body = Numbers(5);
    ExpectBadCursor(Hook("slice").NextCursor(10, cursor, body).status());
  }
}

// ---- chatwoot_page ----

json Payload(int n, int total_count) {
  json body = {{"meta", {{"count", total_count}, {"current_page", 1}}}, {"payload", Numbers(n)}};
  return body;
}

TEST(ChatwootPage, QueryParameters) {
  EXPECT_EQ(Query("chatwoot_page", 0, ""), (Params{{"page", "1"}}));
  EXPECT_EQ(Query("chatwoot_page", 25, ""), (Params{{"page", "1"}, {"per_page", "25"}}));
  EXPECT_EQ(Query("chatwoot_page", 25, "3"), (Params{{"page", "3"}, {"per_page", "25"}}));
  for (const char* cursor : {"0", "-2", "x", "2a"}) {
    SCOPED_TRACE(cursor);
    ExpectBadCursor(Hook("chatwoot_page").Query(25, cursor).status());
  }
}

TEST(ChatwootPage, MetaCountDecides) {
  json body = Payload(25, 60);
  EXPECT_EQ(Next("chatwoot_page", 25, "", body), "2");
  body = Payload(25, 60);
  EXPECT_EQ(Next("chatwoot_page", 25, "2", body), "3");
  body = Payload(10, 60);
  EXPECT_EQ(Next("chatwoot_page", 25, "3", body), "");
  // Exactly full: 2 pages of 25 = 50 = count.
  body = Payload(25, 50);
  EXPECT_EQ(Next("chatwoot_page", 25, "2", body), "");
  // The body is not trimmed.
  EXPECT_EQ(body["payload"].size(), 25u);
}

TEST(ChatwootPage, TotalCountAndUnknownPageSize) {
  json body = json::parse(R"({"meta":{"total_count":3},"payload":[1,2]})");
  EXPECT_EQ(Next("chatwoot_page", 2, "", body), "2");
  body = json::parse(R"({"meta":{"total_count":2},"payload":[1,2]})");
  EXPECT_EQ(Next("chatwoot_page", 2, "", body), "");
  // Without page_size the page that came back is the page size.
  body = json::parse(R"({"meta":{"count":30},"payload":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]})");
  EXPECT_EQ(Next("chatwoot_page", 0, "", body), "2");
  body = json::parse(R"({"meta":{"count":30},"payload":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]})");
  EXPECT_EQ(Next("chatwoot_page", 0, "2", body), "");
}

TEST(ChatwootPage, FullPageHeuristicWithoutMeta) {
  json body = Numbers(25);  // a bare array: no total
  EXPECT_EQ(Next("chatwoot_page", 25, "", body), "2");
  body = Numbers(25);
  EXPECT_EQ(Next("chatwoot_page", 25, "4", body), "5");
  body = Numbers(24);
  EXPECT_EQ(Next("chatwoot_page", 25, "4", body), "");
  body = json::parse(R"({"payload":[1,2,3]})");
  EXPECT_EQ(Next("chatwoot_page", 3, "", body), "2");
  // Unknown page size: a full page cannot be recognised.
  body = Numbers(25);
  EXPECT_EQ(Next("chatwoot_page", 0, "", body), "");
}

TEST(ChatwootPage, EmptyPageEnds) {
  json body = Payload(0, 100);
  EXPECT_EQ(Next("chatwoot_page", 25, "", body), "");
  body = json::parse(R"({"data":{}})");
  EXPECT_EQ(Next("chatwoot_page", 25, "", body), "");
}

}  // namespace
}  // namespace gateway::upstream
