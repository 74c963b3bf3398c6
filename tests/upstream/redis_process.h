// Test helper: a real redis-server on a free 127.0.0.1 port, started and stopped by the test.
//
//   RedisProcess server;             // picks a free port
//   ASSERT_TRUE(server.Start());    // waits until it accepts connections
//   ... RedisClient::Options{.port = server.port()} ...
//   server.Stop();                  // SIGTERM and reap; Start() again reuses the port
#ifndef GATEWAY_TESTS_UPSTREAM_REDIS_PROCESS_H_
#define GATEWAY_TESTS_UPSTREAM_REDIS_PROCESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "upstream/transport/redis_client.h"

namespace gateway::testing {

class RedisProcess {
 public:
  RedisProcess() : port_(FreePort()) {}
  ~RedisProcess() { Stop(); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  int port() const { return port_; }
  bool running() const { return pid_ > 0; }

  // Starts redis-server (no persistence) and waits up to 10 s until it accepts connections.
  bool Start() {
    if (pid_ > 0) return true;
    const std::string port = absl::StrCat(port_);
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = tmp != nullptr ? tmp : "/tmp";
    const std::string binary =
        access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : "redis-server";
    std::vector<std::string> args = {binary,          "--port",       port,
                                     "--bind",        "127.0.0.1",    "--save",
                                     "",              "--appendonly", "no",
                                     "--dir",         dir,            "--loglevel",
                                     "warning",       "--daemonize",  "no"};
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      if (Accepting()) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // died (e.g. port taken)
        pid_ = -1;
        return false;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    Stop();
    return false;
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);  // a paused server cannot act on SIGTERM
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Freezes the server (SIGSTOP) so commands wait unanswered, and lets it go on (SIGCONT).
  void Pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }

  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

 private:
  bool Accepting() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
  }

  const int port_;
  pid_t pid_ = -1;
};

// Fixture base for "two replicas on one Redis" tests: one redis-server for the suite, two
// RedisClients on it (`redis_a_`, `redis_b_`), the database flushed before every test. A test
// may Stop() and Start() `server_` (same port) to simulate an outage.
class TwoRedisClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new RedisProcess();
    ASSERT_TRUE(server_->Start()) << "cannot start redis-server";
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->Start());
    upstream::RedisClient::Options o;
    o.port = server_->port();
    o.retry_interval = absl::Milliseconds(50);
    redis_a_ = std::make_unique<upstream::RedisClient>(o);
    redis_b_ = std::make_unique<upstream::RedisClient>(o);
    ASSERT_TRUE(redis_a_->CommandSync({"FLUSHALL"}).ok());
  }
  // Subclasses destroy what uses the clients first, then call this.
  void TearDown() override {
    redis_a_.reset();
    redis_b_.reset();
  }

  inline static RedisProcess* server_ = nullptr;
  std::unique_ptr<upstream::RedisClient> redis_a_, redis_b_;
};

}  // namespace gateway::testing

#endif  // GATEWAY_TESTS_UPSTREAM_REDIS_PROCESS_H_
