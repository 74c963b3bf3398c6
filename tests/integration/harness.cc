#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/security/credentials.h"

extern char** environ;

namespace gateway::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string Runfile(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return workspace_relative;
  return absl::StrCat(srcdir, "/", workspace == nullptr ? "gateway" : workspace, "/",
                      workspace_relative);
}

absl::StatusOr<std::unique_ptr<Process>> Process::Start(std::vector<std::string> argv,
                                                        const std::string& ready,
                                                        absl::Duration timeout) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::unique_ptr<Process> p(new Process());
  const int rc = posix_spawnp(&p->pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("cannot start ", argv[0]));
  }
  p->out_fd_ = pipe_fds[0];
  Process* raw = p.get();
  p->reader_ = std::thread([raw] {
    char buf[4096];
    while (true) {
      const ssize_t n = read(raw->out_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      absl::MutexLock lock(&raw->mu_);
      raw->output_.append(buf, static_cast<size_t>(n));
    }
  });
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    {
      absl::MutexLock lock(&p->mu_);
      // Await evaluates the condition with mu_ held; the analysis cannot see that inside a
      // lambda, so the lambda reads output_ through a pointer taken under the lock.
      const std::string* output = &p->output_;
      auto has_ready = [output, &ready] { return absl::StrContains(*output, ready); };
      if (p->mu_.AwaitWithTimeout(absl::Condition(&has_ready), absl::Milliseconds(50))) {
        return p;
      }
    }
    if (p->Exited()) {
      return absl::InternalError(absl::StrCat(argv[0], " exited before it was ready:\n", p->output()));
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat(argv[0], " was not ready in time; output:\n", p->output()));
}

bool Process::Exited(int* exit_code) {
  if (!exit_code_.has_value() && pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
  if (exit_code_.has_value() && exit_code != nullptr) *exit_code = *exit_code_;
  return exit_code_.has_value();
}

void Process::Signal(int signal) {
  if (!Exited()) kill(pid_, signal);
}

int Process::Stop(absl::Duration grace) {
  if (!Exited()) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + grace;
    while (!Exited() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    if (!Exited()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_code_ = 128 + SIGKILL;
    }
  }
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) {
    close(out_fd_);
    out_fd_ = -1;
  }
  return *exit_code_;
}

Process::~Process() { Stop(); }

std::string Process::output() const {
  absl::MutexLock lock(&mu_);
  return output_;
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  CommandResult result;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    result.output = absl::StrCat("pipe: ", strerror(errno));
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    return result;
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) result.output.append(buf, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

HttpResult HttpCall(int port, const std::string& method, const std::string& path,
                    const std::string& body, const std::vector<std::string>& headers) {
  HttpResult result;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return result;
  }
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                     "Connection: close\r\nContent-Type: application/json\r\n",
                                     "Content-Length: ", body.size(), "\r\n");
  for (const auto& h : headers) absl::StrAppend(&request, h, "\r\n");
  absl::StrAppend(&request, "\r\n", body);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) return result;
  std::vector<std::string> first = absl::StrSplit(response.substr(0, response.find("\r\n")), ' ');
  if (first.size() >= 2) absl::SimpleAtoi(first[1], &result.status);
  std::string raw_body = response.substr(header_end + 4);
  const std::string head = absl::AsciiStrToLower(response.substr(0, header_end));
  if (absl::StrContains(head, "transfer-encoding: chunked")) {
    // De-chunk.
    std::string out;
    size_t pos = 0;
    while (pos < raw_body.size()) {
      const size_t line_end = raw_body.find("\r\n", pos);
      if (line_end == std::string::npos) break;
      const size_t size = std::strtoul(raw_body.substr(pos, line_end - pos).c_str(), nullptr, 16);
      if (size == 0) break;
      out.append(raw_body, line_end + 2, size);
      pos = line_end + 2 + size + 2;
    }
    raw_body = out;
  }
  result.body = raw_body;
  return result;
}

// The dialect the sandbox speaks in these tests unless extra_args say otherwise: openapi, like
// Gateway::Start below, because these tests were written against the OpenAPI bindings (both
// programs default to live; dialects_e2e_test covers every RPC in both dialects).
constexpr char kSandboxDialect[] = "openapi";

std::unique_ptr<Sandbox> Sandbox::Start(const std::vector<std::string>& extra_args) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto sandbox = std::make_unique<Sandbox>();
    sandbox->port_ = FreePort();
    std::vector<std::string> argv = {Runfile("sandbox/sandbox"),
                                     absl::StrCat("--listen=127.0.0.1:", sandbox->port_),
                                     absl::StrCat("--respondio_dialect=", kSandboxDialect),
                                     absl::StrCat("--chatwoot_dialect=", kSandboxDialect)};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto p = Process::Start(argv, "sandbox listening on");
    if (p.ok()) {
      sandbox->process_ = *std::move(p);
      return sandbox;
    }
  }
  return nullptr;
}

