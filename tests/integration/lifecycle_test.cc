// Start-up checks and graceful shutdown of the gateway process: invalid flags exit 2 with a
// clear message, --help documents every flag, and SIGTERM drains in-flight calls and exits 0.
#include <signal.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
namespace rio = ::respondio::v2;
using ::grpc::health::v1::HealthCheckResponse;

TEST(StartupTest, HelpDocumentsEveryFlag) {
  CommandResult help = Gateway::RunExpectingExit({"--help"});
  for (const std::string flag :
       {"listen", "config", "respondio_base_url", "respondio_token_file", "chatwoot_base_url",
        "chatwoot_token_file", "chatwoot_account_id", "print_routes", "ca_file", "admin_listen",
        "callers_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file", "shutdown_grace",
        "drain_delay", "log_calls", "check_config", "print_config"}) {
    EXPECT_THAT(help.output, HasSubstr(absl::StrCat("--", flag, " ("))) << flag;
  }
}

TEST(StartupTest, InvalidFlagsExitNonZeroNamingTheProblem) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--no_such_flag=1"}, "Unknown command line flag 'no_such_flag'"},
      {{"--shutdown_grace=soon"}, "Illegal value 'soon' specified for flag 'shutdown_grace'"},
      {{"--shutdown_grace=-1s"}, "--shutdown_grace must not be negative"},
      {{"--drain_delay=-2s"}, "--drain_delay must not be negative"},
      {{"stray-argument"}, "unexpected argument \"stray-argument\""},
      {{"--admin_listen=127.0.0.1"}, "--admin_listen: \"127.0.0.1\" is not HOST:PORT"},
      {{"--admin_listen=127.0.0.1:99999"}, "is not HOST:PORT"},
      {{"--listen=nowhere"}, "--listen: \"nowhere\" is not HOST:PORT"},
      {{"--config=/nonexistent.json"}, "invalid configuration"},
      {{"--respondio_base_url=ftp://x"}, "invalid configuration"},
  };
  for (const Case& c : cases) {
    CommandResult result = Gateway::RunExpectingExit(c.args);
    EXPECT_NE(result.exit_code, 0) << c.args[0];
    EXPECT_THAT(result.output, HasSubstr(c.message)) << c.args[0];
  }
}

TEST(StartupTest, CheckConfigValidatesAndExits) {
  // The repository's own Kubernetes config passes without its Secrets.
  CommandResult good =
      Gateway::RunExpectingExit({"--check_config", "--config=k8s/overlays/prod/config.json"});
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_THAT(good.output, HasSubstr("configuration is valid"));

  const struct {
    std::string json;
    std::string message;
  } bad[] = {
      {R"({"workspaces":{"acme":{"respondio":{"token_fil":"x"}}}})",
       "unknown key 'token_fil' in workspaces[\"acme\"].respondio"},
      {R"({"routes":{"respondio.v2.ContactService.ListContactChannels":{"bucket":"channels"}}})",
       "uses bucket respondio/channels, which has no rate"},
      {R"({"rate_limits":{"headroom":2}})", "rate_limits.headroom must be in (0, 1]"},
  };
  int i = 0;
  for (const auto& c : bad) {
    const std::string file = WriteTempFile(absl::StrCat("check_", i++, ".json"), c.json);
    CommandResult result = Gateway::RunExpectingExit({"--check_config", "--config=" + file});
    EXPECT_EQ(result.exit_code, 2) << c.json;
    EXPECT_THAT(result.output, HasSubstr(c.message));
  }
}

TEST(StartupTest, PrintConfigShowsTheEffectiveConfigWithoutSecrets) {
  const std::string token = WriteTempFile("print_token", "print-config-secret-token\n");
  CommandResult result = Gateway::RunExpectingExit(
      {"--print_config", "--respondio_token_file=" + token,
       "--redis_url=redis://:redis-password@127.0.0.1:1", "--listen=127.0.0.1:7777"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("\"listen\": \"127.0.0.1:7777\""));
  EXPECT_THAT(result.output, HasSubstr("\"chatwoot/chatwoot\""));
  EXPECT_THAT(result.output, HasSubstr(token));
  EXPECT_THAT(result.output, ::testing::Not(HasSubstr("print-config-secret-token")));
  EXPECT_THAT(result.output, ::testing::Not(HasSubstr("redis-password")));
}

TEST(StartupTest, AdminPortInUseFailsStartUp) {
  auto first = Gateway::Start({"--admin_listen=127.0.0.1:0"});
  ASSERT_NE(first, nullptr);
  const int taken = AdminPort(*first);
  CommandResult result = Gateway::RunExpectingExit(
      {"--listen=127.0.0.1:0", absl::StrCat("--admin_listen=127.0.0.1:", taken)});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("--admin_listen: cannot bind"));
}

class ShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
  }
  // Starts GetContact in the background; `done` is notified with its status.
  void StartSlowCall(rio::ContactService::Stub* stub, grpc::ClientContext* context,
                     rio::GetContactResponse* reply, grpc::Status* status,
                     absl::Notification* done) {
    request_.set_identifier("id:12345");
    stub->async()->GetContact(context, &request_, reply, [status, done](grpc::Status s) {
      *status = s;
      done->Notify();
    });
  }
  std::unique_ptr<Sandbox> sandbox_;
  rio::GetContactRequest request_;
};

TEST_F(ShutdownTest, SigtermFinishesInFlightCallsRefusesNewOnesAndExitsZero) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--shutdown_grace=10s"});
  ASSERT_NE(gateway, nullptr);
  sandbox_->AddFault({{"endpoint", "get_contact"}, {"fault", "delay"}, {"delay_ms", 1500}});
  auto stub = rio::ContactService::NewStub(gateway->channel());
  auto context = Context();
  rio::GetContactResponse reply;
  grpc::Status status;
  absl::Notification done;
  StartSlowCall(stub.get(), context.get(), &reply, &status, &done);
  // Wait until the upstream has the request, then ask the gateway to stop.
  for (int i = 0; i < 100 && sandbox_->Requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(sandbox_->Requests().size(), 1u);
  const absl::Time sent_term = absl::Now();
  gateway->process().Signal(SIGTERM);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(gateway->process().Exited()) << "exited with a call in flight";
  // A new connection is refused while the in-flight call drains.
  auto fresh = grpc::CreateChannel(gateway->address(), grpc::InsecureChannelCredentials());
  rio::GetContactResponse other;
  EXPECT_EQ(rio::ContactService::NewStub(fresh)
                ->GetContact(Context(absl::Milliseconds(500)).get(), request_, &other)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);

  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.contact().id(), 12345);
  int exit_code = -1;
  for (int i = 0; i < 200 && !gateway->process().Exited(&exit_code); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(exit_code, 0) << gateway->process().output();
  EXPECT_LT(absl::Now() - sent_term, absl::Seconds(8));
  EXPECT_THAT(gateway->process().output(), HasSubstr("SIGTERM received, draining"));
  EXPECT_THAT(gateway->process().output(), HasSubstr("gateway: stopped"));
}

TEST_F(ShutdownTest, CallsOutlivingTheGraceAreCancelledAndTheProcessStillExitsZero) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--shutdown_grace=300ms"});
  ASSERT_NE(gateway, nullptr);
  sandbox_->AddFault({{"endpoint", "get_contact"}, {"fault", "delay"}, {"delay_ms", 3000}});
  auto stub = rio::ContactService::NewStub(gateway->channel());
  auto context = Context(absl::Seconds(20));
  rio::GetContactResponse reply;
  grpc::Status status;
  absl::Notification done;
  StartSlowCall(stub.get(), context.get(), &reply, &status, &done);
  for (int i = 0; i < 100 && sandbox_->Requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(20));
  gateway->process().Signal(SIGTERM);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(status.ok());
  int exit_code = -1;
  for (int i = 0; i < 500 && !gateway->process().Exited(&exit_code); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(exit_code, 0) << gateway->process().output();
}

TEST_F(ShutdownTest, DrainDelayReportsNotServingWhileStillServing) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--drain_delay=1500ms", "--admin_listen=127.0.0.1:0"});
  ASSERT_NE(gateway, nullptr);
  const int admin = AdminPort(*gateway);
  auto health = grpc::health::v1::Health::NewStub(gateway->channel());
  grpc::health::v1::HealthCheckRequest request;
  HealthCheckResponse reply;
  ASSERT_TRUE(health->Check(Context().get(), request, &reply).ok());
  ASSERT_EQ(reply.status(), HealthCheckResponse::SERVING);

  gateway->process().Signal(SIGTERM);
  absl::SleepFor(absl::Milliseconds(400));
  ASSERT_TRUE(health->Check(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.status(), HealthCheckResponse::NOT_SERVING);
  request.set_service("liveness");
  ASSERT_TRUE(health->Check(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.status(), HealthCheckResponse::SERVING);
  HttpResult readyz = HttpCall(admin, "GET", "/readyz");
  EXPECT_EQ(readyz.status, 503);
  EXPECT_THAT(readyz.body, HasSubstr("draining"));
  // Calls are still served during the delay.
  auto stub = rio::ContactService::NewStub(gateway->channel());
  rio::GetContactResponse contact;
  request_.set_identifier("id:12345");
  EXPECT_TRUE(stub->GetContact(Context().get(), request_, &contact).ok());
  EXPECT_EQ(gateway->process().Stop(absl::Seconds(5)), 0);
}

}  // namespace
}  // namespace gateway::testing
