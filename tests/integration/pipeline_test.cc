// The call pipeline end to end (issue 9, items 2, 3, 5 and 11): a real gateway in front of the
// sandbox. What reached the upstream is read from the sandbox's request log, never inferred.
#include <csignal>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.grpc.pb.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

namespace rio = ::respondio::v2;

// One asynchronous CreateComment and its outcome.
struct PendingComment {
  std::unique_ptr<grpc::ClientContext> context;
  rio::CreateCommentRequest request;
  rio::CreateCommentResponse reply;
  grpc::Status status;
  absl::Notification done;
};

// One asynchronous GetContact and its outcome.
struct PendingGet {
  std::unique_ptr<grpc::ClientContext> context;
  rio::GetContactRequest request;
  rio::GetContactResponse reply;
  grpc::Status status;
  absl::Notification done;
};

// A config with one comment per second: every comment after the first waits in the gateway's
// limiter, where its caller can leave or shutdown can find it.
std::string OneCommentPerSecond() {
  return WriteTempFile("pipeline_config.json", R"({"rate_limits": {"buckets": {
      "respondio/comment_create": {"rate_per_second": 1, "burst": 0}}}})");
}

void StartComment(rio::CommentService::Stub* stub, PendingComment* call, int i,
                  absl::Duration timeout, const std::string& token = "",
                  const std::string& request_id = "") {
  call->context = Context(timeout);
  if (!token.empty()) call->context->AddMetadata("authorization", "Bearer " + token);
  call->request.set_identifier("id:12345");
  call->request.set_text(absl::StrCat("comment ", i));
  call->request.set_request_id(request_id);
  stub->async()->CreateComment(call->context.get(), &call->request, &call->reply,
                               [call](grpc::Status s) {
                                 call->status = std::move(s);
                                 call->done.Notify();
                               });
}

void StartGet(rio::ContactService::Stub* stub, PendingGet* call, absl::Duration timeout) {
  call->context = Context(timeout);
  call->request.set_identifier("id:12345");
  stub->async()->GetContact(call->context.get(), &call->request, &call->reply,
                            [call](grpc::Status s) {
                              call->status = std::move(s);
                              call->done.Notify();
                            });
}

// Waits (bounded) until the sandbox logged at least `n` requests of `endpoint`.
size_t WaitForRequests(Sandbox& sandbox, const std::string& endpoint, size_t n) {
  for (int i = 0; i < 250; ++i) {
    const size_t seen = sandbox.Requests(endpoint).size();
    if (seen >= n) return seen;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return sandbox.Requests(endpoint).size();
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
  }
  std::unique_ptr<Sandbox> sandbox_;
};

// Item 2: callers that leave while their writes wait for the budget. None of those writes
// reaches the upstream, and they spend none of it: the next write is admitted at the bucket's
// next turn, not after the abandoned ones' turns.
TEST_F(PipelineTest, CancelledQueuedWritesNeverReachTheUpstreamAndSpendNoBudget) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--config=" + OneCommentPerSecond()});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::CommentService::NewStub(gateway->channel());
  constexpr int kCalls = 10;
  std::vector<std::unique_ptr<PendingComment>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<PendingComment>());
    StartComment(stub.get(), calls.back().get(), i, absl::Seconds(60));
  }
  ASSERT_EQ(WaitForRequests(*sandbox_, "create_comment", 1), 1u);
  absl::SleepFor(absl::Milliseconds(200));  // the others are queued for later turns
  for (auto& call : calls) call->context->TryCancel();
  int cancelled = 0;
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    if (call->status.error_code() == grpc::StatusCode::CANCELLED) ++cancelled;
  }
  EXPECT_GE(cancelled, kCalls - 1);
  absl::SleepFor(absl::Milliseconds(2500));  // two more turns of the bucket pass
  EXPECT_EQ(sandbox_->Requests("create_comment").size(), 1u) << "a cancelled write was sent";

  // Had the nine abandoned calls kept their turns, the next one would come ~9 s from now, past
  // this call's deadline (RESOURCE_EXHAUSTED at once).
  PendingComment next;
  StartComment(stub.get(), &next, 99, absl::Seconds(3));
  ASSERT_TRUE(next.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(sandbox_->Requests("create_comment").size(), 2u);
}

