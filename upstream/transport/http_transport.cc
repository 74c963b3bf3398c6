#include "upstream/transport/http_transport.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace gateway::upstream {
namespace {

// Status payload keys. Internal to the gateway: never shipped to callers (the edge only sends
// the google.rpc details that errors.h attaches).
constexpr absl::string_view kNotSentKey = "gateway.upstream/not-sent";
constexpr absl::string_view kTooLargeKey = "gateway.upstream/response-too-large";

}  // namespace

bool IsNotSent(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kNotSentKey).has_value();
}

absl::Status MarkNotSent(absl::Status status) {
  if (!status.ok()) status.SetPayload(kNotSentKey, absl::Cord("1"));
  return status;
}

absl::Status ResponseTooLargeError(absl::string_view what) {
  absl::Status status = absl::OutOfRangeError(absl::StrCat("upstream response too large: ", what));
  status.SetPayload(kTooLargeKey, absl::Cord("1"));
  return status;
}

bool IsResponseTooLarge(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kTooLargeKey).has_value();
}

}  // namespace gateway::upstream
