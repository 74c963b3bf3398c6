// gRPC server reflection (grpc.reflection.v1 and v1alpha) over the gateway's own descriptors.
//
// The stock reflection plugin lists only services registered with the ServerBuilder; every RPC
// of the gateway is served by one generic handler, so it would list none of them. This one
// answers from a descriptor pool built from ServedDescriptorSet() plus the descriptors of the
// extra services the server registers (health, reflection itself):
//
//   auto reflection = ServerReflection::Create(ServedDescriptorSet(), {health_service_descriptor});
//   builder.RegisterService((*reflection)->v1());
//   builder.RegisterService((*reflection)->v1alpha());
//
// `buf curl --list-methods`, `grpcurl list/describe` and grpc-js reflection clients work with it.
// Immutable after construction; thread-safe. Must outlive the server.
#ifndef GATEWAY_SERVICE_REFLECTION_H_
#define GATEWAY_SERVICE_REFLECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace gateway::service {

class ServerReflection {
 public:
  // `served_descriptor_set`: a serialized FileDescriptorSet (with imports) whose services are
  // all listed. `extra_services`: services of generated code linked into the binary (their
  // files and imports are added to the pool). Both reflection services always list themselves.
  static absl::StatusOr<std::unique_ptr<ServerReflection>> Create(
      absl::string_view served_descriptor_set,
      const std::vector<const google::protobuf::ServiceDescriptor*>& extra_services);
  ~ServerReflection();

  grpc::Service* v1();
  grpc::Service* v1alpha();

  // Sorted full names of every listed service.
  const std::vector<std::string>& services() const { return services_; }

  // The serialized FileDescriptorProtos of `file` and its transitive imports (file first).
  std::vector<std::string> FileWithImports(const google::protobuf::FileDescriptor* file) const;
  const google::protobuf::DescriptorPool& pool() const { return pool_; }

 private:
  ServerReflection() = default;
  class V1;
  class V1Alpha;
  google::protobuf::DescriptorPool pool_;
  std::vector<std::string> services_;
  // Serialized FileDescriptorProtos by file name (served files keep their comments).
  absl::flat_hash_map<std::string, std::string> serialized_;
  std::unique_ptr<V1> v1_;
  std::unique_ptr<V1Alpha> v1alpha_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_REFLECTION_H_
