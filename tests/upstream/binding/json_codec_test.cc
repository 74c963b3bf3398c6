#include "upstream/binding/json_codec.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.pb.h"
#include "respondio/v2/conversation_service.pb.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/resources.pb.h"
#include "test.pb.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;
using nlohmann::json;

template <typename Proto>
Proto Decode(const std::string& text) {
  Proto proto;
  absl::Status status = DecodeMessage(json::parse(text), &proto);
  EXPECT_TRUE(status.ok()) << status;
  return proto;
}

template <typename Proto>
absl::Status DecodeError(const std::string& text) {
  Proto proto;
  return DecodeMessage(json::parse(text), &proto);
}

void ExpectMismatch(const absl::Status& status, const std::string& path) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("'" + path + "'"));
  EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_RESPONSE_MISMATCH");
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("field"), path);
}

// ---- JSON -> proto ----

TEST(DecodeMessage, ContactFromRestJson) {
  const auto contact = Decode<respondio::v2::Contact>(R"({
      "id": 1234,
      "firstName": "Ann",
      "lastName": "Lee",
      "email": "ann@example.com",
      "phone": "+60123456789",
      "language": "en",
      "profilePic": "https://cdn.example.com/ann.png",
      "countryCode": "MY",
      "status": "customer",
      "assignee": "email:agent@example.com",
      "created": 1700000000,
      "tags": ["vip", "newsletter"],
      "customFields": [{"name": "plan", "value": "gold"}]
  })");
  EXPECT_EQ(contact.id(), 1234);
  EXPECT_EQ(contact.first_name(), "Ann");
  EXPECT_EQ(contact.last_name(), "Lee");
  EXPECT_EQ(contact.email(), "ann@example.com");
  EXPECT_EQ(contact.phone(), "+60123456789");
  EXPECT_EQ(contact.language(), "en");
  EXPECT_EQ(contact.profile_pic(), "https://cdn.example.com/ann.png");
  EXPECT_EQ(contact.country_code(), "MY");
  EXPECT_EQ(contact.status(), "customer");
  ASSERT_TRUE(contact.has_assignee());
  EXPECT_EQ(contact.assignee(), "email:agent@example.com");
  EXPECT_EQ(contact.created(), 1700000000);
  ASSERT_EQ(contact.tags_size(), 2);
  EXPECT_EQ(contact.tags(1), "newsletter");
  ASSERT_EQ(contact.custom_fields_size(), 1);
  EXPECT_EQ(contact.custom_fields(0).name(), "plan");
  EXPECT_EQ(contact.custom_fields(0).value(), "gold");
}

TEST(DecodeMessage, ProtoNamesAreAcceptedToo) {
  const auto contact = Decode<respondio::v2::Contact>(R"({"first_name":"Ann","country_code":"MY"})");
  EXPECT_EQ(contact.first_name(), "Ann");
  EXPECT_EQ(contact.country_code(), "MY");
}

TEST(DecodeMessage, UnknownFieldsAreIgnored) {
  const auto contact = Decode<respondio::v2::Contact>(
      R"({"id":1,"newField":{"deep":[1,2]},"firstname":"lower-case n is another key","x":null})");
  EXPECT_EQ(contact.id(), 1);
  EXPECT_EQ(contact.first_name(), "");
}

TEST(DecodeMessage, NullIsUnset) {
  const auto contact = Decode<respondio::v2::Contact>(
      R"({"id":null,"firstName":null,"assignee":null,"tags":[null,"vip",null],"customFields":null})");
  EXPECT_EQ(contact.id(), 0);
  EXPECT_EQ(contact.first_name(), "");
  EXPECT_FALSE(contact.has_assignee());
  ASSERT_EQ(contact.tags_size(), 1);
  EXPECT_EQ(contact.tags(0), "vip");
  EXPECT_EQ(contact.custom_fields_size(), 0);

  const auto conversation = Decode<respondio::v2::Conversation>(R"({"closed":null,"opened":5})");
  EXPECT_FALSE(conversation.has_closed());
  EXPECT_EQ(conversation.opened(), 5);
}

