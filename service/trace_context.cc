#include "service/trace_context.h"

#include <cstdint>

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

// A non-zero random id of `digits` hex digits (16 or 32). Every call without a caller's trace
// makes two, so they are written straight into the string, 16 digits per 64 random bits.
std::string RandomId(int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local absl::InsecureBitGen gen;  // ids need uniqueness, not secrecy
  std::string id(digits, '0');
  do {
    for (int at = 0; at < digits; at += 16) {
      uint64_t bits = gen();
      for (int i = at + 15; i >= at; --i, bits >>= 4) id[i] = kHex[bits & 0xf];
    }
  } while (AllZero(id));
  return id;
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

}  // namespace

bool ParseTraceparent(absl::string_view tp, std::string* trace_id, std::string* parent_span_id,
                      bool* sampled) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  const absl::string_view version = tp.substr(0, 2);
  if (!LowerHex(version) || version == "ff") return false;
  // Version 00 is exactly 55 characters; a later version may append "-..." fields.
  if (version == "00" ? tp.size() != 55 : (tp.size() > 55 && tp[55] != '-')) return false;
  const absl::string_view trace = tp.substr(3, 32), parent = tp.substr(36, 16),
                          flags = tp.substr(53, 2);
  if (!LowerHex(trace) || !LowerHex(parent) || !LowerHex(flags)) return false;
  if (AllZero(trace) || AllZero(parent)) return false;
  *trace_id = std::string(trace);
  *parent_span_id = std::string(parent);
  const int flag_bits = (flags[1] >= 'a' ? flags[1] - 'a' + 10 : flags[1] - '0');
  *sampled = (flag_bits & 1) != 0;
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
  if (!traceparent.empty() &&
      ParseTraceparent(traceparent, &trace.trace_id, &trace.parent_span_id, &trace.sampled)) {
    if (ValidTracestate(tracestate)) trace.tracestate = std::string(tracestate);
  } else {
    trace.trace_id = RandomId(32);
  }
  trace.span_id = RandomId(16);
  return trace;
}

std::string TraceContext::Traceparent() const {
  return absl::StrCat("00-", trace_id, "-", span_id, sampled ? "-01" : "-00");
}

std::vector<std::pair<std::string, std::string>> TraceContext::Headers() const {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("traceparent", Traceparent());
  if (!tracestate.empty()) headers.emplace_back("tracestate", tracestate);
  return headers;
}

}  // namespace gateway::service
