#include "upstream/transport/http_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace gateway::upstream {
namespace {

// Upper bound on one epoll_wait; curl's timer and the waiting requests' deadlines shorten it.
constexpr int kMaxPollMs = 1000;
// Socket events handled per epoll_wait.
constexpr int kMaxEvents = 64;
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

  HttpTransport::RequestId id = 0;
  HttpRequest request;
  HttpClient::Callback done;
  absl::Time sent_at;

  // Bounds for this transfer (from the request or the client's options).
  int64_t max_body = 0;
  int64_t max_header_bytes = 0;
  int max_header_count = 0;
  int64_t header_bytes = 0;
  int header_count = 0;
  std::string too_large;  // set when a bound was exceeded: which one

  // Set by curl's pre-request callback, just before the request is written on an established
  // (or reused) connection. False at failure time: no byte of the request left the gateway.
  bool request_started = false;
  bool holds_key_slot = false;  // counted in its key's in_flight
  void* easy = nullptr;         // CURL* while handed to curl
  // While waiting for a slot of its key: its place in KeyState::waiting.
  bool waiting = false;
  std::list<Transfer*>::iterator wait_pos;

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
  const size_t length = size * count;
  if (static_cast<int64_t>(transfer->response.body.size()) + static_cast<int64_t>(length) >
      transfer->max_body) {
    // Returning less than `length` aborts the transfer (CURLE_WRITE_ERROR): the excess is
    // never buffered, and the connection is closed rather than drained.
    transfer->too_large = absl::StrCat("body over ", transfer->max_body, " bytes");
    return 0;
  }
  transfer->response.body.append(data, length);
  return length;
}

int OnPreRequest(void* user, char*, char*, int, int) {
  static_cast<Transfer*>(user)->request_started = true;
  return CURL_PREREQFUNC_OK;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t length = size * count;
  transfer->header_bytes += static_cast<int64_t>(length);
  if (transfer->header_bytes > transfer->max_header_bytes) {
    transfer->too_large = absl::StrCat("headers over ", transfer->max_header_bytes, " bytes");
    return 0;  // aborts the transfer
  }
  absl::string_view line = absl::StripTrailingAsciiWhitespace(absl::string_view(data, length));
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line (e.g. after a 1xx interim response): start over.
    transfer->response.headers.clear();
    transfer->last_header.clear();
    transfer->header_count = 0;
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
  if (++transfer->header_count > transfer->max_header_count) {
    transfer->too_large = absl::StrCat("more than ", transfer->max_header_count, " headers");
    return 0;
  }
  std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (name == "content-length") {
    // Refuse a declared body over the bound before reading any of it.
    int64_t declared = 0;
    if (absl::SimpleAtoi(value, &declared) && declared > transfer->max_body) {
      transfer->too_large = absl::StrCat("body of ", declared, " bytes over ",
                                         transfer->max_body);
      return 0;
    }
  }
  transfer->response.headers[name] = std::string(value);
  transfer->last_header = std::move(name);
  return length;
}

// Curl results that happen before any byte of the request is written (when
// `request_started` is still false they prove it was not sent).
bool FailsBeforeSending(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return true;
    default:
      return false;
  }
}

int EffectiveKeyLimit(const HttpClient::Options& options) {
  if (options.max_in_flight_per_key < 0) return -1;
  if (options.max_in_flight_per_key > 0) return options.max_in_flight_per_key;
  if (options.max_connections_per_host <= 0) return -1;
  return std::max(1, options.max_connections_per_host / 4);
}

}  // namespace

HttpClient::HttpClient(Options options)
    : options_(std::move(options)), key_limit_(EffectiveKeyLimit(options_)) {
  GlobalInitOnce();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) Fatal("curl_multi_init failed");
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_connections_per_host));
  // HTTP/1.1 only: no multiplexing, so never wait to find out whether a
  // connection could multiplex.
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_NOTHING));
  // curl tells which sockets to watch and when its next timeout is; the I/O thread waits on one
  // epoll set: the sockets stay registered between waits (curl_multi_poll adds and removes every
  // socket on each wait) and a wake-up is one eventfd write.
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) Fatal("epoll_create1 or eventfd failed");
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) Fatal("epoll_ctl failed");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpClient::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, static_cast<void*>(this));
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpClient::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, static_cast<void*>(this));
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
  Wake();
  io_thread_.join();
  {
    absl::MutexLock io(&io_mu_);
    for (void* easy : idle_easy_) curl_easy_cleanup(easy);
    idle_easy_.clear();
    curl_multi_cleanup(multi_);  // closes cached connections (their sockets leave the epoll set)
  }
  close(wake_fd_);
  close(epoll_fd_);
}

