#include "upstream/binding/pagination.h"

#include <algorithm>
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

// Chatwoot wraps lists as {meta, payload}, and conversation lists once more as
// {data: {meta, payload}}; a few lists are bare arrays.
json* ChatwootItems(json& body) {
  if (body.is_array()) return &body;
  if (!body.is_object()) return nullptr;
  if (auto it = body.find("payload"); it != body.end() && it->is_array()) return &*it;
  if (auto data = body.find("data"); data != body.end() && data->is_object()) {
    if (auto it = data->find("payload"); it != data->end() && it->is_array()) return &*it;
  }
  return nullptr;
}

const json* ChatwootMeta(const json& body) {
  if (!body.is_object()) return nullptr;
  if (auto it = body.find("meta"); it != body.end() && it->is_object()) return &*it;
  if (auto data = body.find("data"); data != body.end() && data->is_object()) {
    if (auto it = data->find("meta"); it != data->end() && it->is_object()) return &*it;
  }
  return nullptr;
}

// A non-negative integer from meta (Chatwoot writes some as strings), or -1.
int64_t MetaInt(const json* meta, const char* key) {
  if (meta == nullptr) return -1;
  auto it = meta->find(key);
  if (it == meta->end()) return -1;
  int64_t v = -1;
  if (it->is_number_integer()) {
    v = it->get<int64_t>();
  } else if (it->is_string() && !absl::SimpleAtoi(it->get<std::string>(), &v)) {
    return -1;
  }
  return v >= 0 ? v : -1;
}

// The total number of items of the whole list, when meta reports it. Only totals that count
// exactly the listed items: conversation lists carry mine/assigned/unassigned/all counts that
// depend on the assignee filter, so they are never used.
int64_t ChatwootTotal(const json* meta) {
  for (const char* key : {"total_count", "count"}) {
    if (int64_t v = MetaInt(meta, key); v >= 0) return v;
  }
  return -1;
}

// Lists that honour per_page (group members): the cursor is the page number.
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
    const json* items = ChatwootItems(body);
    const json* meta = ChatwootMeta(body);
    const int64_t got = items == nullptr ? 0 : static_cast<int64_t>(items->size());
    if (got == 0) return std::string();
    if (const int64_t total = ChatwootTotal(meta); total >= 0) {
      // The page size the upstream applied: what meta says, else what was asked, else what came.
      int64_t per_page = MetaInt(meta, "per_page");
      if (per_page <= 0) per_page = page_size > 0 ? page_size : got;
      return page * per_page < total ? absl::StrCat(page + 1) : std::string();
    }
    // No total: another page may exist while full pages keep coming.
    if (page_size > 0 && got >= page_size) return absl::StrCat(page + 1);
    return std::string();
  }
};

// Lists served in pages of a size the upstream fixes and per_page cannot change (contacts: 15,
// conversations: 25). The gateway still honours page_size: it serves an upstream page in slices.
// The cursor is "<offset>:<upstream page length>": how many items the caller has seen, and the
// length of a full upstream page, learned from the first one.
class ChatwootFixedPage : public Pagination {
 public:
  absl::StatusOr<QueryParams> Query(int, absl::string_view cursor) const override {
    int64_t offset = 0, page_len = 0;
    if (!Parse(cursor, &offset, &page_len)) return BadCursor();
    const int64_t page = page_len > 0 ? offset / page_len + 1 : 1;
    return QueryParams{{"page", absl::StrCat(page)}};
  }

  absl::StatusOr<std::string> NextCursor(int page_size, absl::string_view cursor,
                                         json& body) const override {
    int64_t offset = 0, page_len = 0;
    if (!Parse(cursor, &offset, &page_len)) return BadCursor();
    json* items = ChatwootItems(body);
    if (items == nullptr) return std::string();
    const int64_t got = static_cast<int64_t>(items->size());
    if (page_len == 0) page_len = got;  // the first page: full, or the only one
    const int64_t skip = page_len > 0 ? offset % page_len : 0;
    const int64_t available = std::max<int64_t>(got - skip, 0);
    const int64_t take = page_size > 0 ? std::min<int64_t>(page_size, available) : available;
    json page = json::array();
    for (int64_t i = skip; i < skip + take; ++i) page.push_back(std::move((*items)[i]));
    *items = std::move(page);
    if (take == 0) return std::string();
    const int64_t seen = offset + take;
    bool more;
    if (const int64_t total = ChatwootTotal(ChatwootMeta(body)); total >= 0) {
      more = seen < total;
    } else {
      // Without a total: the rest of this upstream page, or the next one after a full page.
      more = skip + take < got || got >= page_len;
    }
    return more ? absl::StrCat(seen, ":", page_len) : std::string();
  }

 private:
  static bool Parse(absl::string_view cursor, int64_t* offset, int64_t* page_len) {
    *offset = 0;
    *page_len = 0;
    if (cursor.empty()) return true;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(cursor, absl::MaxSplits(':', 1));
    return IsDigits(parts.first) && IsDigits(parts.second) &&
           absl::SimpleAtoi(parts.first, offset) && absl::SimpleAtoi(parts.second, page_len) &&
           *page_len > 0;
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
    // Negative offsets too: (*items)[-1] below would index past the array (undefined behaviour).
    if (!cursor.empty() && (!absl::SimpleAtoi(cursor, &offset) || offset < 0)) return BadCursor();
    json* items = body.is_array() ? &body : nullptr;
    if (items == nullptr && body.is_object()) {
      if (auto it = body.find("items"); it != body.end() && it->is_array()) items = &*it;
    }
    if (items == nullptr) items = ChatwootItems(body);  // {payload: [...]}
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
  static const ChatwootFixedPage* const kChatwootFixed = new ChatwootFixedPage();
  static const Slice* const kSlice = new Slice();
  if (name == "respondio_cursor") return kRespondio;
  if (name == "chatwoot_page") return kChatwoot;
  if (name == "chatwoot_fixed_page") return kChatwootFixed;
  if (name == "slice") return kSlice;
  return nullptr;
}

}  // namespace gateway::upstream
