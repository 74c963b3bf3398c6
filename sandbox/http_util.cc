#include "sandbox/http_util.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace sandbox {

Json ErrorBody(int code, std::string_view message) {
  return Json{{"code", code}, {"message", std::string(message)},
              {"status", code}};
}

ApiResult Error(int code, std::string_view message) {
  return ApiResult{code, ErrorBody(code, message)};
}

ApiResult Ok(Json body) { return ApiResult{200, std::move(body)}; }

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void SplitTarget(std::string_view target, std::string* raw_path,
                 std::string* raw_query) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    *raw_path = std::string(target);
    raw_query->clear();
  } else {
    *raw_path = std::string(target.substr(0, q));
    *raw_query = std::string(target.substr(q + 1));
  }
  // Fragments are never sent by clients, but be safe.
  size_t h = raw_query->find('#');
  if (h != std::string::npos) raw_query->resize(h);
}

std::vector<std::string> SplitPathSegments(std::string_view raw_path) {
  std::vector<std::string> segments;
  if (!raw_path.empty() && raw_path.front() == '/') raw_path.remove_prefix(1);
  if (!raw_path.empty() && raw_path.back() == '/') raw_path.remove_suffix(1);
  if (raw_path.empty()) return segments;
  size_t start = 0;
  while (true) {
    size_t slash = raw_path.find('/', start);
    std::string_view seg = raw_path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos
                                               : slash - start);
    segments.push_back(PercentDecode(seg, /*plus_as_space=*/false));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(
    std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= raw_query.size()) {
    size_t amp = raw_query.find('&', start);
    std::string_view part = raw_query.substr(
        start,
        amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(PercentDecode(part, true), "");
      } else {
        out.emplace_back(PercentDecode(part.substr(0, eq), true),
                         PercentDecode(part.substr(eq + 1), true));
      }
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

std::string DumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void WriteJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(DumpJson(body), "application/json");
}

double UnixMillisNow() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double, std::milli>(now).count();
}

int64_t UnixSecondsNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  // Accumulate as negative to cover INT64_MIN.
  int64_t value = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9') return false;
    int digit = c - '0';
    if (value < (INT64_MIN + digit) / 10) return false;
    value = value * 10 - digit;
  }
  if (!negative) {
    if (value == INT64_MIN) return false;
    value = -value;
  }
  *out = value;
  return true;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    if (c >= 0xF0 && c <= 0xF7) {
      len = 4;
    } else if (c >= 0xE0) {
      len = c <= 0xEF ? 3 : 1;
    } else if (c >= 0xC0) {
      len = 2;
    }
    if (i + len > s.size()) len = 1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        len = 1;
        break;
      }
    }
    i += len;
  }
  return n;
}

std::optional<std::string> RequestContext::QueryParam(
    std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

RequestContext MakeRequestContext(const httplib::Request& req,
                                  const std::string& fallback_host_port) {
  RequestContext ctx;
  ctx.req = &req;
  ctx.method = req.method;
  std::string target = req.target.empty() ? req.path : req.target;
  SplitTarget(target, &ctx.raw_path, &ctx.raw_query);
  ctx.path = PercentDecode(ctx.raw_path, /*plus_as_space=*/false);
  ctx.segments = SplitPathSegments(ctx.raw_path);
  ctx.query = ParseQuery(ctx.raw_query);
  std::string host = req.get_header_value("Host");
  if (host.empty()) host = fallback_host_port;
  ctx.base_url = absl::StrCat("http://", host);
  return ctx;
}

bool ParsePageRequest(const RequestContext& ctx, PageRequest* page,
                      std::string* error) {
  *page = PageRequest();
  if (auto limit = ctx.QueryParam("limit"); limit.has_value()) {
    int64_t v = 0;
    if (!ParseInt64(*limit, &v)) {
      *error = absl::StrCat("limit must be an integer between 1 and 100, got '",
                            *limit, "'");
      return false;
    }
    if (v < 1 || v > 100) {
      *error = absl::StrCat("limit must be between 1 and 100, got ", v);
      return false;
    }
    page->limit = static_cast<int>(v);
  }
  if (auto cursor = ctx.QueryParam("cursorId"); cursor.has_value()) {
    int64_t v = 0;
    if (!ParseInt64(*cursor, &v) || v < 0) {
      *error = absl::StrCat("cursorId must be a non-negative integer, got '",
                            *cursor, "'");
      return false;
    }
    page->cursor_id = v;
  }
  return true;
}

bool ParseDialect(std::string_view s, Dialect* out) {
  if (s == "live") {
    *out = Dialect::kLive;
    return true;
  }
  if (s == "openapi") {
    *out = Dialect::kOpenapi;
    return true;
  }
  return false;
}

const char* DialectName(Dialect d) {
  return d == Dialect::kLive ? "live" : "openapi";
}

Json Paginate(const std::vector<std::pair<int64_t, Json>>& items,
              const PageRequest& page, const std::string& url_base,
              PaginationStyle style) {
  size_t start = 0;
  if (page.cursor_id.has_value()) {
    start = static_cast<size_t>(
        std::upper_bound(items.begin(), items.end(), *page.cursor_id,
                         [](int64_t cursor, const std::pair<int64_t, Json>& it) {
                           return cursor < it.first;
                         }) -
        items.begin());
  }
  size_t limit = static_cast<size_t>(page.limit);
  size_t end = std::min(items.size(), start + limit);
  Json list = Json::array();
  for (size_t i = start; i < end; ++i) list.push_back(items[i].second);

  if (style == PaginationStyle::kCursor) {
    const bool more = end < items.size() && end > start;
    Json cursor = more ? Json(items[end - 1].first) : Json(nullptr);
    return Json{{"items", std::move(list)},
                {"pagination", {{"cursorId", cursor}, {"hasMore", more}}}};
  }
  Json next = nullptr;
  if (end < items.size() && end > start) {
    next = absl::StrCat(url_base, "?cursorId=", items[end - 1].first,
                        "&limit=", page.limit);
  }
  Json previous = nullptr;
  if (start > 0) {
    size_t prev_start = start > limit ? start - limit : 0;
    if (prev_start == 0) {
      previous = absl::StrCat(url_base, "?limit=", page.limit);
    } else {
      previous = absl::StrCat(url_base, "?cursorId=", items[prev_start - 1].first,
                              "&limit=", page.limit);
    }
  }
  return Json{{"items", std::move(list)},
              {"pagination", {{"next", next}, {"previous", previous}}}};
}

}  // namespace sandbox