void HttpClient::Wake() {
  const uint64_t one = 1;
  // Fails only with EAGAIN when the counter is already huge: the thread is awake anyway.
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof(one));
}

int HttpClient::OnSocket(void* /*easy*/, int socket, int what, void* client, void* /*socketp*/) {
  auto* self = static_cast<HttpClient*>(client);
  if (what == CURL_POLL_REMOVE) {
    // ENOENT/EBADF when curl already closed it: the kernel dropped it from the set then.
    epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
    return 0;
  }
  epoll_event event{};
  event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  event.data.fd = socket;
  if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
    epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, socket, &event);
  }
  return 0;
}

int HttpClient::OnTimer(void* /*multi*/, long timeout_ms, void* client) {
  auto* self = static_cast<HttpClient*>(client);
  self->io_mu_.AssertHeld();  // curl calls it only from inside calls made under io_mu_
  self->curl_timer_ = timeout_ms < 0 ? absl::InfiniteFuture()
                                     : absl::Now() + absl::Milliseconds(timeout_ms);
  return 0;
}

void HttpClient::SocketAction(int socket, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, socket, events, &running);
}

HttpClient::RequestId HttpClient::Send(HttpRequest request, Callback done) {
  auto transfer = std::make_unique<Transfer>();
  const RequestId id = next_id_.fetch_add(1, std::memory_order_relaxed);
  transfer->id = id;
  transfer->sent_at = absl::Now();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  bool wake = false;
  {
    absl::MutexLock io(&io_mu_);
    if (!io_stopping_) {
      // Started here, on the caller's thread: on a reused connection the request is written
      // before Send() returns, without waking the I/O thread. Outcomes found meanwhile (this
      // request refused at once, or another one finished) wait in completed_ for the I/O
      // thread, which also re-plans its wait if curl's next timeout moved earlier.
      Admit(std::move(transfer));
      RunCurlTimerIfDue();
      DrainFinished();
      wake = !completed_.empty() || NextWake() < planned_wake_;
    }
  }
  if (transfer != nullptr) {  // shutting down: the I/O thread cancels what is queued
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(transfer));
    wake = true;
  }
  if (wake) Wake();
  return id;
}

void HttpClient::Cancel(RequestId id) {
  {
    absl::MutexLock lock(&mu_);
    cancels_.push_back(id);
  }
  Wake();
}

int64_t HttpClient::connections_opened() const {
  return connections_opened_.load(std::memory_order_relaxed);
}

int64_t HttpClient::requests_completed() const {
  return requests_completed_.load(std::memory_order_relaxed);
}

int64_t HttpClient::responses_too_large() const {
  return responses_too_large_.load(std::memory_order_relaxed);
}

std::vector<HttpClient::KeyStats> HttpClient::FairnessStats() const {
  std::vector<KeyStats> out;
  absl::MutexLock lock(&mu_);
  out.reserve(keys_.size());
  for (const auto& [key, state] : keys_) {
    out.push_back({key, state.in_flight, static_cast<int>(state.waiting.size()), key_limit_});
  }
  return out;
}

absl::Time HttpClient::NextWake() const {
  absl::Time wake_at = curl_timer_;
  if (!deadlines_.empty()) wake_at = std::min(wake_at, deadlines_.begin()->first);
  return wake_at;
}

int HttpClient::PollTimeoutMs(absl::Time now) const {
  const absl::Time wake_at = NextWake();
  if (wake_at == absl::InfiniteFuture()) return kMaxPollMs;
  return static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(wake_at - now, absl::Milliseconds(1))), 0, kMaxPollMs));
}

void HttpClient::RunCurlTimerIfDue() {
  if (curl_timer_ > absl::Now()) return;
  curl_timer_ = absl::InfiniteFuture();  // OnTimer sets the next one during the call
  SocketAction(CURL_SOCKET_TIMEOUT, 0);
}

void HttpClient::RunCompleted() {
  std::vector<std::pair<Callback, absl::StatusOr<HttpResponse>>> batch;
  {
    absl::MutexLock io(&io_mu_);
    batch.swap(completed_);
  }
  for (auto& [done, result] : batch) std::move(done)(std::move(result));
}

