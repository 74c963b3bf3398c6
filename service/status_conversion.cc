#include "service/status_conversion.h"

#include <string>

#include "absl/strings/ascii.h"
#include "google/rpc/status.pb.h"
#include "upstream/errors.h"

namespace gateway::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  absl::Status with_info = status;
  if (upstream::ErrorReasonOf(status).empty()) {
    with_info = upstream::GatewayError(
        status.code(), status.message(),
        {.reason = absl::AsciiStrToUpper(absl::StatusCodeToString(status.code()))});
    // Keep any other detail payloads the original carried.
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
      if (!with_info.GetPayload(url).has_value()) with_info.SetPayload(url, payload);
    });
  }
  google::rpc::Status proto;
  proto.set_code(static_cast<int>(status.code()));
  proto.set_message(std::string(status.message()));
  for (auto& any : upstream::ErrorDetailsOf(with_info)) *proto.add_details() = std::move(any);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      proto.SerializeAsString());
}

}  // namespace gateway::service
