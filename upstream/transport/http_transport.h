// -----------------------------------------------------------------------------
// File: http_transport.h
// -----------------------------------------------------------------------------
//
// The seam between the call pipeline and the network: one abstract
// `HttpTransport` (implemented by `HttpClient`, and by fakes in tests) plus the
// request and response value types.
//
//   HttpTransport& http = ...;
//   HttpRequest request;
//   request.method = "GET";
//   request.url = "https://api.example.com/v2/contact/id:1";
//   request.fairness_key = "respondio:acct:contact_get";
//   request.deadline = deadline;
//   HttpTransport::RequestId id =
//       http.Send(std::move(request), [](absl::StatusOr<HttpResponse> r) {
//         if (!r.ok() && IsNotSent(r.status())) { /* provably never reached the upstream */ }
//       });
//   ...
//   http.Cancel(id);  // the caller went away
//
// Failures a transport reports (every `done` gets exactly one of these or an
// `HttpResponse` of any HTTP status):
//   * CANCELLED: `Cancel()` or the transport's destruction. Marked not-sent
//     (`IsNotSent`) when no byte of the request had been written.
//   * UNAVAILABLE: connection refused or reset, DNS or TLS failure, connect
//     timeout, empty reply. Connection refused, DNS, TLS and connect failures
//     are marked not-sent.
//   * DEADLINE_EXCEEDED: `deadline` passed; marked not-sent if it passed
//     before any byte was written (e.g. while waiting for a connection slot).
//   * INVALID_ARGUMENT: a malformed request; nothing is sent (marked).
//   * OUT_OF_RANGE with `IsResponseTooLarge()`: the response exceeded a size
//     bound (body, header bytes or header count); the transfer was aborted
//     without buffering the excess. Not marked: the upstream processed it.
#ifndef GATEWAY_UPSTREAM_HTTP_TRANSPORT_H_
#define GATEWAY_UPSTREAM_HTTP_TRANSPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway::upstream {

// HttpRequest
//
// One HTTP request to an upstream. A plain value type; `Send()` takes it by
// value.
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
  // Fairness class of the request: the rate-limit bucket key
  // ("upstream:account:bucket"). Requests with the same non-empty key share a
  // bounded number of requests in flight (HttpClient::Options::
  // max_in_flight_per_key), so one slow endpoint cannot take every connection
  // of its upstream; further ones wait, unsent, in the transport. Empty: no
  // per-key limit.
  std::string fairness_key;
  // Upper bound on the response body in bytes; 0 uses the transport's default
  // (HttpClient::Options::max_response_bytes, 8 MiB). A larger body aborts the
  // transfer (see IsResponseTooLarge).
  int64_t max_response_bytes = 0;
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

// HttpTransport
//
// Abstract asynchronous HTTP transport, so that the pipeline can be tested
// with a fake. Implementations are thread-safe: `Send()` and `Cancel()` may be
// called from any thread, including from inside a `done` callback.
class HttpTransport {
 public:
  using RequestId = uint64_t;
  using Done = absl::AnyInvocable<void(absl::StatusOr<HttpResponse>) &&>;

  virtual ~HttpTransport() = default;

  // Queues `request`; `done` runs exactly once, never on the caller's stack
  // (not inside Send() or Cancel()). Returns an id for Cancel(), unique for
  // the transport's lifetime (never 0).
  virtual RequestId Send(HttpRequest request, Done done) = 0;

  // Cancels a request. Not yet started (e.g. waiting for a connection slot):
  // it is never sent and done gets CANCELLED marked not-sent. In flight:
  // aborted, done gets CANCELLED (not marked: the upstream may have processed
  // it; an HttpClient does mark it when no byte of the request had been
  // written yet, e.g. while still connecting). Already finished or unknown id:
  // no-op.
  virtual void Cancel(RequestId id) = 0;
};

// True iff the failed request provably never left the gateway (no byte of it
// was written): cancelled before start, connection refused, DNS failure.
// Set by the transport as a Status payload.
bool IsNotSent(const absl::Status& status);

// Returns `status` (non-OK) marked as not-sent. For transports, including
// fakes in tests.
absl::Status MarkNotSent(absl::Status status);

// OUT_OF_RANGE marked as "the response exceeded a transport size bound"
// (body bytes, header bytes or header count). `what` says which, for the
// message.
absl::Status ResponseTooLargeError(absl::string_view what);

// True iff `status` came from ResponseTooLargeError().
bool IsResponseTooLarge(const absl::Status& status);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_HTTP_TRANSPORT_H_