void HttpClient::Run() {
  std::vector<RequestId> cancels;
  for (;;) {
    bool stopping;
    {
      // queue_ stays empty while this loop runs: Send() admits requests itself until
      // io_stopping_, which only the shutdown below sets.
      absl::MutexLock lock(&mu_);
      cancels.swap(cancels_);
      stopping = stopping_;
    }
    if (stopping) break;
    int timeout_ms = 0;
    {
      absl::MutexLock io(&io_mu_);
      for (RequestId id : cancels) CancelOne(id);
      cancels.clear();
      ExpireWaiting(absl::Now());
      RunCurlTimerIfDue();
      DrainFinished();
      const absl::Time now = absl::Now();
      timeout_ms = PollTimeoutMs(now);
      // A Send() that needs the thread before then (curl's timer or a slot deadline earlier)
      // wakes it.
      planned_wake_ = now + absl::Milliseconds(timeout_ms);
    }
    RunCompleted();
    // Returns early on Wake() (cancellations, outcomes found by Send(), shutdown).
    epoll_event events[kMaxEvents];
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) {
      absl::SleepFor(absl::Milliseconds(10));  // back off instead of spinning
      continue;
    }
    {
      absl::MutexLock io(&io_mu_);
      planned_wake_ = absl::InfinitePast();  // awake: a Send() needs no wake-up to re-plan
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) {
          uint64_t count = 0;
          [[maybe_unused]] const ssize_t r = read(wake_fd_, &count, sizeof(count));
          continue;
        }
        const uint32_t e = events[i].events;
        int mask = 0;
        if (e & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (e & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (e & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        SocketAction(fd, mask);
      }
      RunCurlTimerIfDue();
      DrainFinished();
    }
    RunCompleted();
  }

  // Shutting down: from here Send() queues instead of starting. Cancel every live transfer (in
  // flight or waiting for a slot), then everything queued (including requests sent by the
  // cancelled callbacks themselves).
  {
    absl::MutexLock io(&io_mu_);
    io_stopping_ = true;
    std::vector<RequestId> live;
    live.reserve(transfers_.size());
    for (const auto& [id, transfer] : transfers_) live.push_back(id);
    std::sort(live.begin(), live.end());
    for (RequestId id : live) {
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      Transfer* t = it->second.get();
      // Detach from its key first, so no waiting request is started by this release.
      if (t->waiting) {
        absl::MutexLock lock(&mu_);
        keys_[t->request.fairness_key].waiting.erase(t->wait_pos);
        t->waiting = false;
      }
      absl::Status cancelled = absl::CancelledError("HttpClient destroyed");
      Finish(id, t->request_started ? cancelled : MarkNotSent(cancelled));
    }
  }
  RunCompleted();
  std::deque<std::unique_ptr<Transfer>> batch;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      batch.swap(queue_);
    }
    if (batch.empty()) break;
    for (auto& transfer : batch) {
      HttpClient::Callback done = std::move(transfer->done);
      transfer.reset();
      std::move(done)(MarkNotSent(absl::CancelledError("HttpClient destroyed")));
    }
    batch.clear();
  }
}

void HttpClient::Admit(std::unique_ptr<Transfer> owned) {
  Transfer* transfer = owned.get();
  const RequestId id = transfer->id;
  transfers_.emplace(id, std::move(owned));
  const HttpRequest& request = transfer->request;
  if (absl::Status status = Validate(request); !status.ok()) {
    Finish(id, MarkNotSent(std::move(status)));
    return;
  }
  if (request.deadline != absl::InfiniteFuture() && request.deadline <= absl::Now()) {
    Finish(id, MarkNotSent(
                   absl::DeadlineExceededError("deadline passed before the request was sent")));
    return;
  }
  transfer->max_body = request.max_response_bytes > 0 ? request.max_response_bytes
                                                      : options_.max_response_bytes;
  transfer->max_header_bytes = options_.max_header_bytes;
  transfer->max_header_count = options_.max_header_count;
  if (!request.fairness_key.empty()) {
    absl::MutexLock lock(&mu_);
    KeyState& key = keys_[request.fairness_key];
    if (key_limit_ >= 0 && key.in_flight >= key_limit_) {
      transfer->waiting = true;
      transfer->wait_pos = key.waiting.insert(key.waiting.end(), transfer);
      if (request.deadline != absl::InfiniteFuture()) deadlines_.emplace(request.deadline, id);
      return;
    }
    ++key.in_flight;
    transfer->holds_key_slot = true;
  }
  StartCurl(transfer);
}

void HttpClient::CancelOne(RequestId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;  // finished already, or never existed
  Transfer* t = it->second.get();
  absl::Status cancelled = absl::CancelledError("request cancelled");
  if (t->waiting || !t->request_started) cancelled = MarkNotSent(std::move(cancelled));
  Finish(id, std::move(cancelled));
}

void HttpClient::ExpireWaiting(absl::Time now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const RequestId id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    Finish(id, MarkNotSent(absl::DeadlineExceededError(
                   "deadline passed while waiting for a connection slot of its bucket")));
  }
}