TEST(DecodeMessage, Int64FromNumberAndFromString) {
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":9007199254740993})").id(), 9007199254740993);
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":"9007199254740993"})").id(), 9007199254740993);
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":-12})").id(), -12);
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":"-12"})").id(), -12);
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":1000.0})").id(), 1000);
  EXPECT_EQ(Decode<respondio::v2::Contact>(R"({"id":9223372036854775807})").id(),
            9223372036854775807);
}

TEST(DecodeMessage, BadIntegersAreMismatches) {
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"id":"12a"})"), "id");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"id":1.5})"), "id");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"id":true})"), "id");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"id":9223372036854775808})"), "id");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"small":3000000000})"), "small");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"big":-1})"), "big");
  EXPECT_EQ(Decode<gatewaytest::v1::Item>(R"({"big":18446744073709551615})").big(),
            18446744073709551615u);
  EXPECT_EQ(Decode<gatewaytest::v1::Item>(R"({"small":"-7"})").small(), -7);
}

TEST(DecodeMessage, EnumFromRestString) {
  const auto message = Decode<respondio::v2::Message>(
      R"({"messageId":7,"traffic":"outgoing","message":{"type":"quick_reply","text":"Pick one",
          "quickReplies":[{"title":"Yes","payload":"Y"}]}})");
  EXPECT_EQ(message.message_id(), 7);
  EXPECT_EQ(message.traffic(), respondio::v2::MESSAGE_TRAFFIC_OUTGOING);
  EXPECT_EQ(message.message().type(), respondio::v2::MESSAGE_TYPE_QUICK_REPLY);
  ASSERT_EQ(message.message().quick_replies_size(), 1);
  EXPECT_EQ(message.message().quick_replies(0).payload(), "Y");

  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":"whatsapp_template"})").type(),
            respondio::v2::MESSAGE_TYPE_WHATSAPP_TEMPLATE);
  EXPECT_EQ(Decode<respondio::v2::Conversation>(R"({"status":"close"})").status(),
            respondio::v2::CONVERSATION_STATUS_CLOSE);
  EXPECT_EQ(Decode<respondio::v2::CustomField>(R"({"type":"checkbox"})").type(),
            respondio::v2::CUSTOM_FIELD_TYPE_CHECKBOX);
  // The proto value name and the number are accepted as well.
  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":"MESSAGE_TYPE_TEXT"})").type(),
            respondio::v2::MESSAGE_TYPE_TEXT);
  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":2})").type(),
            respondio::v2::MESSAGE_TYPE_ATTACHMENT);
  // An explicit rest_value.
  EXPECT_EQ(Decode<gatewaytest::v1::Item>(R"({"color":"azure","colors":["dark_red","azure"]})")
                .colors(1),
            gatewaytest::v1::COLOR_BLUE);
}

TEST(DecodeMessage, UnknownEnumStringIsUnspecified) {
  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":"carousel","text":"x"})").type(),
            respondio::v2::MESSAGE_TYPE_UNSPECIFIED);
  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":"unspecified"})").type(),
            respondio::v2::MESSAGE_TYPE_UNSPECIFIED);
  EXPECT_EQ(Decode<respondio::v2::MessageContent>(R"({"type":99})").type(),
            respondio::v2::MESSAGE_TYPE_UNSPECIFIED);
  ExpectMismatch(DecodeError<respondio::v2::MessageContent>(R"({"type":{"a":1}})"), "type");
}

