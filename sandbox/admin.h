// Test-support surface of the sandbox: the request log, fault injection and
// the /__admin/* HTTP endpoints (no auth). Independent of any emulated API.
#ifndef SANDBOX_ADMIN_H_
#define SANDBOX_ADMIN_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

#include "absl/synchronization/mutex.h"
#include "sandbox/http_util.h"
#include "sandbox/rate_limiter.h"

namespace sandbox {

// Every request received on emulated routes, in arrival order.
class RequestLog {
 public:
  explicit RequestLog(size_t capacity = 100000) : capacity_(capacity) {}

  // Records the request on arrival; returns its sequence number.
  int64_t Begin(const RequestContext& ctx, const std::string& endpoint);
  // Records the final status (0 for a dropped connection) and fault kind.
  void Finish(int64_t seq, int status, const std::string& fault);

  // {"requests":[...]} filtered by endpoint name and/or seq > since.
  Json ToJson(const std::optional<std::string>& endpoint,
              const std::optional<int64_t>& since) const;
  void Clear();

 private:
  struct Entry {
    int64_t seq = 0;
    std::string method;
    std::string path;
    std::string raw_path;
    std::string query;
    std::string body;
    std::string endpoint;
    std::optional<int> status;
    std::string fault;
    double time_ms = 0;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  mutable absl::Mutex mu_;
  const size_t capacity_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
};

struct Fault {
  int64_t id = 0;
  std::optional<std::string> method;
  std::optional<std::string> path_regex;
  std::shared_ptr<const std::regex> regex;
  std::optional<std::string> endpoint;
  int64_t remaining = 1;  // -1: until cleared
  int64_t hits = 0;
  std::string kind;       // status | delay | drop | malformed
  int status = 0;
  std::optional<int64_t> retry_after;
  std::optional<Json> body;
  Json headers = Json::object();
  int64_t delay_ms = 0;

  Json ToJson() const;
};

// Faults are matched in creation order; the first matching fault with
// remaining uses is applied (and consumed) per request.
class FaultInjector {
 public:
  // Validates a fault spec (POST /__admin/faults body); returns {"id":N} or a
  // 400 error.
  ApiResult Add(const Json& spec);
  std::optional<Fault> Take(const std::string& method, const std::string& path,
                            const std::string& endpoint);
  bool Remove(int64_t id);
  void Clear();
  Json ToJson() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// Closes the TCP connection a request arrived on (shutdown(2) of its socket),
// so that the client sees an empty reply / connection reset. Returns false
// when the socket could not be found.
bool DropConnection(const httplib::Request& req);

// Applies a non-delay fault to the response. Returns the status to log (0 for
// "drop").
int ApplyFault(const Fault& fault, const httplib::Request& req,
               httplib::Response& res);

// The /__admin/* endpoints.
class AdminApi {
 public:
  struct Hooks {
    std::function<void()> reset_state;   // restore every emulator's seed
    std::function<Json()> dump_state;    // {"respondio": {...}, ...}
    std::function<Json()> endpoints;     // route table
  };

  AdminApi(RequestLog* log, FaultInjector* faults, RateLimiter* limiter,
           Hooks hooks)
      : log_(log), faults_(faults), limiter_(limiter), hooks_(std::move(hooks)) {}

  static bool IsAdminPath(const RequestContext& ctx);
  void Handle(const RequestContext& ctx, httplib::Response& res);

 private:
  ApiResult Dispatch(const RequestContext& ctx);

  RequestLog* log_;
  FaultInjector* faults_;
  RateLimiter* limiter_;
  Hooks hooks_;
};

}  // namespace sandbox

#endif  // SANDBOX_ADMIN_H_
