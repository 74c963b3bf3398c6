#include "service/status_page.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace gateway::service {
namespace {

std::string Key(const std::string& family, const prometheus::ClientMetric& metric) {
  std::string key = family;
  key.push_back('{');
  for (const auto& label : metric.label) absl::StrAppend(&key, label.name, "=", label.value, ",");
  key.push_back('}');
  return key;
}

double Value(const prometheus::MetricFamily& family, const prometheus::ClientMetric& metric) {
  switch (family.type) {
    case prometheus::MetricType::Counter: return metric.counter.value;
    case prometheus::MetricType::Gauge: return metric.gauge.value;
    default: return metric.untyped.value;
  }
}

std::string Label(const prometheus::ClientMetric& metric, const std::string& name) {
  for (const auto& label : metric.label) {
    if (label.name == name) return label.value;
  }
  return "";
}

std::string Html(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v))) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.2f", v);
}

// A table cell whose number a test can find: <td data-k="KEY">TEXT</td>.
std::string Cell(const std::string& key, const std::string& text, const char* cls = "") {
  return absl::StrCat("<td class=\"", cls, "\" data-k=\"", Html(key), "\">", Html(text),
                      "</td>");
}

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:30em}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}.meta{color:#666;font-size:.9em}
.ok{color:#17692b;font-weight:600}.bad{color:#b00020;font-weight:600}.warn{color:#a15c00;font-weight:600}
.bar{display:inline-block;height:.7em;background:#4a7bd0;vertical-align:middle;margin-left:.4em}
)css";

}  // namespace

StatusPage::StatusPage(Source source) : source_(std::move(source)) {}

StatusPage::~StatusPage() {
  if (sampler_.joinable()) {
    stop_.Notify();
    sampler_.join();
  }
}

void StatusPage::Start() {
  Sample(absl::Now());
  sampler_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) Sample(absl::Now());
  });
}

StatusPage::Counters StatusPage::Read() const {
  Counters counters;
  for (const prometheus::MetricFamily& family : source_()) {
    if (family.type != prometheus::MetricType::Counter) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      counters[Key(family.name, metric)] = metric.counter.value;
    }
  }
  return counters;
}

void StatusPage::Sample(absl::Time now) {
  Counters counters = Read();
  absl::MutexLock lock(&mu_);
  history_.push_back({now, std::move(counters)});
  // Keep the newest sample at least kWindow old (the window's start), drop older ones.
  while (history_.size() > 1 && history_[1].at <= now - kWindow) history_.pop_front();
}

