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
  EXPECT_EQ(client.requests_completed(), 0);
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
