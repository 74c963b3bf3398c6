// One structured JSON log line per call, e.g.
//
//   {"ts":"2026-11-21T23:12:19.123Z","rpc":"/respondio.v2.ContactService/GetContact",
//    "caller":"crm","code":"NOT_FOUND","reason":"UPSTREAM_NOT_FOUND","latency_ms":12.400,
//    "upstream":"respondio","bucket":"contact_get","upstream_status":404,"cache_hit":false,
//    "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
//
// Fields come from a CallRecord, which holds no secrets (no tokens, no request bodies);
// `reason`, `upstream`, `bucket`, `trace_id` and `span_id` are left out when empty.
//
// Cheap on the calling thread: the line is formatted by hand into a per-thread buffer (the
// timestamp's date and second are formatted once per second per thread) and appended to a
// shared batch under a short lock; a background thread writes batches with write(2). A call
// never waits for stdout: when the batch already holds Options::max_buffered_bytes (stdout is
// slower than the calls), the line is dropped and counted (dropped(), exposed as
// gateway_call_log_dropped_total). Lines never interleave. The destructor writes everything
// accepted before it returns (shutdown).
#ifndef GATEWAY_SERVICE_CALL_LOG_H_
#define GATEWAY_SERVICE_CALL_LOG_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/call_record.h"

namespace gateway::service {

// Appends the log line of `record` finished at `now`, with its trailing newline, to `out`.
void AppendCallLogLine(const CallRecord& record, absl::Time now, std::string* out);
// The log line of `record` finished at `now`, without the trailing newline (for tests).
std::string CallLogLine(const CallRecord& record, absl::Time now);

class CallLog {
 public:
  struct Options {
    // Lines accepted but not yet written, at most; beyond it lines are dropped.
    size_t max_buffered_bytes = 8 << 20;
    // How often the writer looks for lines when the batch is small (a full-enough batch wakes
    // it at once): bounds how long a line waits before it reaches `fd`.
    absl::Duration flush_interval = absl::Milliseconds(10);
  };

  // Writes to the file descriptor `fd` (e.g. STDOUT_FILENO), which must stay open while the
  // log lives; starts the writer thread.
  explicit CallLog(int fd) : CallLog(fd, Options()) {}
  CallLog(int fd, Options options);
  // Writes every accepted line, then stops the writer.
  ~CallLog();
  CallLog(const CallLog&) = delete;
  CallLog& operator=(const CallLog&) = delete;

  // Formats and queues the line of `record`; never blocks on `fd`.
  void Write(const CallRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until every line accepted before the call has been written (or failed to be).
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);

  int64_t written() const { return written_.load(std::memory_order_relaxed); }
  int64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  void WriteAll(const std::string& bytes);

  const int fd_;
  const Options options_;
  absl::Mutex mu_;
  absl::CondVar wake_;     // the writer: a big batch, a flush or stop
  absl::CondVar flushed_;  // Flush(): a batch was written
  std::string batch_ ABSL_GUARDED_BY(mu_);         // accepted, not yet taken by the writer
  uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;      // lines accepted so far
  uint64_t written_through_ ABSL_GUARDED_BY(mu_) = 0;  // lines the writer has finished with
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> written_{0};
  std::atomic<int64_t> dropped_{0};
  std::thread writer_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CALL_LOG_H_
