// -----------------------------------------------------------------------------
// File: http_client.h
// -----------------------------------------------------------------------------
//
// `HttpClient` is an asynchronous HTTP/1.1 client for calling upstream REST
// services, built on libcurl's multi interface.
//
// One client owns one I/O thread and one curl multi handle, driven through
// curl's socket interface (`curl_multi_socket_action`) over one epoll set.
// `Send()` starts the request on the caller's thread: on a kept-alive
// connection the request is written before it returns (non-blocking sockets,
// so it never waits on the network), and no thread hand-off delays it. The I/O
// thread waits for the sockets, reads the responses and invokes each request's
// callback when it finishes; a Send() wakes it (an eventfd write) only when it
// has something to do sooner than it planned.
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
//   HttpClient::RequestId id = client.Send(std::move(request),
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
// block on other requests of the same client (they may call `Send()` and
// `Cancel()`).
//
// Fairness: requests with the same non-empty `HttpRequest::fairness_key` (the
// rate-limit bucket) have at most `Options::max_in_flight_per_key` transfers
// in flight; the rest wait in the client, unsent and without a thread, in
// arrival order, until a slot of their key frees or their deadline passes. So
// 40 calls stuck on one slow endpoint occupy a quarter of the host's
// connections, not all of them, and an unrelated request still starts at once.
//
// Bounds on what an upstream can make the client hold: the response body
// (`max_response_bytes`, 8 MiB by default, per request overridable), header
// bytes and header count. Over a bound the transfer is aborted at once (the
// excess is never buffered) and `done` gets `ResponseTooLargeError`.

#ifndef GATEWAY_UPSTREAM_HTTP_CLIENT_H_
#define GATEWAY_UPSTREAM_HTTP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <set>
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
#include "upstream/transport/http_transport.h"

namespace gateway::upstream {
namespace http_client_internal {
struct Transfer;  // one request from Send() until its callback runs
}  // namespace http_client_internal

// HttpClient
//
// An asynchronous HTTP/1.1 client with one I/O thread and a keep-alive
// connection pool; the production `HttpTransport`. See the file comment for
// an example.
//
// Thread safety: `Send()`, `Cancel()` and the accessors may be called
// concurrently from any thread, including from inside a callback. The
// destructor must not run concurrently with any other call and must not be
// called from a callback (it joins the I/O thread).
class HttpClient final : public HttpTransport {
 public:
  // HttpClient::Options
  //
  // Settings fixed for the lifetime of a client.
  struct Options {
    // Maximum simultaneous connections to one host (CURLMOPT_MAX_HOST_
    // CONNECTIONS); further requests to that host wait inside the client for
    // a free connection, still bounded by their deadline. 0 means no limit.
    int max_connections_per_host = 32;
    // Maximum requests in flight (handed to curl: connecting, sending or
    // waiting for the reply) per non-empty `fairness_key`. 0 (the default)
    // means a quarter of `max_connections_per_host` (at least 1; no limit when
    // that is 0): one slow endpoint then holds at most 8 of the default 32
    // connections, and three more could stall before an unrelated bucket
    // waits. Negative means no per-key limit.
    int max_in_flight_per_key = 0;
    // Default bound on a response body, in bytes (a request's own
    // `max_response_bytes` overrides it). 8 MiB: far above any page of the
    // upstreams' APIs (100 items), far below what would hurt the process.
    int64_t max_response_bytes = int64_t{8} << 20;
    // Bounds on the response headers: total bytes of all header lines and
    // their number. Real upstream responses carry a few dozen headers of
    // well under 8 KiB in total.
    int64_t max_header_bytes = int64_t{64} << 10;
    int max_header_count = 100;
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
  using Callback = Done;

  // Per fairness key, for metrics: requests in flight and waiting now, and
  // the limit (the same for every key; -1 when unlimited).
  struct KeyStats {
    std::string key;
    int in_flight = 0;
    int queued = 0;
    int limit = 0;
  };

  // Creates the client and starts its I/O thread. Initialises libcurl
  // globally on first use (thread-safe).
  explicit HttpClient(Options options);

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Stops the I/O thread: every request still pending or in flight fails with
  // `absl::CancelledError` (marked not-sent for those never started; each
  // callback still runs exactly once, on the I/O thread, before the
  // destructor returns), then the thread is joined and all connections are
  // closed. Requests sent from those callbacks are cancelled too.
  ~HttpClient() override;

  // Starts `request` on the calling thread and returns without waiting on the
  // network (on a kept-alive connection the request has been written by
  // then); `done` later runs exactly once on the client's I/O thread, never
  // inside Send(), with one of:
  //
  //   * an `HttpResponse` for any HTTP status, including 4xx and 5xx;
  //   * `absl::UnavailableError` with curl's message for transport failures
  //     (connection refused or reset, empty reply, DNS failure, TLS failure,
  //     connect timeout); marked not-sent (`IsNotSent`) when no byte of the
  //     request was written (refused, DNS, TLS, connect timeout);
  //   * `absl::DeadlineExceededError` if `request.deadline` passed before
  //     (the request is then never sent, and marked so) or during the
  //     transfer;
  //   * `absl::InvalidArgumentError` for a malformed request (empty or invalid
  //     method, CR/LF in a header, malformed URL or a scheme other than
  //     http/https); nothing is sent (marked);
  //   * `ResponseTooLargeError` (OUT_OF_RANGE) when the response exceeded
  //     the body, header-bytes or header-count bound;
  //   * `absl::CancelledError` after `Cancel()` or if the client is destroyed
  //     first (see HttpTransport::Cancel for the not-sent mark).
  RequestId Send(HttpRequest request, Done done) override;

