// gateway.v1.EventService over a real in-process gRPC server and the in-process log: filters,
// resume, OUT_OF_RANGE, consumer groups with Ack and redelivery, flow control, authorization.
#include "events/event_service.h"

#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "events/memory_event_log.h"
#include "gateway/v1/event_service.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

namespace gw = ::gateway::v1;

class EventServiceTest : public ::testing::Test {
 protected:
  void StartServer(EventService::Options options = {}) {
    options.visibility_timeout = absl::Milliseconds(300);
    options.poll_interval = absl::Milliseconds(10);
    service_ = std::make_unique<EventService>(&log_, options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
    stub_ = gw::EventService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  }

  std::string Append(const std::string& upstream, const std::string& type, const std::string& key,
                     const std::string& workspace = "", size_t pad = 0) {
    gw::EventEnvelope envelope;
    envelope.set_upstream(upstream);
    envelope.set_workspace(workspace + std::string(pad, 'x'));
    auto r = log_.Append(key, {.upstream = upstream, .type = type, .workspace = workspace,
                               .payload = envelope.SerializeAsString()});
    EXPECT_TRUE(r.ok());
    return r->id;
  }

  struct Sub {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReader<gw::EventEnvelope>> reader;
    ~Sub() {
      if (reader != nullptr) {
        context->TryCancel();
        reader->Finish().ok();
      }
    }
  };
  std::unique_ptr<Sub> Subscribe(const gw::SubscribeRequest& request) {
    auto sub = std::make_unique<Sub>();
    sub->context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    sub->reader = stub_->Subscribe(sub->context.get(), request);
    sub->reader->WaitForInitialMetadata();
    return sub;
  }

  upstream::ManualScheduler clock_;
  MemoryEventLog log_{{.max_events = 100000}, &clock_};
  std::unique_ptr<EventService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gw::EventService::Stub> stub_;
};

TEST_F(EventServiceTest, FiltersAndResumesWithoutGapOrDuplicate) {
  StartServer();
  Append("respondio", "message.received", "1");
  Append("chatwoot", "message_created", "2");
  const std::string third = Append("respondio", "contact.updated", "3");
  Append("respondio", "message.received", "4");
  gw::SubscribeRequest request;
  request.set_start_position(gw::START_POSITION_OLDEST);
  request.add_upstreams("respondio");
  request.add_event_types("message.received");
  auto sub = Subscribe(request);
  gw::EventEnvelope e;
  ASSERT_TRUE(sub->reader->Read(&e));
  const std::string first_token = e.resume_token();
  ASSERT_TRUE(sub->reader->Read(&e));
  EXPECT_EQ(e.upstream(), "respondio");
  const std::string last_id = e.id();
  sub.reset();  // disconnect

  // Resume from the first token without a filter: everything after it, once.
  gw::SubscribeRequest resume;
  resume.set_resume_token(first_token);
  auto again = Subscribe(resume);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(again->reader->Read(&e));
    ids.push_back(e.id());
  }
  EXPECT_EQ(ids[1], third);
  EXPECT_EQ(ids[2], last_id);
  // Live events follow on the same stream.
  const std::string live = Append("chatwoot", "contact_created", "5");
  ASSERT_TRUE(again->reader->Read(&e));
  EXPECT_EQ(e.id(), live);
}

TEST_F(EventServiceTest, BehindRetentionIsOutOfRange) {
  StartServer();
  MemoryEventLog small({.max_events = 2}, &clock_);
  EventService service(&small, {});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(small.Append(absl::StrCat(i), {.upstream = "chatwoot", .type = "t",
                                                 .payload = ""})->id);
  }
  auto stub = gw::EventService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  gw::SubscribeRequest request;
  request.set_resume_token(ids[0]);
  auto reader = stub->Subscribe(&context, request);
  gw::EventEnvelope e;
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  EXPECT_NE(status.error_message().find(ids[1]), std::string::npos) << status.error_message();
  grpc::ClientContext bad_context;
  gw::SubscribeRequest bad;
  bad.set_resume_token("garbage");
  auto bad_reader = stub->Subscribe(&bad_context, bad);
  EXPECT_FALSE(bad_reader->Read(&e));
  EXPECT_EQ(bad_reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
}