TEST(DecodeMessage, StructRoundTrip) {
  const std::string text = R"({
      "id": 5,
      "name": "WhatsApp",
      "source": "whatsapp",
      "meta": {
        "phone": "+60123456789",
        "verified": true,
        "quota": 1000,
        "ratio": 0.25,
        "none": null,
        "list": ["a", 1, false, null, {"k": "v"}],
        "nested": {"deep": {"deeper": [[]]}}
      }
  })";
  const auto channel = Decode<respondio::v2::Channel>(text);
  EXPECT_EQ(channel.id(), 5);
  EXPECT_EQ(channel.meta().fields().at("phone").string_value(), "+60123456789");
  EXPECT_TRUE(channel.meta().fields().at("verified").bool_value());
  EXPECT_EQ(channel.meta().fields().at("quota").number_value(), 1000);
  EXPECT_EQ(channel.meta().fields().at("list").list_value().values_size(), 5);
  const json encoded = EncodeMessage(channel);
  EXPECT_EQ(encoded, json::parse(text));
  EXPECT_TRUE(encoded["meta"]["quota"].is_number_integer());
  EXPECT_TRUE(encoded["meta"]["ratio"].is_number_float());

  ExpectMismatch(DecodeError<respondio::v2::Channel>(R"({"meta":[1]})"), "meta");
}

TEST(DecodeMessage, TypeMismatchNamesTheJsonPath) {
  respondio::v2::ListContactsResponse reply;
  const absl::Status status =
      DecodeMessage(json::parse(R"({"items":[{},{},{"firstName":5}]})"), &reply);
  ExpectMismatch(status, "items[2].firstName");
  EXPECT_EQ(ErrorInfoOf(status).domain(), "gateway");
}

TEST(DecodeMessage, OtherMismatches) {
  // One object where a list of messages is declared is a list of one ({payload: contact}).
  EXPECT_EQ(Decode<respondio::v2::ListContactsResponse>(R"({"items":{"id":3}})").items(0).id(), 3);
  ExpectMismatch(DecodeError<respondio::v2::ListContactsResponse>(R"({"items":[1]})"), "items[0]");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"tags":"vip"})"), "tags");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"tags":["a",2]})"), "tags[1]");
  ExpectMismatch(DecodeError<respondio::v2::Contact>(R"({"customFields":[{"name":["x"]}]})"),
                 "customFields[0].name");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"flag":"true"})"), "flag");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"ratio":"fast"})"), "ratio");
  ExpectMismatch(DecodeError<respondio::v2::Message>(R"({"message":{"type":"text","text":1}})"),
                 "message.text");
  // The root itself.
  respondio::v2::Contact contact;
  ExpectMismatch(DecodeMessage(json::array(), &contact), "(reply)");
  ExpectMismatch(DecodeMessage(json::array(), &contact, "contact"), "contact");
}

TEST(DecodeMessage, Maps) {
  const auto item =
      Decode<gatewaytest::v1::Item>(R"({"counts":{"a":1,"b":"2","c":null},"names":{"7":"seven"}})");
  EXPECT_EQ(item.counts().at("a"), 1);
  EXPECT_EQ(item.counts().at("b"), 2);
  EXPECT_EQ(item.names().at(7), "seven");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"counts":[1]})"), "counts");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"counts":{"a":"x"}})"), "counts.a");
  ExpectMismatch(DecodeError<gatewaytest::v1::Item>(R"({"names":{"seven":"7"}})"), "names.seven");

  gatewaytest::v1::Item encoded;
  (*encoded.mutable_counts())["a"] = 3;
  (*encoded.mutable_names())[7] = "seven";
  EXPECT_EQ(EncodeMessage(encoded), json::parse(R"({"counts":{"a":3},"names":{"7":"seven"}})"));
}

TEST(DecodeField, DecodesIntoOneField) {
  respondio::v2::GetContactResponse reply;
  const auto* field = reply.GetDescriptor()->FindFieldByName("contact");
  ASSERT_TRUE(DecodeField(json::parse(R"({"id":3})"), &reply, field, "contact").ok());
  EXPECT_EQ(reply.contact().id(), 3);
  ExpectMismatch(DecodeField(json::parse(R"({"id":"x"})"), &reply, field, "contact"),
                 "contact.id");
}

// ---- proto -> JSON ----

