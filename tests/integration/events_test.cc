// Events end to end: two gateway replicas on one redis-server and the sandbox. A signed webhook
// POSTed to replica A reaches a subscriber on replica B as the typed event, and the contact the
// cache held (fetched through both replicas) is invalidated on both.
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "events/signature.h"
#include "gateway/v1/event_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/events.pb.h"
#include "chatwoot/v1/events.pb.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

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
    // Chatwoot in its live dialect: the gateway makes no Chatwoot call here, and live Chatwoot
    // has the message update (message_updated) the spec lacks.
    sandbox_ = Sandbox::Start({"--chatwoot_dialect=live",
                               absl::StrCat("--webhook_url=http://127.0.0.1:", webhook_ports_[0]),
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
                               "--admin_listen=127.0.0.1:0", "--log_calls=false"});
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

double MetricValue(const std::string& metrics, const std::string& name);

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
  // Chatwoot's delivery again (the same X-Chatwoot-Delivery): answered 200, stored once.
  HttpResult again = HttpCall(webhook_ports_[0], "POST", "/webhooks/chatwoot", cw,
                              {"Content-Type: application/json", "X-Chatwoot-Delivery: d2",
                               absl::StrCat("X-Chatwoot-Timestamp: ", now),
                               "X-Chatwoot-Signature: " +
                                   events::SignChatwoot(kChatwootSecret, now, cw)});
  EXPECT_EQ(again.status, 200) << again.body;
  context.TryCancel();
  reader->Finish();

  // Replica A counted each outcome on /metrics; replica B received nothing.
  const std::string a = HttpCall(AdminPort(*gateways_[0]), "GET", "/metrics").body;
  for (const auto& [series, n] : std::vector<std::pair<std::string, double>>{
           {R"(gateway_webhooks_rejected_total{upstream="respondio",reason="SIGNATURE_INVALID"})", 1},
           {R"(gateway_webhooks_rejected_total{upstream="respondio",reason="SIGNATURE_MISSING"})", 1},
           {R"(gateway_webhooks_rejected_total{upstream="chatwoot",reason="TIMESTAMP_STALE"})", 1},
           {R"(gateway_webhooks_rejected_total{upstream="respondio",reason="BODY_TOO_LARGE"})", 1},
           {R"(gateway_webhooks_rejected_total{upstream="respondio",reason="MALFORMED_JSON"})", 1},
           {R"(gateway_webhooks_received_total{upstream="chatwoot"})", 3},
           {R"(gateway_webhooks_stored_total{upstream="chatwoot"})", 1},
           {R"(gateway_webhooks_duplicates_total{upstream="chatwoot"})", 1}}) {
    EXPECT_EQ(MetricValue(a, series), n) << series << "\n" << a;
  }
  EXPECT_EQ(MetricValue(a, R"(gateway_webhooks_stored_total{upstream="respondio"})"), -1)
      << "nothing of respond.io was stored";
  const std::string b = HttpCall(AdminPort(*gateways_[1]), "GET", "/metrics").body;
  EXPECT_EQ(MetricValue(b, R"(gateway_events_delivered_total{group=""})"), 1);
  EXPECT_TRUE(absl::StrContains(b, "# TYPE gateway_webhooks_rejected_total counter"));
  EXPECT_EQ(MetricValue(b, R"(gateway_webhooks_rejected_total{upstream="respondio",reason="SIGNATURE_INVALID"})"), -1);
}

