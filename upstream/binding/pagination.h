// Pagination hooks: the only code that knows how each upstream pages its lists.
//
// An RPC names its hook in `gateway.v1.binding.pagination`. Callers always see AIP-158 paging
// (page_size, page_token, next_page_token); a hook turns the opaque token's cursor into upstream
// query parameters and reads the next cursor back from the upstream's reply.
//
//   "respondio_cursor": cursorId/limit; next cursor from pagination.next (a URL carrying
//                       cursorId) or from pagination.{cursorId, hasMore}.
//   "chatwoot_page":    page/per_page (lists that honour per_page, e.g. group members); the
//                       next page exists while meta's total_count/count says more remain (using
//                       meta.per_page when present), or, without a total, while full pages come.
//   "chatwoot_fixed_page": page only, for lists whose page size the upstream fixes (contacts 15,
//                       conversations 25); the gateway serves each upstream page in slices of
//                       page_size, so callers still get at most page_size items.
//   "slice":            the upstream returns the whole list as one JSON array (bare, or under
//                       `items` or Chatwoot's `payload`); the gateway serves it page by page
//                       (offset cursors).
//
// Hooks are stateless singletons, safe to use from any thread.
#ifndef GATEWAY_UPSTREAM_PAGINATION_H_
#define GATEWAY_UPSTREAM_PAGINATION_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {

class Pagination {
 public:
  virtual ~Pagination() = default;
  // Query parameters selecting the page after `cursor` ("" = first page) of at most `page_size`
  // items (0 = upstream default). Errors: INVALID_ARGUMENT for a cursor this hook never issued.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Query(
      int page_size, absl::string_view cursor) const = 0;
  // The cursor of the next page ("" on the last page), read from the upstream's `body`, which
  // the hook may trim to the requested page.
  virtual absl::StatusOr<std::string> NextCursor(int page_size, absl::string_view cursor,
                                                 nlohmann::json& body) const = 0;
};

// The hook called `name`, or nullptr when there is none.
const Pagination* FindPagination(absl::string_view name);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PAGINATION_H_
