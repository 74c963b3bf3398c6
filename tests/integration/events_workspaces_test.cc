// Events with workspaces, end to end: two respond.io organizations (one sandbox each, each
// posting its signed webhooks to its own workspace's endpoint /webhooks/respondio/{workspace}
// with its own key) behind one gateway with workspaces acme and globex.
//   - each workspace's webhooks are checked with its own webhook_secret_file;
//   - the envelope carries the workspace;
//   - an event invalidates the cached contact in its workspace's cache partition only;
//   - Subscribe delivers only the workspaces the caller may use (callers file), and refuses a
//     workspace it may not use or that does not exist.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "events/signature.h"
#include "gateway/v1/event_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/events.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

namespace rio = ::respondio::v2;
namespace gw = ::gateway::v1;

constexpr char kAcmeKey[] = "acme-webhook-signing-key";
constexpr char kGlobexKey[] = "globex-webhook-signing-key";
constexpr char kAcmeOnly[] = "acme-only-caller-0123456789";
constexpr char kReadsOnly[] = "reads-only-caller-0123456789";
constexpr char kAll[] = "all-workspaces-caller-0123";

class EventsWorkspacesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    webhook_port_ = FreePort();
    for (const auto& [name, key] : {std::pair<std::string, std::string>{"acme", kAcmeKey},
                                    {"globex", kGlobexKey}}) {
      auto sandbox = Sandbox::Start({absl::StrCat("--webhook_url=http://127.0.0.1:", webhook_port_),
                                     "--webhook_path_suffix=/" + name,
                                     absl::StrCat("--respondio_webhook_secret=", key)});
      ASSERT_NE(sandbox, nullptr);
      sandboxes_.push_back(std::move(sandbox));
    }
    const std::string acme_key = WriteTempFile("acme_webhook_key", kAcmeKey);
    const std::string globex_key = WriteTempFile("globex_webhook_key", kGlobexKey);
    const std::string config = WriteTempFile(
        "events_workspaces.json",
        absl::StrCat(R"({"workspaces": {
          "acme": {"respondio": {"base_url": ")", sandboxes_[0]->base_url(),
                     R"(", "webhook_secret_file": ")", acme_key, R"("}},
          "globex": {"respondio": {"base_url": ")", sandboxes_[1]->base_url(),
                     R"(", "webhook_secret_file": ")", globex_key, R"("}}}})"));
    const std::string callers = WriteTempFile(
        "events_workspaces_callers.json", absl::StrCat(R"({"callers": [
          {"name": "all", "token": ")", kAll, R"(", "allow": ["*"]},
          {"name": "acme-only", "token": ")", kAcmeOnly,
                                            R"(", "allow": ["*"], "workspaces": ["acme"]},
          {"name": "reads-only", "token": ")", kReadsOnly, R"(", "allow": ["@read"]}]})"));
    gateway_ = Gateway::Start({"--config=" + config, "--callers_file=" + callers,
                               absl::StrCat("--webhook_listen=127.0.0.1:", webhook_port_),
                               "--admin_listen=127.0.0.1:0", "--log_calls=false"});
    ASSERT_NE(gateway_, nullptr);
  }

  std::string FirstName(const std::string& workspace) {
    auto stub = rio::ContactService::NewStub(gateway_->channel());
    auto context = Context();
    context->AddMetadata("authorization", absl::StrCat("Bearer ", kAll));
    context->AddMetadata("x-workspace", workspace);
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    grpc::Status status = stub->GetContact(context.get(), request, &reply);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return reply.contact().first_name();
  }
  // The subscriber may see an event a moment before its webhook's invalidation has run (the
  // ingress stores, then invalidates, then answers): reads until `expected`, bounded.
  std::string FirstNameOnceInvalidated(const std::string& workspace, const std::string& expected) {
    std::string name = FirstName(workspace);
    for (absl::Time end = absl::Now() + absl::Seconds(5); name != expected && absl::Now() < end;) {
      absl::SleepFor(absl::Milliseconds(20));
      name = FirstName(workspace);
    }
    return name;
  }
  size_t UpstreamGets(int sandbox) { return sandboxes_[sandbox]->Requests("get_contact").size(); }
  // Edits the contact in one organization behind the gateway's back (as in respond.io's UI);
  // that sandbox posts its contact.updated webhook to its workspace's endpoint.
  void EditUpstream(int sandbox, const std::string& first_name) {
    HttpResult edited = HttpCall(sandboxes_[sandbox]->port(), "PUT", "/contact/id:12345",
                                 absl::StrCat(R"({"firstName":")", first_name, R"("})"),
                                 {"Authorization: Bearer sandbox-token",
                                  "Content-Type: application/json"});
    ASSERT_EQ(edited.status, 200) << edited.body;
  }

  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<gw::EventEnvelope>> reader;
    ~Stream() {
      if (reader != nullptr) {
        context.TryCancel();
        reader->Finish();
      }
    }
  };
  std::unique_ptr<Stream> Subscribe(const std::string& token,
                                    const std::vector<std::string>& workspaces) {
    auto stream = std::make_unique<Stream>();
    stream->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    stream->context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    gw::SubscribeRequest request;
    request.set_start_position(gw::START_POSITION_NEWEST);
    for (const std::string& w : workspaces) request.add_workspaces(w);
    stream->reader = gw::EventService::NewStub(gateway_->channel())->Subscribe(&stream->context,
                                                                              request);
    return stream;
  }
  // The contact.updated event's workspace and first name.
  static std::pair<std::string, std::string> Next(Stream& stream) {
    gw::EventEnvelope envelope;
    if (!stream.reader->Read(&envelope)) return {"<ended>", ""};
    rio::Event event;
    if (!envelope.event().UnpackTo(&event) || !event.has_contact_updated()) {
      return {envelope.workspace(), "<not contact.updated>"};
    }
    return {envelope.workspace(), event.contact_updated().contact().first_name()};
  }

  int webhook_port_ = 0;
  std::vector<std::unique_ptr<Sandbox>> sandboxes_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(EventsWorkspacesTest, EventsCarryTheirWorkspaceAndInvalidateOnlyItsCache) {
  // Both workspaces hold the contact (the same id in two organizations) in the cache.
  EXPECT_EQ(FirstName("acme"), "Ada");
  EXPECT_EQ(FirstName("globex"), "Ada");
  EXPECT_EQ(FirstName("acme"), "Ada");
  EXPECT_EQ(FirstName("globex"), "Ada");
  ASSERT_EQ(UpstreamGets(0), 1u);
  ASSERT_EQ(UpstreamGets(1), 1u);

  auto acme_only = Subscribe(kAcmeOnly, {});   // none named: the workspaces it may use
  auto globex = Subscribe(kAll, {"globex"});
  acme_only->reader->WaitForInitialMetadata();
  globex->reader->WaitForInitialMetadata();

  // acme's organization changes the contact: its webhook (signed with acme's key, to
  // /webhooks/respondio/acme) reaches acme's subscriber with workspace "acme", and only acme's
  // cache entry is dropped.
  EditUpstream(0, "Augusta");
  EXPECT_EQ(Next(*acme_only), (std::pair<std::string, std::string>{"acme", "Augusta"}));
  EXPECT_EQ(FirstNameOnceInvalidated("acme", "Augusta"), "Augusta");
  EXPECT_EQ(UpstreamGets(0), 2u);
  EXPECT_EQ(FirstName("globex"), "Ada");  // globex's entry was not touched: still a hit
  EXPECT_EQ(UpstreamGets(1), 1u);

  // globex's organization changes it: globex's subscriber sees that event next (acme's was not
  // delivered to it), and acme's subscriber does not see it (its next is acme's next edit).
  EditUpstream(1, "Grace");
  EXPECT_EQ(Next(*globex), (std::pair<std::string, std::string>{"globex", "Grace"}));
  EXPECT_EQ(FirstNameOnceInvalidated("globex", "Grace"), "Grace");
  EXPECT_EQ(UpstreamGets(1), 2u);
  EXPECT_EQ(FirstName("acme"), "Augusta");
  EXPECT_EQ(UpstreamGets(0), 2u);
  EditUpstream(0, "Lovelace");
  EXPECT_EQ(Next(*acme_only), (std::pair<std::string, std::string>{"acme", "Lovelace"}));
}

