#include "upstream/binding/validation.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "respondio/v2/conversation_service.pb.h"
#include "respondio/v2/custom_field_service.pb.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/space_service.pb.h"
#include "respondio/v2/tag_service.pb.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::BadRequestFieldOf;
using ::gateway::testing::ErrorInfoOf;
using ::testing::HasSubstr;

constexpr char kUuid[] = "123e4567-e89b-12d3-a456-426614174000";

void ExpectInvalidField(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field + ": "));
  EXPECT_EQ(BadRequestFieldOf(status), field);
  const auto info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(info.domain(), "gateway");
  EXPECT_EQ(info.metadata().at("field"), field);
}

respondio::v2::GetContactRequest Get(const std::string& identifier) {
  respondio::v2::GetContactRequest request;
  request.set_identifier(identifier);
  return request;
}

// ---- contact identifiers ----

TEST(ContactIdentifier, ValidForms) {
  for (const char* identifier :
       {"id:1", "id:1234567890", "email:ann@example.com", "email:a.b+tag@sub.example.co",
        "phone:+60123456789", "phone:+12025550123", "phone:+123456789012345"}) {
    SCOPED_TRACE(identifier);
    EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_CONTACT_IDENTIFIER, identifier), "");
    EXPECT_TRUE(ValidateRequest(Get(identifier)).ok());
  }
}

TEST(ContactIdentifier, InvalidForms) {
  for (const char* identifier :
       {"12", "id:", "id:12a", "id:-1", "email:nope", "email:@example.com", "email:a@b",
        "email:a b@example.com", "phone:123", "phone:60123456789", "phone:+12",
        "phone:+1234567890123456", "phone:+6012345678a", "ID:12", "name:ann"}) {
    SCOPED_TRACE(identifier);
    EXPECT_NE(CheckFormat(gateway::v1::FORMAT_CONTACT_IDENTIFIER, identifier), "");
    ExpectInvalidField(ValidateRequest(Get(identifier)), "identifier");
  }
}

TEST(Formats, EmailPhoneUuidUrl) {
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_EMAIL, "ann@example.com"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_EMAIL, "ann"), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_PHONE_E164, "+60123456789"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_PHONE_E164, "60123456789"), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_PHONE_E164_NO_PLUS, "60123456789"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_PHONE_E164_NO_PLUS, "+60123456789"), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_UUID, kUuid), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_UUID, "123E4567-E89B-12D3-A456-426614174000"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_UUID, "123e4567e89b12d3a456426614174000"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_UUID, "123e4567-e89b-12d3-a456-42661417400g"), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_URL, "https://cdn.example.com/a.png"), "");
  EXPECT_NE(CheckFormat(gateway::v1::FORMAT_URL, "ftp://cdn.example.com/a.png"), "");
  EXPECT_EQ(CheckFormat(gateway::v1::FORMAT_UNSPECIFIED, "anything"), "");
}

TEST(Formats, CheckedOnRequestFields) {
  respondio::v2::CreateContactRequest request;
  request.set_email("nope");
  ExpectInvalidField(ValidateRequest(request), "email");
  request.set_email("ann@example.com");
  request.set_phone("60123456789");
  ExpectInvalidField(ValidateRequest(request), "phone");
  request.set_phone("+60123456789");
  request.set_profile_pic("ftp://x/a.png");
  ExpectInvalidField(ValidateRequest(request), "profile_pic");
  request.set_profile_pic("https://x/a.png");
  EXPECT_TRUE(ValidateRequest(request).ok());
}

// ---- required fields ----

TEST(Required, EmptyStringAndZeroNumber) {
  ExpectInvalidField(ValidateRequest(respondio::v2::GetContactRequest()), "identifier");

  respondio::v2::MergeContactsRequest merge;
  merge.set_secondary_contact_id(2);
  ExpectInvalidField(ValidateRequest(merge), "primary_contact_id");
  merge.set_primary_contact_id(1);
  EXPECT_TRUE(ValidateRequest(merge).ok());

  respondio::v2::CreateTagRequest tag;
  ExpectInvalidField(ValidateRequest(tag), "name");
}

TEST(Required, MissingMessage) {
  respondio::v2::SendMessageRequest request;
  request.set_identifier("id:1");
  ExpectInvalidField(ValidateRequest(request), "message");
}

TEST(Required, EnumLeftUnspecified) {
  respondio::v2::UpdateConversationStatusRequest request;
  request.set_identifier("id:1");
  const absl::Status status = ValidateRequest(request);
  ExpectInvalidField(status, "status");
  EXPECT_THAT(std::string(status.message()), HasSubstr("CONVERSATION_STATUS_UNSPECIFIED"));
  request.set_status(respondio::v2::CONVERSATION_STATUS_CLOSE);
  EXPECT_TRUE(ValidateRequest(request).ok());

  respondio::v2::CreateCustomFieldRequest field;
  field.set_name("plan");
  ExpectInvalidField(ValidateRequest(field), "type");
}

TEST(Required, NestedMessageTypeOfSendMessage) {
  respondio::v2::SendMessageRequest request;
  request.set_identifier("id:1");
  request.mutable_message()->set_text("Hello");
  ExpectInvalidField(ValidateRequest(request), "message.type");
  request.mutable_message()->set_type(respondio::v2::MESSAGE_TYPE_TEXT);
  EXPECT_TRUE(ValidateRequest(request).ok());
}

