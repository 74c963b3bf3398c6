#include "upstream/transport/retry_after.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace gateway::upstream {

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now,
                                              absl::Duration cap) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  cap = std::max(cap, absl::ZeroDuration());
  if (absl::ascii_isdigit(static_cast<unsigned char>(value.front()))) {
    // delta-seconds: 1*DIGIT. Any number of digits (a saturating parse), then capped.
    if (!std::all_of(value.begin(), value.end(),
                     [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
      // Tolerate a decimal fraction ("1.5"), which some servers send; nothing else (no
      // exponents, signs or units).
      const size_t dot = value.find('.');
      const auto digits = [](absl::string_view s) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
          return absl::ascii_isdigit(static_cast<unsigned char>(c));
        });
      };
      if (dot == absl::string_view::npos || !digits(value.substr(dot + 1))) return std::nullopt;
      double seconds = 0;
      if (!absl::SimpleAtod(value, &seconds) || !(seconds >= 0)) return std::nullopt;
      return std::min(absl::Seconds(std::min(seconds, 1e12)), cap);
    }
    if (value.size() > 12) return cap;  // more than ~30,000 years of seconds
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;
    return std::min(absl::Seconds(seconds), cap);
  }
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
      "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
      "%a %b %e %H:%M:%S %Y",       // asctime
  };
  const std::string text(value);
  for (const char* format : kFormats) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &when, &error)) {
      return std::clamp(when - now, absl::ZeroDuration(), cap);
    }
  }
  return std::nullopt;
}

std::optional<absl::Duration> RetryAfterOf(const HttpResponse& response, absl::Time now,
                                           absl::Duration cap) {
  auto it = response.headers.find("retry-after");
  if (it == response.headers.end()) return std::nullopt;
  return ParseRetryAfter(it->second, now, cap);
}

}  // namespace gateway::upstream
