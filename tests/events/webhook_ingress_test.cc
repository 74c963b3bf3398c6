// The webhook ingress end to end over HTTP (WebhookServer on a loopback port) with the
// in-process log: what is stored, what is rejected, and the status each answer carries.
#include "events/webhook_ingress.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "chatwoot/v1/events.pb.h"
#include "events/memory_event_log.h"
#include "events/webhook_server.h"
#include "gateway/v1/event_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "respondio/v2/events.pb.h"
#include "upstream/errors.h"
#include "upstream/safe_text.h"

namespace gateway::events {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kNow = 1'700'000'000;

constexpr char kContactUpdated[] =
    R"({"event_id":"evt-1","event_type":"contact.updated",)"
    R"("contact":{"id":12,"firstName":"Ada","email":"ada@example.com"}})";

class WebhookIngressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WebhookIngress::Options options;
    options.secrets = {{"respondio", "rio-secret"}, {"chatwoot", "cw-secret"}};
    options.clock = [] { return absl::FromUnixSeconds(kNow); };
    options.invalidate = [this](const std::string& upstream, const std::string& workspace,
                                const std::vector<std::string>& tags,
                                const std::vector<std::string>& aliases) {
      invalidated_.push_back(absl::StrJoin(tags, ",") + "|" + absl::StrJoin(aliases, ","));
      invalidated_in_.push_back(upstream + "/" + workspace);
    };
    auto ingress = WebhookIngress::Create(options, &log_);
    ASSERT_TRUE(ingress.ok()) << ingress.status();
    ingress_ = *std::move(ingress);
    auto server = WebhookServer::Start("127.0.0.1:0", false, ingress_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override { server_->Stop(); }

  httplib::Result PostRespondio(const std::string& body, const std::string& signature) {
    httplib::Headers headers;
    if (!signature.empty()) headers.emplace("x-webhook-signature", signature);
    return client_->Post("/webhooks/respondio", headers, body, "application/json");
  }
  httplib::Result PostChatwoot(const std::string& body, int64_t timestamp,
                               const std::string& delivery, const std::string& secret) {
    httplib::Headers headers = {{"X-Chatwoot-Timestamp", absl::StrCat(timestamp)},
                                {"X-Chatwoot-Delivery", delivery},
                                {"X-Chatwoot-Signature", SignChatwoot(secret, timestamp, body)}};
    return client_->Post("/webhooks/chatwoot", headers, body, "application/json");
  }
  size_t Stored() { return log_.ReadAfter("0-0", 1000)->size(); }
  std::string Reason(const httplib::Result& r) {
    return nlohmann::json::parse(r->body).value("reason", "");
  }

  upstream::ManualScheduler clock_;
  MemoryEventLog log_{{}, &clock_};
  std::unique_ptr<WebhookIngress> ingress_;
  std::unique_ptr<WebhookServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::vector<std::string> invalidated_;
  std::vector<std::string> invalidated_in_;  // "upstream/workspace" of each invalidation
};

TEST_F(WebhookIngressTest, SignedRespondioWebhookIsStoredTypedAndInvalidates) {
  auto r = PostRespondio(kContactUpdated, SignRespondio("rio-secret", {}, kContactUpdated));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto entries = log_.ReadAfter("0-0", 10);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].upstream, "respondio");
  EXPECT_EQ((*entries)[0].type, "contact.updated");
  gateway::v1::EventEnvelope envelope;
  ASSERT_TRUE(envelope.ParseFromString((*entries)[0].payload));
  EXPECT_EQ(envelope.upstream(), "respondio");
  EXPECT_EQ(envelope.received_time().seconds(), kNow);
  respondio::v2::Event event;
  ASSERT_TRUE(envelope.event().UnpackTo(&event));
  EXPECT_EQ(event.contact_updated().contact().first_name(), "Ada");
  EXPECT_THAT(invalidated_, ElementsAre("contact:id:12,contacts|contact:email:ada@example.com"));
  auto counters = ingress_->counters();
  EXPECT_EQ(counters.received["respondio"], 1);
  EXPECT_EQ(counters.stored["respondio"], 1);
}

