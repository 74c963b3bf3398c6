// The one conversion from absl::Status (with google.rpc detail payloads, see upstream/errors.h)
// to grpc::Status, at the edge of the server.
//
// The details travel in the standard `grpc-status-details-bin` trailer as a serialized
// google.rpc.Status, so clients read them with their usual google.rpc libraries. Every non-OK
// status gets an ErrorInfo: one built without details gets reason = its code's name
// (e.g. "INTERNAL") and domain "gateway".
#ifndef GATEWAY_SERVICE_STATUS_CONVERSION_H_
#define GATEWAY_SERVICE_STATUS_CONVERSION_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace gateway::service {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_STATUS_CONVERSION_H_
