#include "service/reloader.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gateway::service {

Reloader::Reloader(Options options) : options_(std::move(options)) {}

Reloader::~Reloader() { Stop(); }

std::vector<std::optional<uint64_t>> Reloader::Fingerprint(const std::vector<std::string>& files) {
  std::vector<std::optional<uint64_t>> out;
  for (const std::string& path : files) {
    // Opening the path follows symlinks, so a swapped `..data` link is read through.
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      out.push_back(std::nullopt);
      continue;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    out.push_back(absl::Hash<std::string>()(buffer.str()));
  }
  return out;
}

void Reloader::Add(Source source) {
  auto watched = std::make_unique<Watched>();
  watched->hashes = Fingerprint(source.files);
  watched->source = std::move(source);
  absl::MutexLock lock(&mu_);
  sources_.push_back(std::move(watched));
}

void Reloader::Start() {
  if (options_.poll_interval <= absl::ZeroDuration() || poller_.joinable()) return;
  poller_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) PollOnce();
  });
}

void Reloader::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (poller_.joinable()) poller_.join();
}

void Reloader::ReloadLocked(Watched& watched) {
  std::vector<std::string> files = watched.source.files;
  const absl::Status status = watched.source.reload(&files);
  // The baseline is what was read around this attempt: a broken file is not retried until it
  // changes again (or SIGHUP), and a fixed one is picked up on its next change.
  watched.source.files = std::move(files);
  watched.hashes = Fingerprint(watched.source.files);
  Counters& c = watched.counters;
  if (status.ok()) {
    ++c.applied;
    c.last_applied = absl::Now();
    c.last_error.clear();
    c.last_succeeded = true;
    if (options_.log != nullptr) {
      std::fprintf(options_.log, "gateway: reloaded %s\n", watched.source.name.c_str());
      std::fflush(options_.log);
    }
  } else {
    ++c.rejected;
    c.last_error = std::string(status.message());
    c.last_succeeded = false;
    if (options_.log != nullptr) {
      std::fprintf(options_.log, "gateway: %s reload rejected, still serving the previous one: %s\n",
                   watched.source.name.c_str(), c.last_error.c_str());
      std::fflush(options_.log);
    }
  }
}

void Reloader::ReloadAll() {
  absl::MutexLock lock(&mu_);
  for (auto& watched : sources_) ReloadLocked(*watched);
}

void Reloader::PollOnce() {
  absl::MutexLock lock(&mu_);
  for (auto& watched : sources_) {
    if (Fingerprint(watched->source.files) != watched->hashes) ReloadLocked(*watched);
  }
}

std::map<std::string, Reloader::Counters> Reloader::counters() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, Counters> out;
  for (const auto& watched : sources_) out[watched->source.name] = watched->counters;
  return out;
}

}  // namespace gateway::service
