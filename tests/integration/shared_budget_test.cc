// The shared budget end to end: three gateway replicas, one redis-server and the sandbox, all
// started here on loopback. What the upstream received is read back from the sandbox's request
// log, so every claim below is about the wire, not about the gateway's own counters.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "respondio/v2/message_service.grpc.pb.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

using nlohmann::json;
namespace rio = ::respondio::v2;

constexpr int kContactGetLimit = 10;  // respond.io's guide: GET /contact/{identifier}, 10 per second

// Requests of `endpoint` in the log, as arrival times in milliseconds.
std::vector<double> Arrivals(const json& requests, const std::string& endpoint) {
  std::vector<double> out;
  for (const auto& r : requests) {
    if (r.value("endpoint", "") == endpoint) out.push_back(r["time_ms"].get<double>());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The arrivals (ms, relative to the first) with the busiest one-second window marked, for
// failure messages.
std::string DescribeBusiestSecond(const std::vector<double>& times) {
  size_t best_lo = 0, best_hi = 0, lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= 1000.0) ++lo;
    if (hi - lo > best_hi - best_lo) best_lo = lo, best_hi = hi;
  }
  std::string out = "arrivals (ms from the first), busiest second in []:";
  for (size_t i = 0; i < times.size(); ++i) {
    absl::StrAppend(&out, i == best_lo ? " [" : " ", static_cast<int>(times[i] - times[0]),
                    i == best_hi ? "]" : "");
  }
  return out;
}

// The largest number of arrivals inside any sliding one-second window.
int MaxPerSecond(const std::vector<double>& times) {
  int best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= 1000.0) ++lo;
    best = std::max(best, static_cast<int>(hi - lo + 1));
  }
  return best;
}

int CountStatus(const json& requests, const std::string& endpoint, int status) {
  int n = 0;
  for (const auto& r : requests) {
    if (r.value("endpoint", "") == endpoint && r["status"].is_number() &&
        r["status"].get<int>() == status) {
      ++n;
    }
  }
  return n;
}

struct LoadResult {
  int ok = 0;
  int exhausted = 0;
  int other = 0;
  std::string other_example;
};

// Sends `per_second` GetContact calls per second for `duration`, round-robin over the gateways,
// each bypassing the cache (so every call needs the upstream) with a 1.5 s deadline.
LoadResult Overload(const std::vector<Gateway*>& gateways, int per_second, absl::Duration duration) {
  LoadResult result;
  absl::Mutex mu;
  std::vector<std::unique_ptr<rio::ContactService::Stub>> stubs;
  for (Gateway* g : gateways) stubs.push_back(rio::ContactService::NewStub(g->channel()));
  const int total = static_cast<int>(per_second * absl::ToDoubleSeconds(duration));
  absl::BlockingCounter pending(total);
  struct Call {
    grpc::ClientContext context;
    rio::GetContactRequest request;
    rio::GetContactResponse reply;
  };
  const absl::Time start = absl::Now();
  for (int i = 0; i < total; ++i) {
    absl::SleepFor(start + absl::Seconds(1) * i / per_second - absl::Now());
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(1500)));
    call->context.AddMetadata("cache-control", "no-cache");
    call->context.AddMetadata("x-caller", absl::StrCat("load-", i % 3));
    call->request.set_identifier("id:12345");
    stubs[i % stubs.size()]->async()->GetContact(
        &call->context, &call->request, &call->reply, [&, call](grpc::Status status) {
          {
            absl::MutexLock lock(&mu);
            if (status.ok()) {
              ++result.ok;
            } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
              ++result.exhausted;
            } else {
              ++result.other;
              result.other_example = absl::StrCat(status.error_code(), " ", status.error_message());
            }
          }
          delete call;
          pending.DecrementCount();
        });
  }
  pending.Wait();
  return result;
}

class SharedBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = RedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    sandbox_ = Sandbox::Start();  // with respond.io's rate limits
    ASSERT_NE(sandbox_, nullptr);
    for (int i = 0; i < 3; ++i) {
      auto g = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--redis_url=" + redis_->url()});
      ASSERT_NE(g, nullptr);
      gateways_.push_back(std::move(g));
    }
  }
  std::vector<Gateway*> Gateways() {
    std::vector<Gateway*> out;
    for (auto& g : gateways_) out.push_back(g.get());
    return out;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Sandbox> sandbox_;
  std::vector<std::unique_ptr<Gateway>> gateways_;
};