TEST_F(WebhookIngressTest, DuplicateIsStoredOnce) {
  const std::string sig = SignRespondio("rio-secret", {}, kContactUpdated);
  ASSERT_EQ(PostRespondio(kContactUpdated, sig)->status, 200);
  auto again = PostRespondio(kContactUpdated, sig);
  EXPECT_EQ(again->status, 200);
  EXPECT_TRUE(nlohmann::json::parse(again->body).value("duplicate", false));
  EXPECT_EQ(Stored(), 1u);
  EXPECT_EQ(invalidated_.size(), 1u);
  EXPECT_EQ(ingress_->counters().duplicates["respondio"], 1);

  // Chatwoot: the same X-Chatwoot-Delivery is one event, a new one is another.
  const std::string body = R"({"event":"conversation_status_changed","id":31,"status":"resolved"})";
  ASSERT_EQ(PostChatwoot(body, kNow, "d-1", "cw-secret")->status, 200);
  ASSERT_EQ(PostChatwoot(body, kNow - 10, "d-1", "cw-secret")->status, 200);
  EXPECT_EQ(Stored(), 2u);
  ASSERT_EQ(PostChatwoot(body, kNow, "d-2", "cw-secret")->status, 200);
  EXPECT_EQ(Stored(), 3u);
}

TEST_F(WebhookIngressTest, RejectionsStoreNothingAndAnswerTheirStatus) {
  // Bad and missing signatures.
  auto bad = PostRespondio(kContactUpdated, SignRespondio("wrong", {}, kContactUpdated));
  EXPECT_EQ(bad->status, 401);
  EXPECT_EQ(Reason(bad), "SIGNATURE_INVALID");
  auto missing = PostRespondio(kContactUpdated, "");
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(Reason(missing), "SIGNATURE_MISSING");
  const std::string body = R"({"event":"contact_updated","id":9})";
  auto forged = PostChatwoot(body, kNow, "d-1", "not-the-secret");
  EXPECT_EQ(forged->status, 401);
  EXPECT_EQ(Reason(forged), "SIGNATURE_INVALID");
  // Stale timestamp (correctly signed, 6 minutes old).
  auto stale = PostChatwoot(body, kNow - 360, "d-2", "cw-secret");
  EXPECT_EQ(stale->status, 401);
  EXPECT_EQ(Reason(stale), "TIMESTAMP_STALE");
  // Oversize: just over 1 MiB, and far over it (httplib's own limit answers that one).
  for (size_t size : {size_t{(1 << 20) + 1}, size_t{3 << 20}}) {
    const std::string big = R"({"event_id":"x","event_type":"contact.updated","pad":")" +
                            std::string(size, 'a') + "\"}";
    auto r = PostRespondio(big, SignRespondio("rio-secret", {}, big));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413) << size;
  }
  // Malformed JSON (signed) and JSON without an event type.
  const std::string junk = "{not json";
  auto malformed = PostRespondio(junk, SignRespondio("rio-secret", {}, junk));
  EXPECT_EQ(malformed->status, 400);
  EXPECT_EQ(Reason(malformed), "MALFORMED_JSON");
  const std::string untyped = R"({"event_id":"e"})";
  auto no_type = PostRespondio(untyped, SignRespondio("rio-secret", {}, untyped));
  EXPECT_EQ(no_type->status, 400);
  EXPECT_EQ(Reason(no_type), "MALFORMED_EVENT");
  // Unknown upstream.
  auto unknown = client_->Post("/webhooks/zendesk", "{}", "application/json");
  EXPECT_EQ(unknown->status, 404);

  EXPECT_EQ(Stored(), 0u);
  EXPECT_TRUE(invalidated_.empty());
  auto counters = ingress_->counters();
  EXPECT_EQ((counters.rejected[{"respondio", "SIGNATURE_INVALID"}]), 1);
  EXPECT_EQ((counters.rejected[{"chatwoot", "TIMESTAMP_STALE"}]), 1);
  EXPECT_EQ((counters.rejected[{"respondio", "BODY_TOO_LARGE"}]), 2);
  EXPECT_EQ((counters.rejected[{"respondio", "MALFORMED_JSON"}]), 1);
}

