// Small HTTP/JSON helpers shared by the sandbox emulators (respond.io today,
// Chatwoot later). Nothing here is respond.io specific.
#ifndef SANDBOX_HTTP_UTIL_H_
#define SANDBOX_HTTP_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace sandbox {

using Json = nlohmann::json;

// Which behaviour an emulator follows: `live` is what the real service does
// (specs/live-api.md), `openapi` what its OpenAPI document describes.
enum class Dialect { kLive, kOpenapi };
// "live" | "openapi"; false for anything else.
bool ParseDialect(std::string_view s, Dialect* out);
const char* DialectName(Dialect d);

// The outcome of an emulated API call: HTTP status plus JSON body.
struct ApiResult {
  int status = 200;
  Json body;
};

// {"code":N,"message":"...","status":N}: the live API's error shape ({code,
// message}) plus the OpenAPI's Error schema field (status).
Json ErrorBody(int code, std::string_view message);
ApiResult Error(int code, std::string_view message);
ApiResult Ok(Json body);

// Decodes %XX escapes. Invalid escapes are kept literally. '+' is turned into
// a space only when plus_as_space (query strings), never in paths.
std::string PercentDecode(std::string_view s, bool plus_as_space);

// Splits an HTTP request target ("/a/b?x=1") into raw path and raw query.
void SplitTarget(std::string_view target, std::string* raw_path,
                 std::string* raw_query);

// Splits a raw (still percent-encoded) path into decoded segments, so that an
// encoded '/' (%2F) stays inside its segment. A leading '/' and one trailing
// '/' are ignored: "/contact/email:a%2Fb/" -> {"contact", "email:a/b"}.
std::vector<std::string> SplitPathSegments(std::string_view raw_path);

// Parses "a=1&b=x%20y" into decoded pairs, in order.
std::vector<std::pair<std::string, std::string>> ParseQuery(
    std::string_view raw_query);

// JSON serialisation that never throws on invalid UTF-8 (replaces it).
std::string DumpJson(const Json& j);

// Writes a JSON response.
void WriteJson(httplib::Response& res, int status, const Json& body);

double UnixMillisNow();
int64_t UnixSecondsNow();

std::string AsciiLower(std::string_view s);

// Parses a whole string as a decimal int64 (optional leading '-'); no spaces,
// no '+', no trailing garbage.
bool ParseInt64(std::string_view s, int64_t* out);

// Number of Unicode code points in a UTF-8 string (invalid bytes count as one).
size_t Utf8Length(std::string_view s);

// Everything a handler needs to know about one incoming request.
struct RequestContext {
  const httplib::Request* req = nullptr;
  std::string method;
  std::string raw_path;   // as received, still percent-encoded
  std::string raw_query;  // "" if none
  std::string path;       // percent-decoded ('+' kept)
  std::vector<std::string> segments;  // decoded path segments
  std::vector<std::pair<std::string, std::string>> query;  // decoded
  std::string base_url;   // "http://host:port" as seen by the client
  // An API prefix the request carried and the router removed from raw_path,
  // path and segments (respond.io's "/v2"); "" when none.
  std::string api_prefix;

  std::optional<std::string> QueryParam(std::string_view name) const;
  const std::string& body() const { return req->body; }
};

// Builds a RequestContext. fallback_host_port is used when the request has no
// Host header.
RequestContext MakeRequestContext(const httplib::Request& req,
                                  const std::string& fallback_host_port);

// Cursor pagination as respond.io does it: items ordered by id, `cursorId` is
// the id of the last item of the previous page, `limit` 1..100 (default 10).
struct PageRequest {
  std::optional<int64_t> cursor_id;
  int limit = 10;
};

// Reads cursorId/limit from the query string; returns false with a message
// when they are malformed or out of range.
bool ParsePageRequest(const RequestContext& ctx, PageRequest* page,
                      std::string* error);

// How a page says where the next one starts.
enum class PaginationStyle {
  // {"next": URL|null, "previous": URL|null} (the live API).
  kUrls,
  // {"cursorId": <last id on this page>|null, "hasMore": bool} (the OpenAPI
  // document's Pagination schema; cursorId is null on the last page).
  kCursor,
};

// Builds {"items":[...],"pagination":{...}} in the given style. `items` must
// be sorted by ascending id. `url_base` is the full URL of the list without
// query string, e.g. "http://127.0.0.1:8081/v2/contact/list".
Json Paginate(const std::vector<std::pair<int64_t, Json>>& items,
              const PageRequest& page, const std::string& url_base,
              PaginationStyle style = PaginationStyle::kUrls);

}  // namespace sandbox

#endif  // SANDBOX_HTTP_UTIL_H_