TEST(Enums, UnknownNumberIsRejected) {
  respondio::v2::UpdateConversationStatusRequest request;
  request.set_identifier("id:1");
  request.set_status(static_cast<respondio::v2::ConversationStatus>(7));
  const absl::Status status = ValidateRequest(request);
  ExpectInvalidField(status, "status");
  EXPECT_THAT(std::string(status.message()), HasSubstr("unknown value 7"));

  respondio::v2::SendMessageRequest send;
  send.set_identifier("id:1");
  send.mutable_message()->set_type(static_cast<respondio::v2::MessageType>(42));
  ExpectInvalidField(ValidateRequest(send), "message.type");

  send.mutable_message()->set_type(respondio::v2::MESSAGE_TYPE_ATTACHMENT);
  send.mutable_message()->mutable_attachment()->set_type(
      static_cast<respondio::v2::AttachmentType>(-3));
  ExpectInvalidField(ValidateRequest(send), "message.attachment.type");
}

// ---- page_size ----

TEST(PageSize, RangeIsZeroToHundred) {
  respondio::v2::ListContactsRequest request;
  for (int ok : {0, 1, 100}) {
    request.set_page_size(ok);
    EXPECT_TRUE(ValidateRequest(request).ok()) << ok;
  }
  request.set_page_size(101);
  ExpectInvalidField(ValidateRequest(request), "page_size");
  request.set_page_size(-1);
  ExpectInvalidField(ValidateRequest(request), "page_size");

  respondio::v2::ListSpaceUsersRequest users;
  users.set_page_size(101);
  ExpectInvalidField(ValidateRequest(users), "page_size");
}

// ---- tags ----

respondio::v2::AddContactTagsRequest Tags(int count, size_t length = 3) {
  respondio::v2::AddContactTagsRequest request;
  request.set_identifier("id:1");
  for (int i = 0; i < count; ++i) request.add_tags(std::string(length, 'a' + i));
  return request;
}

TEST(Tags, CountBetweenOneAndTen) {
  EXPECT_TRUE(ValidateRequest(Tags(1)).ok());
  EXPECT_TRUE(ValidateRequest(Tags(10)).ok());
  ExpectInvalidField(ValidateRequest(Tags(11)), "tags");
  ExpectInvalidField(ValidateRequest(Tags(0)), "tags");
}

TEST(Tags, EachAtMost255Characters) {
  EXPECT_TRUE(ValidateRequest(Tags(2, 255)).ok());
  respondio::v2::AddContactTagsRequest request = Tags(3);
  request.set_tags(1, std::string(256, 'x'));
  const absl::Status status = ValidateRequest(request);
  ExpectInvalidField(status, "tags[1]");
  EXPECT_THAT(std::string(status.message()), HasSubstr("got 256"));

  request = Tags(3);
  request.set_tags(2, "");
  ExpectInvalidField(ValidateRequest(request), "tags[2]");

  respondio::v2::CreateCustomFieldRequest field;
  field.set_name("plan");
  field.set_type(respondio::v2::CUSTOM_FIELD_TYPE_LIST);
  field.add_options("gold");
  field.add_options(std::string(256, 'x'));
  ExpectInvalidField(ValidateRequest(field), "options[1]");
}

// ---- comment length, in characters ----

respondio::v2::CreateCommentRequest Comment(const std::string& text) {
  respondio::v2::CreateCommentRequest request;
  request.set_identifier("id:1");
  request.set_text(text);
  return request;
}

std::string Repeat(const std::string& piece, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += piece;
  return out;
}

TEST(Comment, AtMost1000Characters) {
  EXPECT_TRUE(ValidateRequest(Comment(std::string(1000, 'a'))).ok());
  const absl::Status status = ValidateRequest(Comment(std::string(1001, 'a')));
  ExpectInvalidField(status, "text");
  EXPECT_THAT(std::string(status.message()), HasSubstr("at most 1000 characters (got 1001)"));
}

TEST(Comment, CountsCharactersNotBytes) {
  const std::string e_acute = "\xC3\xA9";           // 2 bytes
  const std::string emoji = "\xF0\x9F\x98\x80";     // 4 bytes
  EXPECT_TRUE(ValidateRequest(Comment(Repeat(e_acute, 1000))).ok());
  EXPECT_TRUE(ValidateRequest(Comment(Repeat(emoji, 1000))).ok());
  ExpectInvalidField(ValidateRequest(Comment(Repeat(e_acute, 1001))), "text");
  ExpectInvalidField(ValidateRequest(Comment(Repeat(emoji, 999) + "ab")), "text");
}

// ---- request_id ----

TEST(RequestId, MustBeAUuidWhenSet) {
  respondio::v2::DeleteContactRequest request;
  request.set_identifier("id:1");
  EXPECT_TRUE(ValidateRequest(request).ok());
  request.set_request_id(kUuid);
  EXPECT_TRUE(ValidateRequest(request).ok());
  request.set_request_id("retry-1");
  ExpectInvalidField(ValidateRequest(request), "request_id");
}

TEST(Validation, FirstViolationInFieldOrderIsReported) {
  respondio::v2::SendMessageRequest request;  // identifier and message both missing
  ExpectInvalidField(ValidateRequest(request), "identifier");
}

}  // namespace
}  // namespace gateway::upstream