// The sandbox's state changed through its APIs: each change arrives as its typed event on B's
// stream, posted by the sandbox to A in the upstream's own format and signature.
TEST_F(EventsTest, SandboxApiChangesArriveAsTypedEvents) {
  auto stub = gw::EventService::NewStub(gateways_[1]->channel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  gw::SubscribeRequest request;
  request.set_start_position(gw::START_POSITION_NEWEST);
  auto reader = stub->Subscribe(&context, request);
  reader->WaitForInitialMetadata();
  gw::EventEnvelope envelope;

  const std::vector<std::string> rio_headers = {"Authorization: Bearer sandbox-token",
                                                "Content-Type: application/json"};
  auto respondio = [&](const std::string& path, const std::string& body) {
    HttpResult r = HttpCall(sandbox_->port(), "POST", path, body, rio_headers);
    EXPECT_EQ(r.status / 100, 2) << path << ": " << r.body;
    EXPECT_TRUE(reader->Read(&envelope));
    EXPECT_EQ(envelope.upstream(), "respondio");
    rio::Event event;
    EXPECT_TRUE(envelope.event().UnpackTo(&event));
    return event;
  };
  rio::Event closed = respondio("/contact/id:12345/conversation/status",
                                R"({"status":"close","category":"Resolved","summary":"shipped"})");
  ASSERT_EQ(closed.payload_case(), rio::Event::kConversationClosed) << closed.DebugString();
  EXPECT_EQ(closed.type(), "conversation.closed");
  EXPECT_EQ(closed.conversation_closed().contact().id(), 12345);
  EXPECT_EQ(closed.conversation_closed().conversation().category(), "Resolved");
  EXPECT_EQ(closed.conversation_closed().conversation().summary(), "shipped");
  EXPECT_TRUE(closed.conversation_closed().conversation().has_closed_time());
  rio::Event opened = respondio("/contact/id:12345/conversation/status", R"({"status":"open"})");
  ASSERT_EQ(opened.payload_case(), rio::Event::kConversationOpened) << opened.DebugString();
  EXPECT_EQ(opened.conversation_opened().contact().id(), 12345);
  EXPECT_TRUE(opened.conversation_opened().conversation().has_opened_time());
  rio::Event sent = respondio("/contact/id:12345/message",
                              R"({"channelId":123,"message":{"type":"text","text":"On its way"}})");
  ASSERT_EQ(sent.payload_case(), rio::Event::kMessageSent) << sent.DebugString();
  EXPECT_EQ(sent.message_sent().contact().id(), 12345);
  EXPECT_EQ(sent.message_sent().message().message().text(), "On its way");
  EXPECT_EQ(sent.message_sent().message().traffic(), rio::MESSAGE_TRAFFIC_OUTGOING);
  rio::Event assigned = respondio("/contact/id:12345/conversation/assignee",
                                  R"({"assignee":"email:agent@example.com"})");
  ASSERT_EQ(assigned.payload_case(), rio::Event::kContactAssigneeUpdated)
      << assigned.DebugString();
  EXPECT_EQ(assigned.contact_assignee_updated().contact().id(), 12345);

  const std::vector<std::string> cw_headers = {"api_access_token: sandbox-token",
                                               "Content-Type: application/json"};
  auto chatwoot = [&](const std::string& method, const std::string& path,
                      const std::string& body) {
    HttpResult r = HttpCall(sandbox_->port(), method, "/api/v1/accounts/1" + path, body,
                            cw_headers);
    EXPECT_EQ(r.status / 100, 2) << method << " " << path << ": " << r.body;
    EXPECT_TRUE(reader->Read(&envelope));
    EXPECT_EQ(envelope.upstream(), "chatwoot");
    chatwoot::v1::Event event;
    EXPECT_TRUE(envelope.event().UnpackTo(&event));
    EXPECT_FALSE(event.delivery_id().empty());  // X-Chatwoot-Delivery
    return std::make_pair(event, nlohmann::json::parse(r.body, nullptr, false));
  };
  // What changed, from changed_attributes: [{attr: {previous_value, current_value}}].
  auto changed = [](const google::protobuf::Value& v, const std::string& attribute) {
    for (const auto& item : v.list_value().values()) {
      auto it = item.struct_value().fields().find(attribute);
      if (it != item.struct_value().fields().end()) return it->second;
    }
    return google::protobuf::Value();
  };

  auto [contact_updated, r1] = chatwoot("PUT", "/contacts/1", R"({"name":"Ana Maria Souza"})");
  ASSERT_EQ(contact_updated.payload_case(), chatwoot::v1::Event::kContactUpdated)
      << contact_updated.DebugString();
  EXPECT_EQ(contact_updated.type(), "contact_updated");
  EXPECT_EQ(contact_updated.contact_updated().contact().id(), 1);
  EXPECT_EQ(contact_updated.contact_updated().contact().name(), "Ana Maria Souza");
  const auto name = changed(contact_updated.contact_updated().changed_attributes(), "name");
  EXPECT_EQ(name.struct_value().fields().at("previous_value").string_value(), "Ana Souza");
  EXPECT_EQ(name.struct_value().fields().at("current_value").string_value(), "Ana Maria Souza");

  auto [status_changed, r2] =
      chatwoot("POST", "/conversations/1/toggle_status", R"({"status":"resolved"})");
  ASSERT_EQ(status_changed.payload_case(), chatwoot::v1::Event::kConversationStatusChanged)
      << status_changed.DebugString();
  EXPECT_EQ(status_changed.conversation_status_changed().conversation().id(), 1);
  const auto status =
      changed(status_changed.conversation_status_changed().changed_attributes(), "status");
  EXPECT_EQ(status.struct_value().fields().at("previous_value").string_value(), "open");
  EXPECT_EQ(status.struct_value().fields().at("current_value").string_value(), "resolved");

  auto [assignee_changed, r3] =
      chatwoot("POST", "/conversations/1/assignments", R"({"assignee_id":3})");
  ASSERT_EQ(assignee_changed.payload_case(), chatwoot::v1::Event::kConversationUpdated)
      << assignee_changed.DebugString();
  EXPECT_EQ(assignee_changed.conversation_updated().conversation().id(), 1);
  EXPECT_GT(assignee_changed.conversation_updated().changed_attributes().list_value().values_size(),
            0);

  auto [message_created, r4] = chatwoot("POST", "/conversations/1/messages",
                                        R"({"content":"It is on its way","message_type":"outgoing"})");
  ASSERT_EQ(message_created.payload_case(), chatwoot::v1::Event::kMessageCreated)
      << message_created.DebugString();
  EXPECT_EQ(message_created.message_created().message().content(), "It is on its way");
  EXPECT_EQ(message_created.message_created().message().conversation_id(), 1);
  const int64_t message_id = r4.value("id", int64_t{0});
  ASSERT_GT(message_id, 0) << r4.dump();

  auto [message_updated, r5] = chatwoot("PATCH", absl::StrCat("/conversations/1/messages/", message_id),
                                        R"({"content":"It is on its way, tracking 42"})");
  ASSERT_EQ(message_updated.payload_case(), chatwoot::v1::Event::kMessageUpdated)
      << message_updated.DebugString();
  EXPECT_EQ(message_updated.message_updated().message().id(), message_id);
  EXPECT_EQ(message_updated.message_updated().message().content(), "It is on its way, tracking 42");

  auto [contact_created, r6] = chatwoot(
      "POST", "/contacts", R"({"name":"Dora Nunes","email":"dora@example.com","inbox_id":1})");
  ASSERT_EQ(contact_created.payload_case(), chatwoot::v1::Event::kContactCreated)
      << contact_created.DebugString();
  EXPECT_EQ(contact_created.contact_created().contact().name(), "Dora Nunes");
  const int64_t dora = contact_created.contact_created().contact().id();
  EXPECT_GT(dora, 0);

  auto [conversation_created, r7] = chatwoot(
      "POST", "/conversations",
      absl::StrCat(R"({"source_id":"web-dora","inbox_id":1,"contact_id":)", dora, "}"));
  ASSERT_EQ(conversation_created.payload_case(), chatwoot::v1::Event::kConversationCreated)
      << conversation_created.DebugString();
  EXPECT_EQ(conversation_created.conversation_created().conversation().id(),
            r7.value("id", int64_t{0}));
  context.TryCancel();
  reader->Finish();
}

int64_t RssBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    int64_t kib = 0;
    if (line.rfind("VmRSS:", 0) == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                                              absl::StripSuffix(line.substr(6), "kB")),
                                                          &kib)) {
      return kib * 1024;
    }
  }
  return -1;
}

