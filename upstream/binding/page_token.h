// Opaque page tokens: what a caller passes back to get the next page.
//
// A token wraps an upstream cursor (respond.io's cursorId, Chatwoot's page number, an offset)
// together with the RPC it belongs to and a checksum, base64url-encoded. Callers cannot tell the
// upstreams' pagination styles apart, a token of one RPC is rejected by another, and a
// malformed or tampered token is INVALID_ARGUMENT (reason INVALID_PAGE_TOKEN), never an upstream
// call with garbage. Tokens are stable across replicas and restarts.
#ifndef GATEWAY_UPSTREAM_PAGE_TOKEN_H_
#define GATEWAY_UPSTREAM_PAGE_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gateway::upstream {

// The token for `cursor` of `rpc` (e.g. "/respondio.v2.ContactService/ListContacts").
std::string EncodePageToken(absl::string_view rpc, absl::string_view cursor);

// The cursor inside `token`. Errors: INVALID_ARGUMENT when the token is not one this gateway
// issued for `rpc`.
absl::StatusOr<std::string> DecodePageToken(absl::string_view rpc, absl::string_view token);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_PAGE_TOKEN_H_
