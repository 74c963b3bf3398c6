#include "service/route_table.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

RouteTable BuildOk(const absl::flat_hash_map<std::string, RouteOverride>& overrides = {}) {
  auto table = RouteTable::Build(overrides);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : RouteTable();
}

struct Expected {
  const char* rpc;
  const char* verb;
  const char* path;
  const char* body;
  const char* bucket;
};

// The 26 respond.io RPCs as proto/respondio/v2 declares them (OpenAPI / guide paths).
constexpr Expected kRespondio[] = {
    {"/respondio.v2.CommentService/CreateComment", "POST", "/contact/{identifier}/comment", "*",
     "comment_create"},
    {"/respondio.v2.ContactService/CreateContact", "POST", "/contact", "*", "contact_write"},
    {"/respondio.v2.ContactService/CreateOrUpdateContact", "POST",
     "/contact/create_or_update/{identifier}", "*", "contact_create_or_update"},
    {"/respondio.v2.ContactService/DeleteContact", "DELETE", "/contact/{identifier}", "",
     "contact_write"},
    {"/respondio.v2.ContactService/GetContact", "GET", "/contact/{identifier}", "", "contact_get"},
    {"/respondio.v2.ContactService/GetContactChannel", "GET",
     "/contact/{identifier}/channel/{channel_id}", "", "contact_channel_get"},
    {"/respondio.v2.ContactService/ListContactChannels", "GET", "/contact/{identifier}/channel", "",
     "contact_channel_list"},
    {"/respondio.v2.ContactService/ListContacts", "GET", "/contact/list", "", "contact_list"},
    {"/respondio.v2.ContactService/MergeContacts", "POST", "/contact/merge", "*", "contact_merge"},
    {"/respondio.v2.ContactService/UpdateContact", "PUT", "/contact/{identifier}", "*",
     "contact_write"},
    {"/respondio.v2.ConversationService/AssignConversation", "POST",
     "/contact/{identifier}/conversation/assignee", "*", "conversation_assignee"},
    {"/respondio.v2.ConversationService/UpdateConversationStatus", "POST",
     "/contact/{identifier}/conversation", "*", "conversation_status"},
    {"/respondio.v2.CustomFieldService/CreateCustomField", "POST", "/custom_field", "*",
     "custom_field_create"},
    {"/respondio.v2.CustomFieldService/GetCustomField", "GET", "/custom_field/{custom_field_id}", "",
     "custom_field_get"},
    {"/respondio.v2.CustomFieldService/ListCustomFields", "GET", "/custom_field", "",
     "custom_field_list"},
    {"/respondio.v2.MessageService/GetMessage", "GET", "/contact/{identifier}/message/{message_id}",
     "", "message_get"},
    {"/respondio.v2.MessageService/SendMessage", "POST", "/contact/{identifier}/message", "*",
     "message_send"},
    {"/respondio.v2.SpaceService/GetSpaceUser", "GET", "/space/user/{user_id}", "",
     "space_user_get"},
    {"/respondio.v2.SpaceService/ListClosingNotes", "GET", "/space/closing_notes", "",
     "closing_note_list"},
    {"/respondio.v2.SpaceService/ListSpaceChannels", "GET", "/space/channel", "",
     "space_channel_list"},
    {"/respondio.v2.SpaceService/ListSpaceUsers", "GET", "/space/user", "", "space_user_list"},
    {"/respondio.v2.TagService/AddContactTags", "POST", "/contact/{identifier}/tag", "tags",
     "contact_tag"},
    {"/respondio.v2.TagService/CreateTag", "POST", "/tag", "*", "tag_write"},
    {"/respondio.v2.TagService/DeleteTag", "DELETE", "/tag/{tag_id}", "", "tag_write"},
    {"/respondio.v2.TagService/RemoveContactTags", "DELETE", "/contact/{identifier}/tag", "tags",
     "contact_tag"},
    {"/respondio.v2.TagService/UpdateTag", "PUT", "/tag/{tag_id}", "*", "tag_write"},
};