std::string Sandbox::base_url() const { return absl::StrCat("http://127.0.0.1:", port_); }

nlohmann::json Sandbox::Requests(const std::string& endpoint) {
  HttpResult r = HttpCall(port_, "GET",
                          endpoint.empty() ? "/__admin/requests"
                                           : absl::StrCat("/__admin/requests?endpoint=", endpoint));
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("requests")) return nlohmann::json::array();
  return j["requests"];
}

void Sandbox::ClearRequests() { HttpCall(port_, "DELETE", "/__admin/requests"); }

int Sandbox::AddFault(const nlohmann::json& fault) {
  HttpResult r = HttpCall(port_, "POST", "/__admin/faults", fault.dump());
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("id") ? j["id"].get<int>() : -1;
}

void Sandbox::ClearFaults() { HttpCall(port_, "DELETE", "/__admin/faults"); }

void Sandbox::Reset() { HttpCall(port_, "POST", "/__admin/reset"); }

std::unique_ptr<Gateway> Gateway::Start(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("service/gateway"), "--listen=127.0.0.1:0"};
  // The tests written against the OpenAPI bindings speak the openapi dialect unless they ask
  // for one (the gateway's default is live).
  for (const char* flag : {"--respondio_dialect", "--chatwoot_dialect"}) {
    bool given = false;
    for (const std::string& arg : args) given |= arg.rfind(flag, 0) == 0;
    if (!given) argv.push_back(std::string(flag) + "=openapi");
  }
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Process::Start(argv, " RPCs)");
  if (!p.ok()) {
    fprintf(stderr, "gateway did not start: %s\n", std::string(p.status().message()).c_str());
    return nullptr;
  }
  auto gateway = std::make_unique<Gateway>();
  gateway->process_ = *std::move(p);
  const std::string out = gateway->process_->output();
  const size_t at = out.find("gateway listening on ");
  const size_t start = at + std::string("gateway listening on ").size();
  gateway->address_ = out.substr(start, out.find(' ', start) - start);
  return gateway;
}

CommandResult Gateway::RunExpectingExit(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("service/gateway")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

std::shared_ptr<grpc::Channel> Gateway::channel() {
  if (channel_ == nullptr) {
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }
  return channel_;
}

std::unique_ptr<RedisServer> RedisServer::Start(int port, const std::string& aof_dir) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto redis = std::make_unique<RedisServer>();
    redis->port_ = port != 0 ? port : FreePort();
    std::vector<std::string> argv = {"redis-server", "--port", absl::StrCat(redis->port_),
                                     "--bind", "127.0.0.1", "--save", ""};
    if (aof_dir.empty()) {
      argv.insert(argv.end(), {"--appendonly", "no"});
    } else {
      argv.insert(argv.end(),
                  {"--appendonly", "yes", "--appendfsync", "always", "--dir", aof_dir});
    }
    auto p = Process::Start(argv, "Ready to accept connections");
    if (p.ok()) {
      redis->process_ = *std::move(p);
      return redis;
    }
    if (port != 0) absl::SleepFor(absl::Milliseconds(200));  // the old one may still hold it
  }
  return nullptr;
}

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

namespace {
template <typename Detail>
std::optional<Detail> DetailOf(const grpc::Status& status) {
  google::rpc::Status proto;
  if (!proto.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : proto.details()) {
    Detail detail;
    if (any.UnpackTo(&detail)) return detail;
  }
  return std::nullopt;
}
}  // namespace

google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
  return DetailOf<google::rpc::ErrorInfo>(status).value_or(google::rpc::ErrorInfo());
}
std::optional<google::rpc::RetryInfo> RetryInfoOf(const grpc::Status& status) {
  return DetailOf<google::rpc::RetryInfo>(status);
}
std::optional<google::rpc::BadRequest> BadRequestOf(const grpc::Status& status) {
  return DetailOf<google::rpc::BadRequest>(status);
}
std::optional<google::rpc::QuotaFailure> QuotaFailureOf(const grpc::Status& status) {
  return DetailOf<google::rpc::QuotaFailure>(status);
}

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& request, std::string* reply,
                     grpc::ClientContext& context) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1), out;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &in, &out, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  reply->clear();
  std::vector<grpc::Slice> slices;
  if (status.ok() && out.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) reply->append(s.begin(), s.end());
  }
  return status;
}

std::string WriteTempFile(const std::string& name, const std::string& content) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir == nullptr ? "/tmp" : dir, "/", name);
  std::ofstream(path) << content;
  return path;
}

}  // namespace gateway::testing