TEST(WebhookIngressUnknownTest, UnknownEventsAreReportedOncePerStoredEvent) {
  upstream::ManualScheduler clock;
  MemoryEventLog log({}, &clock);
  WebhookIngress::Options options;
  options.secrets = {{"respondio", "rio-secret"}};
  std::vector<std::string> reported;
  options.on_unknown_event = [&](const std::string& upstream, const std::string& type,
                                 const std::string& decode_error) {
    reported.push_back(absl::StrCat(upstream, " ", type, " [", decode_error.empty() ? "" : "error",
                                    "]"));
  };
  auto ingress = WebhookIngress::Create(options, &log);
  ASSERT_TRUE(ingress.ok());
  auto post = [&](const std::string& body) {
    return (*ingress)->Handle("respondio", "",
                              {{"x-webhook-signature", SignRespondio("rio-secret", {}, body)}},
                              body).http_status;
  };
  const std::string lifecycle =
      R"({"event_id":"u1","event_type":"lifecycle.updated","lifecycle":"Lead"})";
  EXPECT_EQ(post(lifecycle), 200);
  EXPECT_EQ(post(lifecycle), 200);  // a redelivery: stored once, reported once
  EXPECT_EQ(post(kContactUpdated), 200);  // typed: not reported
  // A known type whose JSON does not fit its typed message.
  EXPECT_EQ(post(R"({"event_id":"u2","event_type":"contact.updated","contact":"not an object"})"),
            200);
  EXPECT_THAT(reported, ElementsAre("respondio lifecycle.updated []",
                                    "respondio contact.updated [error]"));
}

TEST_F(WebhookIngressTest, UnknownEventTypeIsStoredAndCounted) {
  const std::string body = R"({"event_id":"e9","event_type":"lifecycle.updated","lifecycle":"x"})";
  auto r = PostRespondio(body, SignRespondio("rio-secret", {}, body));
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(Stored(), 1u);
  EXPECT_EQ((ingress_->counters().unknown[{"respondio", "lifecycle.updated"}]), 1);
}

