// Reloader: which changes trigger a reload, what a failed reload leaves, SIGHUP's ReloadAll.
// Polls by hand (PollOnce), so nothing waits on a clock.
#include "service/reloader.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway::service {
namespace {

std::string Dir() {
  static int n = 0;
  const std::string dir = absl::StrCat(::testing::TempDir(), "/reloader_", getpid(), "_", n++);
  EXPECT_EQ(system(absl::StrCat("mkdir -p ", dir).c_str()), 0);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

struct Recorder {
  int calls = 0;
  absl::Status next;
  std::vector<std::string> seen;  // the file's content at each reload
};

Reloader::Source SourceFor(const std::string& name, const std::string& file, Recorder* r) {
  return {.name = name, .files = {file}, .reload = [r, file](std::vector<std::string>*) {
            ++r->calls;
            std::ifstream in(file);
            std::string text((std::istreambuf_iterator<char>(in)), {});
            r->seen.push_back(text);
            return r->next;
          }};
}

TEST(Reloader, OnlyAChangedContentReloads) {
  const std::string dir = Dir();
  const std::string file = dir + "/callers.json";
  Write(file, "one");
  Reloader reloader({.poll_interval = absl::ZeroDuration(), .log = nullptr});
  Recorder r;
  reloader.Add(SourceFor("callers", file, &r));
  reloader.PollOnce();
  EXPECT_EQ(r.calls, 0);  // the content at Add() is the baseline
  Write(file, "one");     // rewritten, same content
  reloader.PollOnce();
  EXPECT_EQ(r.calls, 0);
  Write(file, "two");
  reloader.PollOnce();
  reloader.PollOnce();
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.seen.back(), "two");
  EXPECT_EQ(reloader.counters().at("callers").applied, 1);
  EXPECT_EQ(reloader.counters().at("callers").rejected, 0);
}

TEST(Reloader, KubernetesSymlinkSwapIsSeen) {
  // A mounted ConfigMap: file -> ..data/file, ..data -> ..<timestamp>; an update writes a new
  // timestamped directory and renames a new ..data link over the old one.
  const std::string dir = Dir();
  ASSERT_EQ(system(absl::StrCat("cd ", dir, " && mkdir ..v1 && echo one > ..v1/config.json && "
                                "ln -s ..v1 ..data && ln -s ..data/config.json config.json")
                       .c_str()),
            0);
  Reloader reloader({.poll_interval = absl::ZeroDuration(), .log = nullptr});
  Recorder r;
  reloader.Add(SourceFor("workspaces", dir + "/config.json", &r));
  ASSERT_EQ(system(absl::StrCat("cd ", dir, " && mkdir ..v2 && echo two > ..v2/config.json && "
                                "ln -s ..v2 ..data_tmp && mv -T ..data_tmp ..data && rm -r ..v1")
                       .c_str()),
            0);
  reloader.PollOnce();
  ASSERT_EQ(r.calls, 1);
  EXPECT_EQ(r.seen.back(), "two\n");
}

TEST(Reloader, ARejectedReloadIsCountedAndRetriedOnTheNextChange) {
  const std::string dir = Dir();
  const std::string file = dir + "/callers.json";
  Write(file, "good");
  Reloader reloader({.poll_interval = absl::ZeroDuration(), .log = nullptr});
  Recorder r;
  reloader.Add(SourceFor("callers", file, &r));
  r.next = absl::InvalidArgumentError("callers.json: not a JSON object");
  Write(file, "broken");
  reloader.PollOnce();
  reloader.PollOnce();  // the broken content is not retried until it changes
  EXPECT_EQ(r.calls, 1);
  Reloader::Counters c = reloader.counters().at("callers");
  EXPECT_EQ(c.applied, 0);
  EXPECT_EQ(c.rejected, 1);
  EXPECT_EQ(c.last_error, "callers.json: not a JSON object");
  r.next = absl::OkStatus();
  Write(file, "fixed");
  reloader.PollOnce();
  c = reloader.counters().at("callers");
  EXPECT_EQ(c.applied, 1);
  EXPECT_EQ(c.rejected, 1);
  EXPECT_EQ(c.last_error, "");
  // A file that disappears is a change (and its reload fails, as the source decides).
  r.next = absl::InvalidArgumentError("cannot read");
  ASSERT_EQ(unlink(file.c_str()), 0);
  reloader.PollOnce();
  EXPECT_EQ(reloader.counters().at("callers").rejected, 2);
}

TEST(Reloader, ReloadAllReloadsUnchangedSourcesAndNewFilesAreWatched) {
  const std::string dir = Dir();
  const std::string config = dir + "/config.json";
  const std::string token = dir + "/token";
  Write(config, "c");
  Write(token, "t1");
  Reloader reloader({.poll_interval = absl::ZeroDuration(), .log = nullptr});
  int calls = 0;
  reloader.Add({.name = "workspaces", .files = {config}, .reload = [&](std::vector<std::string>* files) {
                  ++calls;
                  *files = {config, token};  // the new config names a token file
                  return absl::OkStatus();
                }});
  reloader.ReloadAll();  // SIGHUP
  EXPECT_EQ(calls, 1);
  reloader.PollOnce();
  EXPECT_EQ(calls, 1);
  Write(token, "t2");  // a rotated token reloads the source that uses it
  reloader.PollOnce();
  EXPECT_EQ(calls, 2);
}

TEST(Reloader, ThePollerThreadPicksUpChanges) {
  const std::string dir = Dir();
  const std::string file = dir + "/callers.json";
  Write(file, "one");
  Reloader reloader({.poll_interval = absl::Milliseconds(5), .log = nullptr});
  absl::Notification reloaded;
  reloader.Add({.name = "callers", .files = {file}, .reload = [&](std::vector<std::string>*) {
                  if (!reloaded.HasBeenNotified()) reloaded.Notify();
                  return absl::OkStatus();
                }});
  reloader.Start();
  Write(file, "two");
  EXPECT_TRUE(reloaded.WaitForNotificationWithTimeout(absl::Seconds(30)));
  reloader.Stop();
}

}  // namespace
}  // namespace gateway::service
