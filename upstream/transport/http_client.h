// -----------------------------------------------------------------------------
// File: http_client.h
// -----------------------------------------------------------------------------
//
// `HttpClient` is an asynchronous HTTP/1.1 client for calling upstream REST
// services, built on libcurl's multi interface.
//
// One client owns one I/O thread and one curl multi handle. `Send()` only
// queues the request and wakes the I/O thread (via `curl_multi_wakeup`), so it
// never blocks the caller on the network; the I/O thread drives every transfer
// with `curl_multi_poll` and invokes each request's callback when it finishes.
// Connections are kept alive and reused across requests through the multi
// handle's connection cache, and curl easy handles are recycled.
//
// Example:
//
//   gateway::upstream::HttpClient::Options options;
//   options.max_connections_per_host = 16;
//   gateway::upstream::HttpClient client(options);
//
//   gateway::upstream::HttpRequest request;
//   request.method = "POST";
//   request.url = "https://api.example.com/v1/contacts";
//   request.headers = {{"Content-Type", "application/json"}};
//   request.body = R"({"name":"Ada"})";
//   request.deadline = absl::Now() + absl::Seconds(2);
//
//   client.Send(std::move(request),
//               [](absl::StatusOr<gateway::upstream::HttpResponse> response) {
//                 if (!response.ok()) {
//                   // UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ...
//                   return;
//                 }
//                 // Any HTTP status (including 4xx/5xx) arrives here.
//                 Use(response->status, response->headers["content-type"],
//                     response->body);
//               });
//
// Callbacks run on the client's I/O thread: they should be quick and must not
// block on other requests of the same client (they may call `Send()`).

#ifndef GATEWAY_UPSTREAM_HTTP_CLIENT_H_
#define GATEWAY_UPSTREAM_HTTP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gateway::upstream {
namespace http_client_internal {
struct Transfer;  // one request from Send() until its callback runs
}  // namespace http_client_internal

// HttpRequest
//
// One HTTP request to an upstream. A plain value type; `HttpClient::Send()`
// takes it by value.
struct HttpRequest {
  // The request method, e.g. "GET", "POST", "PUT", "PATCH" or "DELETE" (any
  // method may carry a body, including DELETE). Must be a non-empty HTTP
  // token; "HEAD" requests never read a response body.
  std::string method;
  // Absolute `http://` or `https://` URL, already percent-encoded. Other
  // schemes are rejected.
  std::string url;
  // Request headers, sent in order. Names and values must not contain CR or
  // LF. If no "Content-Type" is given, none is sent (curl's form-urlencoded
  // default is suppressed); "Expect: 100-continue" is never sent.
  std::vector<std::pair<std::string, std::string>> headers;
  // Request body, sent as-is (with a Content-Length) when non-empty. POST, PUT
  // and PATCH with an empty body send "Content-Length: 0". The caller sets
  // Content-Type.
  std::string body;
  // Deadline for the whole transfer (queueing, connect, send and receive).
  // A deadline that has already passed fails the request without sending it.
  absl::Time deadline = absl::InfiniteFuture();
  // Send on a new connection rather than a pooled one. libcurl resends a request once, by
  // itself, when a reused keep-alive connection turns out to have been closed by the peer; that
  // must never happen to a write that may not be repeated (it could have been processed).
  bool fresh_connection = false;
};

// HttpResponse
//
// A complete HTTP response of any status.
struct HttpResponse {
  // The HTTP status code of the final response (1xx interim responses are
  // skipped).
  int status = 0;
  // Response headers of the final response. Names are lower-cased, values
  // are trimmed of surrounding whitespace; when a name repeats, the last value
  // wins.
  absl::flat_hash_map<std::string, std::string> headers;
  // The response body as received (no content decoding is requested).
  std::string body;
  // Time from `Send()` to completion of the transfer.
  absl::Duration elapsed;
};