TEST_F(SharedBudgetTest, TenfoldOverloadStaysUnderTheLimitAndUsesTheBudget) {
  // Every command Redis runs, to count the limiter's script calls (keys gw:rl:...).
  auto monitor = Process::Start({"redis-cli", "-p", absl::StrCat(redis_->port()), "monitor"}, "OK");
  ASSERT_TRUE(monitor.ok()) << monitor.status();
  const LoadResult load = Overload(Gateways(), 10 * kContactGetLimit, absl::Seconds(4));
  EXPECT_EQ(load.other, 0) << load.other_example;
  EXPECT_GT(load.exhausted, 0) << "10x overload must shed load";
  const json requests = sandbox_->Requests();
  const std::vector<double> arrivals = Arrivals(requests, "get_contact");
  EXPECT_EQ(CountStatus(requests, "get_contact", 429), 0);
  EXPECT_LE(MaxPerSecond(arrivals), kContactGetLimit) << DescribeBusiestSecond(arrivals);
  // Every admitted call reached the upstream exactly once.
  EXPECT_EQ(static_cast<int>(arrivals.size()), load.ok);
  // Budget use: arrivals per second over the busy span, against the limit.
  ASSERT_GE(arrivals.size(), 2u);
  const double span_s = (arrivals.back() - arrivals.front()) / 1000.0;
  const double use = (arrivals.size() - 1) / span_s / kContactGetLimit;
  EXPECT_GE(use, 0.9) << arrivals.size() << " requests in " << span_s << " s";
  // One reservation per admitted call, whatever the replicas and the waiting calls: a few more
  // for slots given back (calls whose deadline came first) and the first EVAL per connection.
  absl::SleepFor(absl::Milliseconds(300));  // the monitor's last lines
  int limiter_calls = 0;
  for (absl::string_view line : absl::StrSplit((*monitor)->output(), '\n')) {
    if ((absl::StrContains(line, "\"EVALSHA\" ") || absl::StrContains(line, "\"EVAL\" ")) &&
        absl::StrContains(line, "\"gw:rl:")) {
      ++limiter_calls;
    }
  }
  EXPECT_LE(limiter_calls, 1.5 * load.ok) << limiter_calls << " script calls for " << load.ok;
  EXPECT_GE(limiter_calls, load.ok);
  RecordProperty("limiter_calls_per_admission", absl::StrCat(1.0 * limiter_calls / load.ok));
  RecordProperty("budget_use", absl::StrCat(use));
  RecordProperty("max_per_second", MaxPerSecond(arrivals));
}

TEST_F(SharedBudgetTest, RedisOutageFallsBackWithinTheBoundAndRecovers) {
  const int redis_port = redis_->port();
  std::thread load([&] { Overload(Gateways(), 5 * kContactGetLimit, absl::Seconds(6)); });
  absl::SleepFor(absl::Seconds(1.5));
  const double outage_start_ms = absl::ToUnixMicros(absl::Now()) / 1000.0;
  redis_->Stop();
  absl::SleepFor(absl::Seconds(2.5));
  const double outage_end_ms = absl::ToUnixMicros(absl::Now()) / 1000.0;
  redis_ = RedisServer::Start(redis_port);
  ASSERT_NE(redis_, nullptr);
  load.join();

  const json requests = sandbox_->Requests();
  const std::vector<double> arrivals = Arrivals(requests, "get_contact");
  // Each replica falls back to a share of the budget, never unbounded: no second over the limit.
  const std::string timeline =
      arrivals.empty() ? ""
                       : absl::StrCat(DescribeBusiestSecond(arrivals), "; redis stopped at ",
                                      static_cast<int>(outage_start_ms - arrivals[0]),
                                      ", restarted at ", static_cast<int>(outage_end_ms - arrivals[0]));
  EXPECT_EQ(CountStatus(requests, "get_contact", 429), 0) << timeline;
  EXPECT_LE(MaxPerSecond(arrivals), kContactGetLimit) << timeline;
  // Service continued during the outage and after it.
  int during = 0, after = 0;
  for (double t : arrivals) (t < outage_end_ms ? during : after)++;
  EXPECT_GT(during, 0);
  EXPECT_GT(after, 0);
  for (auto& g : gateways_) {
    const std::string out = g->process().output();
    EXPECT_NE(out.find("redis_unavailable"), std::string::npos) << out;
    EXPECT_NE(out.find("redis_recovered"), std::string::npos) << out;
  }
}