TEST(EncodeMessage, OmitsDefaults) {
  respondio::v2::Contact contact;
  EXPECT_EQ(EncodeMessage(contact).dump(), "{}");
  contact.set_first_name("Ann");
  EXPECT_EQ(EncodeMessage(contact).dump(), R"({"firstName":"Ann"})");

  respondio::v2::Conversation conversation;
  conversation.set_status(respondio::v2::CONVERSATION_STATUS_UNSPECIFIED);
  conversation.set_opened(0);
  EXPECT_EQ(EncodeMessage(conversation).dump(), "{}");

  gatewaytest::v1::Item item;
  item.set_flag(false);
  item.set_ratio(0.0);
  EXPECT_EQ(EncodeMessage(item).dump(), "{}");
}

TEST(EncodeMessage, ExplicitPresenceKeepsZeroValues) {
  respondio::v2::Conversation conversation;
  conversation.set_closed(0);
  conversation.set_assignee("");
  EXPECT_EQ(EncodeMessage(conversation), json::parse(R"({"assignee":"","closed":0})"));
}

TEST(EncodeMessage, WritesNumbersEnumsAndNestedMessages) {
  respondio::v2::Message message;
  message.set_message_id(9007199254740993);
  message.set_traffic(respondio::v2::MESSAGE_TRAFFIC_INCOMING);
  message.mutable_message()->set_type(respondio::v2::MESSAGE_TYPE_ATTACHMENT);
  message.mutable_message()->mutable_attachment()->set_type(respondio::v2::ATTACHMENT_TYPE_IMAGE);
  message.mutable_message()->mutable_attachment()->set_url("https://x.io/a.png");
  const json encoded = EncodeMessage(message);
  EXPECT_EQ(encoded, json::parse(R"({"messageId":9007199254740993,"traffic":"incoming",
      "message":{"type":"attachment","attachment":{"type":"image","url":"https://x.io/a.png"}}})"));
  EXPECT_TRUE(encoded["messageId"].is_number_integer());

  gatewaytest::v1::Item item;
  item.set_big(18446744073709551615u);
  item.set_ratio(0.5);
  item.add_colors(gatewaytest::v1::COLOR_BLUE);
  item.add_colors(gatewaytest::v1::COLOR_UNSPECIFIED);
  EXPECT_EQ(EncodeMessage(item).dump(),
            R"({"big":18446744073709551615,"colors":["azure","unspecified"],"ratio":0.5})");
}

TEST(EncodeMessage, SkipsRequestedFields) {
  respondio::v2::SendMessageRequest request;
  request.set_identifier("id:1");
  request.set_channel_id(5);
  EXPECT_EQ(EncodeMessage(request, {request.GetDescriptor()->FindFieldByName("identifier")}).dump(),
            R"({"channelId":5})");
}

TEST(EncodeField, NullWhenUnset) {
  respondio::v2::AssignConversationRequest request;
  const auto* field = request.GetDescriptor()->FindFieldByName("assignee");
  EncodedField encoded = EncodeField(request, field);
  EXPECT_TRUE(encoded.present);
  EXPECT_TRUE(encoded.value.is_null());

  // Without the rule an unset optional field is omitted.
  respondio::v2::Contact contact;
  encoded = EncodeField(contact, contact.GetDescriptor()->FindFieldByName("assignee"));
  EXPECT_FALSE(encoded.present);
}

TEST(EnumRestValue, DropsTheEnumPrefixOrUsesTheOption) {
  EXPECT_EQ(EnumRestValue(respondio::v2::MessageType_descriptor()->FindValueByNumber(3)),
            "quick_reply");
  EXPECT_EQ(EnumRestValue(respondio::v2::MessageType_descriptor()->FindValueByNumber(4)),
            "whatsapp_template");
  EXPECT_EQ(EnumRestValue(respondio::v2::ConversationStatus_descriptor()->FindValueByNumber(2)),
            "close");
  EXPECT_EQ(EnumRestValue(respondio::v2::CustomFieldType_descriptor()->FindValueByNumber(5)),
            "checkbox");
  EXPECT_EQ(EnumRestValue(gatewaytest::v1::Color_descriptor()->FindValueByNumber(1)), "dark_red");
  EXPECT_EQ(EnumRestValue(gatewaytest::v1::Color_descriptor()->FindValueByNumber(2)), "azure");
}

}  // namespace
}  // namespace gateway::upstream
