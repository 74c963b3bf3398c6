// Integration-test harness: real processes (sandbox, gateway, redis-server) on free loopback
// ports, started by the test and stopped by it.
//
//   auto sandbox = Sandbox::Start();
//   auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox->base_url()});
//   auto stub = respondio::v2::ContactService::NewStub(gateway->channel());
//   ... call, then assert on sandbox->Requests() (what the upstream saw) and the reply.
//
// Everything binds to 127.0.0.1. Processes are SIGTERMed (then SIGKILLed) in destructors.
#ifndef GATEWAY_TESTS_INTEGRATION_HARNESS_H_
#define GATEWAY_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <csignal>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "nlohmann/json.hpp"

namespace gateway::testing {

// A TCP port that was free on 127.0.0.1 a moment ago.
int FreePort();

// The absolute path of a data dependency, e.g. "sandbox/sandbox".
std::string Runfile(const std::string& workspace_relative);

// A child process whose stdout and stderr are captured.
class Process {
 public:
  // Starts `argv` and waits until its output contains `ready` (or fails after `timeout`, or when
  // the process exits first, with its output in the error).
  static absl::StatusOr<std::unique_ptr<Process>> Start(std::vector<std::string> argv,
                                                        const std::string& ready,
                                                        absl::Duration timeout = absl::Seconds(20));
  ~Process();

  // SIGTERM, then SIGKILL after `grace`. Returns the exit code (128+signal when killed).
  int Stop(absl::Duration grace = absl::Seconds(5));
  // Sends a signal without waiting.
  void Signal(int signal);
  // Whether it has exited; fills `exit_code` if so.
  bool Exited(int* exit_code = nullptr);
  // Everything it printed so far.
  std::string output() const;
  pid_t pid() const { return pid_; }

 private:
  Process() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  std::optional<int> exit_code_;
};

// Runs a command to completion; returns its exit code and output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv);

// A minimal blocking HTTP client for the sandbox's admin endpoints (test code only).
struct HttpResult {
  int status = 0;
  std::string body;
};
HttpResult HttpCall(int port, const std::string& method, const std::string& path,
                    const std::string& body = "", const std::vector<std::string>& headers = {});

// The sandbox upstream (respond.io and Chatwoot emulator).
class Sandbox {
 public:
  static std::unique_ptr<Sandbox> Start(const std::vector<std::string>& extra_args = {});
  std::string base_url() const;
  int port() const { return port_; }
  Process& process() { return *process_; }

  // Every request the sandbox received since the last reset/clear, in order.
  nlohmann::json Requests(const std::string& endpoint = "");
  void ClearRequests();
  // Adds a fault (see the sandbox's README); returns its id.
  int AddFault(const nlohmann::json& fault);
  void ClearFaults();
  // Restores seed data and clears the log, faults and rate windows.
  void Reset();

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// A gateway process listening on a free loopback port.
class Gateway {
 public:
  static std::unique_ptr<Gateway> Start(const std::vector<std::string>& args);
  // Starts it expecting failure: returns exit code and output.
  static CommandResult RunExpectingExit(const std::vector<std::string>& args);
  const std::string& address() const { return address_; }
  std::shared_ptr<grpc::Channel> channel();
  Process& process() { return *process_; }

 private:
  std::string address_;
  std::unique_ptr<Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
};

// A redis-server on a free loopback port, without persistence unless `aof_dir` is given.
class RedisServer {
 public:
  // `port` 0 picks a free one; pass a previous port to restart on the same address. With
  // `aof_dir`, Redis keeps an append-only file there fsynced before every reply (appendonly yes,
  // appendfsync always), so a restart on the same dir keeps every acknowledged write.
  static std::unique_ptr<RedisServer> Start(int port = 0, const std::string& aof_dir = "");
  std::string url() const;
  int port() const { return port_; }
  void Stop() { process_->Stop(); }
  // SIGKILL: a crash, no shutdown save.
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Stop();
  }

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// google.rpc details of a failed call (empty messages when absent).
google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status);
std::optional<google::rpc::RetryInfo> RetryInfoOf(const grpc::Status& status);
std::optional<google::rpc::BadRequest> BadRequestOf(const grpc::Status& status);
std::optional<google::rpc::QuotaFailure> QuotaFailureOf(const grpc::Status& status);

// A context with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(10));

// One unary call of `method` ("/package.Service/Method") with raw request bytes, through gRPC's
// generic stub: for methods no generated stub has (unknown RPCs), hand-made bytes, or a table of
// RPCs named at run time. Blocks until the call ends; `reply` gets the reply bytes (empty on
// error). `context` carries the deadline and metadata.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& request, std::string* reply,
                     grpc::ClientContext& context);

// Writes `content` to a new file under the test's temp dir and returns its path.
std::string WriteTempFile(const std::string& name, const std::string& content);

}  // namespace gateway::testing

#endif  // GATEWAY_TESTS_INTEGRATION_HARNESS_H_
