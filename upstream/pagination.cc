#include "upstream/pagination.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using nlohmann::json;
using QueryParams = std::vector<std::pair<std::string, std::string>>;

absl::Status BadCursor() {
  return GatewayError(absl::StatusCode::kInvalidArgument, "page_token: not a valid page token",
                      {.reason = "INVALID_PAGE_TOKEN",
                       .metadata = {{"field", "page_token"}},
                       .field_violations = {{"page_token", "not a valid page token"}}});
}

bool IsDigits(absl::string_view s) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// The value of `key` in the query string of `url`, or "".
std::string QueryParam(absl::string_view url, absl::string_view key) {
  const size_t q = url.find('?');
  if (q == absl::string_view::npos) return "";
  for (absl::string_view pair : absl::StrSplit(url.substr(q + 1), '&')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.first == key) return std::string(kv.second);
  }
  return "";
}

class RespondioCursor : public Pagination {
 public:
  absl::StatusOr<QueryParams> Query(int page_size, absl::string_view cursor) const override {
    QueryParams q;
    if (!cursor.empty()) {
      if (!IsDigits(cursor)) return BadCursor();
      q.emplace_back("cursorId", std::string(cursor));
    }
    if (page_size > 0) q.emplace_back("limit", absl::StrCat(page_size));
    return q;
  }

  absl::StatusOr<std::string> NextCursor(int, absl::string_view, json& body) const override {
    if (!body.is_object()) return std::string();
    auto p = body.find("pagination");
    if (p == body.end() || !p->is_object()) return std::string();
    // The live API: {"next": "https://.../contact/list?cursorId=123&limit=10", "previous": ...}
    if (auto next = p->find("next"); next != p->end()) {
      if (!next->is_string()) return std::string();
      std::string cursor = QueryParam(next->get<std::string>(), "cursorId");
      return IsDigits(cursor) ? cursor : std::string();
    }
    // The OpenAPI document: {"cursorId": 123, "hasMore": true}
    auto more = p->find("hasMore");
    auto id = p->find("cursorId");
    if (more == p->end() || !more->is_boolean() || !more->get<bool>() || id == p->end()) {
      return std::string();
    }
    if (id->is_number_integer()) return absl::StrCat(id->get<int64_t>());
    if (id->is_string() && IsDigits(id->get<std::string>())) return id->get<std::string>();
    return std::string();
  }
};

class ChatwootPage : public Pagination {
 public:
  absl::StatusOr<QueryParams> Query(int page_size, absl::string_view cursor) const override {
    QueryParams q;
    int64_t page = 1;
    if (!cursor.empty() && (!absl::SimpleAtoi(cursor, &page) || page < 1)) return BadCursor();
    q.emplace_back("page", absl::StrCat(page));
    if (page_size > 0) q.emplace_back("per_page", absl::StrCat(page_size));
    return q;
  }

  absl::StatusOr<std::string> NextCursor(int page_size, absl::string_view cursor,
                                         json& body) const override {
    int64_t page = 1;
    if (!cursor.empty() && !absl::SimpleAtoi(cursor, &page)) return BadCursor();
    const json* items = nullptr;
    const json* meta = nullptr;
    if (body.is_array()) {
      items = &body;
    } else if (body.is_object()) {
      if (auto it = body.find("payload"); it != body.end() && it->is_array()) items = &*it;
      if (auto it = body.find("meta"); it != body.end() && it->is_object()) meta = &*it;
    }
    const int64_t got = items == nullptr ? 0 : static_cast<int64_t>(items->size());
    if (got == 0) return std::string();
    // Chatwoot's meta carries a total under one of these names, depending on the endpoint.
    if (meta != nullptr) {
      for (const char* key : {"total_count", "all_count", "count"}) {
        auto it = meta->find(key);
        if (it == meta->end() || !it->is_number_integer()) continue;
        const int64_t per_page = page_size > 0 ? page_size : got;
        if (page * per_page < it->get<int64_t>()) return absl::StrCat(page + 1);
        return std::string();
      }
    }
    // No total: another page may exist while full pages keep coming.
    if (page_size > 0 && got >= page_size) return absl::StrCat(page + 1);
    return std::string();
  }
};

class Slice : public Pagination {
 public:
  static constexpr int kDefaultPageSize = 100;

  absl::StatusOr<QueryParams> Query(int, absl::string_view cursor) const override {
    int64_t offset = 0;
    if (!cursor.empty() && (!absl::SimpleAtoi(cursor, &offset) || offset < 0)) return BadCursor();
    return QueryParams{};
  }

  absl::StatusOr<std::string> NextCursor(int page_size, absl::string_view cursor,
                                         json& body) const override {
    int64_t offset = 0;
    if (!cursor.empty() && !absl::SimpleAtoi(cursor, &offset)) return BadCursor();
    json* items = body.is_array() ? &body : nullptr;
    if (items == nullptr && body.is_object()) {
      if (auto it = body.find("items"); it != body.end() && it->is_array()) items = &*it;
    }
    if (items == nullptr) return std::string();
    const int64_t size = page_size > 0 ? page_size : kDefaultPageSize;
    const int64_t total = static_cast<int64_t>(items->size());
    json page = json::array();
    for (int64_t i = offset; i < total && i < offset + size; ++i) page.push_back((*items)[i]);
    *items = std::move(page);
    return offset + size < total ? absl::StrCat(offset + size) : std::string();
  }
};

}  // namespace

const Pagination* FindPagination(absl::string_view name) {
  static const RespondioCursor* const kRespondio = new RespondioCursor();
  static const ChatwootPage* const kChatwoot = new ChatwootPage();
  static const Slice* const kSlice = new Slice();
  if (name == "respondio_cursor") return kRespondio;
  if (name == "chatwoot_page") return kChatwoot;
  if (name == "slice") return kSlice;
  return nullptr;
}

}  // namespace gateway::upstream
