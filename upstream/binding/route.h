// A compiled REST binding: how one RPC becomes one upstream HTTP request.
//
// CompileRoute() resolves a method's `gateway.v1.binding` and `gateway.v1.policy` (possibly
// overridden from configuration) against the request and reply descriptors once, at start-up,
// so that a bad template is a start-up error and the hot path does no name lookups.
// BuildUpstreamRequest() then expands one request:
//
//   Route route = *CompileRoute(method, binding, policy);
//   UpstreamRequestParts parts = *BuildUpstreamRequest(route, request, /*path_defaults=*/{});
//   // parts.path_and_query == "/contact/email:a%2Fb%3Fc@x.io", parts.body == ""
//
// Routes are immutable after compilation and safe to share between threads.
#ifndef GATEWAY_UPSTREAM_ROUTE_H_
#define GATEWAY_UPSTREAM_ROUTE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace gateway::upstream {

class Pagination;

// One piece of a path template: a literal, or a placeholder naming a request field.
struct PathPart {
  std::string literal;                                      // when field_path is empty
  std::string placeholder;                                  // e.g. "identifier", "a.b"
  std::vector<const google::protobuf::FieldDescriptor*> field_path;  // resolved placeholder
};

// A cache-tag template ("contact:{identifier}") compiled against one message type: literals and
// resolved scalar fields, so expanding it does no name lookups.
struct TagTemplate {
  std::string text;             // the template as written, for messages
  std::vector<PathPart> parts;  // literal parts have an empty field_path
};

// One way an upstream may shape the reply of an RPC (one dialect's).
struct ReplyShape {
  std::string dialect;  // the dialect that answers this way
  // Reply field that receives the whole body; nullptr when the body is the whole reply.
  const google::protobuf::FieldDescriptor* response_field = nullptr;
  // binding.reply_fields compiled: JSON path in the reply (split at '.') -> reply field.
  std::vector<std::pair<std::vector<std::string>, const google::protobuf::FieldDescriptor*>>
      reply_fields;
};

// A named value hook of binding.value_hooks.
enum class ValueHook { kNone, kStripIdentifierPrefix, kIdPrefix, kEmailPrefix };

struct Route {
  std::string rpc;  // "/respondio.v2.ContactService/GetContact"
  std::string dialect = "openapi";  // the dialect this route speaks
  const google::protobuf::MethodDescriptor* method = nullptr;
  gateway::v1::Binding binding;  // effective binding (after configuration overrides)
  gateway::v1::Policy policy;    // effective policy
  std::vector<PathPart> path;
  // Top-level request fields the path consumes; they are never repeated in body or query.
  absl::flat_hash_set<const google::protobuf::FieldDescriptor*> path_fields;
  // The single body field when binding.body names one; nullptr for "" and "*".
  const google::protobuf::FieldDescriptor* body_field = nullptr;
  // Reply field that receives the upstream body; nullptr when it is the whole reply.
  const google::protobuf::FieldDescriptor* response_field = nullptr;
  // Standard fields (AIP-158 pagination, AIP-155 request id); nullptr when absent.
  const google::protobuf::FieldDescriptor* page_size_field = nullptr;
  const google::protobuf::FieldDescriptor* page_token_field = nullptr;
  const google::protobuf::FieldDescriptor* next_page_token_field = nullptr;
  const google::protobuf::FieldDescriptor* request_id_field = nullptr;
  const Pagination* pagination = nullptr;  // nullptr when the RPC does not paginate
  // policy.cache_tags and policy.invalidates compiled over the request, policy.aliases over the
  // reply.
  std::vector<TagTemplate> cache_tags;
  std::vector<TagTemplate> invalidates;
  std::vector<TagTemplate> aliases;
  // The one notion of a read, decided here: the upstream call is a GET, or the policy declares
  // it retry_safe (a POST search such as respond.io's contact list). Reads may be cached,
  // coalesced, retried on transient failures and sent on pooled connections, and are what
  // caller auth's "@read" allows; everything else is a write.
  bool read = false;
  // Dialect data compiled from the binding (see gateway.v1.Binding).
  absl::flat_hash_set<const google::protobuf::FieldDescriptor*> omit;
  absl::flat_hash_set<const google::protobuf::FieldDescriptor*> send_empty;
  absl::flat_hash_map<const google::protobuf::FieldDescriptor*, std::string> wire_names;
  absl::flat_hash_map<const google::protobuf::FieldDescriptor*, ValueHook> value_hooks;
  bool query_brackets = false;  // repeated query fields as name[]=
  // How replies may arrive: [0] is the spoken dialect's shape, the others' follow, so a reply in
  // any known dialect's shape decodes (a shape other than [0] is counted as envelope drift).
  std::vector<ReplyShape> reply_shapes;

  bool is_read() const { return read; }
};

// Expands a compiled tag template over `message` (of the type it was compiled for). Returns ""
// when a placeholder's field is unset or empty ("contact:email:" names no contact).
std::string ExpandTag(const TagTemplate& tag, const google::protobuf::Message& message);

// Compiles a binding for `method`. Errors (INVALID_ARGUMENT, naming the RPC): unknown verb or
// upstream-less binding, placeholder naming no field (or a repeated/message field) in the path or
// in a cache_tags / invalidates (request) or aliases (reply) template, unknown body or response
// field, unknown pagination hook, page fields missing on a paginated RPC.
// `dialect` names the dialect the binding belongs to (Route::dialect, reply_shapes[0]).
// Errors also for dialect data naming unknown request or reply fields, value hooks or query
// styles.
absl::StatusOr<Route> CompileRoute(const google::protobuf::MethodDescriptor* method,
                                   const gateway::v1::Binding& binding,
                                   const gateway::v1::Policy& policy,
                                   absl::string_view dialect = "openapi");

// The reply shape of `binding` (another dialect's binding of the same RPC), to append to
// Route::reply_shapes. Errors as CompileRoute's for response_body and reply_fields.
absl::StatusOr<ReplyShape> CompileReplyShape(const google::protobuf::MethodDescriptor* method,
                                             const gateway::v1::Binding& binding,
                                             absl::string_view dialect);

struct UpstreamRequestParts {
  std::string path_and_query;  // relative to the upstream base URL, percent-encoded
  std::string body;            // JSON, or "" when the binding has no body
  bool has_body = false;
};

// Values for placeholders whose request field is zero or empty (e.g. Chatwoot's account_id).
using PathDefaults = absl::flat_hash_map<std::string, std::string>;

// Expands `request` through `route`. `extra_query` (pagination parameters) is appended.
// Errors: INVALID_ARGUMENT when a path field is empty and has no default.
absl::StatusOr<UpstreamRequestParts> BuildUpstreamRequest(
    const Route& route, const google::protobuf::Message& request, const PathDefaults& defaults,
    const std::vector<std::pair<std::string, std::string>>& extra_query = {});

// Percent-encodes `value` as one path segment: everything but RFC 3986 unreserved characters,
// ':' and '@' is escaped, so '/', '?', '#', '%' and '+' can never change the path or query.
std::string PercentEncodePathSegment(absl::string_view value);

// Percent-encodes a query key or value (everything but unreserved characters).
std::string PercentEncodeQuery(absl::string_view value);

// Expands a template such as "contact:{identifier}" over any message, resolving names per call
// (for event payloads; routes use their compiled TagTemplates and ExpandTag). Placeholders
// naming unset fields expand to "". Unknown placeholders are kept verbatim.
std::string ExpandTemplate(absl::string_view templ, const google::protobuf::Message& request);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_ROUTE_H_
