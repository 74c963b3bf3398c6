#include "sandbox/admin.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"

namespace sandbox {

// ---------------------------------------------------------------------------
// RequestLog.

int64_t RequestLog::Begin(const RequestContext& ctx,
                          const std::string& endpoint) {
  Entry e;
  e.method = ctx.method;
  e.path = ctx.path;
  e.raw_path = ctx.raw_path;
  e.query = ctx.raw_query;
  e.body = ctx.body();
  e.endpoint = endpoint;
  e.time_ms = UnixMillisNow();
  for (const auto& [name, value] : ctx.req->headers) {
    // httplib injects the connection's addresses as pseudo headers.
    if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" ||
        name == "LOCAL_ADDR" || name == "LOCAL_PORT") {
      continue;
    }
    e.headers.emplace_back(AsciiLower(name), value);
  }
  absl::MutexLock lock(&mu_);
  e.seq = next_seq_++;
  entries_.push_back(std::move(e));
  while (entries_.size() > capacity_) entries_.pop_front();
  return entries_.back().seq;
}

void RequestLog::Finish(int64_t seq, int status, const std::string& fault) {
  absl::MutexLock lock(&mu_);
  if (entries_.empty() || seq < entries_.front().seq) return;
  size_t index = static_cast<size_t>(seq - entries_.front().seq);
  if (index >= entries_.size()) return;
  entries_[index].status = status;
  entries_[index].fault = fault;
}

Json RequestLog::ToJson(const std::optional<std::string>& endpoint,
                        const std::optional<int64_t>& since) const {
  absl::ReaderMutexLock lock(&mu_);
  Json list = Json::array();
  for (const Entry& e : entries_) {
    if (endpoint.has_value() && e.endpoint != *endpoint) continue;
    if (since.has_value() && e.seq <= *since) continue;
    Json headers = Json::object();
    for (const auto& [name, value] : e.headers) {
      // Repeated headers are joined the way HTTP allows.
      if (headers.contains(name)) {
        headers[name] = absl::StrCat(headers[name].get<std::string>(), ", ",
                                     value);
      } else {
        headers[name] = value;
      }
    }
    list.push_back(Json{{"seq", e.seq},
                        {"method", e.method},
                        {"path", e.path},
                        {"raw_path", e.raw_path},
                        {"query", e.query},
                        {"body", e.body},
                        {"endpoint", e.endpoint},
                        {"status", e.status.has_value() ? Json(*e.status)
                                                        : Json(nullptr)},
                        {"fault", e.fault.empty() ? Json(nullptr)
                                                  : Json(e.fault)},
                        {"time_ms", e.time_ms},
                        {"headers", headers}});
  }
  return Json{{"requests", list}};
}

void RequestLog::Clear() {
  absl::MutexLock lock(&mu_);
  entries_.clear();
}

// ---------------------------------------------------------------------------
// Faults.

Json Fault::ToJson() const {
  Json j{{"id", id},
         {"fault", kind},
         {"count", remaining},
         {"hits", hits},
         {"method", method.has_value() ? Json(*method) : Json(nullptr)},
         {"path_regex",
          path_regex.has_value() ? Json(*path_regex) : Json(nullptr)},
         {"endpoint", endpoint.has_value() ? Json(*endpoint) : Json(nullptr)}};
  if (kind == "status") {
    j["status"] = status;
    j["retry_after"] =
        retry_after.has_value() ? Json(*retry_after) : Json(nullptr);
    j["body"] = body.has_value() ? *body : Json(nullptr);
    j["headers"] = headers;
  }
  if (kind == "delay") j["delay_ms"] = delay_ms;
  return j;
}

