// The admin listener (/metrics, /healthz, /readyz) and the per-call JSON log, on a live gateway.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace rio = ::respondio::v2;

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sandbox_ = Sandbox::Start({"--rate_limits=false"});
    ASSERT_NE(sandbox_, nullptr);
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--admin_listen=127.0.0.1:0"});
    ASSERT_NE(gateway_, nullptr);
    admin_port_ = AdminPort(*gateway_);
    ASSERT_GT(admin_port_, 0) << gateway_->process().output();
    contacts_ = rio::ContactService::NewStub(gateway_->channel());
  }

  grpc::Status GetContact(const std::string& identifier, const std::string& caller = "") {
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    auto context = Context();
    if (!caller.empty()) context->AddMetadata("x-caller", caller);
    return contacts_->GetContact(context.get(), request, &reply);
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  int admin_port_ = 0;
  std::unique_ptr<rio::ContactService::Stub> contacts_;
};

TEST_F(AdminTest, HealthzAndReadyz) {
  HttpResult healthz = HttpCall(admin_port_, "GET", "/healthz");
  EXPECT_EQ(healthz.status, 200);
  EXPECT_EQ(healthz.body, "ok\n");
  HttpResult readyz = HttpCall(admin_port_, "GET", "/readyz");
  EXPECT_EQ(readyz.status, 200);
  EXPECT_THAT(readyz.body, HasSubstr("config: ok"));
  EXPECT_EQ(HttpCall(admin_port_, "GET", "/nope").status, 404);
}

TEST_F(AdminTest, MetricsCountCallsByRpcAndCodeWithLatencyAndUpstreamStatus) {
  ASSERT_TRUE(GetContact("id:12345").ok());
  ASSERT_TRUE(GetContact("id:67890").ok());
  ASSERT_EQ(GetContact("id:999999").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(GetContact("not-an-identifier").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  HttpResult metrics = HttpCall(admin_port_, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string rpc = "rpc=\"/respondio.v2.ContactService/GetContact\"";
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE gateway_calls_total counter\n"));
  EXPECT_THAT(metrics.body, HasSubstr(absl::StrCat("gateway_calls_total{code=\"OK\",", rpc, "} 2\n")));
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("gateway_calls_total{code=\"NOT_FOUND\",", rpc, "} 1\n")));
  EXPECT_THAT(metrics.body, HasSubstr(absl::StrCat("gateway_calls_total{code=\"INVALID_ARGUMENT\",", rpc,
                                                   "} 1\n")));
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE gateway_call_latency_seconds histogram\n"));
  EXPECT_THAT(metrics.body, HasSubstr(absl::StrCat("gateway_call_latency_seconds_bucket{", rpc,
                                                   ",le=\"+Inf\"} 4\n")));
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("gateway_call_latency_seconds_count{", rpc, "} 4\n")));
  // Upstream responses: the invalid identifier never reached the upstream.
  EXPECT_THAT(metrics.body, HasSubstr("gateway_upstream_responses_total{bucket=\"contact_get\","
                                      "status=\"200\",upstream=\"respondio\","
                                      "workspace=\"default\"} 2\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_upstream_responses_total{bucket=\"contact_get\","
                                      "status=\"404\",upstream=\"respondio\","
                                      "workspace=\"default\"} 1\n"));
  // The components' counters, collected at scrape time: three calls went upstream, through the
  // limiter's contact_get bucket, after three cache misses.
  EXPECT_THAT(metrics.body, HasSubstr("gateway_dispatcher_upstream_requests_total 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_limiter_admitted_total{bucket=\"respondio:"));
  EXPECT_THAT(metrics.body, HasSubstr(":contact_get\",workspace=\"default\"} 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_limiter_rejected_total{bucket=\"respondio:"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_cache_misses_total 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_cache_hits_total 0\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_idempotency_replays_total 0\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_call_errors_total{reason=\"UPSTREAM_NOT_FOUND\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_ready 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_limiter_rate_per_second{bucket=\"respondio:"));
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE gateway_upstream_drift_total counter\n"));
}

