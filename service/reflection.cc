#include "service/reflection.h"

#include <deque>
#include <functional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/support/server_callback.h"

namespace gateway::service {
namespace {

using google::protobuf::FileDescriptor;
using google::protobuf::FileDescriptorProto;

// One answer per request, for either protocol version (their messages have the same shape).
template <typename Request, typename Response>
void Answer(const ServerReflection& reflection, const Request& request, Response* response) {
  const google::protobuf::DescriptorPool& pool = reflection.pool();
  response->set_valid_host(request.host());
  *response->mutable_original_request() = request;
  auto error = [&](grpc::StatusCode code, std::string message) {
    response->mutable_error_response()->set_error_code(code);
    response->mutable_error_response()->set_error_message(std::move(message));
  };
  auto files = [&](const FileDescriptor* file) {
    auto* out = response->mutable_file_descriptor_response();
    for (std::string& bytes : reflection.FileWithImports(file)) {
      out->add_file_descriptor_proto(std::move(bytes));
    }
  };
  switch (request.message_request_case()) {
    case Request::kFileByFilename: {
      const FileDescriptor* file = pool.FindFileByName(request.file_by_filename());
      if (file == nullptr) {
        return error(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no file named ", request.file_by_filename()));
      }
      return files(file);
    }
    case Request::kFileContainingSymbol: {
      const FileDescriptor* file = pool.FindFileContainingSymbol(request.file_containing_symbol());
      if (file == nullptr) {
        return error(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no symbol named ", request.file_containing_symbol()));
      }
      return files(file);
    }
    case Request::kFileContainingExtension: {
      const auto& ext = request.file_containing_extension();
      const auto* type = pool.FindMessageTypeByName(ext.containing_type());
      const auto* field =
          type == nullptr ? nullptr : pool.FindExtensionByNumber(type, ext.extension_number());
      if (field == nullptr) {
        return error(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no extension ", ext.extension_number(), " of ",
                                  ext.containing_type()));
      }
      return files(field->file());
    }
    case Request::kAllExtensionNumbersOfType: {
      const auto* type = pool.FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        return error(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no message type ", request.all_extension_numbers_of_type()));
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool.FindAllExtensions(type, &extensions);
      auto* out = response->mutable_all_extension_numbers_response();
      out->set_base_type_name(type->full_name());
      for (const auto* field : extensions) out->add_extension_number(field->number());
      return;
    }
    case Request::kListServices: {
      auto* out = response->mutable_list_services_response();
      for (const std::string& name : reflection.services()) out->add_service()->set_name(name);
      return;
    }
    default:
      return error(grpc::StatusCode::INVALID_ARGUMENT, "the request names no reflection query");
  }
}

// One reflection stream: read a request, write its answer, repeat until the client half-closes.
template <typename Request, typename Response>
class Stream : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit Stream(const ServerReflection* reflection) : reflection_(reflection) {
    this->StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) return this->Finish(grpc::Status::OK);
    response_.Clear();
    Answer(*reflection_, request_, &response_);
    this->StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    this->StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  const ServerReflection* reflection_;
  Request request_;
  Response response_;
};

}  // namespace

class ServerReflection::V1 : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  explicit V1(const gateway::service::ServerReflection* r) : r_(r) {}
  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext*) override {
    return new Stream<grpc::reflection::v1::ServerReflectionRequest,
                      grpc::reflection::v1::ServerReflectionResponse>(r_);
  }

 private:
  const gateway::service::ServerReflection* r_;
};

class ServerReflection::V1Alpha
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  explicit V1Alpha(const gateway::service::ServerReflection* r) : r_(r) {}
  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext*) override {
    return new Stream<grpc::reflection::v1alpha::ServerReflectionRequest,
                      grpc::reflection::v1alpha::ServerReflectionResponse>(r_);
  }

 private:
  const gateway::service::ServerReflection* r_;
};

ServerReflection::~ServerReflection() = default;

absl::StatusOr<std::unique_ptr<ServerReflection>> ServerReflection::Create(
    absl::string_view served_descriptor_set,
    const std::vector<const google::protobuf::ServiceDescriptor*>& extra_services) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(served_descriptor_set.data(),
                          static_cast<int>(served_descriptor_set.size()))) {
    return absl::InternalError("reflection: the descriptor set does not parse");
  }
  // Files by name; the first copy wins (the concatenated sets repeat shared imports).
  absl::flat_hash_map<std::string, FileDescriptorProto> protos;
  std::vector<std::string> order;
  auto add = [&](FileDescriptorProto proto) {
    const std::string name = proto.name();
    if (protos.emplace(name, std::move(proto)).second) order.push_back(name);
  };
  for (FileDescriptorProto& file : *set.mutable_file()) add(std::move(file));
  std::vector<const google::protobuf::ServiceDescriptor*> extras = extra_services;
  extras.push_back(grpc::reflection::v1::ServerReflectionRequest::descriptor()->file()->service(0));
  extras.push_back(
      grpc::reflection::v1alpha::ServerReflectionRequest::descriptor()->file()->service(0));
  for (const auto* service : extras) {
    std::deque<const FileDescriptor*> todo = {service->file()};
    while (!todo.empty()) {
      const FileDescriptor* file = todo.front();
      todo.pop_front();
      if (protos.contains(file->name())) continue;
      FileDescriptorProto proto;
      file->CopyTo(&proto);
      file->CopyJsonNameTo(&proto);
      add(std::move(proto));
      for (int i = 0; i < file->dependency_count(); ++i) todo.push_back(file->dependency(i));
    }
  }

  std::unique_ptr<ServerReflection> r(new ServerReflection());
  // BuildFile needs a file's imports first.
  std::set<std::string> built;
  std::function<absl::Status(const std::string&)> build = [&](const std::string& name) {
    if (built.count(name) > 0) return absl::OkStatus();
    auto it = protos.find(name);
    if (it == protos.end()) return absl::InternalError(absl::StrCat("reflection: missing ", name));
    built.insert(name);
    for (const std::string& dep : it->second.dependency()) {
      if (absl::Status s = build(dep); !s.ok()) return s;
    }
    if (r->pool_.BuildFile(it->second) == nullptr) {
      return absl::InternalError(absl::StrCat("reflection: cannot build ", name));
    }
    return absl::OkStatus();
  };
  std::set<std::string> services;
  for (const std::string& name : order) {
    if (absl::Status s = build(name); !s.ok()) return s;
    const FileDescriptorProto& proto = protos[name];
    r->serialized_[name] = proto.SerializeAsString();
    for (const auto& service : proto.service()) {
      services.insert(proto.package().empty() ? service.name()
                                              : absl::StrCat(proto.package(), ".", service.name()));
    }
  }
  r->services_.assign(services.begin(), services.end());
  r->v1_ = std::make_unique<V1>(r.get());
  r->v1alpha_ = std::make_unique<V1Alpha>(r.get());
  return r;
}

grpc::Service* ServerReflection::v1() { return v1_.get(); }
grpc::Service* ServerReflection::v1alpha() { return v1alpha_.get(); }

std::vector<std::string> ServerReflection::FileWithImports(const FileDescriptor* file) const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::deque<const FileDescriptor*> todo = {file};
  while (!todo.empty()) {
    const FileDescriptor* f = todo.front();
    todo.pop_front();
    if (!seen.insert(f->name()).second) continue;
    auto it = serialized_.find(f->name());
    if (it != serialized_.end()) out.push_back(it->second);
    for (int i = 0; i < f->dependency_count(); ++i) todo.push_back(f->dependency(i));
  }
  return out;
}

}  // namespace gateway::service