TEST_F(EventsWorkspacesTest, EachWorkspacesWebhooksNeedItsOwnKey) {
  const std::string body =
      R"({"event_id":"evt-w1","event_type":"contact.updated","contact":{"id":12345,"firstName":"X"}})";
  auto post = [&](const std::string& path, const std::string& key) {
    return HttpCall(webhook_port_, "POST", path, body,
                    {"Content-Type: application/json",
                     "x-webhook-signature: " + events::SignRespondio(key, {}, body)});
  };
  HttpResult wrong = post("/webhooks/respondio/acme", kGlobexKey);
  EXPECT_EQ(wrong.status, 401) << wrong.body;
  EXPECT_EQ(nlohmann::json::parse(wrong.body).value("reason", ""), "SIGNATURE_INVALID");
  HttpResult unknown = post("/webhooks/respondio/initech", kAcmeKey);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(nlohmann::json::parse(unknown.body).value("reason", ""), "UNKNOWN_WORKSPACE");
  // No default workspace and no --respondio_webhook_secret_file: the plain path has no secret.
  HttpResult plain = post("/webhooks/respondio", kAcmeKey);
  EXPECT_EQ(plain.status, 401) << plain.body;
  EXPECT_EQ(nlohmann::json::parse(plain.body).value("reason", ""), "NO_SECRET");
  EXPECT_EQ(post("/webhooks/respondio/acme", kAcmeKey).status, 200);
  EXPECT_EQ(post("/webhooks/respondio/globex", kGlobexKey).status, 200);
}

