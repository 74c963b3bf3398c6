// The drift report on a running gateway: replies that do not fit the protos (injected through
// the sandbox's fault API, which answers a chosen body verbatim) show up at the admin GET /drift
// and in gateway_upstream_drift_total with the right counts, and are logged once.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "chatwoot/v1/account_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
namespace rio = ::respondio::v2;
namespace cw = ::chatwoot::v1;

class DriftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--chatwoot_base_url=" + sandbox_->base_url(),
                               "--respondio_dialect=live", "--chatwoot_dialect=live",
                               "--admin_listen=127.0.0.1:0"});
    ASSERT_NE(gateway_, nullptr);
    admin_port_ = AdminPort(*gateway_);
    ASSERT_GT(admin_port_, 0) << gateway_->process().output();
  }

  // A fault answering 200 with `body` for every GET whose path matches `path_regex`.
  void Answer(const std::string& path_regex, const json& body) {
    ASSERT_GE(sandbox_->AddFault({{"method", "GET"},
                                  {"path_regex", path_regex},
                                  {"count", -1},
                                  {"fault", "status"},
                                  {"status", 200},
                                  {"body", body}}),
              0);
  }

  json Entry(const json& drift, const std::string& rpc, const std::string& field,
             const std::string& kind) {
    for (const json& e : drift) {
      if (e["rpc"] == rpc && e["field"] == field && e["kind"] == kind) return e;
    }
    ADD_FAILURE() << "no drift " << rpc << " " << field << " " << kind << " in " << drift.dump();
    return json::object();
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  int admin_port_ = 0;
};

TEST_F(DriftTest, EachKindShowsUpInDriftAndTheMetricWithItsCount) {
  // Unknown field and type mismatch: two contacts (two upstream replies; the cache keeps the
  // second call of one contact from reaching the upstream).
  Answer("^/contact/id:[12]$",
         {{"id", 1}, {"firstName", "Ada"}, {"lastName", 5}, {"mood", "calm"}});
  auto contacts = rio::ContactService::NewStub(gateway_->channel());
  for (const char* identifier : {"id:1", "id:2"}) {
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    auto context = Context();
    grpc::Status status = contacts->GetContact(context.get(), request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(reply.contact().first_name(), "Ada");  // the mismatch cost only lastName
    EXPECT_EQ(reply.contact().last_name(), "");
  }
  // Unknown enum value: visible to the caller as sent.
  Answer("/api/v1/accounts/1/agents$",
         json::array({{{"id", 7}, {"availability_status", "away"}, {"name", "Grace"}}}));
  auto accounts = cw::AccountService::NewStub(gateway_->channel());
  {
    cw::ListAgentsRequest request;
    cw::ListAgentsResponse reply;
    auto context = Context();
    grpc::Status status = accounts->ListAgents(context.get(), request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(reply.payload_size(), 1);
    EXPECT_EQ(reply.payload(0).availability_status(),
              cw::AGENT_AVAILABILITY_STATUS_UNSPECIFIED);
    EXPECT_EQ(reply.payload(0).availability_status_raw(), "away");
  }
  // Envelope: a bare array where the live API answers {items, pagination}.
  Answer("^/contact/id:3/channels$",
         json::array({{{"id", 11}, {"name", "WhatsApp"}, {"source", "whatsapp"}}}));
  {
    rio::ListContactChannelsRequest request;
    request.set_identifier("id:3");
    rio::ListContactChannelsResponse reply;
    auto context = Context();
    grpc::Status status = contacts->ListContactChannels(context.get(), request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(reply.items_size(), 1);
    EXPECT_EQ(reply.items(0).id(), 11);
  }

  HttpResult drift_page = HttpCall(admin_port_, "GET", "/drift");
  ASSERT_EQ(drift_page.status, 200);
  const json drift = json::parse(drift_page.body, nullptr, false);
  ASSERT_TRUE(drift.is_array()) << drift_page.body;
  const std::string get = "/respondio.v2.ContactService/GetContact";
  EXPECT_EQ(Entry(drift, get, "contact.mood", "unknown_field")["count"], 2);
  EXPECT_EQ(Entry(drift, get, "contact.mood", "unknown_field")["sample"], "calm");
  EXPECT_EQ(Entry(drift, get, "contact.lastName", "type_mismatch")["count"], 2);
  EXPECT_EQ(Entry(drift, "/chatwoot.v1.AccountService/ListAgents",
                  "payload[].availability_status", "unknown_enum")["count"],
            1);
  EXPECT_EQ(Entry(drift, "/respondio.v2.ContactService/ListContactChannels", "(reply)",
                  "envelope")["count"],
            1);
  EXPECT_EQ(drift.size(), 4u) << drift.dump();

  HttpResult metrics = HttpCall(admin_port_, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("gateway_upstream_drift_total{upstream=\"respondio\",rpc=\"", get,
                                     "\",field=\"contact.mood\",kind=\"unknown_field\"} 2")));
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("gateway_upstream_drift_total{upstream=\"respondio\",rpc=\"", get,
                                     "\",field=\"contact.lastName\",kind=\"type_mismatch\"} 2")));
  EXPECT_THAT(metrics.body, HasSubstr("field=\"payload[].availability_status\","
                                      "kind=\"unknown_enum\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("field=\"(reply)\",kind=\"envelope\"} 1"));

  // Logged once, the first time.
  const std::string output = gateway_->process().output();
  const std::string line = "field=contact.mood kind=unknown_field";
  const size_t first = output.find(line);
  ASSERT_NE(first, std::string::npos) << output;
  EXPECT_EQ(output.find(line, first + 1), std::string::npos);
}

}  // namespace
}  // namespace gateway::testing
