// The benchmark's baseline: the least a C++ gRPC server can do for a unary call. A callback
// generic service (like the gateway's) answers every method with the same reply bytes, read
// once from a file: `make bench` fills it with what the gateway returns for
// GetContact(id:12345), so both servers put identical bytes on the wire.
//
//   bare_server --listen=127.0.0.1:0 --reply_file=/tmp/reply.bin
//   # stdout: "bare server listening on 127.0.0.1:PORT (N reply bytes)"; SIGTERM/SIGINT stop it
//
// Same ServerBuilder defaults as the gateway (no tuning), so the difference measured is the
// gateway's own work per call.
#include <pthread.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT to serve on; port 0 picks a free one");
ABSL_FLAG(std::string, reply_file, "", "file holding the serialized reply sent for every call");

namespace {

// Reads the request, answers with the fixed reply and finishes: one unary call.
class FixedReply : public grpc::ServerGenericBidiReactor {
 public:
  explicit FixedReply(const grpc::Slice* reply) : reply_(reply) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
      return;
    }
    grpc::Slice copy(*reply_);  // a reference, not a copy of the bytes
    grpc::ByteBuffer buffer(&copy, 1);
    response_.Swap(&buffer);  // as the gateway does: assigning would add a reference and drop one
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  const grpc::Slice* reply_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

class FixedReplyService : public grpc::CallbackGenericService {
 public:
  explicit FixedReplyService(std::string reply) : reply_(std::move(reply)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* /*context*/) override {
    return new FixedReply(&reply_);
  }

 private:
  const grpc::Slice reply_;
};

}  // namespace

int main(int argc, char** argv) {
  // Taken with sigwait below; blocked before gRPC starts its threads so none of them gets it.
  sigset_t termination;
  sigemptyset(&termination);
  sigaddset(&termination, SIGTERM);
  sigaddset(&termination, SIGINT);
  pthread_sigmask(SIG_BLOCK, &termination, nullptr);
  // The same process settings as the gateway (service/main.cc), so the baseline is fair.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  absl::ParseCommandLine(argc, argv);
  const std::string reply_file = absl::GetFlag(FLAGS_reply_file);
  std::ifstream in(reply_file, std::ios::binary);
  if (reply_file.empty() || !in) {
    std::cerr << "bare_server: --reply_file must name a readable file\n";
    return 2;
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  const std::string reply = bytes.str();

  FixedReplyService service(reply);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "bare_server: cannot listen on " << listen << "\n";
    return 2;
  }
  std::cout << "bare server listening on " << listen.substr(0, listen.rfind(':')) << ":" << port
            << " (" << reply.size() << " reply bytes)" << std::endl;

  int signal_number = 0;
  sigwait(&termination, &signal_number);
  server->Shutdown();
  server->Wait();
  return 0;
}