// An event type the protos do not know is stored (kept as unknown) and counted in the drift
// report, once per stored event (not for a redelivery): kind unknown_event, rpc
// /webhooks/{upstream}, field the event type; on /metrics and the admin GET /drift.
TEST_F(EventsWorkspacesTest, UnknownEventTypesAreCountedInTheDriftReport) {
  const std::string body =
      R"({"event_id":"evt-u1","event_type":"lifecycle.updated","contact":{"id":12345}})";
  auto post = [&] {
    return HttpCall(webhook_port_, "POST", "/webhooks/respondio/acme", body,
                    {"Content-Type: application/json",
                     "x-webhook-signature: " + events::SignRespondio(kAcmeKey, {}, body)});
  };
  ASSERT_EQ(post().status, 200);
  HttpResult again = post();
  ASSERT_EQ(again.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(again.body).value("duplicate", false));
  const std::string metrics = HttpCall(AdminPort(*gateway_), "GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(gateway_upstream_drift_total{upstream="respondio",rpc="/webhooks/respondio",field="lifecycle.updated",kind="unknown_event"} 1)"),
            std::string::npos)
      << metrics.substr(metrics.find("gateway_upstream_drift_total"), 600);
  const nlohmann::json drift =
      nlohmann::json::parse(HttpCall(AdminPort(*gateway_), "GET", "/drift").body);
  bool found = false;
  for (const auto& e : drift) {
    if (e.value("kind", "") == "unknown_event") {
      found = true;
      EXPECT_EQ(e.value("rpc", ""), "/webhooks/respondio");
      EXPECT_EQ(e.value("field", ""), "lifecycle.updated");
      EXPECT_EQ(e.value("count", 0), 1);
    }
  }
  EXPECT_TRUE(found) << drift.dump();
}

TEST_F(EventsWorkspacesTest, SubscribeRefusesWorkspacesTheCallerMayNotUse) {
  for (const auto& [token, workspace, code, reason] :
       {std::tuple<std::string, std::string, grpc::StatusCode, std::string>{
            kAcmeOnly, "globex", grpc::StatusCode::PERMISSION_DENIED, "WORKSPACE_NOT_ALLOWED"},
        {kAll, "initech", grpc::StatusCode::NOT_FOUND, "UNKNOWN_WORKSPACE"},
        // Its allowlist does not name gateway.v1.EventService/Subscribe ("@read" never does).
        {kReadsOnly, "acme", grpc::StatusCode::PERMISSION_DENIED, "RPC_NOT_ALLOWED"},
        {kReadsOnly, "", grpc::StatusCode::PERMISSION_DENIED, "RPC_NOT_ALLOWED"}}) {
    auto stream = Subscribe(token, workspace.empty() ? std::vector<std::string>{}
                                                     : std::vector<std::string>{workspace});
    gw::EventEnvelope envelope;
    EXPECT_FALSE(stream->reader->Read(&envelope));
    grpc::Status status = stream->reader->Finish();
    stream->reader.reset();
    EXPECT_EQ(status.error_code(), code) << workspace << ": " << status.error_message();
    EXPECT_EQ(ErrorInfoOf(status).reason(), reason);
  }
}

}  // namespace
}  // namespace gateway::testing
