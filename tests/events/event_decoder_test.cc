#include "events/event_decoder.h"

#include "chatwoot/v1/events.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "respondio/v2/events.pb.h"

namespace gateway::events {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// Shaped like live respond.io webhooks (specs: {event_id, event_type, contact, message, channel}).
constexpr char kMessageReceived[] = R"({
  "event_id": "4f7c1f8e-1111-4d7e-9a55-000000000001",
  "event_type": "message.received",
  "contact": {"id": 12, "firstName": "Ada", "email": "ada@example.com", "phone": "+60123456789",
              "tags": ["vip"]},
  "message": {"messageId": 991, "channelId": 5, "traffic": "incoming",
              "message": {"type": "text", "text": "hello"}, "timestamp": 1700000000},
  "channel": {"id": 5, "name": "WhatsApp", "source": "whatsapp"},
  "somethingNew": {"x": 1}
})";

TEST(EventDecoderTest, RespondioMessageReceivedIsTyped) {
  auto decoder = EventDecoder::Create(respondio::v2::Event::descriptor());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_EQ(decoder->upstream(), "respondio");
  auto decoded = decoder->Decode(nlohmann::json::parse(kMessageReceived), "");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->unknown);
  EXPECT_EQ(decoded->type, "message.received");
  EXPECT_EQ(decoded->delivery_id, "4f7c1f8e-1111-4d7e-9a55-000000000001");
  const auto& event = static_cast<const respondio::v2::Event&>(*decoded->event);
  ASSERT_EQ(event.payload_case(), respondio::v2::Event::kMessageReceived);
  EXPECT_EQ(event.type(), "message.received");
  EXPECT_EQ(event.event_id(), "4f7c1f8e-1111-4d7e-9a55-000000000001");
  EXPECT_EQ(event.message_received().contact().id(), 12);
  EXPECT_EQ(event.message_received().contact().first_name(), "Ada");
  EXPECT_EQ(event.message_received().message().message_id(), 991);
  EXPECT_EQ(event.message_received().message().message().text(), "hello");
  EXPECT_EQ(event.message_received().channel().source(), "whatsapp");
  EXPECT_THAT(decoded->invalidates, ElementsAre("contact:id:12"));
  EXPECT_THAT(decoded->aliases,
              ElementsAre("contact:email:ada@example.com", "contact:phone:+60123456789"));
}

TEST(EventDecoderTest, EveryRespondioTypeHasAField) {
  auto decoder = EventDecoder::Create(respondio::v2::Event::descriptor());
  ASSERT_TRUE(decoder.ok());
  EXPECT_THAT(decoder->KnownTypes(),
              UnorderedElementsAre("message.received", "message.sent", "contact.created",
                                   "contact.updated", "contact.tag.updated",
                                   "contact.assignee.updated", "conversation.opened",
                                   "conversation.closed"));
}

TEST(EventDecoderTest, ChatwootMessageCreatedDecodesTheTopLevelObject) {
  auto decoder = EventDecoder::Create(chatwoot::v1::Event::descriptor());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_EQ(decoder->id_header(), "X-Chatwoot-Delivery");
  auto decoded = decoder->Decode(nlohmann::json::parse(R"({
    "event": "message_created", "id": 77, "content": "hi there", "message_type": "incoming",
    "conversation_id": 0, "conversation": {"id": 31, "display_id": 31},
    "sender": {"id": 4, "name": "Ada", "type": "contact"}
  })"), "b7d4f0f2-delivery");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const auto& event = static_cast<const chatwoot::v1::Event&>(*decoded->event);
  ASSERT_EQ(event.payload_case(), chatwoot::v1::Event::kMessageCreated);
  EXPECT_EQ(event.delivery_id(), "b7d4f0f2-delivery");
  EXPECT_EQ(event.message_created().message().id(), 77);
  EXPECT_EQ(event.message_created().message().content(), "hi there");
  EXPECT_EQ(event.message_created().message().message_type(), chatwoot::v1::MESSAGE_TYPE_INCOMING);
  // conversation_id 0 names no conversation: the tag is skipped rather than "...:0".
  EXPECT_TRUE(decoded->invalidates.empty());
}

TEST(EventDecoderTest, ChatwootContactUpdatedInvalidatesTheContact) {
  auto decoder = EventDecoder::Create(chatwoot::v1::Event::descriptor());
  ASSERT_TRUE(decoder.ok());
  auto decoded = decoder->Decode(nlohmann::json::parse(R"({
    "event": "contact_updated", "id": 9, "name": "Ada L", "email": "ada@example.com",
    "changed_attributes": [{"name": {"previous_value": "Ada", "current_value": "Ada L"}}]
  })"), "d1");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const auto& event = static_cast<const chatwoot::v1::Event&>(*decoded->event);
  ASSERT_EQ(event.payload_case(), chatwoot::v1::Event::kContactUpdated);
  EXPECT_EQ(event.contact_updated().contact().name(), "Ada L");
  EXPECT_TRUE(event.contact_updated().changed_attributes().has_list_value());
  EXPECT_THAT(decoded->invalidates, ElementsAre("chatwoot_contact:9", "chatwoot_contacts",
                                                "chatwoot_conversations"));
}

TEST(EventDecoderTest, UnknownTypeIsKeptWithItsRawJson) {
  auto decoder = EventDecoder::Create(chatwoot::v1::Event::descriptor());
  ASSERT_TRUE(decoder.ok());
  auto decoded = decoder->Decode(
      nlohmann::json::parse(R"({"event": "webwidget_triggered", "id": 3, "x": {"y": "z"}})"), "d");
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->unknown);
  const auto& event = static_cast<const chatwoot::v1::Event&>(*decoded->event);
  ASSERT_EQ(event.payload_case(), chatwoot::v1::Event::kUnknown);
  EXPECT_EQ(event.unknown().type(), "webwidget_triggered");
  EXPECT_EQ(event.unknown().raw().fields().at("x").struct_value().fields().at("y").string_value(),
            "z");
  EXPECT_TRUE(event.unknown().decode_error().empty());
}

TEST(EventDecoderTest, KnownTypeThatDoesNotFitIsKeptAsUnknownWithTheError) {
  auto decoder = EventDecoder::Create(respondio::v2::Event::descriptor());
  ASSERT_TRUE(decoder.ok());
  auto decoded = decoder->Decode(
      nlohmann::json::parse(R"({"event_id": "e", "event_type": "contact.updated",
                                 "contact": {"id": {"not": "a number"}}})"),
      "");
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->unknown);
  const auto& event = static_cast<const respondio::v2::Event&>(*decoded->event);
  ASSERT_EQ(event.payload_case(), respondio::v2::Event::kUnknown);
  EXPECT_EQ(event.unknown().type(), "contact.updated");
  EXPECT_FALSE(event.unknown().decode_error().empty());
  EXPECT_TRUE(decoded->invalidates.empty());
}

TEST(EventDecoderTest, MissingTypeOrNotAnObjectIsMalformed) {
  auto decoder = EventDecoder::Create(respondio::v2::Event::descriptor());
  ASSERT_TRUE(decoder.ok());
  EXPECT_EQ(decoder->Decode(nlohmann::json::parse(R"({"event_id": "e"})"), "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoder->Decode(nlohmann::json::parse("[1]"), "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gateway::events