namespace {

bool GetInt(const Json& spec, const char* name, int64_t* out,
            std::string* error) {
  auto it = spec.find(name);
  if (it == spec.end() || it->is_null()) return true;
  if (!it->is_number_integer()) {
    *error = absl::StrCat(name, " must be an integer");
    return false;
  }
  *out = it->get<int64_t>();
  return true;
}

bool GetStr(const Json& spec, const char* name,
            std::optional<std::string>* out, std::string* error) {
  auto it = spec.find(name);
  if (it == spec.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *error = absl::StrCat(name, " must be a string");
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

}  // namespace

ApiResult FaultInjector::Add(const Json& spec) {
  if (!spec.is_object()) return Error(400, "fault spec must be a JSON object");
  Fault f;
  std::string error;
  std::optional<std::string> kind;
  if (!GetStr(spec, "fault", &kind, &error) ||
      !GetStr(spec, "method", &f.method, &error) ||
      !GetStr(spec, "path_regex", &f.path_regex, &error) ||
      !GetStr(spec, "endpoint", &f.endpoint, &error)) {
    return Error(400, error);
  }
  static const std::set<std::string> kKinds = {"status", "delay", "drop",
                                               "malformed"};
  if (!kind.has_value() || kKinds.count(*kind) == 0) {
    return Error(400,
                 "fault must be one of status, delay, drop, malformed");
  }
  f.kind = *kind;
  if (f.method.has_value()) {
    std::string m = *f.method;
    for (char& c : m) c = static_cast<char>(std::toupper(c));
    f.method = m;
  }
  if (f.path_regex.has_value()) {
    try {
      f.regex = std::make_shared<const std::regex>(*f.path_regex,
                                                   std::regex::ECMAScript);
    } catch (const std::exception& e) {
      return Error(400, absl::StrCat("path_regex is not a valid regex: ",
                                     e.what()));
    }
  }
  int64_t count = 1;
  if (!GetInt(spec, "count", &count, &error)) return Error(400, error);
  if (count == 0 || count < -1) {
    return Error(400, "count must be >= 1, or -1 for until cleared");
  }
  f.remaining = count;

  if (f.kind == "status") {
    int64_t status = 0;
    if (!GetInt(spec, "status", &status, &error)) return Error(400, error);
    if (status < 200 || status > 599) {
      return Error(400,
                   "status is required for fault 'status' (200..599, e.g. "
                   "429, 449, 500, 502, 503, 504)");
    }
    f.status = static_cast<int>(status);
    int64_t retry_after = -1;
    if (!GetInt(spec, "retry_after", &retry_after, &error)) {
      return Error(400, error);
    }
    if (spec.contains("retry_after") && !spec["retry_after"].is_null()) {
      if (retry_after < 0) return Error(400, "retry_after must be >= 0");
      f.retry_after = retry_after;
    }
    if (spec.contains("body") && !spec["body"].is_null()) f.body = spec["body"];
    if (spec.contains("headers") && !spec["headers"].is_null()) {
      const Json& h = spec["headers"];
      if (!h.is_object()) return Error(400, "headers must be an object");
      for (auto it = h.begin(); it != h.end(); ++it) {
        if (!it.value().is_string()) {
          return Error(400, absl::StrCat("headers.", it.key(),
                                         " must be a string"));
        }
      }
      f.headers = h;
    }
  } else if (f.kind == "delay") {
    int64_t delay = -1;
    if (!GetInt(spec, "delay_ms", &delay, &error)) return Error(400, error);
    if (delay < 0 || delay > 600000) {
      return Error(400,
                   "delay_ms is required for fault 'delay' (0..600000)");
    }
    f.delay_ms = delay;
  }
  absl::MutexLock lock(&mu_);
  f.id = next_id_++;
  faults_.push_back(f);
  return Ok(Json{{"id", f.id}});
}

std::optional<Fault> FaultInjector::Take(const std::string& method,
                                         const std::string& path,
                                         const std::string& endpoint) {
  absl::MutexLock lock(&mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    Fault& f = *it;
    if (f.remaining == 0) continue;
    if (f.method.has_value() && *f.method != method) continue;
    if (f.endpoint.has_value() && *f.endpoint != endpoint) continue;
    if (f.regex != nullptr) {
      bool matched = false;
      try {
        matched = std::regex_search(path, *f.regex);
      } catch (const std::exception&) {
        matched = false;
      }
      if (!matched) continue;
    }
    ++f.hits;
    if (f.remaining > 0) --f.remaining;
    Fault copy = f;
    if (f.remaining == 0) faults_.erase(it);
    return copy;
  }
  return std::nullopt;
}

bool FaultInjector::Remove(int64_t id) {
  absl::MutexLock lock(&mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->id == id) {
      faults_.erase(it);
      return true;
    }
  }
  return false;
}

void FaultInjector::Clear() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
}

Json FaultInjector::ToJson() const {
  absl::ReaderMutexLock lock(&mu_);
  Json list = Json::array();
  for (const Fault& f : faults_) list.push_back(f.ToJson());
  return Json{{"faults", list}};
}

// ---------------------------------------------------------------------------
// Applying faults.

namespace {

// Port and numeric host of a socket address.
bool Describe(const sockaddr_storage& addr, socklen_t len, std::string* host,
              int* port) {
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, buf,
                  sizeof(buf), nullptr, 0, NI_NUMERICHOST) != 0) {
    return false;
  }
  *host = buf;
  if (addr.ss_family == AF_INET) {
    *port = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    *port = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  } else {
    return false;
  }
  return true;
}

}  // namespace

bool DropConnection(const httplib::Request& req) {
  // httplib does not expose the socket to handlers; find the one whose local
  // and peer endpoints are this request's.
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  bool dropped = false;
  while (dirent* ent = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(ent->d_name, &end, 10);
    if (end == ent->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof(local);
    socklen_t peer_len = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local),
                    &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer),
                    &peer_len) != 0) {
      continue;
    }
    std::string local_host, peer_host;
    int local_port = 0, peer_port = 0;
    if (!Describe(local, local_len, &local_host, &local_port) ||
        !Describe(peer, peer_len, &peer_host, &peer_port)) {
      continue;
    }
    if (local_port == req.local_port && peer_port == req.remote_port &&
        peer_host == req.remote_addr) {
      shutdown(static_cast<int>(fd), SHUT_RDWR);
      dropped = true;
      break;
    }
  }
  closedir(dir);
  return dropped;
}

