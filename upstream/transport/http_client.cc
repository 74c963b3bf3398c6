#include "upstream/transport/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace gateway::upstream {
namespace {

// Upper bound on one curl_multi_poll wait; curl shortens it to its own timers.
constexpr int kMaxPollMs = 1000;
// Easy handles kept for reuse beyond this many are freed.
constexpr size_t kMaxIdleEasyHandles = 64;
// A timeout within this much of the request deadline counts as the deadline.
constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(20);

[[noreturn]] void Fatal(const char* message) {
  std::fprintf(stderr, "gateway::upstream::HttpClient: %s\n", message);
  std::abort();
}

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      Fatal("curl_global_init failed");
    }
  });
}

// RFC 9110 token characters (methods and header field names).
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    switch (c) {
      case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
      case '+': case '-': case '.': case '^': case '_': case '`': case '|':
      case '~':
        continue;
      default:
        return false;
    }
  }
  return true;
}

bool IsValidHeaderValue(absl::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

absl::Status Validate(const HttpRequest& request) {
  if (!IsToken(request.method)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid HTTP method \"", absl::CHexEscape(request.method), "\""));
  }
  if (!absl::StartsWithIgnoreCase(request.url, "http://") &&
      !absl::StartsWithIgnoreCase(request.url, "https://")) {
    return absl::InvalidArgumentError("URL must be absolute http:// or https://");
  }
  if (!IsValidHeaderValue(request.url)) {
    return absl::InvalidArgumentError("URL contains CR, LF or NUL");
  }
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid header name \"", absl::CHexEscape(name), "\""));
    }
    if (!IsValidHeaderValue(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("header \"", name, "\" contains CR, LF or NUL"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace http_client_internal {

struct Transfer {
  ~Transfer() { curl_slist_free_all(header_list); }

  HttpRequest request;
  HttpClient::Callback done;
  absl::Time sent_at;

  HttpResponse response;
  std::string last_header;  // for obsolete folded header lines
  curl_slist* header_list = nullptr;
  char error[CURL_ERROR_SIZE] = {};
};

}  // namespace http_client_internal

namespace {

using http_client_internal::Transfer;

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  transfer->response.body.append(data, size * count);
  return size * count;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t length = size * count;
  absl::string_view line = absl::StripTrailingAsciiWhitespace(absl::string_view(data, length));
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line (e.g. after a 1xx interim response): start over.
    transfer->response.headers.clear();
    transfer->last_header.clear();
    return length;
  }
  if (line.empty()) return length;
  if (line.front() == ' ' || line.front() == '\t') {
    if (!transfer->last_header.empty()) {
      std::string& value = transfer->response.headers[transfer->last_header];
      absl::StrAppend(&value, " ", absl::StripLeadingAsciiWhitespace(line));
    }
    return length;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return length;
  std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  transfer->response.headers[name] =
      std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  transfer->last_header = std::move(name);
  return length;
}

// Runs `transfer`'s callback with `result`, then frees the transfer.
void Complete(std::unique_ptr<Transfer> transfer, absl::StatusOr<HttpResponse> result) {
  HttpClient::Callback done = std::move(transfer->done);
  transfer.reset();
  std::move(done)(std::move(result));
}

}  // namespace

HttpClient::HttpClient(Options options) : options_(std::move(options)) {
  GlobalInitOnce();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) Fatal("curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_connections_per_host));
  // HTTP/1.1 only: no multiplexing, so never wait to find out whether a
  // connection could multiplex.
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_NOTHING));
  io_thread_ = std::thread([this] { Run(); });
}

HttpClient::~HttpClient() {
  if (std::this_thread::get_id() == io_thread_.get_id()) {
    Fatal("destroyed from its own callback (I/O thread)");
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  curl_multi_wakeup(multi_);
  io_thread_.join();
  for (void* easy : idle_easy_) curl_easy_cleanup(easy);
  idle_easy_.clear();
  curl_multi_cleanup(multi_);  // closes cached connections
}

void HttpClient::Send(HttpRequest request, Callback done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->sent_at = absl::Now();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(transfer));
  }
  curl_multi_wakeup(multi_);
}

