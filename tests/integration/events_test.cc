// Events end to end: two gateway replicas on one redis-server and the sandbox. A signed webhook
// POSTed to replica A reaches a subscriber on replica B as the typed event, and the contact the
// cache held (fetched through both replicas) is invalidated on both.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "events/signature.h"
#include "gateway/v1/event_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/events.pb.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

namespace rio = ::respondio::v2;
namespace gw = ::gateway::v1;

constexpr char kSecret[] = "respondio-webhook-key";
constexpr char kChatwootSecret[] = "chatwoot-webhook-secret";

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = RedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    webhook_ports_ = {FreePort(), FreePort()};
    // The sandbox posts its webhooks to replica A, as respond.io and Chatwoot would.
    sandbox_ = Sandbox::Start({absl::StrCat("--webhook_url=http://127.0.0.1:", webhook_ports_[0]),
                               absl::StrCat("--respondio_webhook_secret=", kSecret),
                               absl::StrCat("--chatwoot_webhook_secret=", kChatwootSecret)});
    ASSERT_NE(sandbox_, nullptr);
    const std::string secret_file = WriteTempFile("respondio_webhook_secret", kSecret);
    const std::string chatwoot_file = WriteTempFile("chatwoot_webhook_secret", kChatwootSecret);
    for (int i = 0; i < 2; ++i) {
      auto g = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--chatwoot_base_url=" + sandbox_->base_url(),
                               "--redis_url=" + redis_->url(),
                               absl::StrCat("--webhook_listen=127.0.0.1:", webhook_ports_[i]),
                               "--respondio_webhook_secret_file=" + secret_file,
                               "--chatwoot_webhook_secret_file=" + chatwoot_file,
                               "--log_calls=false"});
      ASSERT_NE(g, nullptr);
      gateways_.push_back(std::move(g));
    }
  }

  HttpResult PostRespondio(int port, const std::string& body, const std::string& secret) {
    return HttpCall(port, "POST", "/webhooks/respondio", body,
                    {"Content-Type: application/json",
                     "x-webhook-signature: " + events::SignRespondio(secret, {}, body)});
  }

  rio::Contact Get(int replica, const std::string& identifier) {
    auto stub = rio::ContactService::NewStub(gateways_[replica]->channel());
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    grpc::Status status = stub->GetContact(Context().get(), request, &reply);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return reply.contact();
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Sandbox> sandbox_;
  std::vector<std::unique_ptr<Gateway>> gateways_;
  std::vector<int> webhook_ports_;
};

std::string ContactUpdated(const std::string& event_id, const std::string& first_name) {
  return absl::StrCat(R"({"event_id":")", event_id,
                      R"(","event_type":"contact.updated","contact":{"id":12345,"firstName":")",
                      first_name, R"(","email":"ada.lovelace@example.com","phone":"+60123450001"}})");
}

