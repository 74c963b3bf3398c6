// Test helpers: the google.rpc detail messages an absl::Status carries (see upstream/errors.h).
#ifndef GATEWAY_TESTS_UPSTREAM_STATUS_DETAILS_H_
#define GATEWAY_TESTS_UPSTREAM_STATUS_DETAILS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "upstream/errors.h"

namespace gateway::testing {

// The detail of type `Proto` carried by `status`, or nullopt.
template <typename Proto>
std::optional<Proto> DetailOf(const absl::Status& status) {
  const std::string url =
      absl::StrCat("type.googleapis.com/", Proto::descriptor()->full_name());
  for (const auto& any : upstream::ErrorDetailsOf(status)) {
    if (any.type_url() != url) continue;
    Proto proto;
    if (!any.UnpackTo(&proto)) return std::nullopt;
    return proto;
  }
  return std::nullopt;
}

inline google::rpc::ErrorInfo ErrorInfoOf(const absl::Status& status) {
  return DetailOf<google::rpc::ErrorInfo>(status).value_or(google::rpc::ErrorInfo());
}

// The field of the only BadRequest violation, "" when there is none, "<n violations>" otherwise.
inline std::string BadRequestFieldOf(const absl::Status& status) {
  auto bad = DetailOf<google::rpc::BadRequest>(status);
  if (!bad.has_value() || bad->field_violations_size() == 0) return "";
  if (bad->field_violations_size() != 1) {
    return absl::StrCat("<", bad->field_violations_size(), " violations>");
  }
  return bad->field_violations(0).field();
}

}  // namespace gateway::testing

#endif  // GATEWAY_TESTS_UPSTREAM_STATUS_DETAILS_H_
