#include "upstream/transport/http_client.h"

#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace gateway::upstream {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

// What the test server saw of one request.
struct Seen {
  std::string method;
  std::string path;
  std::string query_x;
  std::string body;
  httplib::Headers headers;
};

// The outcome of one Send(), shared with its callback so that a test failing
// on a timeout never leaves the callback writing to a dead stack frame.
struct Outcome {
  absl::Notification done;
  absl::StatusOr<HttpResponse> result = absl::UnknownError("callback did not run");
  std::thread::id thread;
};

std::shared_ptr<Outcome> SendAsync(HttpClient& client, HttpRequest request) {
  auto outcome = std::make_shared<Outcome>();
  client.Send(std::move(request), [outcome](absl::StatusOr<HttpResponse> result) {
    outcome->result = std::move(result);
    outcome->thread = std::this_thread::get_id();
    outcome->done.Notify();
  });
  return outcome;
}

absl::StatusOr<HttpResponse> SendAndWait(HttpClient& client, HttpRequest request) {
  std::shared_ptr<Outcome> outcome = SendAsync(client, std::move(request));
  if (!outcome->done.WaitForNotificationWithTimeout(kWait)) {
    return absl::UnknownError("test timed out waiting for the callback");
  }
  return outcome->result;
}

HttpRequest Request(std::string method, std::string url, std::string body = "") {
  HttpRequest request;
  request.method = std::move(method);
  request.url = std::move(url);
  request.body = std::move(body);
  return request;
}

class HttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The test server writes responses to connections the client may have
    // closed (deadline, cancellation); that must not kill the test.
    signal(SIGPIPE, SIG_IGN);
  }

  void SetUp() override {
    // Enough workers that every kept-alive client connection gets one.
    server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
    server_.set_keep_alive_max_count(100000);
    server_.set_tcp_nodelay(true);  // no Nagle/delayed-ACK stalls between responses

    server_.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      {
        absl::MutexLock lock(&mu_);
        ++slow_arrivals_;
        ++requests_seen_;
      }
      release_slow_.WaitForNotificationWithTimeout(kWait);
      res.set_content("finally", "text/plain");
    });
    server_.Get(R"(/status/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      {
        absl::MutexLock lock(&mu_);
        ++requests_seen_;
      }
      res.status = std::stoi(req.matches[1]);
      res.set_header("X-Dup", "first");
      res.set_header("X-Dup", "second");
      res.set_header("X-Padded", "  spaced value  ");
      res.set_content("teapot", "text/plain");
    });
    server_.Get("/ready", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ready", "text/plain");
    });
    // 50 MB bodies, chunked or with a Content-Length, written 64 KiB at a time; `huge_written_`
    // counts what the server managed to write before the client hung up.
    auto huge = [this](bool chunked) {
      return [this, chunked](const httplib::Request&, httplib::Response& res) {
        auto provider = [this](size_t offset, httplib::DataSink& sink) {
          static const std::string chunk(64 << 10, '7');
          if (offset >= kHugeBytes) {
            sink.done();
            return true;
          }
          if (!sink.write(chunk.data(), chunk.size())) return false;
          huge_written_.fetch_add(chunk.size());
          return true;
        };
        if (chunked) {
          res.set_chunked_content_provider("application/json",
                                           [provider](size_t offset, httplib::DataSink& sink) {
                                             return provider(offset, sink);
                                           });
        } else {
          res.set_content_provider(kHugeBytes, "application/json",
                                   [provider](size_t offset, size_t, httplib::DataSink& sink) {
                                     return provider(offset, sink);
                                   });
        }
      };
    };
    server_.Get("/huge-chunked", huge(true));
    server_.Get("/huge-length", huge(false));
    server_.Get("/many-headers", [](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 500; ++i) res.set_header(absl::StrCat("X-H", i), "v");
      res.set_content("{}", "application/json");
    });

    auto echo = [this](const httplib::Request& req, httplib::Response& res) {
      {
        absl::MutexLock lock(&mu_);
        ++requests_seen_;
        seen_.push_back({req.method, req.path, req.get_param_value("x"), req.body, req.headers});
      }
      res.set_header("X-Echo-Method", req.method);
      res.set_content("echo:" + req.body, "text/plain");
    };
    server_.Get(R"(/.*)", echo);
    server_.Post(R"(/.*)", echo);
    server_.Put(R"(/.*)", echo);
    server_.Patch(R"(/.*)", echo);
    server_.Delete(R"(/.*)", echo);

    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    server_thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Once this succeeds the accept loop is running, so stop() will end it.
    httplib::Client probe("127.0.0.1", port_);
    auto ready = probe.Get("/ready");
    ASSERT_TRUE(ready != nullptr);
    ASSERT_EQ(ready->status, 200);
  }

  void TearDown() override {
    if (!release_slow_.HasBeenNotified()) release_slow_.Notify();
    server_.stop();
    if (server_thread_.joinable()) server_thread_.join();
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

  int requests_seen() {
    absl::MutexLock lock(&mu_);
    return requests_seen_;
  }

  std::vector<Seen> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

  // Waits until the /slow handler has been entered `n` times.
  bool AwaitSlowArrivals(int n) {
    struct Arg {
      const int* arrivals;
      int n;
    } arg{&slow_arrivals_, n};
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](Arg* a) { return *a->arrivals >= a->n; }, &arg), kWait);
  }

  static constexpr size_t kHugeBytes = size_t{50} << 20;
  std::atomic<size_t> huge_written_{0};

  httplib::Server server_;
  int port_ = 0;
  std::thread server_thread_;
  absl::Notification release_slow_;

  absl::Mutex mu_;
  int slow_arrivals_ ABSL_GUARDED_BY(mu_) = 0;
  int requests_seen_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);

};

