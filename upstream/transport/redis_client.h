// A small asynchronous Redis client: a fixed pool of connections, each driven by one worker
// thread with hiredis' blocking API. Callers never block (except CommandSync, for start-up and
// tests); the number of threads is fixed, not one per waiting call.
//
//   RedisClient redis(*RedisClient::ParseUrl("redis://127.0.0.1:6379"));
//   redis.Eval(kScript, {"key"}, {"arg"}, [](absl::StatusOr<RedisReply> r) { ... });
//
// A connection that fails is dropped; while Redis is down, commands fail fast with UNAVAILABLE
// (one reconnect attempt per `retry_interval`) instead of each waiting for a connect timeout.
// Thread-safe. Callbacks run on a worker thread and must not block for long.
#ifndef GATEWAY_UPSTREAM_REDIS_CLIENT_H_
#define GATEWAY_UPSTREAM_REDIS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gateway::upstream {

struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kArray, kError };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisReply> elements;
  bool is_error() const { return type == Type::kError; }
};

class RedisClient {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;
    int connections = 4;
    absl::Duration timeout = absl::Milliseconds(250);       // connect and command timeout
    absl::Duration retry_interval = absl::Milliseconds(500);  // fail fast this long after a failure
  };
  // Parses "redis://host:port[/db]". Errors: INVALID_ARGUMENT naming what is wrong.
  static absl::StatusOr<Options> ParseUrl(absl::string_view url);

  explicit RedisClient(Options options);
  ~RedisClient();  // fails queued commands with CANCELLED and joins the workers

  using Callback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>) &&>;
  // Runs one command. Errors: UNAVAILABLE when Redis cannot be reached; a Redis error reply is
  // a RedisReply of type kError, not a Status.
  void Command(std::vector<std::string> args, Callback done);
  // EVALSHA of `script` (loaded on first use), falling back to EVAL on NOSCRIPT.
  void Eval(const std::string& script, std::vector<std::string> keys,
            std::vector<std::string> args, Callback done);
  // Blocking form, for start-up checks and tests.
  absl::StatusOr<RedisReply> CommandSync(std::vector<std::string> args);

  // Whether the last attempt to reach Redis succeeded.
  bool healthy() const { return healthy_.load(); }
  const Options& options() const { return options_; }

 private:
  struct Job {
    std::vector<std::string> args;
    Callback done;
  };
  void Worker();
  const Options options_;
  std::atomic<bool> healthy_{true};
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time down_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<std::thread> workers_;
};

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_REDIS_CLIENT_H_
