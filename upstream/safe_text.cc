#include "upstream/safe_text.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"

namespace gateway::upstream {
namespace {

constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr size_t kMinSecretLength = 4;

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629, Table 3-7 of the
// Unicode standard), or 0 when it is ill-formed.
size_t SequenceLength(absl::string_view s) {
  const auto b = [&s](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

struct Secrets {
  absl::Mutex mu;
  std::vector<std::string> list ABSL_GUARDED_BY(mu);  // longest first
};

Secrets& Registry() {
  static Secrets* const secrets = new Secrets;  // never destroyed: used until exit
  return *secrets;
}

}  // namespace

std::string SanitizeUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t n = SequenceLength(text);
    if (n == 0) {
      out.append(kReplacement.data(), kReplacement.size());
      text.remove_prefix(1);
      continue;
    }
    out.append(text.data(), n);
    text.remove_prefix(n);
  }
  return out;
}

std::string TruncateUtf8(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  constexpr absl::string_view kEllipsis = "...";
  size_t cut = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the character at `cut`.
  while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + std::string(kEllipsis);
}

void RegisterSecret(absl::string_view secret) {
  if (secret.size() < kMinSecretLength) return;
  Secrets& secrets = Registry();
  absl::MutexLock lock(&secrets.mu);
  if (std::find(secrets.list.begin(), secrets.list.end(), secret) != secrets.list.end()) return;
  secrets.list.emplace_back(secret);
  std::stable_sort(secrets.list.begin(), secrets.list.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string RedactSecrets(absl::string_view text) {
  Secrets& secrets = Registry();
  absl::MutexLock lock(&secrets.mu);
  std::string out(text);
  for (const std::string& secret : secrets.list) {
    if (out.find(secret) == std::string::npos) continue;
    out = absl::StrReplaceAll(out, {{secret, kRedacted}});
  }
  return out;
}

}  // namespace gateway::upstream