TEST_F(HttpClientTest, MethodsReachServerWithPathBodyAndHeaders) {
  HttpClient client(HttpClient::Options{});
  struct Case {
    std::string method;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"GET", ""},
      {"POST", R"({"name":"post"})"},
      {"PUT", R"({"name":"put"})"},
      {"PATCH", R"({"name":"patch"})"},
      {"DELETE", R"({"reason":"delete with body"})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method);
    HttpRequest request = Request(c.method, Url("/items/42?x=1"), c.body);
    request.headers.push_back({"X-Trace", "trace-" + c.method});
    if (!c.body.empty()) request.headers.push_back({"Content-Type", "application/json"});

    absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(request));
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "echo:" + c.body);
    EXPECT_EQ(response->headers["x-echo-method"], c.method);
  }

  const std::vector<Seen> seen = this->seen();
  ASSERT_EQ(seen.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].method);
    const Seen& s = seen[i];
    EXPECT_EQ(s.method, cases[i].method);
    EXPECT_EQ(s.path, "/items/42");
    EXPECT_EQ(s.query_x, "1");
    EXPECT_EQ(s.body, cases[i].body);
    auto header = [&s](const std::string& name) -> std::string {
      auto it = s.headers.find(name);
      return it == s.headers.end() ? "<absent>" : it->second;
    };
    EXPECT_EQ(header("X-Trace"), "trace-" + cases[i].method);
    EXPECT_EQ(header("User-Agent"), "respond-gateway/1");
    EXPECT_EQ(header("Expect"), "<absent>");
    if (cases[i].body.empty()) {
      EXPECT_EQ(header("Content-Type"), "<absent>");
    } else {
      EXPECT_EQ(header("Content-Type"), "application/json");
      EXPECT_EQ(header("Content-Length"), std::to_string(cases[i].body.size()));
    }
  }
}

TEST_F(HttpClientTest, PostWithoutBodyOrContentTypeSendsEmptyBody) {
  HttpClient client(HttpClient::Options{});
  absl::StatusOr<HttpResponse> response = SendAndWait(client, Request("POST", Url("/empty")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  const std::vector<Seen> seen = this->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].body, "");
  EXPECT_EQ(seen[0].headers.count("Content-Type"), 0u);  // no form-urlencoded default
  auto length = seen[0].headers.find("Content-Length");
  ASSERT_NE(length, seen[0].headers.end());
  EXPECT_EQ(length->second, "0");
}

