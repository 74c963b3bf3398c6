#include "service/call_log.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

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

// True iff one of the 8 bytes at `s` is a control character, '"', '\\' or not ASCII (exact:
// the zero-byte tests below have no false negatives, and each is 0 when no byte matches).
inline bool NeedsALook(const unsigned char* s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  uint64_t w;
  std::memcpy(&w, s, 8);
  auto has_zero = [](uint64_t x) { return (x - kOnes) & ~x & kHigh; };
  const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
  return ((w & kHigh) | below_space | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) !=
         0;
}

// True iff no byte of `value` needs a look (NeedsALook): the common case, copied as it is. A
// tail shorter than a word is checked as the last 8 bytes (overlapping) or, in a value shorter
// than 8, padded with a plain byte.
inline bool Plain(absl::string_view value) {
  const auto* s = reinterpret_cast<const unsigned char*>(value.data());
  const size_t n = value.size();
  if (n < 8) {
    unsigned char word[8] = {'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'};
    for (size_t i = 0; i < n; ++i) word[i] = s[i];
    return !NeedsALook(word);
  }
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (NeedsALook(s + i)) return false;
  }
  return n % 8 == 0 || !NeedsALook(s + n - 8);
}

// Appends `value` as a JSON string at `p` (at most 6 * size + 2 bytes): quotes, escapes, and
// U+FFFD for invalid UTF-8. Returns the end.
char* PutJsonString(absl::string_view value, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  *p++ = '"';
  if (Plain(value)) {
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '"';
    return p;
  }
  const auto* s = reinterpret_cast<const unsigned char*>(value.data());
  const size_t n = value.size();
  size_t run = 0;  // start of the pending run of bytes copied as they are
  auto flush = [&](size_t end) {
    std::memcpy(p, value.data() + run, end - run);
    p += end - run;
  };
  for (size_t i = 0; i < n;) {
    // Eight bytes at a time while none needs a look (the common case: ids, names, codes).
    while (i + 8 <= n && !NeedsALook(s + i)) i += 8;
    if (i >= n) break;
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
    flush(i);
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = static_cast<char>(c);
    } else if (c == '\n') {
      *p++ = '\\';
      *p++ = 'n';
    } else if (c < 0x20) {
      std::memcpy(p, "\\u00", 4);
      p[4] = kHex[c >> 4];
      p[5] = kHex[c & 0xf];
      p += 6;
    } else {
      std::memcpy(p, "\xef\xbf\xbd", 3);  // an invalid UTF-8 byte
      p += 3;
    }
    run = ++i;
  }
  flush(n);
  *p++ = '"';
  return p;
}

template <size_t N>
char* Put(const char (&literal)[N], char* p) {
  std::memcpy(p, literal, N - 1);
  return p + N - 1;
}

char* Put(absl::string_view text, char* p) {
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

// ,"key":"value" (escaped).
template <size_t N>
char* PutField(const char (&key)[N], absl::string_view value, char* p) {
  *p++ = ',';
  *p++ = '"';
  p = Put(key, p);
  p = Put("\":", p);
  return PutJsonString(value, p);
}

char* PutInt(int64_t value, char* p) {
  char digits[24];
  int n = 0;
  const bool negative = value < 0;
  uint64_t v = negative ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (negative) *p++ = '-';
  while (n > 0) *p++ = digits[--n];
  return p;
}

char* PutThreeDigits(int64_t value, char* p) {
  p[0] = static_cast<char>('0' + value / 100);
  p[1] = static_cast<char>('0' + value / 10 % 10);
  p[2] = static_cast<char>('0' + value % 10);
  return p + 3;
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

// The most bytes the line of `record` can take: every text byte escaped as \u00XX, plus the
// fixed parts.
size_t LineBound(const CallRecord& record) {
  return 340 + 6 * (std::min(record.rpc.size(), kMaxRpcBytes) + record.caller.size() +
                    record.reason.size() + record.workspace.size() + record.upstream.size() +
                    record.bucket.size() + record.trace_id.size() + record.span_id.size());
}

// Writes the line of `record` finished at `now`, with its trailing newline, at `p`, which has
// room for LineBound(record) bytes. Returns the end.
char* PutLine(const CallRecord& record, absl::Time now, char* p) {
  const absl::string_view rpc = record.rpc.substr(0, kMaxRpcBytes);
  const int64_t micros = absl::ToUnixMicros(now);
  int64_t seconds = micros / 1000000;
  int64_t sub = micros % 1000000;
  if (sub < 0) {
    sub += 1000000;
    --seconds;
  }
  p = Put("{\"ts\":\"", p);
  p = Put(FormattedSecond(seconds), p);
  *p++ = '.';
  p = PutThreeDigits(sub / 1000, p);
  p = Put("Z\"", p);
  p = PutField("rpc", rpc, p);
  p = PutField("caller", record.caller, p);
  if (!record.workspace.empty()) p = PutField("workspace", record.workspace, p);
  p = Put(",\"code\":\"", p);
  p = Put(absl::string_view(StatusCodeName(record.code)), p);
  *p++ = '"';
  if (!record.reason.empty()) p = PutField("reason", record.reason, p);
  const int64_t latency_us = std::max<int64_t>(0, absl::ToInt64Microseconds(record.latency));
  p = Put(",\"latency_ms\":", p);
  p = PutInt(latency_us / 1000, p);
  *p++ = '.';
  p = PutThreeDigits(latency_us % 1000, p);
  if (!record.upstream.empty()) p = PutField("upstream", record.upstream, p);
  if (!record.bucket.empty()) p = PutField("bucket", record.bucket, p);
  p = Put(",\"upstream_status\":", p);
  p = PutInt(record.upstream_status, p);
  p = record.cache_hit ? Put(",\"cache_hit\":true", p) : Put(",\"cache_hit\":false", p);
  if (!record.trace_id.empty()) p = PutField("trace_id", record.trace_id, p);
  if (!record.span_id.empty()) p = PutField("span_id", record.span_id, p);
  p = Put("}\n", p);
  return p;
}

}  // namespace

void AppendCallLogLine(const CallRecord& record, absl::Time now, std::string* out) {
  const size_t start = out->size();
  out->resize(start + LineBound(record));
  char* const base = &(*out)[start];
  out->resize(start + (PutLine(record, now, base) - base));
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
  // Formatted outside the lock, into this thread's buffer (grown when a line could not fit;
  // a plain array, so nothing is cleared before it is written).
  thread_local std::unique_ptr<char[]> buffer;
  thread_local size_t capacity = 0;
  const size_t bound = LineBound(record);
  if (bound > capacity) {
    capacity = std::max<size_t>(bound, 4096);
    buffer.reset(new char[capacity]);
  }
  const size_t size = PutLine(record, absl::Now(), buffer.get()) - buffer.get();
  absl::MutexLock lock(&mu_);
  if (batch_.size() + size > options_.max_buffered_bytes) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Wake the writer once when the batch gets big; otherwise it comes every flush_interval.
  constexpr size_t kWakeBytes = 64 << 10;
  const bool wake = batch_.size() < kWakeBytes && batch_.size() + size >= kWakeBytes;
  batch_.append(buffer.get(), size);
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