double MetricValue(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      double v = -1;
      if (absl::SimpleAtod(line.substr(name.size() + 1), &v)) return v;
    }
  }
  return -1;
}

// A subscriber that stops reading while ~25 MiB of webhooks arrive, and one that starts from the
// oldest of them and does not read: the gateway's resident memory and what a stream holds
// (gateway_event_stream_buffered_bytes_peak) stay bounded; the events wait in Redis.
TEST(EventsSlowSubscriberTest, AStalledSubscriberDoesNotGrowTheGatewaysMemory) {
  std::unique_ptr<RedisServer> redis = RedisServer::Start();
  ASSERT_NE(redis, nullptr);
  const std::string secret_file = WriteTempFile("respondio_webhook_secret", kSecret);
  const int webhook_port = FreePort();
  auto gateway = Gateway::Start({"--redis_url=" + redis->url(),
                                 absl::StrCat("--webhook_listen=127.0.0.1:", webhook_port),
                                 "--respondio_webhook_secret_file=" + secret_file,
                                 "--admin_listen=127.0.0.1:0", "--log_calls=false"});
  ASSERT_NE(gateway, nullptr);
  const int admin_port = AdminPort(*gateway);
  ASSERT_GT(admin_port, 0);
  auto post = [&](int i) {
    const std::string body = absl::StrCat(
        R"({"event_id":"slow-)", i,
        // An event type the protos do not know: kept whole (raw JSON), so each is ~32 KiB.
        R"(","event_type":"lifecycle.updated","notes":")", std::string(32 << 10, 'n'), R"("})");
    return HttpCall(webhook_port, "POST", "/webhooks/respondio", body,
                    {"Content-Type: application/json",
                     "x-webhook-signature: " + events::SignRespondio(kSecret, {}, body)})
        .status;
  };
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  gw::SubscribeRequest request;
  request.set_start_position(gw::START_POSITION_NEWEST);
  auto reader = gw::EventService::NewStub(gateway->channel())->Subscribe(&context, request);
  reader->WaitForInitialMetadata();
  gw::EventEnvelope envelope;
  // Warm up (threads, connections, allocator), read one, then stop reading.
  for (int i = 0; i < 50; ++i) ASSERT_EQ(post(i), 200);
  ASSERT_TRUE(reader->Read(&envelope));
  absl::SleepFor(absl::Milliseconds(300));
  const int64_t rss_before = RssBytes(gateway->process().pid());
  constexpr int kEvents = 800;  // 800 x 32 KiB = 25 MiB
  for (int i = 50; i < 50 + kEvents; ++i) ASSERT_EQ(post(i), 200);
  absl::SleepFor(absl::Milliseconds(300));
  // A second subscriber starts from the oldest (850 events waiting) and does not read either:
  // its stream reads batches up to its byte budget.
  grpc::ClientContext backlog_context;
  backlog_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  gw::SubscribeRequest from_oldest;
  from_oldest.set_start_position(gw::START_POSITION_OLDEST);
  auto backlog =
      gw::EventService::NewStub(gateway->channel())->Subscribe(&backlog_context, from_oldest);
  backlog->WaitForInitialMetadata();
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t rss_after = RssBytes(gateway->process().pid());
  const std::string metrics = HttpCall(admin_port, "GET", "/metrics").body;
  const double peak = MetricValue(metrics, "gateway_event_stream_buffered_bytes_peak");
  const double delivered = MetricValue(metrics, "gateway_events_delivered_total{group=\"\"}");
  std::printf("stalled subscriber, %d x 32 KiB webhooks: gateway RSS %lld -> %lld KiB (+%lld), "
              "a stream held at most %.0f bytes, %.0f events written to the two\n",
              kEvents, static_cast<long long>(rss_before / 1024),
              static_cast<long long>(rss_after / 1024),
              static_cast<long long>((rss_after - rss_before) / 1024), peak, delivered);
  ASSERT_GT(rss_before, 0);
  EXPECT_LT(rss_after - rss_before, 12 << 20);  // half of what arrived; gRPC windows included
  EXPECT_GT(peak, 0);
  EXPECT_LE(peak, (1 << 20) + (40 << 10));  // the stream's budget plus one event
  EXPECT_LT(delivered, 2 * (50 + kEvents));  // flow control stopped both streams' writes
  context.TryCancel();
  reader->Finish();
  backlog_context.TryCancel();
  backlog->Finish();
}

