// The drift report: what in the upstreams' replies does not fit the protos.
//
// The upstreams keep changing (specs/live-api.md lists how far the live services already are
// from their OpenAPI documents). Every reply is decoded tolerantly, and whatever does not fit is
// recorded here, keyed by (rpc, field, kind):
//
//   unknown_field   a JSON key no proto field reads (the upstream added a field)
//   type_mismatch   a value of the wrong JSON type (the field is skipped, the rest decodes)
//   unknown_enum    an enum string or code no enum value declares (the `<field>_raw` companion
//                   field, where the proto has one, carries the upstream's string)
//   envelope        the reply is wrapped differently than the spoken dialect says (e.g. a bare
//                   array where `{items, pagination}` was expected, or the other dialect's shape)
//   unknown_event   a webhook event type the event protos do not know, or a known one whose JSON
//                   did not fit (rpc "/webhooks/{upstream}", field = the event type; the event
//                   itself is kept, see events/webhook_ingress.h)
//
// Fields are JSON paths with array indices folded ("items[].custom_fields[].label"). The first
// occurrence of each key is logged once (through `on_first`); counts are exposed as
// gateway_upstream_drift_total{rpc, field, kind} and as JSON at the admin `GET /drift`.
//
//   DriftReport drift;
//   drift.Record("/respondio.v2.ContactService/GetContact", "lifecycle", DriftKind::kUnknownField,
//                "\"Lead\"");
//   for (const DriftReport::Entry& e : drift.Snapshot()) ...
//
// Thread-safe. Keys are bounded (kMaxKeys); once full, new keys only bump `dropped()`.
#ifndef GATEWAY_UPSTREAM_BINDING_DRIFT_REPORT_H_
#define GATEWAY_UPSTREAM_BINDING_DRIFT_REPORT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gateway::upstream {

enum class DriftKind { kUnknownField, kTypeMismatch, kUnknownEnum, kEnvelope, kUnknownEvent };

// "unknown_field", "type_mismatch", "unknown_enum", "envelope", "unknown_event".
absl::string_view DriftKindName(DriftKind kind);

class DriftReport {
 public:
  // Samples longer than this are truncated (in bytes, never inside a UTF-8 sequence).
  static constexpr size_t kMaxSampleChars = 64;
  // Distinct (rpc, field, kind) keys kept; a misbehaving upstream cannot grow memory unbounded.
  static constexpr size_t kMaxKeys = 4096;

  struct Entry {
    std::string rpc;
    std::string field;
    DriftKind kind = DriftKind::kUnknownField;
    int64_t count = 0;
    absl::Time first_seen;
    std::string sample;  // the first value seen, truncated to kMaxSampleChars
  };

  struct Options {
    std::function<absl::Time()> now = [] { return absl::Now(); };
    // Called once per key, the first time it is recorded (outside the lock). Default: one line
    // on stderr.
    std::function<void(const Entry&)> on_first;
  };

  DriftReport();
  explicit DriftReport(Options options);

  void Record(absl::string_view rpc, absl::string_view field, DriftKind kind,
              absl::string_view sample);

  // Every key, sorted by (rpc, field, kind).
  std::vector<Entry> Snapshot() const;
  // Keys not recorded because kMaxKeys was reached.
  int64_t dropped() const;

  // The snapshot as the admin `GET /drift` body:
  // [{"rpc","field","kind","count","first_seen" (RFC 3339 UTC),"sample"}, ...]
  std::string ToJson() const;

 private:
  using Key = std::tuple<std::string, std::string, DriftKind>;
  Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Truncates `s` to at most `max_chars` characters (UTF-8 code points; a byte that starts no
// sequence counts as one), never splitting a sequence, without a marker (unlike safe_text.h's
// TruncateUtf8, which appends "...").
std::string TruncateSample(absl::string_view s, size_t max_chars);

}  // namespace gateway::upstream

#endif  // GATEWAY_UPSTREAM_BINDING_DRIFT_REPORT_H_