int ApplyFault(const Fault& fault, const httplib::Request& req,
               httplib::Response& res) {
  if (fault.kind == "status") {
    for (auto it = fault.headers.begin(); it != fault.headers.end(); ++it) {
      res.set_header(it.key().c_str(), it.value().get<std::string>());
    }
    if (fault.retry_after.has_value()) {
      res.set_header("Retry-After", std::to_string(*fault.retry_after));
    }
    res.status = fault.status;
    if (fault.body.has_value()) {
      if (fault.body->is_string()) {
        res.set_content(fault.body->get<std::string>(), "application/json");
      } else {
        res.set_content(DumpJson(*fault.body), "application/json");
      }
    } else {
      res.set_content(
          DumpJson(ErrorBody(fault.status,
                             absl::StrCat("injected fault ", fault.id))),
          "application/json");
    }
    return fault.status;
  }
  if (fault.kind == "malformed") {
    res.status = 200;
    res.set_content("{\"broken\": ", "application/json");
    return 200;
  }
  if (fault.kind == "drop") {
    // Whatever httplib tries to write now fails; make sure it also stops
    // reading from the connection.
    res.status = 500;
    res.set_header("Connection", "close");
    if (!DropConnection(req)) {
      res.set_content("", "application/json");
      return 500;
    }
    return 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// AdminApi.

bool AdminApi::IsAdminPath(const RequestContext& ctx) {
  return !ctx.segments.empty() && ctx.segments[0] == "__admin";
}

void AdminApi::Handle(const RequestContext& ctx, httplib::Response& res) {
  ApiResult r;
  try {
    r = Dispatch(ctx);
  } catch (const std::exception& e) {
    r = Error(400, absl::StrCat("invalid request: ", e.what()));
  } catch (...) {
    r = Error(500, "internal error");
  }
  WriteJson(res, r.status, r.body);
}

ApiResult AdminApi::Dispatch(const RequestContext& ctx) {
  const std::vector<std::string>& s = ctx.segments;
  const std::string& m = ctx.method;
  const std::string what = s.size() >= 2 ? s[1] : "";
  auto parse_body = [&](Json* out) -> std::optional<ApiResult> {
    if (ctx.body().empty()) {
      *out = Json::object();
      return std::nullopt;
    }
    *out = Json::parse(ctx.body(), nullptr, false);
    if (out->is_discarded()) return Error(400, "body is not valid JSON");
    return std::nullopt;
  };

  if (what == "requests" && s.size() == 2) {
    if (m == "GET") {
      std::optional<int64_t> since;
      if (auto v = ctx.QueryParam("since")) {
        int64_t n = 0;
        if (!ParseInt64(*v, &n)) return Error(400, "since must be an integer");
        since = n;
      }
      return Ok(log_->ToJson(ctx.QueryParam("endpoint"), since));
    }
    if (m == "DELETE") {
      log_->Clear();
      return Ok(Json{{"ok", true}});
    }
  }
  if (what == "faults") {
    if (s.size() == 2 && m == "GET") return Ok(faults_->ToJson());
    if (s.size() == 2 && m == "POST") {
      Json spec;
      if (auto err = parse_body(&spec)) return *err;
      return faults_->Add(spec);
    }
    if (s.size() == 2 && m == "DELETE") {
      faults_->Clear();
      return Ok(Json{{"ok", true}});
    }
    if (s.size() == 3 && m == "DELETE") {
      int64_t id = 0;
      if (!ParseInt64(s[2], &id)) return Error(400, "fault id must be an integer");
      if (!faults_->Remove(id)) {
        return Error(404, absl::StrCat("fault ", id, " not found"));
      }
      return Ok(Json{{"ok", true}});
    }
  }
  if (what == "reset" && s.size() == 2 && m == "POST") {
    if (hooks_.reset_state) hooks_.reset_state();
    log_->Clear();
    faults_->Clear();
    limiter_->Reset();
    return Ok(Json{{"ok", true}});
  }
  if (what == "state" && s.size() == 2 && m == "GET") {
    return Ok(hooks_.dump_state ? hooks_.dump_state() : Json::object());
  }
  if (what == "endpoints" && s.size() == 2 && m == "GET") {
    return Ok(hooks_.endpoints ? hooks_.endpoints() : Json::array());
  }
  if (what == "config" && s.size() == 2) {
    if (m == "POST") {
      Json body;
      if (auto err = parse_body(&body)) return *err;
      if (!body.is_object()) return Error(400, "body must be a JSON object");
      if (body.contains("rate_limits")) {
        if (!body["rate_limits"].is_boolean()) {
          return Error(400, "rate_limits must be a boolean");
        }
        limiter_->set_enabled(body["rate_limits"].get<bool>());
      }
    }
    if (m == "POST" || m == "GET") {
      return Ok(Json{{"rate_limits", limiter_->enabled()}});
    }
  }
  if (what == "health" && s.size() == 2 && m == "GET") {
    return Ok(Json{{"ok", true}});
  }
  return Error(404, absl::StrCat("unknown admin endpoint: ", m, " ", ctx.path));
}

}  // namespace sandbox
