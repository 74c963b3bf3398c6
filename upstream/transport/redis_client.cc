#include "upstream/transport/redis_client.h"

#include <hiredis/hiredis.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/notification.h"

namespace gateway::upstream {
namespace {

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}


// SHA1 of Lua scripts, cached by text (scripts are few and constant).
std::string ScriptSha(redisContext* c, const std::string& script) {
  redisReply* r = static_cast<redisReply*>(
      redisCommand(c, "SCRIPT LOAD %b", script.data(), script.size()));
  if (r == nullptr) return "";
  std::string sha = r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "";
  freeReplyObject(r);
  return sha;
}

}  // namespace

absl::StatusOr<RedisClient::Options> RedisClient::ParseUrl(absl::string_view url) {
  Options o;
  if (!absl::ConsumePrefix(&url, "redis://")) {
    return absl::InvalidArgumentError("redis URL must look like redis://HOST:PORT[/DB]");
  }
  std::string db;
  if (const size_t slash = url.find('/'); slash != absl::string_view::npos) {
    db = std::string(url.substr(slash + 1));
    url = url.substr(0, slash);
  }
  const size_t colon = url.rfind(':');
  if (colon == absl::string_view::npos) {
    o.host = std::string(url);
  } else {
    o.host = std::string(url.substr(0, colon));
    if (!absl::SimpleAtoi(url.substr(colon + 1), &o.port) || o.port <= 0 || o.port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("redis URL has a bad port: ", url));
    }
  }
  if (o.host.empty()) return absl::InvalidArgumentError("redis URL has no host");
  if (!db.empty() && (!absl::SimpleAtoi(db, &o.db) || o.db < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("redis URL has a bad database: ", db));
  }
  return o;
}

RedisClient::RedisClient(Options options) : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.connections); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
}

RedisClient::~RedisClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : workers_) t.join();
  // Workers drained the queue with CANCELLED before exiting.
}

void RedisClient::Command(std::vector<std::string> args, Callback done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back({std::move(args), std::move(done)});
      return;
    }
  }
  std::move(done)(absl::CancelledError("redis client is shutting down"));
}

void RedisClient::Eval(const std::string& script, std::vector<std::string> keys,
                       std::vector<std::string> args, Callback done) {
  // Marker understood by the worker: it resolves the script to EVALSHA on its connection.
  std::vector<std::string> command = {"\x01EVAL", script, absl::StrCat(keys.size())};
  for (auto& k : keys) command.push_back(std::move(k));
  for (auto& a : args) command.push_back(std::move(a));
  Command(std::move(command), std::move(done));
}

absl::StatusOr<RedisReply> RedisClient::CommandSync(std::vector<std::string> args) {
  absl::Notification done;
  absl::StatusOr<RedisReply> result;
  Command(std::move(args), [&](absl::StatusOr<RedisReply> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

void RedisClient::Worker() {
  std::unique_ptr<redisContext, void (*)(redisContext*)> context(nullptr, redisFree);
  absl::flat_hash_map<std::string, std::string> shas;  // script text -> sha, per connection
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
      if (stopping_) {
        mu_.Unlock();
        std::move(job.done)(absl::CancelledError("redis client is shutting down"));
        mu_.Lock();
        continue;
      }
      if (context == nullptr && absl::Now() < down_until_) {
        mu_.Unlock();
        std::move(job.done)(absl::UnavailableError("redis is unreachable (retrying shortly)"));
        mu_.Lock();
        continue;
      }
    }
    if (context == nullptr) {
      const timeval tv = absl::ToTimeval(options_.timeout);
      redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port, tv);
      if (c == nullptr || c->err) {
        const std::string why = c == nullptr ? "cannot allocate" : c->errstr;
        if (c != nullptr) redisFree(c);
        healthy_ = false;
        {
          absl::MutexLock lock(&mu_);
          down_until_ = absl::Now() + options_.retry_interval;
        }
        std::move(job.done)(absl::UnavailableError(absl::StrCat("redis unreachable: ", why)));
        continue;
      }
      redisSetTimeout(c, tv);
      context.reset(c);
      shas.clear();
      if (options_.db != 0) {
        redisReply* r = static_cast<redisReply*>(redisCommand(c, "SELECT %d", options_.db));
        if (r != nullptr) freeReplyObject(r);
      }
    }
    std::vector<std::string> args = std::move(job.args);
    if (!args.empty() && args[0] == "\x01EVAL") {
      auto it = shas.find(args[1]);
      if (it == shas.end()) it = shas.emplace(args[1], ScriptSha(context.get(), args[1])).first;
      args[0] = it->second.empty() ? "EVAL" : "EVALSHA";
      if (!it->second.empty()) args[1] = it->second;
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisReply* reply = static_cast<redisReply*>(
        redisCommandArgv(context.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (reply == nullptr) {
      const std::string why = context->errstr;
      context.reset();
      healthy_ = false;
      {
        absl::MutexLock lock(&mu_);
        down_until_ = absl::Now() + options_.retry_interval;
      }
      std::move(job.done)(absl::UnavailableError(absl::StrCat("redis I/O failed: ", why)));
      continue;
    }
    healthy_ = true;
    RedisReply converted = Convert(reply);
    freeReplyObject(reply);
    std::move(job.done)(std::move(converted));
  }
}

}  // namespace gateway::upstream
