#include "service/call_log.h"

#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace gateway::service {

std::string CallLogLine(const CallRecord& record, absl::Time now) {
  nlohmann::json line = {
      {"ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", now, absl::UTCTimeZone())},
      // An unknown method name is the caller's text: bound it.
      {"rpc", record.rpc.size() > 200 ? record.rpc.substr(0, 200) : record.rpc},
      {"caller", record.caller},
      {"code", StatusCodeName(record.code)},
      {"latency_ms", absl::ToDoubleMilliseconds(record.latency)},
      {"upstream_status", record.upstream_status},
      {"cache_hit", record.cache_hit},
  };
  if (!record.reason.empty()) line["reason"] = record.reason;
  if (!record.upstream.empty()) line["upstream"] = record.upstream;
  if (!record.bucket.empty()) line["bucket"] = record.bucket;
  // Invalid UTF-8 from a caller-chosen method name must not throw.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void CallLog::Write(const CallRecord& record) {
  const std::string line = CallLogLine(record, absl::Now()) + "\n";
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace gateway::service