int64_t HttpClient::connections_opened() const {
  return connections_opened_.load(std::memory_order_relaxed);
}

int64_t HttpClient::requests_completed() const {
  return requests_completed_.load(std::memory_order_relaxed);
}

void HttpClient::Run() {
  std::deque<std::unique_ptr<Transfer>> batch;
  for (;;) {
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      batch.swap(queue_);
      stopping = stopping_;
    }
    if (stopping) break;
    while (!batch.empty()) {
      std::unique_ptr<Transfer> transfer = std::move(batch.front());
      batch.pop_front();
      Start(std::move(transfer));
    }
    int running = 0;
    curl_multi_perform(multi_, &running);
    DrainFinished();
    // Returns early on curl_multi_wakeup (new requests or shutdown).
    if (curl_multi_poll(multi_, nullptr, 0, kMaxPollMs, nullptr) != CURLM_OK) {
      absl::SleepFor(absl::Milliseconds(10));  // back off instead of spinning
    }
  }

  // Shutting down: cancel transfers in flight, then everything queued
  // (including requests sent by the cancelled callbacks themselves).
  std::vector<std::unique_ptr<Transfer>> cancelled;
  cancelled.reserve(active_.size());
  for (auto& [easy, transfer] : active_) {
    curl_multi_remove_handle(multi_, easy);
    long connects = 0;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
      connections_opened_.fetch_add(connects, std::memory_order_relaxed);
    }
    ReleaseEasy(easy);
    cancelled.push_back(std::move(transfer));
  }
  active_.clear();
  for (auto& transfer : cancelled) {
    Complete(std::move(transfer), absl::CancelledError("HttpClient destroyed"));
  }
  for (;;) {
    for (auto& transfer : batch) {
      Complete(std::move(transfer), absl::CancelledError("HttpClient destroyed"));
    }
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      batch.swap(queue_);
    }
    if (batch.empty()) break;
  }
}

