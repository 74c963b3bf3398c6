#include "service/gateway_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "service/status_conversion.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

absl::Time DeadlineOf(const grpc::GenericCallbackServerContext* context, absl::Duration fallback) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::Now() + fallback;
  return absl::FromChrono(deadline);
}

// One unary call: read one request message, dispatch it, write the reply and finish.
class UnaryCall : public grpc::ServerGenericBidiReactor {
 public:
  UnaryCall(grpc::GenericCallbackServerContext* context, const upstream::Route* route,
            const upstream::Dispatcher* dispatcher, absl::Duration default_deadline)
      : context_(context), route_(route), dispatcher_(dispatcher),
        deadline_(DeadlineOf(context, default_deadline)) {
    if (route_ == nullptr) {
      Finish(ToGrpcStatus(upstream::GatewayError(
          absl::StatusCode::kUnimplemented,
          absl::StrCat("the gateway serves no RPC ", context->method()),
          {.reason = "UNKNOWN_RPC", .metadata = {{"rpc", context->method()}}})));
      return;
    }
    StartRead(&request_buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(ToGrpcStatus(upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                                 "the call carried no request message",
                                                 {.reason = "MISSING_REQUEST"})));
      return;
    }
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (request_buffer_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
    }
    const google::protobuf::Message* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            route_->method->input_type());
    std::unique_ptr<google::protobuf::Message> request(prototype->New());
    if (!request->ParseFromString(bytes)) {
      Finish(ToGrpcStatus(upstream::GatewayError(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("the request is not a valid ", route_->method->input_type()->full_name()),
          {.reason = "MALFORMED_REQUEST"})));
      return;
    }
    dispatcher_->Call(*route_, *request, {.deadline = deadline_},
                      [this](absl::StatusOr<std::string> reply) { Reply(std::move(reply)); });
  }

  void OnDone() override { delete this; }

 private:
  void Reply(absl::StatusOr<std::string> reply) {
    if (!reply.ok()) {
      Finish(ToGrpcStatus(reply.status()));
      return;
    }
    grpc::Slice slice(std::move(*reply));
    response_buffer_ = grpc::ByteBuffer(&slice, 1);
    StartWriteAndFinish(&response_buffer_, grpc::WriteOptions(), grpc::Status::OK);
  }

  grpc::GenericCallbackServerContext* context_;
  const upstream::Route* route_;
  const upstream::Dispatcher* dispatcher_;
  const absl::Time deadline_;
  grpc::ByteBuffer request_buffer_;
  grpc::ByteBuffer response_buffer_;
};

}  // namespace

GatewayService::GatewayService(const RouteTable* routes, const upstream::Dispatcher* dispatcher,
                               Options options)
    : routes_(routes), dispatcher_(dispatcher), options_(options) {}

grpc::ServerGenericBidiReactor* GatewayService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  return new UnaryCall(context, routes_->Find(context->method()), dispatcher_,
                       options_.default_deadline);
}

}  // namespace gateway::service