  // See HttpTransport::Cancel. Takes effect on the I/O thread shortly after;
  // `done` never runs inside Cancel().
  void Cancel(RequestId id) override;

  // Number of new TCP connections opened so far (the sum of
  // CURLINFO_NUM_CONNECTS over finished transfers). For tests and metrics.
  int64_t connections_opened() const;

  // Number of requests that have finished with an `HttpResponse` (of any
  // status). Incremented before the request's callback runs. For tests and
  // metrics.
  int64_t requests_completed() const;

  // Number of responses aborted for exceeding a size bound.
  int64_t responses_too_large() const;

  // The effective per-key in-flight limit (-1: none).
  int max_in_flight_per_key() const { return key_limit_; }

  // Every fairness key seen so far with its current counts, sorted by key.
  std::vector<KeyStats> FairnessStats() const;

 private:
  using Transfer = http_client_internal::Transfer;

  // Requests of one fairness key. `waiting` holds transfers admitted by
  // Send() but not yet handed to curl, oldest first.
  struct KeyState {
    int in_flight = 0;
    std::list<Transfer*> waiting;
  };

  // The I/O thread's main loop and helpers. Everything curl (the multi handle,
  // every easy handle) and the transfers' indexes are used under `io_mu_`, by
  // the I/O thread or by Send() on a caller's thread; callbacks run only on
  // the I/O thread, after it released io_mu_ (RunCompleted).
  void Run();
  void RunCompleted() ABSL_LOCKS_EXCLUDED(io_mu_);
  void Admit(std::unique_ptr<Transfer> transfer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void StartCurl(Transfer* transfer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void CancelOne(RequestId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void ExpireWaiting(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void DrainFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Removes `id` from every index, gives back its key slot (starting the next
  // waiting request of that key) and queues its callback with `result` in
  // completed_.
  void Finish(RequestId id, absl::StatusOr<HttpResponse> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void ReleaseEasy(void* easy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // When the I/O thread must next act on its own: curl's timer or the earliest
  // deadline of a request waiting for a slot.
  absl::Time NextWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  int PollTimeoutMs(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // curl's socket interface: OnSocket adds, changes or removes a socket in the epoll set,
  // OnTimer records when curl wants SocketAction(CURL_SOCKET_TIMEOUT); curl calls both from
  // inside the calls made under io_mu_.
  static int OnSocket(void* easy, int socket, int what, void* client, void* socketp);
  static int OnTimer(void* multi, long timeout_ms, void* client);
  void SocketAction(int socket, int events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void RunCurlTimerIfDue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Makes the I/O thread's epoll_wait return (any thread).
  void Wake();

  const Options options_;
  const int key_limit_;  // effective max_in_flight_per_key, -1 for none

  // Lock order: io_mu_ before mu_.
  absl::Mutex io_mu_;
  mutable absl::Mutex mu_;
  // Requests sent while shutting down, for the I/O thread to cancel.
  std::deque<std::unique_ptr<Transfer>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<RequestId> cancels_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Written by the I/O thread, read by FairnessStats().
  std::map<std::string, KeyState> keys_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> next_id_{1};
  std::atomic<int64_t> connections_opened_{0};
  std::atomic<int64_t> requests_completed_{0};
  std::atomic<int64_t> responses_too_large_{0};

  void* multi_ = nullptr;  // CURLM*; used under io_mu_ (set once, by the constructor)
  int epoll_fd_ = -1;      // curl's sockets and wake_fd_
  int wake_fd_ = -1;       // eventfd; Wake() writes it from any thread
  absl::Time curl_timer_ ABSL_GUARDED_BY(io_mu_) = absl::InfiniteFuture();  // curl's timeout
  // When the I/O thread's epoll_wait returns unless woken; InfinitePast while it is awake.
  absl::Time planned_wake_ ABSL_GUARDED_BY(io_mu_) = absl::InfinitePast();
  bool io_stopping_ ABSL_GUARDED_BY(io_mu_) = false;  // Send() queues instead of starting
  absl::flat_hash_map<RequestId, std::unique_ptr<Transfer>> transfers_
      ABSL_GUARDED_BY(io_mu_);  // all live ones
  absl::flat_hash_map<void*, Transfer*> active_ ABSL_GUARDED_BY(io_mu_);  // by CURL*
  std::set<std::pair<absl::Time, RequestId>> deadlines_
      ABSL_GUARDED_BY(io_mu_);  // waiting ones with a deadline
  std::vector<void*> idle_easy_ ABSL_GUARDED_BY(io_mu_);  // reusable CURL* handles
  // Finished requests' callbacks and outcomes, in order, for RunCompleted.
  std::vector<std::pair<Callback, absl::StatusOr<HttpResponse>>> completed_
      ABSL_GUARDED_BY(io_mu_);
  std::thread io_thread_;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_HTTP_CLIENT_H_