// Item 3: SIGTERM with writes queued. Those that cannot run within the grace are answered
// UNAVAILABLE SHUTTING_DOWN not_sent before their request exists and are never sent later; the
// call log records each call as it was answered.
TEST_F(PipelineTest, SigtermAnswersQueuedWritesNotSentAndNeverSendsThemLater) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--config=" + OneCommentPerSecond(), "--shutdown_grace=2s"});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::CommentService::NewStub(gateway->channel());
  constexpr int kCalls = 8;
  std::vector<std::unique_ptr<PendingComment>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<PendingComment>());
    StartComment(stub.get(), calls.back().get(), i, absl::Seconds(30));
  }
  ASSERT_EQ(WaitForRequests(*sandbox_, "create_comment", 1), 1u);
  absl::SleepFor(absl::Milliseconds(100));
  gateway->process().Signal(SIGTERM);
  int ok = 0, not_sent = 0, maybe_sent = 0;
  for (auto& call : calls) {
    ASSERT_TRUE(call->done.WaitForNotificationWithTimeout(absl::Seconds(15)));
    if (call->status.ok()) {
      ++ok;
      continue;
    }
    EXPECT_EQ(call->status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << call->status.error_message();
    const google::rpc::ErrorInfo info = ErrorInfoOf(call->status);
    EXPECT_EQ(info.reason(), "SHUTTING_DOWN");
    if (info.metadata().count("not_sent") && info.metadata().at("not_sent") == "true") {
      ++not_sent;
    } else {
      ++maybe_sent;  // aborted in flight: the upstream may have it
    }
  }
  int exit_code = -1;
  for (int i = 0; i < 500 && !gateway->process().Exited(&exit_code); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(exit_code, 0) << gateway->process().output();
  EXPECT_GE(ok, 1);
  EXPECT_GE(not_sent, 1) << "the grace should not fit every queued write";
  // Nothing answered not_sent was sent, then or after the process stopped.
  absl::SleepFor(absl::Seconds(1));
  const size_t received = sandbox_->Requests("create_comment").size();
  EXPECT_GE(received, static_cast<size_t>(ok));
  EXPECT_LE(received, static_cast<size_t>(ok + maybe_sent));

  // The call log says what the callers were told.
  int logged_ok = 0, logged_shutting_down = 0;
  for (const nlohmann::json& line : CallLogLines(gateway->process().output())) {
    if (line.value("rpc", "") != "/respondio.v2.CommentService/CreateComment") continue;
    if (line.value("code", "") == "OK") ++logged_ok;
    if (line.value("code", "") == "UNAVAILABLE" && line.value("reason", "") == "SHUTTING_DOWN") {
      ++logged_shutting_down;
    }
  }
  EXPECT_EQ(logged_ok, ok) << gateway->process().output();
  EXPECT_EQ(logged_shutting_down, not_sent + maybe_sent) << gateway->process().output();
}

// Item 5: a read that joined another caller's identical read keeps its own deadline: the first
// caller's short deadline neither fails it nor cancels the shared upstream request.
TEST_F(PipelineTest, CoalescedFollowerKeepsItsOwnDeadline) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url()});
  ASSERT_NE(gateway, nullptr);
  sandbox_->AddFault({{"endpoint", "get_contact"}, {"fault", "delay"}, {"delay_ms", 2000}});
  auto stub = rio::ContactService::NewStub(gateway->channel());
  PendingGet leader, follower;
  StartGet(stub.get(), &leader, absl::Milliseconds(800));
  ASSERT_EQ(WaitForRequests(*sandbox_, "get_contact", 1), 1u);
  StartGet(stub.get(), &follower, absl::Seconds(10));
  ASSERT_TRUE(leader.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(leader.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(follower.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(follower.status.ok()) << follower.status.error_message();
  EXPECT_EQ(follower.reply.contact().id(), 12345);
  EXPECT_EQ(sandbox_->Requests("get_contact").size(), 1u) << "the follower had its own request";
}

// Item 11: a Get whose 200 carries no resource is INTERNAL UPSTREAM_BAD_RESPONSE, not OK.
TEST_F(PipelineTest, GetWithAnEmptyOrNull200IsBadResponse) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url()});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::ContactService::NewStub(gateway->channel());
  for (const std::string body : {"", "null"}) {
    SCOPED_TRACE(body);
    sandbox_->AddFault({{"endpoint", "get_contact"}, {"fault", "status"}, {"status", 200},
                        {"body", body}});
    auto context = Context();
    context->AddMetadata("cache-control", "no-cache");
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    const grpc::Status status = stub->GetContact(context.get(), request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
    EXPECT_EQ(ErrorInfoOf(status).reason(), "UPSTREAM_BAD_RESPONSE");
  }
}

// Item 11: request_id records are per caller. Caller B sending caller A's request_id gets its
// own call; A's repeat is replayed without an upstream request.
TEST_F(PipelineTest, RequestIdRecordsArePerCaller) {
  const std::string callers = WriteTempFile("pipeline_callers.json", R"({"callers": [
      {"name": "alice", "token": "alice-token-0123456789", "allow": ["*"]},
      {"name": "bob", "token": "bob-token-0123456789ab", "allow": ["*"]}]})");
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--callers_file=" + callers});
  ASSERT_NE(gateway, nullptr);
  auto stub = rio::CommentService::NewStub(gateway->channel());
  const std::string id = "5d0b7a52-4f43-4c8e-9a57-2f1c9b7d3e10";
  auto call = [&](const std::string& token, int text) {
    PendingComment c;
    StartComment(stub.get(), &c, text, absl::Seconds(10), token, id);
    EXPECT_TRUE(c.done.WaitForNotificationWithTimeout(absl::Seconds(15)));
    return c.status;
  };
  ASSERT_TRUE(call("alice-token-0123456789", 1).ok());
  ASSERT_EQ(sandbox_->Requests("create_comment").size(), 1u);
  // Bob with Alice's id and another request: his own call, not a REQUEST_ID_REUSED answer that
  // would tell him Alice used the id.
  const grpc::Status probe = call("bob-token-0123456789ab", 2);
  EXPECT_TRUE(probe.ok()) << probe.error_message();
  EXPECT_EQ(sandbox_->Requests("create_comment").size(), 2u);
  // Alice's repeat: replayed from her record, no new upstream request.
  EXPECT_TRUE(call("alice-token-0123456789", 1).ok());
  EXPECT_EQ(sandbox_->Requests("create_comment").size(), 2u);
}

}  // namespace
}  // namespace gateway::testing
