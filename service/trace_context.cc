#include "service/trace_context.h"

#include <cstdint>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gateway::service {
namespace {

bool LowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

// The two hex digits of each byte value.
struct HexPairs {
  char digits[512];
  constexpr HexPairs() : digits() {
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      digits[2 * i] = kHex[i >> 4];
      digits[2 * i + 1] = kHex[i & 0xf];
    }
  }
};
constexpr HexPairs kHexPairs;

// Fills `id` with `digits` (16 or 32) random hex digits, not all zero, 16 per 64 random bits,
// two per table look-up. Every call without a caller's trace makes two ids, so they go
// straight into the caller's array.
void RandomId(char* id, int digits) {
  thread_local absl::InsecureBitGen gen;  // ids need uniqueness, not secrecy
  bool zero = true;
  while (zero) {
    for (int at = 0; at < digits; at += 16) {
      uint64_t bits = gen();
      zero = zero && bits == 0;
      for (int i = 0; i < 8; ++i, bits >>= 8) {
        std::memcpy(id + at + 2 * i, &kHexPairs.digits[2 * (bits & 0xff)], 2);
      }
    }
  }
}

bool TracestateKey(absl::string_view key) {
  // simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-"/ "*" / "/")
  // multi-tenant-key = tenant-id "@" system-id (same alphabet; tenant may start with a digit)
  if (key.empty() || key.size() > 256) return false;
  const size_t at = key.find('@');
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '*' || c == '/';
  };
  for (size_t i = 0; i < key.size(); ++i) {
    if (i == at) continue;
    if (!allowed(key[i])) return false;
  }
  if (at == absl::string_view::npos) return key[0] >= 'a' && key[0] <= 'z';
  if (key.find('@', at + 1) != absl::string_view::npos) return false;
  return at > 0 && at + 1 < key.size() && key.size() - at - 1 <= 14 && at <= 241 &&
         key[at + 1] >= 'a' && key[at + 1] <= 'z';
}

bool TracestateValue(absl::string_view value) {
  // 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  }
  return true;
}


// Whether `tp` is a valid traceparent (see ParseTraceparent); its trace id is then
// tp.substr(3, 32), the parent span tp.substr(36, 16) and the flags tp.substr(53, 2).
bool ValidTraceparent(absl::string_view tp) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  const absl::string_view version = tp.substr(0, 2);
  if (!LowerHex(version) || version == "ff") return false;
  // Version 00 is exactly 55 characters; a later version may append "-..." fields.
  if (version == "00" ? tp.size() != 55 : (tp.size() > 55 && tp[55] != '-')) return false;
  const absl::string_view trace = tp.substr(3, 32), parent = tp.substr(36, 16),
                          flags = tp.substr(53, 2);
  if (!LowerHex(trace) || !LowerHex(parent) || !LowerHex(flags)) return false;
  return !AllZero(trace) && !AllZero(parent);
}

bool SampledFlag(absl::string_view tp) {
  const char c = tp[54];
  const int flag_bits = (c >= 'a' ? c - 'a' + 10 : c - '0');
  return (flag_bits & 1) != 0;
}

}  // namespace

bool ParseTraceparent(absl::string_view tp, std::string* trace_id, std::string* parent_span_id,
                      bool* sampled) {
  if (!ValidTraceparent(tp)) return false;
  *trace_id = std::string(tp.substr(3, 32));
  *parent_span_id = std::string(tp.substr(36, 16));
  *sampled = SampledFlag(tp);
  return true;
}

bool ValidTracestate(absl::string_view tracestate) {
  if (tracestate.size() > 512) return false;
  int members = 0;
  for (absl::string_view member : absl::StrSplit(tracestate, ',')) {
    // Optional white space around members; empty members are allowed and ignored.
    while (!member.empty() && (member.front() == ' ' || member.front() == '\t')) {
      member.remove_prefix(1);
    }
    while (!member.empty() && (member.back() == ' ' || member.back() == '\t')) {
      member.remove_suffix(1);
    }
    if (member.empty()) continue;
    const size_t eq = member.find('=');
    if (eq == absl::string_view::npos) return false;
    if (!TracestateKey(member.substr(0, eq)) || !TracestateValue(member.substr(eq + 1))) {
      return false;
    }
    if (++members > 32) return false;
  }
  return members > 0;
}

TraceContext TraceContext::ForCall(absl::string_view traceparent, absl::string_view tracestate) {
  TraceContext trace;
  if (!traceparent.empty() && ValidTraceparent(traceparent)) {
    std::memcpy(trace.trace_id_, traceparent.data() + 3, sizeof(trace.trace_id_));
    std::memcpy(trace.parent_span_id_, traceparent.data() + 36, sizeof(trace.parent_span_id_));
    trace.has_parent_ = true;
    trace.sampled_ = SampledFlag(traceparent);
    if (ValidTracestate(tracestate)) trace.tracestate_ = std::string(tracestate);
  } else {
    RandomId(trace.trace_id_, sizeof(trace.trace_id_));
  }
  RandomId(trace.span_id_, sizeof(trace.span_id_));
  return trace;
}

std::string TraceContext::Traceparent() const {
  return absl::StrCat("00-", trace_id(), "-", span_id(), sampled_ ? "-01" : "-00");
}

std::vector<std::pair<std::string, std::string>> TraceContext::Headers() const {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(tracestate_.empty() ? 1 : 2);
  headers.emplace_back("traceparent", Traceparent());
  if (!tracestate_.empty()) headers.emplace_back("tracestate", tracestate_);
  return headers;
}

}  // namespace gateway::service