void HttpClient::Finish(RequestId id, absl::StatusOr<HttpResponse> result) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> transfer = std::move(it->second);
  transfers_.erase(it);
  if (transfer->easy != nullptr) {
    CURL* easy = transfer->easy;
    active_.erase(easy);
    curl_multi_remove_handle(multi_, easy);  // aborts a transfer still running
    long connects = 0;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
      connections_opened_.fetch_add(connects, std::memory_order_relaxed);
    }
    ReleaseEasy(easy);
    transfer->easy = nullptr;
  }
  if (transfer->request.deadline != absl::InfiniteFuture() && transfer->waiting) {
    deadlines_.erase({transfer->request.deadline, id});
  }
  // Give back the key slot; the next waiting request of the key takes it.
  Transfer* next = nullptr;
  if (transfer->waiting || transfer->holds_key_slot) {
    absl::MutexLock lock(&mu_);
    KeyState& key = keys_[transfer->request.fairness_key];
    if (transfer->waiting) {
      key.waiting.erase(transfer->wait_pos);
      transfer->waiting = false;
    }
    if (transfer->holds_key_slot) {
      --key.in_flight;
      transfer->holds_key_slot = false;
      if (!key.waiting.empty() && !stopping_) {
        next = key.waiting.front();
        key.waiting.pop_front();
        next->waiting = false;
        ++key.in_flight;
        next->holds_key_slot = true;
      }
    }
  }
  if (next != nullptr) {
    if (next->request.deadline != absl::InfiniteFuture()) {
      deadlines_.erase({next->request.deadline, next->id});
    }
    StartCurl(next);
  }
  // Run by the I/O thread once io_mu_ is released (RunCompleted), never here: Finish() may be
  // on a caller's thread (Send), and callbacks may call Send().
  completed_.emplace_back(std::move(transfer->done), std::move(result));
}

void HttpClient::StartCurl(Transfer* transfer) {
  const RequestId id = transfer->id;
  const HttpRequest& request = transfer->request;
  long timeout_ms = 0;  // curl: no timeout
  if (request.deadline != absl::InfiniteFuture()) {
    const absl::Duration remaining = request.deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      Finish(id, MarkNotSent(
                     absl::DeadlineExceededError("deadline passed before the request was sent")));
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
    Finish(id, MarkNotSent(absl::UnavailableError("out of memory setting up request")));
    return;
  }

  CURLcode rc = CURLE_OK;
  auto set = [&rc, easy](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
  };
  Transfer* t = transfer;
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
  set(CURLOPT_PREREQFUNCTION, &OnPreRequest);
  set(CURLOPT_PREREQDATA, static_cast<void*>(t));
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t->max_body));
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
    Finish(id, MarkNotSent(rc == CURLE_OUT_OF_MEMORY
                               ? absl::UnavailableError(absl::StrCat("curl: ", reason))
                               : absl::InvalidArgumentError(absl::StrCat("curl: ", reason))));
    return;
  }
  const CURLMcode mc = curl_multi_add_handle(multi_, easy);
  if (mc != CURLM_OK) {
    ReleaseEasy(easy);
    Finish(id, MarkNotSent(
                   absl::UnavailableError(absl::StrCat("curl: ", curl_multi_strerror(mc)))));
    return;
  }
  t->easy = easy;
  active_.emplace(easy, t);
}

void HttpClient::DrainFinished() {
  int queued = 0;
  // Collect first: Finish() may start waiting transfers (curl_multi_add_handle), which must not
  // interleave with reading the message queue.
  std::vector<std::pair<RequestId, absl::StatusOr<HttpResponse>>> finished;
  while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    // `message` is invalid once the handle is removed: copy what we need.
    CURL* easy = message->easy_handle;
    const CURLcode code = message->data.result;
    auto it = active_.find(easy);
    if (it == active_.end()) continue;
    Transfer* transfer = it->second;
    absl::StatusOr<HttpResponse> result;
    if (!transfer->too_large.empty() ||
        (code == CURLE_FILESIZE_EXCEEDED)) {
      if (transfer->too_large.empty()) {
        transfer->too_large = absl::StrCat("body over ", transfer->max_body, " bytes");
      }
      responses_too_large_.fetch_add(1, std::memory_order_relaxed);
      result = ResponseTooLargeError(transfer->too_large);
    } else if (code == CURLE_OK) {
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
      absl::Status status;
      if (code == CURLE_OPERATION_TIMEDOUT && deadline != absl::InfiniteFuture() &&
          absl::Now() + kDeadlineSlack >= deadline) {
        status = absl::DeadlineExceededError(reason);
      } else if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
        status = absl::InvalidArgumentError(reason);
      } else {
        // Refused, reset, empty reply, DNS, TLS, connect timeout, ...
        status = absl::UnavailableError(reason);
      }
      if (!transfer->request_started && FailsBeforeSending(code)) {
        status = MarkNotSent(std::move(status));
      }
      result = std::move(status);
    }
    finished.emplace_back(transfer->id, std::move(result));
  }
  for (auto& [id, result] : finished) Finish(id, std::move(result));
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