TEST_F(WebhookIngressTest, WorkspaceFromThePath) {
  const std::string body = R"({"event":"contact_created","id":5})";
  const std::string ts = absl::StrCat(kNow);
  httplib::Headers headers = {{"X-Chatwoot-Timestamp", ts},
                              {"X-Chatwoot-Delivery", "w1"},
                              {"X-Chatwoot-Signature", SignChatwoot("cw-secret", kNow, body)}};
  auto r = client_->Post("/webhooks/chatwoot/acme", headers, body, "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  gateway::v1::EventEnvelope envelope;
  ASSERT_TRUE(envelope.ParseFromString((*log_.ReadAfter("0-0", 1))[0].payload));
  EXPECT_EQ(envelope.workspace(), "acme");
  EXPECT_EQ((*log_.ReadAfter("0-0", 1))[0].workspace, "acme");
  EXPECT_THAT(invalidated_in_, ElementsAre("chatwoot/acme"));
}

TEST(WebhookIngressWorkspaceTest, TheWorkspaceHookNamesEachWorkspacesSecret) {
  upstream::ManualScheduler clock;
  MemoryEventLog log({}, &clock);
  WebhookIngress::Options options;
  options.secrets = {{"respondio", "default-secret"}};
  options.workspace_secret = [](const std::string& upstream,
                                const std::string& workspace) -> absl::StatusOr<std::string> {
    if (upstream == "respondio" && workspace == "acme") return std::string("acme-secret");
    if (workspace.empty()) return std::string("default-secret");  // the path without one
    return absl::NotFoundError("no such workspace");
  };
  std::vector<std::string> invalidated_in;
  options.invalidate = [&](const std::string& upstream, const std::string& workspace,
                           const std::vector<std::string>&, const std::vector<std::string>&) {
    invalidated_in.push_back(upstream + "/" + workspace);
  };
  auto ingress = WebhookIngress::Create(options, &log);
  ASSERT_TRUE(ingress.ok());
  auto post = [&](const std::string& workspace, const std::string& secret) {
    return (*ingress)->Handle(
        "respondio", workspace,
        {{"x-webhook-signature", SignRespondio(secret, {}, kContactUpdated)}}, kContactUpdated);
  };
  WebhookIngress::Result unknown = post("globex", "default-secret");
  EXPECT_EQ(unknown.http_status, 404);
  EXPECT_EQ(unknown.reason, "UNKNOWN_WORKSPACE");
  EXPECT_EQ(post("acme", "default-secret").http_status, 401);  // not that workspace's secret
  EXPECT_TRUE(log.ReadAfter("0-0", 10)->empty());
  WebhookIngress::Result stored = post("acme", "acme-secret");
  ASSERT_EQ(stored.http_status, 200) << stored.Body();
  // The default workspace's path keeps the default secret; the same event_id in another
  // workspace is another delivery.
  EXPECT_EQ(post("", "default-secret").http_status, 200);
  // /webhooks/respondio/default is the path without a workspace: the same delivery, stored once.
  WebhookIngress::Result again = post("default", "default-secret");
  EXPECT_EQ(again.http_status, 200);
  EXPECT_TRUE(again.duplicate);
  auto all = log.ReadAfter("0-0", 10);
  ASSERT_EQ(all->size(), 2u);
  gateway::v1::EventEnvelope envelope;
  ASSERT_TRUE(envelope.ParseFromString((*all)[0].payload));
  EXPECT_EQ(envelope.workspace(), "acme");
  EXPECT_EQ((*all)[0].workspace, "acme");
  ASSERT_TRUE(envelope.ParseFromString((*all)[1].payload));
  EXPECT_EQ(envelope.workspace(), "");
  EXPECT_EQ((*all)[1].workspace, "");
  // Each event invalidates in its own workspace's cache partition only (once: not for the
  // duplicate).
  EXPECT_THAT(invalidated_in, ElementsAre("respondio/acme", "respondio/"));
  EXPECT_EQ(((*ingress)->counters().rejected[{"respondio", "UNKNOWN_WORKSPACE"}]), 1);
  // A workspace's secret is a configured secret: redacted like the upstreams' (issue 9).
  EXPECT_EQ(upstream::RedactSecrets("quoted acme-secret"), "quoted [REDACTED]");
}

// Webhook secrets are configured secrets: whatever quotes one (an upstream's error body, a
// status message) has it redacted before the gateway emits it (issue 9).
TEST_F(WebhookIngressTest, WebhookSecretsAreRedactedFromEmittedText) {
  EXPECT_EQ(upstream::RedactSecrets("sig rio-secret and cw-secret"),
            "sig [REDACTED] and [REDACTED]");
  const absl::Status quoted = upstream::GatewayError(
      absl::StatusCode::kInvalidArgument, "the upstream said: cw-secret is wrong",
      {.reason = "UPSTREAM_INVALID_ARGUMENT"});
  EXPECT_EQ(quoted.message().find("cw-secret"), absl::string_view::npos) << quoted.message();
}

TEST(WebhookServerTest, UnsignedOnlyOnLoopbackAndOnlyWhenAllowed) {
  upstream::ManualScheduler clock;
  MemoryEventLog log({}, &clock);
  auto closed = WebhookIngress::Create({}, &log);
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ((*closed)->Handle("respondio", "", {}, kContactUpdated).http_status, 401);
  WebhookIngress::Options open;
  open.allow_unsigned = true;
  auto ingress = WebhookIngress::Create(open, &log);
  ASSERT_TRUE(ingress.ok());
  EXPECT_EQ(WebhookServer::Start("0.0.0.0:0", true, ingress->get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto server = WebhookServer::Start("127.0.0.1:0", true, ingress->get());
  ASSERT_TRUE(server.ok());
  EXPECT_EQ((*ingress)->Handle("respondio", "", {}, kContactUpdated).http_status, 200);
  (*server)->Stop();
}

}  // namespace
}  // namespace gateway::events
