// DecodeReply: a 2xx upstream body -> the serialized reply of a route (upstream/pipeline/commit_stage.h).
#include <functional>
#include <string>
#include <vector>
#include <utility>

#include "absl/status/status.h"
#include "gateway/v1/annotations.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "chatwoot/v1/contact_service.pb.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.pb.h"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/message_depth.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/tag_service.pb.h"
#include "tests/upstream/binding/declared_route.h"
#include "tests/upstream/status_details.h"
#include "upstream/pipeline/dispatcher.h"
#include "upstream/binding/page_token.h"
#include "upstream/transport/upstream_json.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DeclaredRoute;
using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;

template <typename Reply>
Reply DecodeOk(const Route& route, const std::string& body, const std::string& cursor = "",
               int page_size = 0) {
  auto bytes = DecodeReply(route, "respondio", cursor, page_size, body);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  Reply reply;
  if (bytes.ok()) {
    EXPECT_TRUE(reply.ParseFromString(*bytes));
  }
  return reply;
}

TEST(DecodeReply, GetContactFillsTheResponseField) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  const auto reply = DecodeOk<respondio::v2::GetContactResponse>(route, R"({
      "id": 1234, "firstName": "Ann", "email": "ann@example.com", "phone": "+60123456789",
      "assignee": null, "tags": ["vip"], "created": 1700000000, "somethingNew": 1})");
  ASSERT_TRUE(reply.has_contact());
  EXPECT_EQ(reply.contact().id(), 1234);
  EXPECT_EQ(reply.contact().first_name(), "Ann");
  EXPECT_EQ(reply.contact().email(), "ann@example.com");
  EXPECT_FALSE(reply.contact().has_assignee());
  EXPECT_EQ(reply.contact().tags(0), "vip");
  EXPECT_EQ(reply.contact().created(), 1700000000);
}

TEST(DecodeReply, WholeBodyReply) {
  const Route route = DeclaredRoute("respondio.v2.MessageService.SendMessage");
  const auto reply = DecodeOk<respondio::v2::SendMessageResponse>(
      route, R"({"messageId":9007199254740993,"status":"queued"})");
  EXPECT_EQ(reply.message_id(), 9007199254740993);
  EXPECT_EQ(reply.status(), "queued");
}

TEST(DecodeReply, ListContactsNextPageTokenWrapsTheCursor) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  const auto reply = DecodeOk<respondio::v2::ListContactsResponse>(
      route, R"({
      "items": [{"id": 455, "firstName": "Ann"}, {"id": 456, "firstName": "Bo"}],
      "pagination": {
        "next": "https://api.respond.io/v2/contact/list?cursorId=456&limit=2",
        "previous": null
      }})",
      "", 2);
  ASSERT_EQ(reply.items_size(), 2);
  EXPECT_EQ(reply.items(1).first_name(), "Bo");
  ASSERT_FALSE(reply.next_page_token().empty());
  EXPECT_NE(reply.next_page_token(), "456");  // opaque
  auto cursor = DecodePageToken("/respondio.v2.ContactService/ListContacts", reply.next_page_token());
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(*cursor, "456");
  // The token is bound to this RPC.
  EXPECT_FALSE(
      DecodePageToken("/respondio.v2.SpaceService/ListSpaceUsers", reply.next_page_token()).ok());
}

TEST(DecodeReply, ListContactsOpenApiPaginationShape) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  const auto reply = DecodeOk<respondio::v2::ListContactsResponse>(
      route, R"({"items":[{"id":1}],"pagination":{"cursorId":1,"hasMore":true}})", "", 1);
  auto cursor = DecodePageToken(route.rpc, reply.next_page_token());
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(*cursor, "1");
}

TEST(DecodeReply, LastPageHasNoToken) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  const auto reply = DecodeOk<respondio::v2::ListContactsResponse>(
      route, R"({"items":[{"id":1}],"pagination":{"next":null,"previous":null}})", "455", 10);
  EXPECT_EQ(reply.items_size(), 1);
  EXPECT_EQ(reply.next_page_token(), "");
}

TEST(DecodeReply, SliceServesAnArrayPageByPage) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.ListContactChannels");
  const std::string body =
      R"([{"id":1,"name":"WA","source":"whatsapp","meta":{"phone":"+60"}},
          {"id":2,"name":"FB","source":"messenger"},
          {"id":3,"name":"TG","source":"telegram"}])";
  auto first = DecodeOk<respondio::v2::ListContactChannelsResponse>(route, body, "", 2);
  ASSERT_EQ(first.items_size(), 2);
  EXPECT_EQ(first.items(0).meta().fields().at("phone").string_value(), "+60");
  EXPECT_EQ(first.items(1).source(), "messenger");
  auto cursor = DecodePageToken(route.rpc, first.next_page_token());
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(*cursor, "2");

  auto second = DecodeOk<respondio::v2::ListContactChannelsResponse>(route, body, *cursor, 2);
  ASSERT_EQ(second.items_size(), 1);
  EXPECT_EQ(second.items(0).id(), 3);
  EXPECT_EQ(second.next_page_token(), "");
}

