// Reloading configuration without a restart: on SIGHUP and when a watched file changes.
//
// Each source (the callers file, the workspaces) names the files it is built from and a
// function that rebuilds it and installs the result atomically (an immutable snapshot behind a
// shared_ptr, so calls in flight keep the one they started with). A source whose reload
// fails keeps serving the old snapshot; the failure is logged and counted.
//
//   Reloader reloader({.poll_interval = absl::Seconds(2)});
//   reloader.Add({.name = "callers", .files = {"/etc/gateway/callers/callers.json"},
//                 .reload = [&] { return ReloadCallers(); }});
//   reloader.Start();          // polls the files on its own thread
//   reloader.ReloadAll();      // on SIGHUP
//
// Change detection reads each file's content every poll interval and compares a hash, so it
// sees in-place edits as well as Kubernetes' update of a mounted ConfigMap or Secret (an
// atomic swap of the `..data` symlink, which inotify on the file path would not report), and
// ignores a touch that changes nothing. A file that disappears counts as a change (its reload
// then fails and the old snapshot keeps serving). The files are small; reading them costs
// microseconds per poll.
//
// Thread-safe. Reload functions run on the poller thread or on the ReloadAll() caller, one at
// a time (never concurrently with each other).
#ifndef GATEWAY_SERVICE_RELOADER_H_
#define GATEWAY_SERVICE_RELOADER_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace gateway::service {

class Reloader {
 public:
  struct Options {
    // How often the watched files are read; zero or negative disables polling (SIGHUP only).
    absl::Duration poll_interval = absl::Seconds(2);
    // Where outcomes are logged, one line each ("gateway: reloaded callers" / "gateway:
    // callers reload rejected, still serving the previous one: ..."); null for none.
    std::FILE* log = stderr;
  };
  struct Source {
    std::string name;                // "callers", "workspaces": the metric label
    std::vector<std::string> files;  // content watched; may change on each reload
    // Rebuilds the source and installs it; an error leaves the old one serving. May return a
    // new file list through `files_out` (e.g. token files a new config names); null to keep.
    absl::AnyInvocable<absl::Status(std::vector<std::string>* files_out)> reload;
  };
  struct Counters {
    int64_t applied = 0;   // reloads installed
    int64_t rejected = 0;  // reloads that failed; the previous snapshot kept serving
    absl::Time last_applied = absl::InfinitePast();
    std::string last_error;  // of the latest rejected reload ("" after an applied one)
    // Whether the latest reload was applied (true before any): the alertable state, exported
    // as gateway_config_last_reload_success{source}.
    bool last_succeeded = true;
  };

  explicit Reloader(Options options);
  ~Reloader();  // stops the poller
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Adds a source before Start(). The files' current content is the baseline: no reload runs
  // until one of them changes (or ReloadAll()).
  void Add(Source source) ABSL_LOCKS_EXCLUDED(mu_);

  // Starts the poller thread (no-op when polling is disabled).
  void Start();
  // Stops the poller thread; idempotent.
  void Stop();

  // Reloads every source now, changed or not (SIGHUP).
  void ReloadAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Reloads the sources whose files changed since the last look. What the poller runs; public
  // so tests can poll without waiting.
  void PollOnce() ABSL_LOCKS_EXCLUDED(mu_);

  // Outcomes by source name.
  std::map<std::string, Counters> counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Watched {
    Source source;
    std::vector<std::optional<uint64_t>> hashes;  // nullopt: the file could not be read
    Counters counters;
  };
  static std::vector<std::optional<uint64_t>> Fingerprint(const std::vector<std::string>& files);
  void ReloadLocked(Watched& watched) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  // Guards the sources and serializes reloads (poller and SIGHUP): held while a reload function
  // runs, which only reads small files and swaps a pointer.
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Watched>> sources_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread poller_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_RELOADER_H_