TEST_F(HttpClientTest, ReturnsStatusHeadersAndBodyForAnyStatus) {
  HttpClient client(HttpClient::Options{});
  const absl::Time before = absl::Now();
  absl::StatusOr<HttpResponse> response = SendAndWait(client, Request("GET", Url("/status/418")));
  const absl::Duration waited = absl::Now() - before;
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 418);
  EXPECT_EQ(response->body, "teapot");
  EXPECT_EQ(response->headers["content-type"], "text/plain");
  EXPECT_EQ(response->headers["x-dup"], "second");  // last value wins
  EXPECT_EQ(response->headers["x-padded"], "spaced value");
  EXPECT_EQ(response->headers.count("X-Dup"), 0u);  // names are lower-cased
  EXPECT_GT(response->elapsed, absl::ZeroDuration());
  EXPECT_LE(response->elapsed, waited);

  response = SendAndWait(client, Request("GET", Url("/status/503")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(client.requests_completed(), 2);
}

TEST_F(HttpClientTest, SequentialRequestsReuseConnections) {
  HttpClient client(HttpClient::Options{});
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<HttpResponse> response =
        SendAndWait(client, Request("POST", Url("/seq"), absl::StrCat("n", i)));
    ASSERT_TRUE(response.ok()) << i << ": " << response.status();
    ASSERT_EQ(response->body, absl::StrCat("echo:n", i));
  }
  EXPECT_EQ(client.requests_completed(), 100);
  EXPECT_GE(client.connections_opened(), 1);
  EXPECT_LE(client.connections_opened(), 2);
}

TEST_F(HttpClientTest, ConcurrentRequestsAllCompleteOnTheIoThread) {
  HttpClient client(HttpClient::Options{});
  constexpr int kRequests = 50;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  const absl::Time before = absl::Now();
  for (int i = 0; i < kRequests; ++i) {
    outcomes.push_back(SendAsync(client, Request("POST", Url("/concurrent"), absl::StrCat("c", i))));
  }
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));  // Send() never waits for I/O
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(outcomes[i]->done.WaitForNotificationWithTimeout(kWait)) << i;
    ASSERT_TRUE(outcomes[i]->result.ok()) << i << ": " << outcomes[i]->result.status();
    EXPECT_EQ(outcomes[i]->result->status, 200);
    EXPECT_EQ(outcomes[i]->result->body, absl::StrCat("echo:c", i));
    EXPECT_NE(outcomes[i]->thread, std::this_thread::get_id());
    EXPECT_EQ(outcomes[i]->thread, outcomes[0]->thread);  // one I/O thread
  }
  EXPECT_EQ(client.requests_completed(), kRequests);
  EXPECT_EQ(requests_seen(), kRequests);
  EXPECT_LE(client.connections_opened(), 32);  // max_connections_per_host
}

