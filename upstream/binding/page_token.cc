#include "upstream/binding/page_token.h"

#include <cstdint>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "upstream/errors.h"
#include "upstream/stable_hash.h"

namespace gateway::upstream {
namespace {

constexpr absl::string_view kVersion = "p1";

std::string Body(absl::string_view rpc, absl::string_view cursor) {
  return absl::StrCat(kVersion, "\n", absl::StrFormat("%08x", StableHash(rpc) & 0xffffffffu), "\n",
                      cursor);
}

absl::Status BadToken(absl::string_view why) {
  return GatewayError(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("page_token: ", why,
                                   "; pass a next_page_token from the same RPC, or empty for the "
                                   "first page"),
                      {.reason = "INVALID_PAGE_TOKEN",
                       .metadata = {{"field", "page_token"}},
                       .field_violations = {{"page_token", std::string(why)}}});
}

}  // namespace

std::string EncodePageToken(absl::string_view rpc, absl::string_view cursor) {
  const std::string body = Body(rpc, cursor);
  return absl::WebSafeBase64Escape(
      absl::StrCat(body, "\n", absl::StrFormat("%016x", StableHash(body))));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view rpc, absl::string_view token) {
  std::string raw;
  if (token.size() > 4096 || !absl::WebSafeBase64Unescape(token, &raw)) {
    return BadToken("not a valid page token");
  }
  const size_t last = raw.rfind('\n');
  if (last == std::string::npos) return BadToken("not a valid page token");
  const absl::string_view body = absl::string_view(raw).substr(0, last);
  if (absl::string_view(raw).substr(last + 1) != absl::StrFormat("%016x", StableHash(body))) {
    return BadToken("not a valid page token");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(body, absl::MaxSplits('\n', 2));
  if (parts.size() != 3 || parts[0] != kVersion) return BadToken("not a valid page token");
  if (parts[1] != absl::StrFormat("%08x", StableHash(rpc) & 0xffffffffu)) {
    return BadToken("the token belongs to another RPC");
  }
  return std::string(parts[2]);
}

}  // namespace gateway::upstream
