#include "upstream/binding/drift_report.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {

absl::string_view DriftKindName(DriftKind kind) {
  switch (kind) {
    case DriftKind::kUnknownField:
      return "unknown_field";
    case DriftKind::kTypeMismatch:
      return "type_mismatch";
    case DriftKind::kUnknownEnum:
      return "unknown_enum";
    case DriftKind::kEnvelope:
      return "envelope";
    case DriftKind::kUnknownEvent:
      return "unknown_event";
  }
  return "unknown_field";
}

std::string TruncateSample(absl::string_view s, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    // Every byte but a continuation byte (10xxxxxx) starts a character.
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && chars++ == max_chars) {
      return std::string(s.substr(0, i));
    }
  }
  return std::string(s);
}

DriftReport::DriftReport() : DriftReport(Options{}) {}

DriftReport::DriftReport(Options options) : options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return absl::Now(); };
  if (!options_.on_first) {
    options_.on_first = [](const Entry& e) {
      std::cerr << "upstream drift: rpc=" << e.rpc << " field=" << e.field
                << " kind=" << DriftKindName(e.kind) << " sample=" << e.sample << "\n";
    };
  }
}

void DriftReport::Record(absl::string_view rpc, absl::string_view field, DriftKind kind,
                         absl::string_view sample) {
  Entry first;
  {
    absl::MutexLock lock(&mu_);
    Key key(std::string(rpc), std::string(field), kind);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      ++it->second.count;
      return;
    }
    if (entries_.size() >= kMaxKeys) {
      ++dropped_;
      return;
    }
    Entry& e = entries_[key];
    e.rpc = std::string(rpc);
    e.field = std::string(field);
    e.kind = kind;
    e.count = 1;
    e.first_seen = options_.now();
    e.sample = TruncateSample(sample, kMaxSampleChars);
    first = e;
  }
  options_.on_first(first);
}

std::vector<DriftReport::Entry> DriftReport::Snapshot() const {
  std::vector<Entry> out;
  {
    absl::MutexLock lock(&mu_);
    out.reserve(entries_.size());
    for (const auto& [key, entry] : entries_) out.push_back(entry);
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.rpc, a.field, a.kind) < std::tie(b.rpc, b.field, b.kind);
  });
  return out;
}

int64_t DriftReport::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

std::string DriftReport::ToJson() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const Entry& e : Snapshot()) {
    nlohmann::ordered_json j;
    j["rpc"] = e.rpc;
    j["field"] = e.field;
    j["kind"] = std::string(DriftKindName(e.kind));
    j["count"] = e.count;
    j["first_seen"] = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", e.first_seen, absl::UTCTimeZone());
    j["sample"] = e.sample;
    out.push_back(std::move(j));
  }
  // Samples are raw upstream bytes: never let invalid UTF-8 throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gateway::upstream