// Send() writes the request itself: with the I/O thread held inside a callback, a request on
// the kept-alive connection still reaches the server (before, Send() only queued it for the I/O
// thread), and its response is delivered once the thread is free.
TEST_F(HttpClientTest, SendWritesTheRequestWithoutTheIoThread) {
  HttpClient client(HttpClient::Options{});
  ASSERT_TRUE(SendAndWait(client, Request("GET", Url("/warm"))).ok());  // a kept-alive connection
  // Shared with the callback, which may outlive this test body if an assertion returns early.
  struct Hold {
    absl::Notification in_callback, release;
  };
  auto hold = std::make_shared<Hold>();
  auto first = std::make_shared<Outcome>();
  client.Send(Request("GET", Url("/first")), [hold, first](absl::StatusOr<HttpResponse> result) {
    first->result = std::move(result);
    hold->in_callback.Notify();
    hold->release.WaitForNotificationWithTimeout(kWait);  // holds the I/O thread
    first->done.Notify();
  });
  ASSERT_TRUE(hold->in_callback.WaitForNotificationWithTimeout(kWait));
  std::shared_ptr<Outcome> second = SendAsync(client, Request("POST", Url("/second"), "b"));
  const absl::Time give_up = absl::Now() + kWait;
  while (requests_seen() < 3 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(requests_seen(), 3) << "the second request waited for the I/O thread";
  EXPECT_FALSE(second->done.HasBeenNotified());  // its callback needs the I/O thread
  hold->release.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(second->done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(second->result.ok()) << second->result.status();
  EXPECT_EQ(second->result->body, "echo:b");
  EXPECT_NE(second->thread, std::this_thread::get_id());
}

// An outcome known inside Send() (an invalid request, a deadline already passed) is still
// delivered by the I/O thread, never on the caller's stack.
TEST_F(HttpClientTest, OutcomesFoundInsideSendRunOnTheIoThread) {
  HttpClient client(HttpClient::Options{});
  HttpRequest late = Request("GET", Url("/late"));
  late.deadline = absl::Now() - absl::Seconds(1);
  for (HttpRequest request : {Request("BAD METHOD", Url("/x")), late}) {
    std::shared_ptr<Outcome> outcome = SendAsync(client, std::move(request));
    ASSERT_TRUE(outcome->done.WaitForNotificationWithTimeout(kWait));
    EXPECT_FALSE(outcome->result.ok());
    EXPECT_NE(outcome->thread, std::this_thread::get_id()) << "ran inside Send()";
  }
  EXPECT_EQ(requests_seen(), 0);
}

TEST_F(HttpClientTest, CallbackMaySendAnotherRequest) {
  HttpClient client(HttpClient::Options{});
  auto second = std::make_shared<Outcome>();
  client.Send(Request("GET", Url("/first")),
              [&client, second, this](absl::StatusOr<HttpResponse> first) {
                ASSERT_TRUE(first.ok()) << first.status();
                client.Send(Request("POST", Url("/second"), "again"),
                            [second](absl::StatusOr<HttpResponse> result) {
                              second->result = std::move(result);
                              second->done.Notify();
                            });
              });
  ASSERT_TRUE(second->done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(second->result.ok()) << second->result.status();
  EXPECT_EQ(second->result->body, "echo:again");
}

TEST_F(HttpClientTest, ConnectionRefusedIsUnavailable) {
  // A bound but not listening socket: connecting to its port is refused.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int refused_port = ntohs(addr.sin_port);

  HttpClient client(HttpClient::Options{});
  absl::StatusOr<HttpResponse> response = SendAndWait(
      client, Request("GET", absl::StrCat("http://127.0.0.1:", refused_port, "/")));
  close(fd);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_FALSE(response.status().message().empty());
  EXPECT_TRUE(IsNotSent(response.status())) << "a refused connection never carried the request";
  EXPECT_EQ(client.requests_completed(), 0);
}

TEST_F(HttpClientTest, DnsFailureIsMarkedNotSent) {
  HttpClient::Options options;
  options.connect_timeout = absl::Seconds(3);
  HttpClient client(options);
  HttpRequest request = Request("POST", "http://no-such-host.invalid/x", "body");
  request.deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(request));
  ASSERT_FALSE(response.ok());
  // UNAVAILABLE from the resolver; DEADLINE_EXCEEDED only if resolving itself hangs here.
  EXPECT_TRUE(response.status().code() == absl::StatusCode::kUnavailable ||
              response.status().code() == absl::StatusCode::kDeadlineExceeded)
      << response.status();
  EXPECT_TRUE(IsNotSent(response.status())) << response.status();
}

TEST_F(HttpClientTest, ResponsesAndMidTransferFailuresAreNotMarkedNotSent) {
  HttpClient client(HttpClient::Options{});
  HttpRequest request = Request("GET", Url("/slow"));
  request.deadline = absl::Now() + absl::Milliseconds(300);
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(request));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(IsNotSent(response.status())) << "the request reached the server";
  EXPECT_FALSE(IsNotSent(absl::OkStatus()));
}

TEST_F(HttpClientTest, CancelOfAQueuedRequestNeverSendsIt) {
  HttpClient::Options options;
  options.max_in_flight_per_key = 1;
  HttpClient client(options);
  HttpRequest slow = Request("GET", Url("/slow"));
  slow.fairness_key = "bucket";
  std::shared_ptr<Outcome> first = SendAsync(client, std::move(slow));
  ASSERT_TRUE(AwaitSlowArrivals(1));

  HttpRequest queued = Request("POST", Url("/never"), "must not arrive");
  queued.fairness_key = "bucket";
  auto outcome = std::make_shared<Outcome>();
  const HttpClient::RequestId id =
      client.Send(std::move(queued), [outcome](absl::StatusOr<HttpResponse> result) {
        outcome->result = std::move(result);
        outcome->thread = std::this_thread::get_id();
        outcome->done.Notify();
      });
  EXPECT_NE(id, 0u);
  client.Cancel(id);
  ASSERT_TRUE(outcome->done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(IsNotSent(outcome->result.status()));
  EXPECT_NE(outcome->thread, std::this_thread::get_id());  // never on the caller's stack

  client.Cancel(id);       // already finished: no-op
  client.Cancel(id + 99);  // unknown: no-op
  release_slow_.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(first->result.ok()) << first->result.status();
  // The key's slot is free again and the cancelled request is gone for good.
  HttpRequest after = Request("GET", Url("/after"));
  after.fairness_key = "bucket";
  ASSERT_TRUE(SendAndWait(client, std::move(after)).ok());
  for (const Seen& s : seen()) EXPECT_NE(s.path, "/never");
  EXPECT_EQ(requests_seen(), 2);  // /slow and /after
}

TEST_F(HttpClientTest, CancelOfARequestInFlightAbortsIt) {
  HttpClient client(HttpClient::Options{});
  auto outcome = std::make_shared<Outcome>();
  const HttpClient::RequestId id =
      client.Send(Request("GET", Url("/slow")), [outcome](absl::StatusOr<HttpResponse> result) {
        outcome->result = std::move(result);
        outcome->done.Notify();
      });
  ASSERT_TRUE(AwaitSlowArrivals(1));
  client.Cancel(id);
  // Answered while the server is still holding the request.
  ASSERT_TRUE(outcome->done.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(release_slow_.HasBeenNotified());
  EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(IsNotSent(outcome->result.status())) << "the upstream may have processed it";
  // The client goes on working.
  ASSERT_TRUE(SendAndWait(client, Request("GET", Url("/after"))).ok());
}

TEST_F(HttpClientTest, CancelFromInsideACallbackRunsTheCancelledCallbackLater) {
  HttpClient::Options options;
  options.max_in_flight_per_key = 1;
  HttpClient client(options);
  HttpRequest slow = Request("GET", Url("/slow"));
  slow.fairness_key = "k";
  std::shared_ptr<Outcome> first = SendAsync(client, std::move(slow));
  ASSERT_TRUE(AwaitSlowArrivals(1));

  // `cancel_returned` is set by the canceller after Cancel() returns; the cancelled request's
  // callback must see it set (it never runs on the canceller's stack).
  auto cancel_returned = std::make_shared<std::atomic<bool>>(false);
  auto saw_returned = std::make_shared<std::atomic<bool>>(false);
  auto queued_done = std::make_shared<absl::Notification>();
  HttpRequest queued = Request("GET", Url("/never"));
  queued.fairness_key = "k";
  const HttpClient::RequestId queued_id = client.Send(
      std::move(queued), [cancel_returned, saw_returned, queued_done](absl::StatusOr<HttpResponse> r) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
        EXPECT_TRUE(IsNotSent(r.status()));
        saw_returned->store(cancel_returned->load());
        queued_done->Notify();
      });
  client.Send(Request("GET", Url("/ping")),
              [&client, queued_id, cancel_returned](absl::StatusOr<HttpResponse> result) {
                EXPECT_TRUE(result.ok()) << result.status();
                client.Cancel(queued_id);  // on the I/O thread itself
                cancel_returned->store(true);
              });
  ASSERT_TRUE(queued_done->WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(saw_returned->load());
  release_slow_.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(kWait));
  for (const Seen& s : seen()) EXPECT_NE(s.path, "/never");
}

TEST_F(HttpClientTest, ASlowBucketCannotDelayAnUnrelatedRequest) {
  // 40 requests of one bucket stuck on a slow endpoint used to take every connection of the
  // host (32), so an unrelated request waited for them. Now the bucket gets a quarter.
  HttpClient::Options options;  // 32 per host, 8 per key
  HttpClient client(options);
  ASSERT_EQ(client.max_in_flight_per_key(), 8);
  std::vector<std::shared_ptr<Outcome>> slow;
  for (int i = 0; i < 40; ++i) {
    HttpRequest request = Request("GET", Url("/slow"));
    request.fairness_key = "respondio:acct:slow_bucket";
    slow.push_back(SendAsync(client, std::move(request)));
  }
  ASSERT_TRUE(AwaitSlowArrivals(8));
  HttpRequest unrelated = Request("GET", Url("/unrelated"));
  unrelated.fairness_key = "respondio:acct:contact_get";
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(unrelated));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "echo:");
  // It completed while every slow request was still held by the server.
  EXPECT_FALSE(release_slow_.HasBeenNotified());
  {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(slow_arrivals_, 8) << "only the bucket's share reached the upstream";
  }
  const std::vector<HttpClient::KeyStats> stats = client.FairnessStats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].key, "respondio:acct:contact_get");
  EXPECT_EQ(stats[0].in_flight, 0);
  EXPECT_EQ(stats[0].queued, 0);
  EXPECT_EQ(stats[1].key, "respondio:acct:slow_bucket");
  EXPECT_EQ(stats[1].in_flight, 8);
  EXPECT_EQ(stats[1].queued, 32);
  EXPECT_EQ(stats[1].limit, 8);

  release_slow_.Notify();
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(slow[i]->done.WaitForNotificationWithTimeout(kWait)) << i;
    ASSERT_TRUE(slow[i]->result.ok()) << i << ": " << slow[i]->result.status();
  }
  for (const HttpClient::KeyStats& s : client.FairnessStats()) {
    EXPECT_EQ(s.in_flight, 0) << s.key;
    EXPECT_EQ(s.queued, 0) << s.key;
  }
}