TEST_F(EventServiceTest, GroupBehindRetentionIsOutOfRangeAndResumesFromTheOldestToken) {
  MemoryEventLog small({.max_events = 2}, &clock_);
  EventService service(&small, {.poll_interval = absl::Milliseconds(10)});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = gw::EventService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  auto append = [&](int i) {
    return small.Append(absl::StrCat(i), {.upstream = "chatwoot", .type = "t", .payload = ""})->id;
  };
  ASSERT_TRUE(small.EnsureGroup("billing", /*from_oldest=*/false).ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(append(i));  // the log keeps ids[3], ids[4]
  gw::SubscribeRequest request;
  request.set_group("billing");
  request.set_consumer("worker-1");
  grpc::ClientContext context;
  auto reader = stub->Subscribe(&context, request);
  gw::EventEnvelope e;
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status status = reader->Finish();
  ASSERT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_EQ(details.details_size(), 1);
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "EVENTS_EXPIRED");
  const std::string oldest = info.metadata().at("oldest_resume_token");
  EXPECT_EQ(oldest, ids[2]);

  // The member accepts the gap with the group and the oldest token: the retained events follow.
  request.set_resume_token(oldest);
  grpc::ClientContext resumed_context;
  resumed_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto resumed = stub->Subscribe(&resumed_context, request);
  ASSERT_TRUE(resumed->Read(&e));
  EXPECT_EQ(e.id(), ids[3]);
  EXPECT_EQ(e.delivery_count(), 1);
  ASSERT_TRUE(resumed->Read(&e));
  EXPECT_EQ(e.id(), ids[4]);
  resumed_context.TryCancel();
  resumed->Finish();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
}

TEST_F(EventServiceTest, GroupOfTwoGetsEachEventOnceAndRedeliversWhenAMemberDies) {
  StartServer();
  gw::SubscribeRequest request;
  request.set_group("billing");
  request.set_consumer("a");
  auto a = Subscribe(request);
  request.set_consumer("b");
  auto b = Subscribe(request);
  for (int i = 0; i < 20; ++i) Append("respondio", "message.received", absl::StrCat("k", i));
  // Both members read and ack until all 20 are seen: each exactly once.
  std::set<std::string> seen;
  int duplicates = 0;
  auto ack = [&](const std::string& id) {
    grpc::ClientContext context;
    gw::AckRequest ack_request;
    ack_request.set_group("billing");
    ack_request.add_ids(id);
    gw::AckResponse ack_response;
    ASSERT_TRUE(stub_->Ack(&context, ack_request, &ack_response).ok());
    EXPECT_EQ(ack_response.acknowledged(), 1);
  };
  // Read alternately in two threads so neither member starves the other.
  absl::Mutex mu;
  auto consume = [&](Sub* sub) {
    gw::EventEnvelope e;
    while (true) {
      {
        absl::MutexLock lock(&mu);
        if (seen.size() >= 20) return;
      }
      if (!sub->reader->Read(&e)) return;
      EXPECT_EQ(e.delivery_count(), 1);
      ack(e.id());
      absl::MutexLock lock(&mu);
      if (!seen.insert(e.id()).second) ++duplicates;
    }
  };
  std::thread ta([&] { consume(a.get()); });
  std::thread tb([&] { consume(b.get()); });
  // A member blocked in Read after the last event is released by cancelling at the end.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    absl::MutexLock lock(&mu);
    if (seen.size() >= 20) break;
    mu.AwaitWithTimeout(absl::Condition(+[](std::set<std::string>* s) { return s->size() >= 20; },
                                        &seen),
                        absl::Milliseconds(50));
  }
  a->context->TryCancel();
  b->context->TryCancel();
  ta.join();
  tb.join();
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_EQ(duplicates, 0);
  a.reset();
  b.reset();

  // Member c takes an event and dies without acking; d gets it after the visibility timeout.
  request.set_consumer("c");
  auto c = Subscribe(request);
  const std::string id = Append("respondio", "message.received", "lost-ack");
  gw::EventEnvelope e;
  ASSERT_TRUE(c->reader->Read(&e));
  EXPECT_EQ(e.id(), id);
  c.reset();  // dies
  request.set_consumer("d");
  auto d = Subscribe(request);
  clock_.AdvanceBy(absl::Milliseconds(400));  // the log's clock: past the visibility timeout
  ASSERT_TRUE(d->reader->Read(&e));
  EXPECT_EQ(e.id(), id);
  EXPECT_EQ(e.delivery_count(), 2);
  EXPECT_GE(service_->counters().delivered["billing"], 20);  // counted after OnWriteDone
}

TEST_F(EventServiceTest, ASubscriberThatStopsReadingIsHeldBackByFlowControl) {
  StartServer({.max_buffered_bytes = 256 << 10});
  gw::SubscribeRequest request;
  request.set_start_position(gw::START_POSITION_OLDEST);
  auto sub = Subscribe(request);
  // 2000 events of ~16 KiB (32 MiB) that the subscriber never reads.
  for (int i = 0; i < 2000; ++i) Append("chatwoot", "t", absl::StrCat(i), "", 16 << 10);
  absl::SleepFor(absl::Milliseconds(500));
  EventService::Counters c = service_->counters();
  const int64_t delivered = c.delivered[""];
  // gRPC's windows hold a few MiB at most; the rest waits in the log, not in the gateway.
  EXPECT_LT(delivered, 1000) << delivered;
  // What the stream itself holds stays within its budget (plus one event) however many wait.
  std::printf("32 MiB of events, subscriber not reading: %lld written, stream held at most %lld "
              "bytes, holds %lld now\n",
              static_cast<long long>(delivered),
              static_cast<long long>(c.peak_stream_buffered_bytes),
              static_cast<long long>(c.buffered_bytes));
  EXPECT_LE(c.peak_stream_buffered_bytes, (256 << 10) + (17 << 10));
  EXPECT_GT(c.buffered_bytes, 0);  // it is stuck holding its current batch
  EXPECT_LE(c.buffered_bytes, (256 << 10) + (17 << 10));
  gw::EventEnvelope e;
  int read = 0;
  std::set<std::string> ids;
  while (read < 2000 && sub->reader->Read(&e)) {  // reading again resumes delivery
    ++read;
    ids.insert(e.id());
  }
  EXPECT_EQ(read, 2000);
  EXPECT_EQ(ids.size(), 2000u);  // each once: the byte budget neither loses nor repeats one
  EXPECT_LE(service_->counters().peak_stream_buffered_bytes, (256 << 10) + (17 << 10));
}