// Redis killed (SIGKILL) and restarted on its append-only file while webhooks keep arriving at
// two replicas and two subscribers read: every webhook answered 2xx reaches the subscribers
// exactly once (the one connected throughout, and one resuming with its last token), webhooks
// during the outage are answered 503 (the sender retries them), and none is answered 2xx
// without being stored.
TEST(EventsRedisRestartTest, NoAcknowledgedWebhookIsLostWhenRedisRestarts) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string aof_dir = absl::StrCat(tmp == nullptr ? "/tmp" : tmp, "/redis-aof");
  mkdir(aof_dir.c_str(), 0700);
  std::unique_ptr<RedisServer> redis = RedisServer::Start(0, aof_dir);
  ASSERT_NE(redis, nullptr);
  const int redis_port = redis->port();
  const std::string secret_file = WriteTempFile("respondio_webhook_secret", kSecret);
  std::vector<std::unique_ptr<Gateway>> gateways;
  std::vector<int> ports;
  for (int i = 0; i < 2; ++i) {
    ports.push_back(FreePort());
    auto g = Gateway::Start({"--redis_url=" + redis->url(),
                             absl::StrCat("--webhook_listen=127.0.0.1:", ports.back()),
                             "--respondio_webhook_secret_file=" + secret_file,
                             "--log_calls=false"});
    ASSERT_NE(g, nullptr);
    gateways.push_back(std::move(g));
  }

  // Subscribers: `steady` on B stays connected through the outage; `resumer` on A reads until
  // the outage, then reconnects with its last resume token once Redis is back.
  struct Seen {
    absl::Mutex mu;
    std::map<std::string, int> count ABSL_GUARDED_BY(mu);  // event_id -> times seen
    std::string last_token ABSL_GUARDED_BY(mu);
  };
  auto read_into = [](grpc::ClientReader<gw::EventEnvelope>* reader, Seen* seen) {
    gw::EventEnvelope envelope;
    while (reader->Read(&envelope)) {
      rio::Event event;
      if (!envelope.event().UnpackTo(&event)) continue;
      absl::MutexLock lock(&seen->mu);
      ++seen->count[event.event_id()];
      seen->last_token = envelope.resume_token();
    }
  };
  auto subscribe = [](Gateway& gateway, grpc::ClientContext* context,
                      const std::string& token) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    gw::SubscribeRequest request;
    if (token.empty()) {
      request.set_start_position(gw::START_POSITION_NEWEST);
    } else {
      request.set_resume_token(token);
    }
    auto reader = gw::EventService::NewStub(gateway.channel())->Subscribe(context, request);
    reader->WaitForInitialMetadata();
    return reader;
  };
  Seen steady_seen, resumer_seen;
  grpc::ClientContext steady_context, resumer_context;
  auto steady = subscribe(*gateways[1], &steady_context, "");
  auto resumer = subscribe(*gateways[0], &resumer_context, "");
  std::thread steady_thread(read_into, steady.get(), &steady_seen);
  std::thread resumer_thread(read_into, resumer.get(), &resumer_seen);

  // The sender: a new webhook every 10 ms, alternately to A and B; a non-2xx one is retried (as
  // respond.io retries) until answered 2xx. Every attempt is recorded.
  struct Attempt {
    absl::Time start, end;
    int status;
  };
  constexpr int kEvents = 60;
  absl::Mutex mu;
  std::vector<Attempt> attempts;
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    std::vector<int> unacknowledged;
    int next = 0, turn = 0;
    const absl::Time give_up = absl::Now() + absl::Seconds(40);
    while ((next < kEvents || !unacknowledged.empty()) && absl::Now() < give_up && !stop) {
      // A new event, then the oldest unacknowledged one.
      std::vector<int> batch;
      if (next < kEvents) batch.push_back(next++);
      if (!unacknowledged.empty()) {
        batch.push_back(unacknowledged.front());
        unacknowledged.erase(unacknowledged.begin());
      }
      for (int i : batch) {
        const std::string id = absl::StrCat("restart-", i);
        Attempt attempt{.start = absl::Now()};
        HttpResult r = HttpCall(ports[turn++ % 2], "POST", "/webhooks/respondio",
                                ContactUpdated(id, "Ada"),
                                {"Content-Type: application/json",
                                 "x-webhook-signature: " +
                                     events::SignRespondio(kSecret, {}, ContactUpdated(id, "Ada"))});
        attempt.end = absl::Now();
        attempt.status = r.status;
        absl::MutexLock lock(&mu);
        attempts.push_back(attempt);
        if (r.status / 100 == 2) {
          acknowledged.push_back(id);
        } else {
          unacknowledged.push_back(i);
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  auto acknowledged_count = [&] {
    absl::MutexLock lock(&mu);
    return acknowledged.size();
  };
  auto wait_for_acknowledged = [&](size_t n) {
    const absl::Time wait_until = absl::Now() + absl::Seconds(20);
    while (acknowledged_count() < n && absl::Now() < wait_until) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return acknowledged_count() >= n;
  };
  // The resumer disconnects early: what is acknowledged after this and before the crash it can
  // only get from what Redis kept.
  ASSERT_TRUE(wait_for_acknowledged(10));
  resumer_context.TryCancel();
  resumer_thread.join();
  resumer->Finish();
  ASSERT_TRUE(wait_for_acknowledged(25));

  // Crash Redis mid-stream.
  redis->Kill();
  const absl::Time down = absl::Now();
  absl::SleepFor(absl::Milliseconds(800));
  const absl::Time restarting = absl::Now();
  redis = RedisServer::Start(redis_port, aof_dir);
  ASSERT_NE(redis, nullptr) << "redis-server did not restart on port " << redis_port;
  sender.join();

  std::vector<std::string> expected;
  {
    absl::MutexLock lock(&mu);
    expected = acknowledged;
    int during_outage = 0;
    for (const Attempt& a : attempts) {
      // Answered while Redis was down: never 2xx (nothing could be stored), always in time.
      if (a.start > down && a.end < restarting) {
        ++during_outage;
        EXPECT_EQ(a.status, 503) << "a webhook was answered while Redis was down";
      }
      EXPECT_LT(a.end - a.start, absl::Seconds(5)) << "slower than Chatwoot's 5 s";
    }
    EXPECT_GE(during_outage, 5);
    std::printf("%zu attempts for %d webhooks, %d answered during the outage\n", attempts.size(),
                kEvents, during_outage);
  }
  ASSERT_EQ(expected.size(), static_cast<size_t>(kEvents)) << "retries did not all succeed";

  // The resumer comes back with its last token.
  std::string token;
  {
    absl::MutexLock lock(&resumer_seen.mu);
    token = resumer_seen.last_token;
  }
  ASSERT_FALSE(token.empty());
  grpc::ClientContext resumed_context;
  auto resumed = subscribe(*gateways[0], &resumed_context, token);
  std::thread resumed_thread(read_into, resumed.get(), &resumer_seen);
  // And a new subscriber reads everything retained, from before the crash on.
  Seen oldest_seen;
  grpc::ClientContext oldest_context;
  oldest_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  gw::SubscribeRequest from_oldest;
  from_oldest.set_start_position(gw::START_POSITION_OLDEST);
  auto oldest =
      gw::EventService::NewStub(gateways[1]->channel())->Subscribe(&oldest_context, from_oldest);
  std::thread oldest_thread(read_into, oldest.get(), &oldest_seen);

  auto all_seen = [&](Seen& seen) {
    absl::MutexLock lock(&seen.mu);
    for (const std::string& id : expected) {
      if (seen.count.count(id) == 0) return false;
    }
    return true;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!(all_seen(steady_seen) && all_seen(resumer_seen) && all_seen(oldest_seen)) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(300));  // room for a duplicate to show up
  for (grpc::ClientContext* c : {&steady_context, &resumed_context, &oldest_context}) {
    c->TryCancel();
  }
  steady_thread.join();
  resumed_thread.join();
  oldest_thread.join();
  steady->Finish();
  resumed->Finish();
  oldest->Finish();
  for (auto [seen, name] : {std::pair<Seen*, const char*>{&steady_seen, "steady"},
                            {&resumer_seen, "resumed"},
                            {&oldest_seen, "from oldest"}}) {
    absl::MutexLock lock(&seen->mu);
    EXPECT_EQ(seen->count.size(), expected.size()) << name;
    int missing = 0;
    for (const std::string& id : expected) {
      if (seen->count[id] == 0) ++missing;
      EXPECT_LE(seen->count[id], 1) << id << " seen twice (" << name << ")";
    }
    EXPECT_EQ(missing, 0) << name << " misses acknowledged webhooks";
  }
}

}  // namespace
}  // namespace gateway::testing