TEST_F(HttpClientTest, QueuedRequestsFailAtTheirDeadlineUnsent) {
  HttpClient::Options options;
  options.max_in_flight_per_key = 1;
  HttpClient client(options);
  HttpRequest slow = Request("GET", Url("/slow"));
  slow.fairness_key = "k";
  std::shared_ptr<Outcome> first = SendAsync(client, std::move(slow));
  ASSERT_TRUE(AwaitSlowArrivals(1));
  HttpRequest queued = Request("POST", Url("/never"), "x");
  queued.fairness_key = "k";
  queued.deadline = absl::Now() + absl::Milliseconds(200);
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(queued));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_TRUE(IsNotSent(response.status()));
  EXPECT_FALSE(release_slow_.HasBeenNotified());
  release_slow_.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(kWait));
  for (const Seen& s : seen()) EXPECT_NE(s.path, "/never");
}

TEST_F(HttpClientTest, ChunkedBodyOverTheCapIsAbortedWithoutBuffering) {
  HttpClient client(HttpClient::Options{});  // 8 MiB default
  absl::StatusOr<HttpResponse> response = SendAndWait(client, Request("GET", Url("/huge-chunked")));
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(IsResponseTooLarge(response.status())) << response.status();
  EXPECT_EQ(response.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(client.responses_too_large(), 1);
  // The server could write at most the cap plus what loopback socket buffers hold before the
  // client hung up: far from the 50 MB it meant to send.
  absl::SleepFor(absl::Milliseconds(100));  // let the server notice the closed connection
  EXPECT_LT(huge_written_.load(), size_t{24} << 20) << "the client kept reading";
}

TEST_F(HttpClientTest, DeclaredBodyOverTheCapIsRefusedBeforeReading) {
  HttpClient client(HttpClient::Options{});
  HttpRequest request = Request("GET", Url("/huge-length"));
  request.max_response_bytes = 1 << 20;  // a per-upstream cap
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(request));
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(IsResponseTooLarge(response.status())) << response.status();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_LT(huge_written_.load(), size_t{16} << 20);
  // Under the cap the same client reads bodies normally.
  ASSERT_TRUE(SendAndWait(client, Request("GET", Url("/status/200"))).ok());
}