TEST_F(SharedBudgetTest, HundredConcurrentIdenticalReadsShareOneUpstreamCall) {
  sandbox_->AddFault({{"fault", "delay"}, {"delay_ms", 400}, {"endpoint", "get_contact"}});
  auto stub = rio::ContactService::NewStub(gateways_[0]->channel());
  constexpr int kCalls = 100;
  absl::BlockingCounter done(kCalls);
  std::atomic<int> ok{0};
  std::atomic<int> same{0};
  struct Call {
    grpc::ClientContext context;
    rio::GetContactRequest request;
    rio::GetContactResponse reply;
  };
  for (int i = 0; i < kCalls; ++i) {
    auto* call = new Call();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    call->request.set_identifier("id:67890");
    stub->async()->GetContact(&call->context, &call->request, &call->reply,
                              [&, call](grpc::Status status) {
                                if (status.ok()) ++ok;
                                if (call->reply.contact().id() == 67890) ++same;
                                delete call;
                                done.DecrementCount();
                              });
  }
  done.Wait();
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(same.load(), kCalls);
  EXPECT_EQ(Arrivals(sandbox_->Requests(), "get_contact").size(), 1u);
}

TEST_F(SharedBudgetTest, WriteByEmailInvalidatesTheContactCachedUnderItsIdAndPhone) {
  auto stub = rio::ContactService::NewStub(gateways_[0]->channel());
  auto get = [&](const std::string& identifier) {
    rio::GetContactRequest request;
    request.set_identifier(identifier);
    rio::GetContactResponse reply;
    EXPECT_TRUE(stub->GetContact(Context().get(), request, &reply).ok());
    return reply.contact();
  };
  EXPECT_EQ(get("id:12345").first_name(), "Ada");
  EXPECT_EQ(get("phone:+60123450001").first_name(), "Ada");
  EXPECT_EQ(get("id:12345").first_name(), "Ada");  // a hit
  EXPECT_EQ(Arrivals(sandbox_->Requests(), "get_contact").size(), 2u);

  rio::UpdateContactRequest update;
  update.set_identifier("email:ada.lovelace@example.com");
  update.set_first_name("Augusta");
  rio::UpdateContactResponse updated;
  ASSERT_TRUE(stub->UpdateContact(Context().get(), update, &updated).ok());
  EXPECT_EQ(get("id:12345").first_name(), "Augusta");
  EXPECT_EQ(get("phone:+60123450001").first_name(), "Augusta");

  // The cache is shared through Redis: another replica sees the invalidation too.
  auto other = rio::ContactService::NewStub(gateways_[1]->channel());
  rio::GetContactRequest request;
  request.set_identifier("id:12345");
  rio::GetContactResponse reply;
  ASSERT_TRUE(other->GetContact(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.contact().first_name(), "Augusta");
}

TEST_F(SharedBudgetTest, RequestIdMakesASendHappenOnceAcrossReplicas) {
  sandbox_->AddFault({{"fault", "delay"}, {"delay_ms", 500}, {"endpoint", "send_message"}});
  rio::SendMessageRequest send;
  send.set_identifier("id:12345");
  send.set_channel_id(123);
  send.mutable_message()->set_type(rio::MESSAGE_TYPE_TEXT);
  send.mutable_message()->set_text("once");
  send.set_request_id("6f1c9a52-8f0e-4c2e-9d6b-0a1b2c3d4e5f");
  rio::SendMessageResponse first, second, third;
  grpc::Status first_status, second_status;
  std::thread a([&] {
    first_status = rio::MessageService::NewStub(gateways_[0]->channel())
                       ->SendMessage(Context().get(), send, &first);
  });
  absl::SleepFor(absl::Milliseconds(100));  // the first is in flight (the upstream is slow)
  std::thread b([&] {
    second_status = rio::MessageService::NewStub(gateways_[1]->channel())
                        ->SendMessage(Context().get(), send, &second);
  });
  a.join();
  b.join();
  ASSERT_TRUE(first_status.ok()) << first_status.error_message();
  ASSERT_TRUE(second_status.ok()) << second_status.error_message();
  EXPECT_EQ(second.message_id(), first.message_id());
  // Later, on the third replica: still the first result.
  ASSERT_TRUE(rio::MessageService::NewStub(gateways_[2]->channel())
                  ->SendMessage(Context().get(), send, &third)
                  .ok());
  EXPECT_EQ(third.message_id(), first.message_id());
  EXPECT_EQ(Arrivals(sandbox_->Requests(), "send_message").size(), 1u);
  // The same id with a different request is refused.
  send.mutable_message()->set_text("twice?");
  grpc::Status reuse = rio::MessageService::NewStub(gateways_[2]->channel())
                           ->SendMessage(Context().get(), send, &third);
  EXPECT_EQ(reuse.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ErrorInfoOf(reuse).reason(), "REQUEST_ID_REUSED");
}

// ---- fault injection: each fault gives the right code; no write is sent twice ----

class FaultTest : public SharedBudgetTest {
 protected:
  grpc::Status Get(rio::GetContactResponse* reply, absl::Duration timeout = absl::Seconds(5)) {
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    auto context = Context(timeout);
    context->AddMetadata("cache-control", "no-cache");
    return rio::ContactService::NewStub(gateways_[0]->channel())
        ->GetContact(context.get(), request, reply);
  }
  grpc::Status Send(rio::SendMessageResponse* reply) {
    rio::SendMessageRequest send;
    send.set_identifier("id:12345");
    send.set_channel_id(123);
    send.mutable_message()->set_type(rio::MESSAGE_TYPE_TEXT);
    send.mutable_message()->set_text("fault");
    return rio::MessageService::NewStub(gateways_[0]->channel())
        ->SendMessage(Context().get(), send, reply);
  }
  size_t Seen(const std::string& endpoint) {
    return Arrivals(sandbox_->Requests(), endpoint).size();
  }
};

TEST_F(FaultTest, TransientReadFailuresAreRetried) {
  for (const int status : {429, 449, 502, 503, 504}) {
    SCOPED_TRACE(status);
    sandbox_->Reset();
    sandbox_->AddFault({{"fault", "status"}, {"status", status}, {"retry_after", 1},
                        {"endpoint", "get_contact"}});
    rio::GetContactResponse reply;
    grpc::Status s = Get(&reply);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(reply.contact().id(), 12345);
    EXPECT_EQ(Seen("get_contact"), 2u);
  }
  sandbox_->Reset();
  sandbox_->AddFault({{"fault", "drop"}, {"endpoint", "get_contact"}});
  rio::GetContactResponse reply;
  ASSERT_TRUE(Get(&reply).ok());
  EXPECT_EQ(Seen("get_contact"), 2u);
}

TEST_F(FaultTest, PersistentReadFailuresGiveTheirCodes) {
  sandbox_->AddFault({{"fault", "status"}, {"status", 503}, {"count", -1},
                      {"endpoint", "get_contact"}});
  rio::GetContactResponse reply;
  grpc::Status s = Get(&reply, absl::Seconds(3));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UPSTREAM_UNAVAILABLE");
  sandbox_->Reset();
  sandbox_->AddFault({{"fault", "malformed"}, {"endpoint", "get_contact"}});
  s = Get(&reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ErrorInfoOf(s).reason(), "UPSTREAM_BAD_RESPONSE");
  sandbox_->Reset();
  sandbox_->AddFault({{"fault", "delay"}, {"delay_ms", 3000}, {"endpoint", "get_contact"}});
  s = Get(&reply, absl::Milliseconds(700));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST_F(FaultTest, WritesAreRetriedOnlyWhenTheUpstreamSaysItDidNotProcessThem) {
  // 429 and 449 mean "not processed": retried, and the message is sent once.
  for (const int status : {429, 449}) {
    SCOPED_TRACE(status);
    sandbox_->Reset();
    sandbox_->AddFault({{"fault", "status"}, {"status", status}, {"retry_after", 1},
                        {"endpoint", "send_message"}});
    rio::SendMessageResponse reply;
    ASSERT_TRUE(Send(&reply).ok());
    EXPECT_EQ(Seen("send_message"), 2u);
  }
  // Anything else may have been processed: never sent twice.
  for (const std::string fault : {"500", "502", "503", "504", "drop"}) {
    SCOPED_TRACE(fault);
    sandbox_->Reset();
    if (fault == "drop") {
      sandbox_->AddFault({{"fault", "drop"}, {"endpoint", "send_message"}});
    } else {
      sandbox_->AddFault({{"fault", "status"}, {"status", std::stoi(fault)},
                          {"endpoint", "send_message"}});
    }
    rio::SendMessageResponse reply;
    grpc::Status s = Send(&reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(Seen("send_message"), 1u);
  }
}

}  // namespace
}  // namespace gateway::testing