TEST_F(AdminTest, UnknownRpcsShareOneSeries) {
  for (const std::string method : {"/x.Y/A", "/x.Y/B"}) {
    std::string reply;
    grpc::Status status = RawCall(gateway_->channel(), method, "", &reply, *Context());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  HttpResult metrics = HttpCall(admin_port_, "GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("gateway_calls_total{code=\"UNIMPLEMENTED\",rpc=\"unknown\"} 2\n"));
  EXPECT_THAT(metrics.body, Not(HasSubstr("x.Y")));
}

TEST_F(AdminTest, OneJsonLogLinePerCallWithoutSecrets) {
  ASSERT_TRUE(GetContact("id:12345", "crm-sync").ok());
  ASSERT_TRUE(GetContact("id:12345", "crm-sync").ok());  // answered from the cache
  ASSERT_EQ(GetContact("id:999999").error_code(), grpc::StatusCode::NOT_FOUND);
  absl::SleepFor(absl::Milliseconds(100));
  const std::string output = gateway_->process().output();
  auto lines = CallLogLines(output);
  ASSERT_EQ(lines.size(), 3u) << output;
  EXPECT_EQ(lines[1]["cache_hit"], true);
  EXPECT_EQ(lines[1]["upstream_status"], 0);
  EXPECT_EQ(lines[1]["code"], "OK");
  lines.erase(lines.begin() + 1);
  EXPECT_THAT(HttpCall(admin_port_, "GET", "/metrics").body, HasSubstr("gateway_cache_hits_total 1\n"));
  EXPECT_EQ(lines[0]["rpc"], "/respondio.v2.ContactService/GetContact");
  EXPECT_EQ(lines[0]["caller"], "crm-sync");
  EXPECT_EQ(lines[0]["code"], "OK");
  EXPECT_EQ(lines[0]["upstream_status"], 200);
  EXPECT_EQ(lines[0]["cache_hit"], false);
  EXPECT_EQ(lines[0]["upstream"], "respondio");
  EXPECT_TRUE(lines[0]["latency_ms"].is_number());
  EXPECT_TRUE(lines[0]["ts"].is_string());
  EXPECT_EQ(lines[1]["code"], "NOT_FOUND");
  EXPECT_EQ(lines[1]["reason"], "UPSTREAM_NOT_FOUND");
  EXPECT_EQ(lines[1]["upstream_status"], 404);
  EXPECT_EQ(lines[1]["caller"], "");
  // The upstream token the gateway sends to the sandbox never appears.
  EXPECT_THAT(output, Not(HasSubstr("sandbox-token")));
}

// A caller that resets its stream before sending the request cancelled the call: CANCELLED
// CALLER_CANCELLED, not INVALID_ARGUMENT MISSING_REQUEST (which is for a caller that half-closes
// without a request).
TEST_F(AdminTest, StreamResetBeforeTheRequestIsLoggedCancelled) {
  grpc::GenericStub stub(gateway_->channel());
  grpc::CompletionQueue cq;
  auto context = Context();
  auto call = stub.PrepareCall(context.get(), "/respondio.v2.ContactService/GetContact", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  ASSERT_TRUE(ok);
  absl::SleepFor(absl::Milliseconds(200));  // the gateway has the call and waits for its request
  context->TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  // Half-closed without a request: that one is the caller's mistake.
  auto half = Context();
  grpc::CompletionQueue cq2;
  auto closed = stub.PrepareCall(half.get(), "/respondio.v2.ContactService/GetContact", &cq2);
  closed->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq2.Next(&tag, &ok));
  closed->WritesDone(reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq2.Next(&tag, &ok));
  grpc::Status missing;
  closed->Finish(&missing, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq2.Next(&tag, &ok));
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << missing.error_message();
  cq2.Shutdown();
  while (cq2.Next(&tag, &ok)) {
  }

  absl::SleepFor(absl::Milliseconds(100));
  const std::string output = gateway_->process().output();
  auto lines = CallLogLines(output);
  ASSERT_EQ(lines.size(), 2u) << output;
  EXPECT_EQ(lines[0]["code"], "CANCELLED");
  EXPECT_EQ(lines[0]["reason"], "CALLER_CANCELLED");
  EXPECT_EQ(lines[1]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(lines[1]["reason"], "MISSING_REQUEST");
}

TEST_F(AdminTest, TraceContextIsForwardedUpstreamAndLogged) {
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto call = [&](const std::string& traceparent, const std::string& identifier) {
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    auto context = Context();
    if (!traceparent.empty()) {
      context->AddMetadata("traceparent", traceparent);
      context->AddMetadata("tracestate", "rojo=00f067aa0ba902b7");
    }
    return contacts_->GetContact(context.get(), request, &reply);
  };
  sandbox_->ClearRequests();
  ASSERT_TRUE(call("00-" + trace + "-00f067aa0ba902b7-01", "id:12345").ok());
  ASSERT_TRUE(call("", "id:67890").ok());
  // Malformed: a new trace, the garbage not forwarded (the upstream's 404 does not matter).
  call("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "id:999999");
  nlohmann::json requests = sandbox_->Requests();
  ASSERT_EQ(requests.size(), 3u) << requests.dump();
  const nlohmann::json& first = requests[0]["headers"];
  const std::string forwarded = first.value("traceparent", "");
  // The caller's trace, the gateway's own span, the caller's sampled flag.
  EXPECT_THAT(forwarded, ::testing::MatchesRegex("00-" + trace + "-[0-9a-f]{16}-01"));
  EXPECT_EQ(first.value("tracestate", ""), "rojo=00f067aa0ba902b7");
  const std::string started = requests[1]["headers"].value("traceparent", "");
  EXPECT_THAT(started, ::testing::MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-00"));
  EXPECT_FALSE(requests[1]["headers"].contains("tracestate"));
  const std::string replaced = requests[2]["headers"].value("traceparent", "");
  EXPECT_THAT(replaced, ::testing::MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-00"));
  EXPECT_THAT(replaced, Not(HasSubstr("4bf92f3577b34da6a3ce929d0e0e4736")));
  EXPECT_FALSE(requests[2]["headers"].contains("tracestate"));
  absl::SleepFor(absl::Milliseconds(100));
  auto lines = CallLogLines(gateway_->process().output());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(replaced, "00-" + lines[2]["trace_id"].get<std::string>() + "-" +
                          lines[2]["span_id"].get<std::string>() + "-00");
  EXPECT_EQ(lines[0]["trace_id"], trace);
  EXPECT_EQ(forwarded, "00-" + trace + "-" + lines[0]["span_id"].get<std::string>() + "-01");
  EXPECT_EQ(started, "00-" + lines[1]["trace_id"].get<std::string>() + "-" +
                         lines[1]["span_id"].get<std::string>() + "-00");
}

TEST_F(AdminTest, LogCallsFalseSilencesTheLog) {
  auto quiet = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(), "--log_calls=false"});
  ASSERT_NE(quiet, nullptr);
  auto stub = rio::ContactService::NewStub(quiet->channel());
  rio::GetContactRequest request;
  request.set_identifier("id:12345");
  rio::GetContactResponse reply;
  sandbox_->ClearRequests();
  ASSERT_TRUE(stub->GetContact(Context().get(), request, &reply).ok());
  EXPECT_TRUE(CallLogLines(quiet->process().output()).empty());
  // Without the log a call that goes upstream still forwards its trace context (the gateway
  // only skips making ids for calls that stay inside it).
  nlohmann::json requests = sandbox_->Requests();
  ASSERT_EQ(requests.size(), 1u) << requests.dump();
  EXPECT_THAT(requests[0]["headers"].value("traceparent", ""),
              ::testing::MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-00"));
}

}  // namespace
}  // namespace gateway::testing