// HttpClient
//
// An asynchronous HTTP/1.1 client with one I/O thread and a keep-alive
// connection pool. See the file comment for an example.
//
// Thread safety: `Send()`, `connections_opened()` and `requests_completed()`
// may be called concurrently from any thread, including from inside a
// callback. The destructor must not run concurrently with any other call and
// must not be called from a callback (it joins the I/O thread).
class HttpClient {
 public:
  // HttpClient::Options
  //
  // Settings fixed for the lifetime of a client.
  struct Options {
    // Maximum simultaneous connections to one host (CURLMOPT_MAX_HOST_
    // CONNECTIONS); further requests to that host wait inside the client for
    // a free connection, still bounded by their deadline. 0 means no limit.
    int max_connections_per_host = 32;
    // Timeout for establishing a connection (TCP plus TLS handshake). A
    // connect timeout before the request's deadline fails with UNAVAILABLE.
    absl::Duration connect_timeout = absl::Seconds(5);
    // Verify the TLS peer certificate and host name of https upstreams.
    // Never false in production.
    bool verify_tls = true;
    // Optional path of a PEM CA bundle for https upstreams; empty uses the
    // system default.
    std::string ca_file;
    // Value of the User-Agent header (unless a request sets its own).
    std::string user_agent = "respond-gateway/1";
  };

  // The callback receiving a request's outcome. Invoked exactly once, as an
  // rvalue, on the client's I/O thread, never while the client holds a lock.
  using Callback = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&>;

  // Creates the client and starts its I/O thread. Initialises libcurl
  // globally on first use (thread-safe).
  explicit HttpClient(Options options);

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Stops the I/O thread: every request still pending or in flight fails with
  // `absl::CancelledError` (each callback still runs exactly once, on the I/O
  // thread, before the destructor returns), then the thread is joined and all
  // connections are closed. Requests sent from those callbacks are cancelled
  // too.
  ~HttpClient();

  // Starts `request` and returns at once; `done` later runs exactly once on
  // the client's I/O thread with one of:
  //
  //   * an `HttpResponse` for any HTTP status, including 4xx and 5xx;
  //   * `absl::UnavailableError` with curl's message for transport failures
  //     (connection refused or reset, empty reply, DNS failure, TLS failure,
  //     connect timeout);
  //   * `absl::DeadlineExceededError` if `request.deadline` passed before
  //     (the request is then never sent) or during the transfer;
  //   * `absl::InvalidArgumentError` for a malformed request (empty or invalid
  //     method, CR/LF in a header, malformed URL or a scheme other than
  //     http/https); nothing is sent;
  //   * `absl::CancelledError` if the client is destroyed first.
  void Send(HttpRequest request, Callback done);

  // Number of new TCP connections opened so far (the sum of
  // CURLINFO_NUM_CONNECTS over finished transfers). For tests and metrics.
  int64_t connections_opened() const;

  // Number of requests that have finished with an `HttpResponse` (of any
  // status). Incremented before the request's callback runs. For tests and
  // metrics.
  int64_t requests_completed() const;

 private:
  using Transfer = http_client_internal::Transfer;

  // The I/O thread's main loop and helpers. `active_` and `idle_easy_`, and
  // `multi_` except for curl_multi_wakeup(), are touched only by the I/O
  // thread (or by the constructor and destructor while it is not running).
  void Run();
  void Start(std::unique_ptr<Transfer> transfer);
  void DrainFinished();
  void ReleaseEasy(void* easy);

  const Options options_;

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<int64_t> connections_opened_{0};
  std::atomic<int64_t> requests_completed_{0};

  void* multi_ = nullptr;  // CURLM*; wakeup is thread-safe, all else I/O thread.
  absl::flat_hash_map<void*, std::unique_ptr<Transfer>> active_;  // by CURL*
  std::vector<void*> idle_easy_;  // reusable CURL* handles
  std::thread io_thread_;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_HTTP_CLIENT_H_