std::string StatusPage::Render(absl::Time now) {
  const std::vector<prometheus::MetricFamily> families = source_();
  Counters before;
  absl::Time since = now;
  {
    absl::MutexLock lock(&mu_);
    // The window's start: the newest sample at least kWindow old, else the oldest one.
    for (const Snapshot& snapshot : history_) {
      if (snapshot.at <= now - kWindow || &snapshot == &history_.front()) {
        before = snapshot.counters;
        since = snapshot.at;
      }
    }
  }
  // Whole seconds, as shown; the use figure is computed with the shown window.
  const double window_s = std::max(std::floor(absl::ToDoubleSeconds(now - since)), 1.0);
  // A series absent from the old sample started from zero inside the window.
  auto delta = [&](const prometheus::MetricFamily& f, const prometheus::ClientMetric& m) {
    auto it = before.find(Key(f.name, m));
    return std::max(0.0, Value(f, m) - (it == before.end() ? 0.0 : it->second));
  };
  auto find = [&](absl::string_view name) -> const prometheus::MetricFamily* {
    for (const auto& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  };
  auto scalar = [&](absl::string_view name, double fallback) {
    const prometheus::MetricFamily* f = find(name);
    if (f == nullptr || f->metric.empty()) return fallback;
    return Value(*f, f->metric.front());
  };

  // ---- buckets ----
  struct Bucket {
    double rate = 0, admitted = 0, queued = 0, rejected = 0, rejected_window = 0;
  };
  std::map<std::string, Bucket> buckets;
  auto each = [&](absl::string_view name, auto f) {
    if (const prometheus::MetricFamily* family = find(name)) {
      for (const auto& m : family->metric) f(*family, m);
    }
  };
  each("gateway_limiter_rate_per_second",
       [&](auto& f, auto& m) { buckets[Label(m, "bucket")].rate = Value(f, m); });
  each("gateway_limiter_admitted_total",
       [&](auto& f, auto& m) { buckets[Label(m, "bucket")].admitted = delta(f, m); });
  each("gateway_limiter_queued",
       [&](auto& f, auto& m) { buckets[Label(m, "bucket")].queued = Value(f, m); });
  each("gateway_limiter_rejected_total", [&](auto& f, auto& m) {
    Bucket& b = buckets[Label(m, "bucket")];
    b.rejected = Value(f, m);
    b.rejected_window = delta(f, m);
  });

  // ---- upstreams ----
  struct Upstream {
    double total = 0, ok = 0, client = 0, limited = 0, server = 0;
  };
  std::map<std::string, Upstream> upstreams;
  each("gateway_upstream_responses_total", [&](auto& f, auto& m) {
    Upstream& u = upstreams[Label(m, "upstream")];
    const double n = delta(f, m);
    const std::string status = Label(m, "status");
    u.total += n;
    if (status == "429") u.limited += n;
    else if (!status.empty() && status[0] == '5') u.server += n;
    else if (!status.empty() && status[0] == '4') u.client += n;
    else u.ok += n;
  });

  // ---- errors ----
  struct Reason {
    double window = 0, total = 0;
  };
  std::map<std::string, Reason> reasons;
  each("gateway_call_errors_total", [&](auto& f, auto& m) {
    Reason& r = reasons[Label(m, "reason")];
    r.window = delta(f, m);
    r.total = Value(f, m);
  });

  const double hits = scalar("gateway_cache_hits_total", 0);
  const double misses = scalar("gateway_cache_misses_total", 0);
  const bool has_cache = find("gateway_cache_entries") != nullptr;
  const prometheus::MetricFamily* redis = find("gateway_redis_up");
  const double ready = scalar("gateway_ready", 0);

  std::string page = absl::StrCat(
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"", kRefreshSeconds, "\">"
      "<title>gateway status</title><style>", kStyle, "</style></head><body>"
      "<h1>respond-gateway</h1><p class=\"meta\">",
      Html(absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", now, absl::UTCTimeZone())),
      " &middot; window: last <span data-k=\"window_seconds\">", static_cast<int64_t>(window_s),
      "</span> s &middot; refreshes every ", kRefreshSeconds,
      " s &middot; <a href=\"/metrics\">/metrics</a> &middot; <a href=\"/readyz\">/readyz</a></p>");

  absl::StrAppend(&page, "<h2>State</h2><table><tr><th>check</th><th>state</th></tr><tr><td>ready</td>",
                  Cell("ready", ready > 0 ? "ready" : "not ready", ready > 0 ? "ok" : "bad"),
                  "</tr><tr><td>Redis</td>");
  if (redis == nullptr || redis->metric.empty()) {
    absl::StrAppend(&page, Cell("redis", "not configured (in-process state)"));
  } else {
    const bool up = Value(*redis, redis->metric.front()) > 0;
    absl::StrAppend(&page, Cell("redis", up ? "up" : "down (local fallback)", up ? "ok" : "bad"));
  }
  absl::StrAppend(&page, "</tr></table>");

  absl::StrAppend(&page,
                  "<h2>Rate-limit buckets</h2><table><tr><th>bucket</th><th>limit /s</th>"
                  "<th>use (window)</th><th>admitted (window)</th><th>waiting now</th>"
                  "<th>rejected (window)</th><th>rejected (total)</th></tr>");
  if (buckets.empty()) absl::StrAppend(&page, "<tr><td colspan=\"7\">no calls yet</td></tr>");
  for (const auto& [name, b] : buckets) {
    const double use = b.rate > 0 ? b.admitted / (b.rate * window_s) : 0;
    const std::string pct = absl::StrFormat("%.1f%%", 100 * use);
    absl::StrAppend(
        &page, "<tr><td>", Html(name), "</td>", Cell("rate/" + name, Number(b.rate)),
        "<td data-k=\"use/", Html(name), "\" class=\"", use > 0.9 ? "warn" : "", "\">", pct,
        "<span class=\"bar\" style=\"width:", static_cast<int>(std::min(use, 1.0) * 80),
        "px\"></span></td>", Cell("admitted/" + name, Number(b.admitted)),
        Cell("queued/" + name, Number(b.queued), b.queued > 0 ? "warn" : ""),
        Cell("rejected_window/" + name, Number(b.rejected_window),
             b.rejected_window > 0 ? "bad" : ""),
        Cell("rejected/" + name, Number(b.rejected)), "</tr>");
  }
  absl::StrAppend(&page, "</table>");

  absl::StrAppend(&page, "<h2>Reply cache</h2><table><tr><th></th><th></th></tr>");
  if (!has_cache) {
    absl::StrAppend(&page, "<tr><td>cache</td>", Cell("cache", "disabled"), "</tr>");
  } else {
    absl::StrAppend(
        &page, "<tr><td>hit ratio (since start)</td>",
        Cell("cache_hit_ratio",
             hits + misses > 0 ? absl::StrFormat("%.1f%%", 100 * hits / (hits + misses)) : "-"),
        "</tr><tr><td>hits / misses</td>",
        Cell("cache_hits_misses", absl::StrCat(Number(hits), " / ", Number(misses))),
        "</tr><tr><td>entries</td>",
        Cell("cache_entries", Number(scalar("gateway_cache_entries", 0))),
        "</tr><tr><td>bytes</td>", Cell("cache_bytes", Number(scalar("gateway_cache_bytes", 0))),
        "</tr>");
  }
  absl::StrAppend(&page, "</table>");

  absl::StrAppend(&page,
                  "<h2>Upstreams (window)</h2><table><tr><th>upstream</th><th>health</th>"
                  "<th>responses</th><th>2xx/3xx</th><th>4xx</th><th>429</th><th>5xx</th></tr>");
  if (upstreams.empty()) absl::StrAppend(&page, "<tr><td colspan=\"7\">no responses yet</td></tr>");
  for (const auto& [name, u] : upstreams) {
    const char* health = u.total == 0            ? "idle"
                         : u.server > 0.05 * u.total ? "failing (5xx)"
                         : u.limited > 0            ? "rate-limited (429)"
                                                    : "ok";
    const char* cls = u.total == 0 ? "" : (health[0] == 'o' ? "ok" : "bad");
    absl::StrAppend(&page, "<tr><td>", Html(name), "</td>",
                    Cell("health/" + name, health, cls),
                    Cell("responses/" + name, Number(u.total)),
                    Cell("ok/" + name, Number(u.ok)), Cell("4xx/" + name, Number(u.client)),
                    Cell("429/" + name, Number(u.limited)),
                    Cell("5xx/" + name, Number(u.server)), "</tr>");
  }
  absl::StrAppend(&page, "</table>");

  absl::StrAppend(&page,
                  "<h2>Errors by reason</h2><table><tr><th>reason</th><th>window</th>"
                  "<th>total</th></tr>");
  if (reasons.empty()) absl::StrAppend(&page, "<tr><td colspan=\"3\">no errors</td></tr>");
  for (const auto& [name, r] : reasons) {
    absl::StrAppend(&page, "<tr><td>", Html(name), "</td>",
                    Cell("errors_window/" + name, Number(r.window), r.window > 0 ? "bad" : ""),
                    Cell("errors/" + name, Number(r.total)), "</tr>");
  }
  absl::StrAppend(&page, "</table></body></html>\n");
  return page;
}

}  // namespace gateway::service