TEST(DecodeReply, NonJsonBodyIsInternalBadResponse) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  for (const char* body : {"<html>502 Bad Gateway</html>", "{\"id\":", "OK"}) {
    SCOPED_TRACE(body);
    auto reply = DecodeReply(route, "respondio", "", 0, body);
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
    const auto info = ErrorInfoOf(reply.status());
    EXPECT_EQ(info.reason(), "UPSTREAM_BAD_RESPONSE");
    EXPECT_EQ(info.domain(), "respondio");
    EXPECT_EQ(info.metadata().at("rpc"), "/respondio.v2.ContactService/GetContact");
    EXPECT_THAT(std::string(reply.status().message()), HasSubstr("not JSON"));
  }
}

TEST(DecodeReply, MismatchedValueIsSkippedAndCountedAsDrift) {
  // Decoding is tolerant: one value of the wrong type costs that value, not the reply; the
  // drift report names it (indices folded).
  DriftReport drift;
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  auto bytes = DecodeReply(route, "respondio", "", 0, R"({"id":1,"firstName":5})", &drift);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  respondio::v2::GetContactResponse reply;
  ASSERT_TRUE(reply.ParseFromString(*bytes));
  EXPECT_EQ(reply.contact().id(), 1);
  EXPECT_EQ(reply.contact().first_name(), "");

  const Route list = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  bytes = DecodeReply(list, "respondio", "", 0, R"({"items":[{},{},{"firstName":5}]})", &drift);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const auto entries = drift.Snapshot();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].rpc, "/respondio.v2.ContactService/GetContact");
  EXPECT_EQ(entries[0].field, "contact.firstName");
  EXPECT_EQ(entries[0].kind, DriftKind::kTypeMismatch);
  EXPECT_EQ(entries[0].sample, "5");
  EXPECT_EQ(entries[1].field, "items[].firstName");
}

TEST(DecodeReply, AnUnknownEmptyKeyIsDriftNamedAfterItsObject) {
  // The field path of a key is its object's path, a dot and the key, an empty key too
  // ("contact."), so it stays apart from drift of the object itself.
  DriftReport drift;
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  auto bytes = DecodeReply(route, "respondio", "", 0, R"({"id":1,"":2})", &drift);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const auto entries = drift.Snapshot();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].field, "contact.");
  EXPECT_EQ(entries[0].kind, DriftKind::kUnknownField);
}

TEST(DecodeReply, ReplyOfTheWrongJsonTypeIsInternalMismatch) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  auto reply = DecodeReply(route, "respondio", "", 0, R"("OK")");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ErrorInfoOf(reply.status()).reason(), "UPSTREAM_RESPONSE_MISMATCH");
}

TEST(DecodeReply, EmptyBodyIsAnEmptyReply) {
  const Route tags = DeclaredRoute("respondio.v2.TagService.AddContactTags");
  auto bytes = DecodeReply(tags, "respondio", "", 0, "");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "");

  // A Get whose reply is one resource gets none from an empty or null body: that is a bad
  // response, not an OK without the resource.
  const Route get = DeclaredRoute("respondio.v2.ContactService.GetContact");
  for (const char* body : {"", "null", " \n"}) {
    bytes = DecodeReply(get, "respondio", "", 0, body);
    EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInternal) << body;
    EXPECT_EQ(ErrorInfoOf(bytes.status()).reason(), "UPSTREAM_BAD_RESPONSE") << body;
  }

  const Route list = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  bytes = DecodeReply(list, "respondio", "", 10, "");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "");
}

TEST(DecodeReply, BadCursorOfSliceIsInvalidArgument) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.ListContactChannels");
  auto reply = DecodeReply(route, "respondio", "abc", 2, "[]");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorInfoOf(reply.status()).reason(), "INVALID_PAGE_TOKEN");
}

// ---- bounds on what an upstream reply can make the gateway do (issue 9, items 1 and 10) ----

std::string DeepStruct(int levels) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += R"({"a":)";
  s += "1";
  s += std::string(levels, '}');
  return s;
}

std::string ChatwootContact(const std::string& custom_attributes) {
  return R"({"payload":{"id":7,"name":"Ann","custom_attributes":)" + custom_attributes + "}}";
}

TEST(DecodeReply, AHugelyNestedStructFieldIsTooDeepNotACrash) {
  const Route route = DeclaredRoute("chatwoot.v1.ContactService.GetContact");
  auto reply = DecodeReply(route, "chatwoot", "", 0, ChatwootContact(DeepStruct(20000)));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ErrorInfoOf(reply.status()).reason(), "UPSTREAM_RESPONSE_TOO_DEEP");
}

