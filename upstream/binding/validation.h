// Request validation from `gateway.v1.field` rules, before any upstream budget is spent.
//
//   if (absl::Status s = ValidateRequest(request); !s.ok()) return s;  // INVALID_ARGUMENT
//
// Checks, recursively through set sub-messages: required fields, formats (contact identifier,
// e-mail, E.164 phone, UUID, URL), string length in characters, element counts, maximum values,
// non-negative page_size, and that every enum field holds a value the schema knows.
// The error is INVALID_ARGUMENT, reason INVALID_ARGUMENT, with metadata {field} and a BadRequest
// naming the offending field by its path (e.g. "message.attachment.url", "tags[3]").
#ifndef GATEWAY_UPSTREAM_VALIDATION_H_
#define GATEWAY_UPSTREAM_VALIDATION_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/message.h"

namespace gateway::upstream {

absl::Status ValidateRequest(const google::protobuf::Message& request);

// Checks one string against a format; returns a description of the problem or "" when valid.
std::string CheckFormat(gateway::v1::Format format, absl::string_view value);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_VALIDATION_H_
