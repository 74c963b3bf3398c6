// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one call: read from the caller's
// `traceparent` / `tracestate` gRPC metadata, continued by the gateway's own span, forwarded to
// the upstream request and written in the call log (`trace_id`, `span_id`).
//
// The gateway records no spans itself (no exporter): it propagates the context, so the
// upstream's and the callers' traces join up, and the call log line can be found by trace id.
//
//   TraceContext trace = TraceContext::ForCall(traceparent_or_empty, tracestate_or_empty);
//   request.headers.emplace_back("traceparent", trace.Traceparent());
//
// A missing or malformed traceparent (wrong length or version, upper-case or non-hex digits,
// an all-zero id) starts a new trace; garbage is never forwarded. A tracestate is forwarded
// only with a valid traceparent and only when it is itself well formed.
#ifndef GATEWAY_SERVICE_TRACE_CONTEXT_H_
#define GATEWAY_SERVICE_TRACE_CONTEXT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace gateway::service {

// A value: ids are kept as fixed-size text inside the object (no heap), so making one per call
// costs no allocation; the views it returns are valid while it lives. Made by ForCall (a
// default-constructed one, only a placeholder to assign to, has ids of NUL characters).
class TraceContext {
 public:
  // Continues the caller's trace when `traceparent` is valid, else starts a new one. Ids come
  // from a per-thread random generator.
  static TraceContext ForCall(absl::string_view traceparent, absl::string_view tracestate);

  // 32 lower-case hex digits.
  absl::string_view trace_id() const { return absl::string_view(trace_id_, sizeof(trace_id_)); }
  // 16 lower-case hex digits: the gateway's span for this call.
  absl::string_view span_id() const { return absl::string_view(span_id_, sizeof(span_id_)); }
  // The caller's span; "" when the gateway started the trace.
  absl::string_view parent_span_id() const {
    return absl::string_view(parent_span_id_, has_parent_ ? sizeof(parent_span_id_) : 0);
  }
  // The caller's sampled flag (false for a trace started here).
  bool sampled() const { return sampled_; }
  // Forwarded as is; "" when absent or invalid.
  const std::string& tracestate() const { return tracestate_; }

  // "00-<trace_id>-<span_id>-<flags>": the header the upstream gets.
  std::string Traceparent() const;
  // The upstream request's trace headers: traceparent, and tracestate when present.
  std::vector<std::pair<std::string, std::string>> Headers() const;

 private:
  char trace_id_[32] = {};
  char span_id_[16] = {};
  char parent_span_id_[16] = {};
  bool has_parent_ = false;
  bool sampled_ = false;
  std::string tracestate_;
};

// Whether `traceparent` is a valid W3C traceparent (version 00, or a later version read as 00
// demands); on success fills the ids and the sampled flag.
bool ParseTraceparent(absl::string_view traceparent, std::string* trace_id,
                      std::string* parent_span_id, bool* sampled);
// Whether `tracestate` is a well-formed list (at most 32 key=value members, 512 characters).
bool ValidTracestate(absl::string_view tracestate);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_TRACE_CONTEXT_H_