TEST(RouteTable, ServesEveryRespondioRpc) {
  const RouteTable table = BuildOk();
  EXPECT_GE(table.routes().size(), 26u);
  int respondio = 0;
  for (const auto& route : table.routes()) {
    if (route->binding.upstream() == "respondio") ++respondio;
  }
  EXPECT_GE(respondio, 26);
  for (const Expected& e : kRespondio) {
    SCOPED_TRACE(e.rpc);
    const upstream::Route* route = table.Find(e.rpc);
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->rpc, e.rpc);
    EXPECT_EQ(route->binding.upstream(), "respondio");
    EXPECT_EQ(route->binding.method(), e.verb);
    EXPECT_EQ(route->binding.path(), e.path);
    EXPECT_EQ(route->binding.body(), e.body);
    EXPECT_EQ(route->policy.bucket(), e.bucket);
    EXPECT_EQ(route->is_read(), std::string(e.verb) == "GET");
  }
}

TEST(RouteTable, DeclaredPoliciesAndPagination) {
  const RouteTable table = BuildOk();
  const upstream::Route* get = table.Find("/respondio.v2.ContactService/GetContact");
  ASSERT_NE(get, nullptr);
  EXPECT_EQ(get->policy.cache_ttl_seconds(), 30);
  EXPECT_TRUE(get->policy.retry_safe());
  ASSERT_EQ(get->policy.cache_tags_size(), 1);
  EXPECT_EQ(get->policy.cache_tags(0), "contact:{identifier}");
  ASSERT_NE(get->response_field, nullptr);
  EXPECT_EQ(get->response_field->name(), "contact");

  const upstream::Route* list = table.Find("/respondio.v2.ContactService/ListContacts");
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list->binding.pagination(), "respondio_cursor");
  EXPECT_NE(list->pagination, nullptr);

  const upstream::Route* send = table.Find("/respondio.v2.MessageService/SendMessage");
  ASSERT_NE(send, nullptr);
  EXPECT_FALSE(send->policy.retry_safe());
  EXPECT_EQ(send->policy.cache_ttl_seconds(), 0);
}

TEST(RouteTable, RoutesAreSortedAndFindable) {
  const RouteTable table = BuildOk();
  std::string previous;
  for (const auto& route : table.routes()) {
    EXPECT_LT(previous, route->rpc);
    previous = route->rpc;
    EXPECT_EQ(table.Find(route->rpc), route.get());
  }
  EXPECT_EQ(table.Find("/respondio.v2.ContactService/Nope"), nullptr);
  EXPECT_EQ(table.Find("respondio.v2.ContactService.GetContact"), nullptr);  // not canonical
}

TEST(RouteTable, ServiceNames) {
  const std::vector<std::string> names = BuildOk().ServiceNames();
  for (const char* service :
       {"respondio.v2.CommentService", "respondio.v2.ContactService",
        "respondio.v2.ConversationService", "respondio.v2.CustomFieldService",
        "respondio.v2.MessageService", "respondio.v2.SpaceService", "respondio.v2.TagService"}) {
    EXPECT_THAT(names, ::testing::Contains(service));
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(RouteTable, ServedDescriptorSetParses) {
  google::protobuf::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromArray(ServedDescriptorSet().data(),
                                 static_cast<int>(ServedDescriptorSet().size())));
  std::set<std::string> files;
  for (const auto& file : set.file()) files.insert(file.name());
  EXPECT_EQ(files.count("respondio/v2/contact_service.proto"), 1u);
  EXPECT_EQ(files.count("gateway/v1/annotations.proto"), 1u);  // imports included
}

TEST(PrintRoutes, OneJsonObjectPerRoute) {
  const RouteTable table = BuildOk();
  const std::string printed = table.PrintRoutes();
  ASSERT_FALSE(printed.empty());
  EXPECT_EQ(printed.back(), '\n');
  std::vector<std::string> lines = absl::StrSplit(printed, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), table.routes().size());
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    const json line = json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(line.is_object());
    for (const char* key : {"rpc", "upstream", "verb", "path", "body", "bucket"}) {
      ASSERT_TRUE(line.contains(key)) << key;
      EXPECT_TRUE(line[key].is_string()) << key;
    }
    const upstream::Route& route = *table.routes()[i];
    EXPECT_EQ(line["rpc"], route.rpc);
    EXPECT_EQ(line["verb"], route.binding.method());
    EXPECT_EQ(line["path"], route.binding.path());
  }
}