TEST_F(EventsTest, WebhookOnAReachesSubscriberOnBTypedAndInvalidatesBothCaches) {
  // Both replicas hold the contact in the (shared) cache.
  EXPECT_EQ(Get(0, "id:12345").first_name(), "Ada");
  EXPECT_EQ(Get(1, "phone:+60123450001").first_name(), "Ada");
  EXPECT_EQ(Get(1, "id:12345").first_name(), "Ada");

  auto stub = gw::EventService::NewStub(gateways_[1]->channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  gw::SubscribeRequest request;
  request.add_upstreams("respondio");
  request.set_start_position(gw::START_POSITION_NEWEST);
  auto reader = stub->Subscribe(&context, request);
  reader->WaitForInitialMetadata();  // the subscription is live

  // The sandbox simulates a customer's inbound message: its signed message.received webhook goes
  // to replica A and arrives on B's stream, typed.
  absl::Time posted = absl::Now();
  HttpResult inbound = HttpCall(sandbox_->port(), "POST", "/__admin/respondio/inbound_message",
                                R"({"identifier":"id:12345","text":"is my order shipped?"})",
                                {"Content-Type: application/json"});
  ASSERT_EQ(inbound.status, 202) << inbound.body;
  gw::EventEnvelope envelope;
  ASSERT_TRUE(reader->Read(&envelope));
  std::printf("inbound message via A to the stream on B: %s\n",
              absl::FormatDuration(absl::Now() - posted).c_str());
  EXPECT_EQ(envelope.upstream(), "respondio");
  EXPECT_FALSE(envelope.id().empty());
  EXPECT_EQ(envelope.resume_token(), envelope.id());
  EXPECT_GT(envelope.received_time().seconds(), 0);
  rio::Event event;
  ASSERT_TRUE(envelope.event().UnpackTo(&event));
  ASSERT_EQ(event.payload_case(), rio::Event::kMessageReceived) << event.DebugString();
  EXPECT_EQ(event.event_id(), nlohmann::json::parse(inbound.body)["event_id"]);
  EXPECT_EQ(event.message_received().contact().id(), 12345);
  EXPECT_EQ(event.message_received().message().message().text(), "is my order shipped?");
  EXPECT_EQ(event.message_received().message().traffic(), rio::MESSAGE_TRAFFIC_INCOMING);

  // The contact changes upstream behind the gateway's back (as an edit in respond.io's UI): the
  // sandbox's contact.updated webhook reaches B and the cached contact is dropped on both
  // replicas, under every alias.
  posted = absl::Now();
  HttpResult edited = HttpCall(sandbox_->port(), "PUT", "/contact/id:12345",
                               R"({"firstName":"Augusta"})",
                               {"Authorization: Bearer sandbox-token",
                                "Content-Type: application/json"});
  ASSERT_EQ(edited.status, 200) << edited.body;
  ASSERT_TRUE(reader->Read(&envelope));
  std::printf("contact.updated via A to the stream on B: %s\n",
              absl::FormatDuration(absl::Now() - posted).c_str());
  ASSERT_TRUE(envelope.event().UnpackTo(&event));
  ASSERT_EQ(event.payload_case(), rio::Event::kContactUpdated) << event.DebugString();
  EXPECT_EQ(event.contact_updated().contact().first_name(), "Augusta");
  absl::SleepFor(absl::Milliseconds(300));  // > the cache's 100 ms Redis sync interval
  EXPECT_EQ(Get(0, "id:12345").first_name(), "Augusta");
  EXPECT_EQ(Get(1, "phone:+60123450001").first_name(), "Augusta");
  EXPECT_EQ(Get(1, "id:12345").first_name(), "Augusta");

  // A webhook POSTed to A, then redelivered (same event_id) to B, is stored once: no second
  // envelope; a new event follows.
  ASSERT_EQ(PostRespondio(webhook_ports_[0], ContactUpdated("evt-1", "Augusta"), kSecret).status,
            200);
  ASSERT_TRUE(reader->Read(&envelope));
  ASSERT_TRUE(envelope.event().UnpackTo(&event));
  EXPECT_EQ(event.event_id(), "evt-1");
  ASSERT_EQ(PostRespondio(webhook_ports_[1], ContactUpdated("evt-1", "Augusta"), kSecret).status,
            200);
  ASSERT_EQ(PostRespondio(webhook_ports_[1], ContactUpdated("evt-2", "Ada"), kSecret).status, 200);
  gw::EventEnvelope next;
  ASSERT_TRUE(reader->Read(&next));
  rio::Event next_event;
  ASSERT_TRUE(next.event().UnpackTo(&next_event));
  EXPECT_EQ(next_event.event_id(), "evt-2");
  context.TryCancel();
  reader->Finish();

  // Resume from the first token on replica A: exactly the second event.
  grpc::ClientContext resume_context;
  resume_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  gw::SubscribeRequest resume;
  resume.set_resume_token(envelope.resume_token());
  auto resumed = gw::EventService::NewStub(gateways_[0]->channel())->Subscribe(&resume_context,
                                                                             resume);
  gw::EventEnvelope again;
  ASSERT_TRUE(resumed->Read(&again));
  EXPECT_EQ(again.id(), next.id());
  resume_context.TryCancel();
  resumed->Finish();
}

TEST_F(EventsTest, RejectedWebhooksStoreNothing) {
  auto stub = gw::EventService::NewStub(gateways_[1]->channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  gw::SubscribeRequest request;
  auto reader = stub->Subscribe(&context, request);
  reader->WaitForInitialMetadata();

  EXPECT_EQ(PostRespondio(webhook_ports_[0], ContactUpdated("bad", "X"), "wrong-key").status, 401);
  EXPECT_EQ(HttpCall(webhook_ports_[0], "POST", "/webhooks/respondio", ContactUpdated("u", "X"),
                     {"Content-Type: application/json"})
                .status,
            401);
  const std::string cw = R"({"event":"contact_updated","id":9})";
  const int64_t stale_ts = absl::ToUnixSeconds(absl::Now()) - 600;
  EXPECT_EQ(HttpCall(webhook_ports_[0], "POST", "/webhooks/chatwoot", cw,
                     {"Content-Type: application/json", "X-Chatwoot-Delivery: d1",
                      absl::StrCat("X-Chatwoot-Timestamp: ", stale_ts),
                      "X-Chatwoot-Signature: " +
                          events::SignChatwoot(kChatwootSecret, stale_ts, cw)})
                .status,
            401);
  const std::string big = std::string(R"({"event_id":"big","event_type":"contact.updated","p":")") +
                          std::string(1 << 20, 'a') + "\"}";
  EXPECT_EQ(PostRespondio(webhook_ports_[0], big, kSecret).status, 413);
  EXPECT_EQ(PostRespondio(webhook_ports_[0], "{oops", kSecret).status, 400);

  // Only this good Chatwoot event reaches the stream: nothing above was stored.
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  HttpResult good = HttpCall(webhook_ports_[0], "POST", "/webhooks/chatwoot", cw,
                             {"Content-Type: application/json", "X-Chatwoot-Delivery: d2",
                              absl::StrCat("X-Chatwoot-Timestamp: ", now),
                              "X-Chatwoot-Signature: " +
                                  events::SignChatwoot(kChatwootSecret, now, cw)});
  ASSERT_EQ(good.status, 200) << good.body;
  gw::EventEnvelope envelope;
  ASSERT_TRUE(reader->Read(&envelope));
  EXPECT_EQ(envelope.upstream(), "chatwoot");
  context.TryCancel();
  reader->Finish();
}

}  // namespace
}  // namespace gateway::testing
