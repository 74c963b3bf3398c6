// One structured JSON log line per call, e.g.
//
//   {"ts":"2026-11-21T23:12:19.123Z","rpc":"/respondio.v2.ContactService/GetContact",
//    "caller":"crm","code":"NOT_FOUND","reason":"UPSTREAM_NOT_FOUND","latency_ms":12.4,
//    "upstream":"respondio","bucket":"contact_get","upstream_status":404,"cache_hit":false}
//
// Fields come from a CallRecord, which holds no secrets (no tokens, no request bodies).
// Thread-safe: lines from concurrent calls never interleave.
#ifndef GATEWAY_SERVICE_CALL_LOG_H_
#define GATEWAY_SERVICE_CALL_LOG_H_

#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/call_record.h"

namespace gateway::service {

// The log line of `record` finished at `now`, without the trailing newline.
std::string CallLogLine(const CallRecord& record, absl::Time now);

class CallLog {
 public:
  // Writes to `out` (e.g. stdout), which must outlive the log.
  explicit CallLog(std::FILE* out) : out_(out) {}
  void Write(const CallRecord& record);

 private:
  absl::Mutex mu_;
  std::FILE* out_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_CALL_LOG_H_