TEST_F(HttpClientTest, TooManyHeadersAreRefused) {
  HttpClient client(HttpClient::Options{});  // at most 100 headers
  absl::StatusOr<HttpResponse> response = SendAndWait(client, Request("GET", Url("/many-headers")));
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(IsResponseTooLarge(response.status())) << response.status();
  HttpClient::Options roomy;
  roomy.max_header_count = 1000;
  HttpClient other(roomy);
  response = SendAndWait(other, Request("GET", Url("/many-headers")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->headers["x-h499"], "v");
}

TEST_F(HttpClientTest, SlowUpstreamFailsWithDeadlineExceededPromptly) {
  HttpClient client(HttpClient::Options{});
  HttpRequest request = Request("GET", Url("/slow"));
  const absl::Time sent = absl::Now();
  request.deadline = sent + absl::Milliseconds(300);
  std::shared_ptr<Outcome> outcome = SendAsync(client, std::move(request));
  EXPECT_LT(absl::Now() - sent, absl::Milliseconds(100));  // Send() returns at once
  ASSERT_TRUE(outcome->done.WaitForNotificationWithTimeout(kWait));
  const absl::Duration took = absl::Now() - sent;
  EXPECT_EQ(outcome->result.status().code(), absl::StatusCode::kDeadlineExceeded)
      << outcome->result.status();
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(2));  // the handler is still blocked
  EXPECT_TRUE(AwaitSlowArrivals(1));  // it really was sent
}