TEST(PrintRoutes, GetContactLine) {
  const std::string printed = BuildOk().PrintRoutes();
  for (absl::string_view text : absl::StrSplit(printed, '\n', absl::SkipEmpty())) {
    const json line = json::parse(text.begin(), text.end());
    if (line["rpc"] != "/respondio.v2.ContactService/GetContact") continue;
    EXPECT_EQ(line["upstream"], "respondio");
    EXPECT_EQ(line["verb"], "GET");
    EXPECT_EQ(line["path"], "/contact/{identifier}");
    EXPECT_EQ(line["body"], "");
    EXPECT_EQ(line["bucket"], "contact_get");
    return;
  }
  ADD_FAILURE() << "no GetContact line in\n" << printed;
}

TEST(Overrides, ChangeVerbPathBodyBucketAndTtl) {
  RouteOverride channels;
  channels.method = "get";
  channels.path = "/contact/{identifier}/channels";
  RouteOverride list;
  list.method = "POST";
  list.body = "*";
  list.bucket = "contact_search";
  list.cache_ttl_seconds = 0;
  const RouteTable table = BuildOk({{"/respondio.v2.ContactService/ListContactChannels", channels},
                                    {"/respondio.v2.ContactService/ListContacts", list}});

  const upstream::Route* c = table.Find("/respondio.v2.ContactService/ListContactChannels");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->binding.method(), "GET");
  EXPECT_EQ(c->binding.path(), "/contact/{identifier}/channels");
  EXPECT_EQ(c->binding.response_body(), "items");  // kept
  EXPECT_EQ(c->binding.pagination(), "slice");      // kept
  EXPECT_EQ(c->policy.bucket(), "contact_channel_list");

  const upstream::Route* l = table.Find("/respondio.v2.ContactService/ListContacts");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->binding.method(), "POST");
  EXPECT_EQ(l->binding.path(), "/contact/list");
  EXPECT_EQ(l->binding.body(), "*");
  EXPECT_EQ(l->policy.bucket(), "contact_search");
  EXPECT_EQ(l->policy.cache_ttl_seconds(), 0);

  // Others are untouched.
  EXPECT_EQ(table.Find("/respondio.v2.ContactService/GetContact")->binding.path(),
            "/contact/{identifier}");
  // The printed table shows the effective binding.
  EXPECT_THAT(table.PrintRoutes(), HasSubstr(R"("path":"/contact/{identifier}/channels")"));
}

TEST(Overrides, UnknownRpcIsAnError) {
  RouteOverride o;
  o.path = "/x";
  auto table = RouteTable::Build({{"/respondio.v2.ContactService/Nope", o}});
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("'/respondio.v2.ContactService/Nope'"));
}

TEST(Overrides, BindingThatDoesNotCompileIsAnError) {
  RouteOverride placeholder;
  placeholder.path = "/contact/{contact_id}";
  auto table = RouteTable::Build({{"/respondio.v2.ContactService/GetContact", placeholder}});
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("respondio.v2.ContactService.GetContact"));
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("{contact_id}"));

  RouteOverride verb;
  verb.method = "FETCH";
  table = RouteTable::Build({{"/respondio.v2.TagService/DeleteTag", verb}});
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("respondio.v2.TagService.DeleteTag"));

  RouteOverride body;
  body.body = "labels";
  table = RouteTable::Build({{"/respondio.v2.TagService/AddContactTags", body}});
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("'labels'"));
}

}  // namespace
}  // namespace gateway::service