void HttpClient::Start(std::unique_ptr<Transfer> transfer) {
  const HttpRequest& request = transfer->request;
  if (absl::Status status = Validate(request); !status.ok()) {
    Complete(std::move(transfer), std::move(status));
    return;
  }
  long timeout_ms = 0;  // curl: no timeout
  if (request.deadline != absl::InfiniteFuture()) {
    const absl::Duration remaining = request.deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      Complete(std::move(transfer),
               absl::DeadlineExceededError("deadline passed before the request was sent"));
      return;
    }
    const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(remaining, absl::Milliseconds(1)));
    timeout_ms = static_cast<long>(std::min<int64_t>(ms, std::numeric_limits<int32_t>::max()));
  }

  // Request headers. An empty value needs curl's "Name;" form; "Name:" would
  // remove the header instead.
  bool has_content_type = false;
  curl_slist* list = nullptr;
  auto append = [&list](const std::string& line) {
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (next == nullptr) return false;
    list = next;
    return true;
  };
  bool ok = true;
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "content-type")) has_content_type = true;
    ok = ok && append(value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value));
  }
  ok = ok && append("Expect:");  // never 100-continue
  if (!has_content_type) ok = ok && append("Content-Type:");  // no form default
  transfer->header_list = list;

  CURL* easy = nullptr;
  if (!idle_easy_.empty()) {
    easy = idle_easy_.back();
    idle_easy_.pop_back();
  } else {
    easy = curl_easy_init();
  }
  if (!ok || easy == nullptr) {
    if (easy != nullptr) ReleaseEasy(easy);
    Complete(std::move(transfer), absl::UnavailableError("out of memory setting up request"));
    return;
  }

  CURLcode rc = CURLE_OK;
  auto set = [&rc, easy](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
  };
  Transfer* t = transfer.get();
  set(CURLOPT_URL, request.url.c_str());
  // libcurl silently sends a request again when a reused keep-alive connection turns out to be
  // closed; a request that must not be repeated gets a connection of its own instead.
  if (request.fresh_connection) set(CURLOPT_FRESH_CONNECT, 1L);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_ERRORBUFFER, t->error);
  set(CURLOPT_WRITEFUNCTION, &OnBody);
  set(CURLOPT_WRITEDATA, static_cast<void*>(t));
  set(CURLOPT_HEADERFUNCTION, &OnHeader);
  set(CURLOPT_HEADERDATA, static_cast<void*>(t));
  set(CURLOPT_HTTPHEADER, list);
  set(CURLOPT_USERAGENT, options_.user_agent.c_str());
  set(CURLOPT_TIMEOUT_MS, timeout_ms);
  if (options_.connect_timeout > absl::ZeroDuration()) {
    set(CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(std::max<int64_t>(
            1, std::min<int64_t>(absl::ToInt64Milliseconds(options_.connect_timeout),
                                 std::numeric_limits<int32_t>::max()))));
  }
  set(CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());

  const std::string& method = request.method;
  if (method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (method == "GET" && request.body.empty()) {
    set(CURLOPT_HTTPGET, 1L);
  } else {
    if (!request.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      set(CURLOPT_POSTFIELDS, request.body.data());
    }
    set(CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  if (rc != CURLE_OK) {
    const absl::string_view reason = curl_easy_strerror(rc);
    ReleaseEasy(easy);
    Complete(std::move(transfer),
             rc == CURLE_OUT_OF_MEMORY
                 ? absl::UnavailableError(absl::StrCat("curl: ", reason))
                 : absl::InvalidArgumentError(absl::StrCat("curl: ", reason)));
    return;
  }
  const CURLMcode mc = curl_multi_add_handle(multi_, easy);
  if (mc != CURLM_OK) {
    ReleaseEasy(easy);
    Complete(std::move(transfer),
             absl::UnavailableError(absl::StrCat("curl: ", curl_multi_strerror(mc))));
    return;
  }
  active_.emplace(easy, std::move(transfer));
}

void HttpClient::DrainFinished() {
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    // `message` is invalid once the handle is removed: copy what we need.
    CURL* easy = message->easy_handle;
    const CURLcode code = message->data.result;
    auto it = active_.find(easy);
    if (it == active_.end()) continue;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    active_.erase(it);
    curl_multi_remove_handle(multi_, easy);

    long connects = 0;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
      connections_opened_.fetch_add(connects, std::memory_order_relaxed);
    }
    absl::StatusOr<HttpResponse> result;
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      transfer->response.status = static_cast<int>(status);
      transfer->response.elapsed = absl::Now() - transfer->sent_at;
      result = std::move(transfer->response);
      requests_completed_.fetch_add(1, std::memory_order_relaxed);
    } else {
      const std::string reason =
          transfer->error[0] != '\0'
              ? absl::StrCat(curl_easy_strerror(code), ": ", transfer->error)
              : std::string(curl_easy_strerror(code));
      const absl::Time deadline = transfer->request.deadline;
      if (code == CURLE_OPERATION_TIMEDOUT && deadline != absl::InfiniteFuture() &&
          absl::Now() + kDeadlineSlack >= deadline) {
        result = absl::DeadlineExceededError(reason);
      } else if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
        result = absl::InvalidArgumentError(reason);
      } else {
        // Refused, reset, empty reply, DNS, TLS, connect timeout, ...
        result = absl::UnavailableError(reason);
      }
    }
    ReleaseEasy(easy);
    Complete(std::move(transfer), std::move(result));
  }
}

void HttpClient::ReleaseEasy(void* easy) {
  if (idle_easy_.size() >= kMaxIdleEasyHandles) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);  // drops every option, including pointers into the transfer
  idle_easy_.push_back(easy);
}

}  // namespace gateway::upstream
