#include "service/call_log.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gateway::service {
namespace {

// A caller-chosen method name is bounded in the log.
constexpr size_t kMaxRpcBytes = 200;

// Length of a valid UTF-8 sequence starting at s[0] (at most `n` bytes available), else 0.
size_t Utf8Length(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return i < n && s[i] >= lo && s[i] <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;  // no surrogates
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Appends `value` as a JSON string: quotes, escapes, and U+FFFD for invalid UTF-8.
void AppendJsonString(absl::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  const auto* s = reinterpret_cast<const unsigned char*>(value.data());
  const size_t n = value.size();
  size_t run = 0;  // start of the pending run of bytes copied as they are
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8Length(s + i, n - i);
      if (len > 0) {
        i += len;
        continue;
      }
    }
    out->append(value.data() + run, i - run);
    if (c == '"') {
      out->append("\\\"");
    } else if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    } else {
      out->append("\xef\xbf\xbd");  // invalid UTF-8 byte
    }
    run = ++i;
  }
  out->append(value.data() + run, n - run);
  out->push_back('"');
}

void AppendField(const char* key, absl::string_view value, std::string* out) {
  out->append(",\"");
  out->append(key);
  out->append("\":");
  AppendJsonString(value, out);
}

// "YYYY-MM-DDTHH:MM:SS" of the second, formatted once per second per thread.
absl::string_view FormattedSecond(int64_t unix_seconds) {
  thread_local int64_t cached_second = INT64_MIN;
  thread_local char cached[32];
  thread_local size_t cached_size = 0;
  if (unix_seconds != cached_second) {
    const std::string text = absl::FormatTime("%Y-%m-%dT%H:%M:%S",
                                              absl::FromUnixSeconds(unix_seconds),
                                              absl::UTCTimeZone());
    cached_size = std::min(text.size(), sizeof(cached));
    std::memcpy(cached, text.data(), cached_size);
    cached_second = unix_seconds;
  }
  return absl::string_view(cached, cached_size);
}

void AppendThreeDigits(int64_t value, std::string* out) {
  out->push_back(static_cast<char>('0' + value / 100));
  out->push_back(static_cast<char>('0' + value / 10 % 10));
  out->push_back(static_cast<char>('0' + value % 10));
}

}  // namespace

void AppendCallLogLine(const CallRecord& record, absl::Time now, std::string* out) {
  const int64_t micros = absl::ToUnixMicros(now);
  int64_t seconds = micros / 1000000;
  int64_t sub = micros % 1000000;
  if (sub < 0) {
    sub += 1000000;
    --seconds;
  }
  out->append("{\"ts\":\"");
  out->append(FormattedSecond(seconds).data(), FormattedSecond(seconds).size());
  out->push_back('.');
  AppendThreeDigits(sub / 1000, out);
  out->append("Z\"");
  AppendField("rpc", absl::string_view(record.rpc).substr(0, kMaxRpcBytes), out);
  AppendField("caller", record.caller, out);
  out->append(",\"code\":\"");
  out->append(StatusCodeName(record.code));
  out->push_back('"');
  if (!record.reason.empty()) AppendField("reason", record.reason, out);
  const int64_t latency_us = std::max<int64_t>(0, absl::ToInt64Microseconds(record.latency));
  out->append(",\"latency_ms\":");
  absl::StrAppend(out, latency_us / 1000);
  out->push_back('.');
  AppendThreeDigits(latency_us % 1000, out);
  if (!record.upstream.empty()) AppendField("upstream", record.upstream, out);
  if (!record.bucket.empty()) AppendField("bucket", record.bucket, out);
  out->append(",\"upstream_status\":");
  absl::StrAppend(out, record.upstream_status);
  out->append(record.cache_hit ? ",\"cache_hit\":true" : ",\"cache_hit\":false");
  if (!record.trace_id.empty()) AppendField("trace_id", record.trace_id, out);
  if (!record.span_id.empty()) AppendField("span_id", record.span_id, out);
  out->append("}\n");
}

std::string CallLogLine(const CallRecord& record, absl::Time now) {
  std::string line;
  AppendCallLogLine(record, now, &line);
  line.pop_back();
  return line;
}

CallLog::CallLog(int fd, Options options) : fd_(fd), options_(options) {
  writer_ = std::thread([this] { Run(); });
}

CallLog::~CallLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.Signal();
  }
  writer_.join();
}

void CallLog::Write(const CallRecord& record) {
  // Formatted outside the lock, into this thread's buffer (its capacity is reused).
  thread_local std::string line;
  line.clear();
  AppendCallLogLine(record, absl::Now(), &line);
  absl::MutexLock lock(&mu_);
  if (batch_.size() + line.size() > options_.max_buffered_bytes) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Wake the writer once when the batch gets big; otherwise it comes every flush_interval.
  constexpr size_t kWakeBytes = 64 << 10;
  const bool wake = batch_.size() < kWakeBytes && batch_.size() + line.size() >= kWakeBytes;
  batch_.append(line);
  ++accepted_;
  if (wake) wake_.Signal();
}

void CallLog::Flush() {
  absl::MutexLock lock(&mu_);
  const uint64_t target = accepted_;
  wake_.Signal();
  while (written_through_ < target) flushed_.Wait(&mu_);
}

void CallLog::WriteAll(const std::string& bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stdout closed or broken: nothing better to do with the lines
    at += static_cast<size_t>(n);
  }
}

void CallLog::Run() {
  std::string writing;
  absl::MutexLock lock(&mu_);
  while (true) {
    if (batch_.empty()) {
      written_through_ = accepted_;
      flushed_.SignalAll();
      if (stop_) return;
      // Woken early by a big batch, a Flush() or the destructor.
      wake_.WaitWithTimeout(&mu_, options_.flush_interval);
      continue;
    }
    writing.swap(batch_);  // callers go on filling the other buffer meanwhile
    const uint64_t through = accepted_;
    const int64_t lines = static_cast<int64_t>(through - written_through_);
    mu_.Unlock();
    WriteAll(writing);
    written_.fetch_add(lines, std::memory_order_relaxed);
    writing.clear();
    mu_.Lock();
    written_through_ = through;
    flushed_.SignalAll();
  }
}

}  // namespace gateway::service