TEST(DecodeReply, AStructTooDeepForProtobufParsersIsRejected) {
  const Route route = DeclaredRoute("chatwoot.v1.ContactService.GetContact");
  // 40 JSON levels are 120 nested messages: the gateway used to answer OK with a reply that
  // protobuf parsers refuse (and cache it).
  chatwoot::v1::GetContactResponse unchecked;
  ASSERT_TRUE(DecodeMessage(nlohmann::json::parse(ChatwootContact(DeepStruct(40))), &unchecked).ok());
  chatwoot::v1::GetContactResponse reparsed;
  EXPECT_FALSE(reparsed.ParseFromString(unchecked.SerializeAsString()))
      << "protobuf's default limit (100) should refuse this";

  auto reply = DecodeReply(route, "chatwoot", "", 0, ChatwootContact(DeepStruct(40)));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
  const auto info = ErrorInfoOf(reply.status());
  EXPECT_EQ(info.reason(), "UPSTREAM_RESPONSE_TOO_DEEP");
  EXPECT_THAT(info.metadata().at("field"), ::testing::StartsWith("payload.custom_attributes"));
  // One level over the bound is rejected too; at the bound the reply parses everywhere.
  EXPECT_FALSE(DecodeReply(route, "chatwoot", "", 0, ChatwootContact(DeepStruct(33))).ok());
  auto deepest = DecodeReply(route, "chatwoot", "", 0, ChatwootContact(DeepStruct(32)));
  ASSERT_TRUE(deepest.ok()) << deepest.status();
  chatwoot::v1::GetContactResponse parsed;
  EXPECT_TRUE(parsed.ParseFromString(*deepest));
  EXPECT_EQ(parsed.payload().id(), 7);
}

// DecodeReply skips the MessageDepth walk for JSON at most kMaxJsonDepthWithinReplyLimit deep:
// the costliest shapes the codec knows (three messages per Struct level), at that JSON depth,
// stay within the reply limit.
TEST(DecodeReply, JsonWithinTheDepthBoundCannotDecodeTooDeep) {
  const int d = kMaxJsonDepthWithinReplyLimit;
  ASSERT_EQ(d, 32);
  // The Struct sits at JSON level 3 (root, payload, custom_attributes): d - 2 levels of it.
  auto structs = [](int levels) { return ChatwootContact(DeepStruct(levels)); };
  auto lists = [](int levels) {  // Struct, then ListValue/Value levels
    return ChatwootContact(R"({"a":)" + std::string(levels - 1, '[') + "1" +
                           std::string(levels - 1, ']') + "}");
  };
  auto mixed = [](int levels) {  // {"a":[{"a":[...]}]}
    std::string s;
    for (int i = 0; i < levels; ++i) s += (i % 2 == 0) ? R"({"a":)" : "[";
    s += "1";
    for (int i = levels - 1; i >= 0; --i) s += (i % 2 == 0) ? "}" : "]";
    return ChatwootContact(s);
  };
  for (const auto& [name, shape] :
       std::vector<std::pair<std::string, std::function<std::string(int)>>>{
           {"structs", structs}, {"lists", lists}, {"mixed", mixed}}) {
    SCOPED_TRACE(name);
    const std::string body = shape(d - 2);
    ASSERT_EQ(JsonNestingDepth(body, 1000), d);
    chatwoot::v1::GetContactResponse decoded;
    ASSERT_TRUE(DecodeMessage(nlohmann::json::parse(body), &decoded).ok());
    EXPECT_LE(MessageDepth(decoded, 1000), kMaxReplyMessageDepth);
    // Reply and payload, then Struct, map entry and Value per level.
    if (name == "structs") {
      EXPECT_EQ(MessageDepth(decoded, 1000), 2 + 3 * (d - 2));
    }
  }
}

TEST(DecodeReply, DeeplyNestedSlicePaginationItemsAreTooDeepNotACrash) {
  const Route route = DeclaredRoute("chatwoot.v1.ContactService.ListContactConversations");
  const std::string item = std::string(100000, '[') + std::string(100000, ']');
  auto reply = DecodeReply(route, "chatwoot", "", 0, R"({"payload":[{"id":1},)" + item + "]}");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(ErrorInfoOf(reply.status()).reason(), "UPSTREAM_RESPONSE_TOO_DEEP");
}

TEST(DecodeReply, OutOfRangeIntegersAreAMismatchNamingTheField) {
  const Route route = DeclaredRoute("respondio.v2.ContactService.GetContact");
  // 9.223372036854775807e18 rounds to 2^63 as a double: it used to be cast to int64 (undefined
  // behaviour), and callers got -9223372036854775808.
  for (const std::string id : {"9.223372036854775807e18", "1e19", "-9.3e18", "1e300",
                               "18446744073709551616", "9223372036854775808"}) {
    SCOPED_TRACE(id);
    auto reply = DecodeReply(route, "respondio", "", 0, R"({"id":)" + id + "}");
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal);
    const auto info = ErrorInfoOf(reply.status());
    EXPECT_EQ(info.reason(), "UPSTREAM_RESPONSE_MISMATCH");
    EXPECT_EQ(info.metadata().at("field"), "contact.id");
  }
  // The extremes that do fit are kept exactly.
  auto max = DecodeOk<respondio::v2::GetContactResponse>(route, R"({"id":9223372036854775807})");
  EXPECT_EQ(max.contact().id(), INT64_MAX);
  auto min = DecodeOk<respondio::v2::GetContactResponse>(route, R"({"id":-9.223372036854775808e18})");
  EXPECT_EQ(min.contact().id(), INT64_MIN);
}

}  // namespace
}  // namespace gateway::upstream