TEST_F(HttpClientTest, PastDeadlineFailsWithoutSending) {
  HttpClient client(HttpClient::Options{});
  HttpRequest request = Request("POST", Url("/never"), "body");
  request.deadline = absl::Now() - absl::Seconds(1);
  absl::StatusOr<HttpResponse> response = SendAndWait(client, std::move(request));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_EQ(client.connections_opened(), 0);
  // Prove the client is otherwise working, then that only this request arrived.
  response = SendAndWait(client, Request("GET", Url("/after")));
  ASSERT_TRUE(response.ok()) << response.status();
  const std::vector<Seen> seen = this->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/after");
}

TEST_F(HttpClientTest, InvalidRequestsFailWithoutSending) {
  HttpClient client(HttpClient::Options{});
  EXPECT_EQ(SendAndWait(client, Request("BAD METHOD", Url("/x"))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SendAndWait(client, Request("GET", "ftp://127.0.0.1/x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  HttpRequest injected = Request("GET", Url("/x"));
  injected.headers.push_back({"X-Evil", "a\r\nX-Injected: 1"});
  EXPECT_EQ(SendAndWait(client, std::move(injected)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(requests_seen(), 0);
}

TEST_F(HttpClientTest, DestructionCancelsRequestsInFlightExactlyOnce) {
  constexpr int kRequests = 5;
  struct Calls {
    absl::Mutex mu;
    std::vector<int> count ABSL_GUARDED_BY(mu) = std::vector<int>(kRequests, 0);
    std::vector<absl::StatusCode> codes ABSL_GUARDED_BY(mu) =
        std::vector<absl::StatusCode>(kRequests, absl::StatusCode::kOk);
  };
  auto calls = std::make_shared<Calls>();

  auto client = std::make_unique<HttpClient>(HttpClient::Options{});
  for (int i = 0; i < kRequests; ++i) {
    client->Send(Request("GET", Url("/slow")), [calls, i](absl::StatusOr<HttpResponse> result) {
      absl::MutexLock lock(&calls->mu);
      ++calls->count[i];
      calls->codes[i] = result.status().code();
    });
  }
  ASSERT_TRUE(AwaitSlowArrivals(kRequests));  // all in flight at the server

  const absl::Time before = absl::Now();
  client.reset();
  EXPECT_LT(absl::Now() - before, absl::Seconds(2));

  absl::MutexLock lock(&calls->mu);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(calls->count[i], 1) << i;
    EXPECT_EQ(calls->codes[i], absl::StatusCode::kCancelled) << i;
  }
}

TEST_F(HttpClientTest, DestructionCancelsRequestsSentFromCancelledCallbacks) {
  auto client = std::make_unique<HttpClient>(HttpClient::Options{});
  HttpClient* raw = client.get();
  auto followup = std::make_shared<Outcome>();
  raw->Send(Request("GET", Url("/slow")),
            [raw, followup, this](absl::StatusOr<HttpResponse> result) {
              EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
              raw->Send(Request("GET", Url("/late")), [followup](absl::StatusOr<HttpResponse> r) {
                followup->result = std::move(r);
                followup->done.Notify();
              });
            });
  ASSERT_TRUE(AwaitSlowArrivals(1));
  client.reset();
  ASSERT_TRUE(followup->done.HasBeenNotified());
  EXPECT_EQ(followup->result.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace gateway::upstream
