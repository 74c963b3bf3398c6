// gRPC health and server reflection on a live gateway: health reflects readiness, and
// reflection lists and describes every service, including the generically served ones.
#include <memory>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::IsSupersetOf;

const std::set<std::string> kServedServices = {
    "chatwoot.v1.AccountService",       "chatwoot.v1.ContactService",
    "chatwoot.v1.ConversationService",  "chatwoot.v1.GroupService",
    "chatwoot.v1.MessageService",
    "respondio.v2.CommentService",      "respondio.v2.ContactService",
    "respondio.v2.ConversationService", "respondio.v2.CustomFieldService",
    "respondio.v2.MessageService",      "respondio.v2.SpaceService",
    "respondio.v2.TagService"};

class HealthReflectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sandbox_ = Sandbox::Start({"--rate_limits=false"}).release();
    ASSERT_NE(sandbox_, nullptr);
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--chatwoot_base_url=" + sandbox_->base_url()})
                   .release();
    ASSERT_NE(gateway_, nullptr);
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete sandbox_;
  }

  static grpc::Status Check(const std::string& service, HealthCheckResponse* reply) {
    HealthCheckRequest request;
    request.set_service(service);
    return Health::NewStub(gateway_->channel())->Check(Context().get(), request, reply);
  }

  // One reflection round trip on a fresh v1 stream.
  template <typename Reflection, typename Request, typename Response>
  static Response Ask(const Request& request) {
    auto stub = Reflection::NewStub(gateway_->channel());
    auto context = Context();
    auto stream = stub->ServerReflectionInfo(context.get());
    Response response;
    EXPECT_TRUE(stream->Write(request));
    EXPECT_TRUE(stream->Read(&response));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    return response;
  }

  static Sandbox* sandbox_;
  static Gateway* gateway_;
};
Sandbox* HealthReflectionTest::sandbox_ = nullptr;
Gateway* HealthReflectionTest::gateway_ = nullptr;

TEST_F(HealthReflectionTest, ServerServiceAndLivenessAreServing) {
  for (const std::string service :
       {"", "liveness", "respondio.v2.ContactService", "chatwoot.v1.GroupService"}) {
    HealthCheckResponse reply;
    grpc::Status status = Check(service, &reply);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(reply.status(), HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(HealthReflectionTest, UnknownServiceIsNotFound) {
  HealthCheckResponse reply;
  EXPECT_EQ(Check("no.such.Service", &reply).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(HealthReflectionTest, WatchStreamsTheCurrentStatus) {
  auto stub = Health::NewStub(gateway_->channel());
  auto context = Context(absl::Seconds(5));
  HealthCheckRequest request;
  auto reader = stub->Watch(context.get(), request);
  HealthCheckResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  EXPECT_EQ(reply.status(), HealthCheckResponse::SERVING);
  context->TryCancel();
}

TEST_F(HealthReflectionTest, V1ListsEveryServedServiceAndItsOwn) {
  grpc::reflection::v1::ServerReflectionRequest request;
  request.set_list_services("*");
  auto response = Ask<grpc::reflection::v1::ServerReflection,
                      grpc::reflection::v1::ServerReflectionRequest,
                      grpc::reflection::v1::ServerReflectionResponse>(request);
  std::set<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.insert(service.name());
  }
  EXPECT_THAT(names, IsSupersetOf(kServedServices));
  EXPECT_THAT(names, IsSupersetOf({"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                                   "grpc.reflection.v1alpha.ServerReflection",
                                   "gateway.v1.EventService"}));
  EXPECT_EQ(names.size(), kServedServices.size() + 4);
}

TEST_F(HealthReflectionTest, V1AlphaDescribesAGenericallyServedService) {
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_file_containing_symbol("respondio.v2.ContactService");
  auto response = Ask<grpc::reflection::v1alpha::ServerReflection,
                      grpc::reflection::v1alpha::ServerReflectionRequest,
                      grpc::reflection::v1alpha::ServerReflectionResponse>(request);
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  std::set<std::string> files;
  bool found_method = false;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.insert(file.name());
    for (const auto& service : file.service()) {
      if (service.name() != "ContactService") continue;
      for (const auto& method : service.method()) {
        if (method.name() == "GetContact") {
          found_method = true;
          EXPECT_EQ(method.input_type(), ".respondio.v2.GetContactRequest");
        }
      }
    }
  }
  EXPECT_TRUE(found_method);
  // The file comes first, then its imports, so a client can build the whole pool.
  EXPECT_THAT(files, IsSupersetOf({"respondio/v2/contact_service.proto",
                                   "respondio/v2/resources.proto",
                                   "gateway/v1/annotations.proto",
                                   "google/protobuf/descriptor.proto"}));
}

TEST_F(HealthReflectionTest, FileByNameAndExtensions) {
  grpc::reflection::v1::ServerReflectionRequest by_name;
  by_name.set_file_by_filename("grpc/health/v1/health.proto");
  auto file = Ask<grpc::reflection::v1::ServerReflection,
                  grpc::reflection::v1::ServerReflectionRequest,
                  grpc::reflection::v1::ServerReflectionResponse>(by_name);
  ASSERT_EQ(file.file_descriptor_response().file_descriptor_proto_size(), 1);

  // The binding options are extensions of MethodOptions.
  grpc::reflection::v1::ServerReflectionRequest extensions;
  extensions.set_all_extension_numbers_of_type("google.protobuf.MethodOptions");
  auto numbers = Ask<grpc::reflection::v1::ServerReflection,
                     grpc::reflection::v1::ServerReflectionRequest,
                     grpc::reflection::v1::ServerReflectionResponse>(extensions);
  ASSERT_TRUE(numbers.has_all_extension_numbers_response()) << numbers.DebugString();
  ASSERT_GT(numbers.all_extension_numbers_response().extension_number_size(), 0);

  grpc::reflection::v1::ServerReflectionRequest by_extension;
  by_extension.mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.MethodOptions");
  by_extension.mutable_file_containing_extension()->set_extension_number(
      numbers.all_extension_numbers_response().extension_number(0));
  auto ext_file = Ask<grpc::reflection::v1::ServerReflection,
                      grpc::reflection::v1::ServerReflectionRequest,
                      grpc::reflection::v1::ServerReflectionResponse>(by_extension);
  ASSERT_TRUE(ext_file.has_file_descriptor_response()) << ext_file.DebugString();
  google::protobuf::FileDescriptorProto first;
  ASSERT_TRUE(first.ParseFromString(ext_file.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(first.name(), "gateway/v1/annotations.proto");
}

TEST_F(HealthReflectionTest, UnknownSymbolIsAnErrorResponseOnAStreamThatGoesOn) {
  auto stub = grpc::reflection::v1::ServerReflection::NewStub(gateway_->channel());
  auto context = Context();
  auto stream = stub->ServerReflectionInfo(context.get());
  grpc::reflection::v1::ServerReflectionRequest request;
  request.set_file_containing_symbol("no.such.Symbol");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(response.original_request().file_containing_symbol(), "no.such.Symbol");
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_GT(response.list_services_response().service_size(), 10);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace gateway::testing