TEST_F(EventServiceTest, AuthorizationIsChecked) {
  EventService::Options options;
  std::vector<std::string> asked;
  options.authorize = [&asked](grpc::CallbackServerContext*, const std::string& rpc) {
    asked.push_back(rpc);
    return upstream::GatewayError(absl::StatusCode::kPermissionDenied, "no",
                                  {.reason = "RPC_NOT_ALLOWED"});
  };
  StartServer(options);
  grpc::ClientContext context;
  auto reader = stub_->Subscribe(&context, gw::SubscribeRequest());
  gw::EventEnvelope e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext ack_context;
  gw::AckRequest ack;
  ack.set_group("g");
  gw::AckResponse response;
  EXPECT_EQ(stub_->Ack(&ack_context, ack, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(asked, (std::vector<std::string>{"/gateway.v1.EventService/Subscribe",
                                             "/gateway.v1.EventService/Ack"}));
}

// Subscribe's workspaces: the request's, else x-workspace, passed through the hook (which
// main.cc bounds by the callers file); "default" selects the default workspace's events
// (stored with workspace ""); a refusal ends the call with the hook's status.
TEST_F(EventServiceTest, WorkspacesFilterThroughTheHook) {
  EventService::Options options;
  std::vector<std::vector<std::string>> asked;
  options.workspaces = [&asked](grpc::CallbackServerContext*,
                                const std::vector<std::string>& requested)
      -> absl::StatusOr<std::vector<std::string>> {
    asked.push_back(requested);
    for (const std::string& w : requested) {
      if (w == "globex") {
        return upstream::GatewayError(absl::StatusCode::kPermissionDenied, "not yours",
                                      {.reason = "WORKSPACE_NOT_ALLOWED"});
      }
    }
    if (requested.empty()) return std::vector<std::string>{"acme", "default"};
    return requested;
  };
  StartServer(options);
  Append("respondio", "contact.updated", "1", "acme");
  Append("respondio", "contact.updated", "2", "globex");
  Append("respondio", "contact.updated", "3");  // the default workspace
  Append("respondio", "contact.updated", "4", "initech");
  auto read_all = [](Sub& sub, int n) {
    std::vector<std::string> workspaces;
    gw::EventEnvelope e;
    for (int i = 0; i < n && sub.reader->Read(&e); ++i) workspaces.push_back(e.workspace());
    return workspaces;
  };
  gw::SubscribeRequest request;
  request.set_start_position(gw::START_POSITION_OLDEST);
  // None named: what the hook allows.
  auto mine = Subscribe(request);
  EXPECT_EQ(read_all(*mine, 2), (std::vector<std::string>{"acme", ""}));
  // Named in the request.
  gw::SubscribeRequest named = request;
  named.add_workspaces("initech");
  auto initech = Subscribe(named);
  EXPECT_EQ(read_all(*initech, 1), (std::vector<std::string>{"initech"}));
  // Named by x-workspace metadata.
  auto by_metadata = std::make_unique<Sub>();
  by_metadata->context->AddMetadata("x-workspace", "default");
  by_metadata->context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  by_metadata->reader = stub_->Subscribe(by_metadata->context.get(), request);
  EXPECT_EQ(read_all(*by_metadata, 1), (std::vector<std::string>{""}));
  // Refused: no event, the hook's status.
  gw::SubscribeRequest other = request;
  other.add_workspaces("globex");
  grpc::ClientContext context;
  auto reader = stub_->Subscribe(&context, other);
  gw::EventEnvelope e;
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status refused = reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_EQ(asked.size(), 4u);
  EXPECT_EQ(asked[0], std::vector<std::string>{});
  EXPECT_EQ(asked[1], std::vector<std::string>{"initech"});
  EXPECT_EQ(asked[2], std::vector<std::string>{"default"});
  // Live events follow the same filter.
  Append("respondio", "contact.updated", "5", "globex");
  Append("respondio", "contact.updated", "6", "acme");
  EXPECT_EQ(read_all(*mine, 1), (std::vector<std::string>{"acme"}));
}

}  // namespace
}  // namespace gateway::events
