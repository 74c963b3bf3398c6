// The admin listener's status page (GET /) in headless Chromium, against a gateway that served
// light load: the numbers the rendered page shows are the numbers /metrics has. A screenshot
// (status_page.png) and the DOM are kept in the test's undeclared outputs.
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
namespace rio = ::respondio::v2;

std::string OutputsDir() {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  return dir != nullptr ? dir : std::getenv("TEST_TMPDIR");
}

// "name{labels} value" lines of a scrape, by "name{labels}" (or "name" without labels).
std::map<std::string, double> ParseScrape(const std::string& text) {
  std::map<std::string, double> values;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) {
      continue;
    }
    values[std::string(line.substr(0, space))] = value;
  }
  return values;
}

// data-k="KEY" ...>TEXT< cells of the rendered page.
std::map<std::string, std::string> PageCells(const std::string& dom) {
  std::map<std::string, std::string> cells;
  static const std::regex cell("data-k=\"([^\"]+)\"[^>]*>([^<]*)<");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), cell); it != std::sregex_iterator();
       ++it) {
    cells[(*it)[1]] = (*it)[2];
  }
  return cells;
}

std::vector<std::string> Chromium(const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {"chromium",
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-background-networking",
                                   "--disable-dev-shm-usage",
                                   "--no-first-run",
                                   "--user-data-dir=" + std::string(std::getenv("TEST_TMPDIR")) +
                                       "/chromium"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TEST(StatusPageTest, ChromiumShowsTheNumbersOfMetrics) {
  auto sandbox = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(sandbox, nullptr);
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox->base_url(),
                                 "--admin_listen=127.0.0.1:0"});
  ASSERT_NE(gateway, nullptr);
  const int admin = AdminPort(*gateway);
  ASSERT_GT(admin, 0);

  // Light load: hits, misses, upstream 404s and rejected input, from two threads.
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&gateway] {
      auto stub = rio::ContactService::NewStub(gateway->channel());
      for (int i = 0; i < 20; ++i) {
        for (const char* id : {"id:12345", "id:67890", "id:999999", "nope"}) {
          rio::GetContactRequest request;
          request.set_identifier(id);
          rio::GetContactResponse reply;
          stub->GetContact(Context().get(), request, &reply);
        }
      }
    });
  }
  for (std::thread& thread : load) thread.join();

  const std::string url = absl::StrCat("http://127.0.0.1:", admin, "/");
  CommandResult dom = RunCommand(Chromium({"--dump-dom", url}));
  ASSERT_EQ(dom.exit_code, 0) << dom.output;
  const std::string metrics = HttpCall(admin, "GET", "/metrics").body;
  std::ofstream(OutputsDir() + "/status_page.html") << dom.output;
  std::ofstream(OutputsDir() + "/metrics.txt") << metrics;

  EXPECT_THAT(dom.output, HasSubstr("<meta http-equiv=\"refresh\""));
  EXPECT_THAT(dom.output, ::testing::Not(HasSubstr("src=\"http")));  // no external assets
  const auto cells = PageCells(dom.output);
  const auto values = ParseScrape(metrics);
  auto value = [&](const std::string& series) {
    auto it = values.find(series);
    EXPECT_NE(it, values.end()) << series << "\n" << metrics;
    return it == values.end() ? -1 : it->second;
  };
  auto cell = [&](const std::string& key) {
    auto it = cells.find(key);
    EXPECT_NE(it, cells.end()) << key << "\n" << dom.output;
    return it == cells.end() ? std::string("?") : it->second;
  };
  auto number = [](double v) { return absl::StrCat(static_cast<int64_t>(v)); };

  // The one bucket the load used (every configured bucket is listed, the others with zeros).
  std::string bucket, rest;
  for (const auto& [series, v] : values) {
    static const std::string prefix = "gateway_limiter_admitted_total{bucket=\"";
    if (series.rfind(prefix, 0) == 0 && v > 0) {
      rest = series.substr(prefix.size());  // <bucket>",workspace="default"}
      bucket = rest.substr(0, rest.find('"'));
      rest = rest.substr(bucket.size());
    }
  }
  ASSERT_THAT(bucket, HasSubstr("contact_get"));
  EXPECT_EQ(rest, "\",workspace=\"default\"}");
  const std::string b = "{bucket=\"" + bucket + rest;
  EXPECT_EQ(cell("rate/" + bucket), number(value("gateway_limiter_rate_per_second" + b)));
  EXPECT_EQ(cell("queued/" + bucket), number(value("gateway_limiter_queued" + b)));
  EXPECT_EQ(cell("rejected/" + bucket), number(value("gateway_limiter_rejected_total" + b)));
  // The gateway started less than a minute ago: the window holds every admission.
  int window = 0;
  ASSERT_TRUE(absl::SimpleAtoi(cell("window_seconds"), &window));
  if (window < 60) {
    const double admitted = value("gateway_limiter_admitted_total" + b);
    EXPECT_GT(admitted, 0);
    EXPECT_EQ(cell("admitted/" + bucket), number(admitted));
    const double rate = value("gateway_limiter_rate_per_second" + b);
    EXPECT_THAT(cell("use/" + bucket),
                HasSubstr(absl::StrFormat("%.1f%%", 100 * admitted / (rate * std::max(window, 1)))))
        << "use is computed with the window shown (whole seconds)";
  }
  const double hits = value("gateway_cache_hits_total"), misses = value("gateway_cache_misses_total");
  EXPECT_GT(hits, 0);
  EXPECT_EQ(cell("cache_hit_ratio"), absl::StrFormat("%.1f%%", 100 * hits / (hits + misses)));
  EXPECT_EQ(cell("cache_hits_misses"), absl::StrCat(number(hits), " / ", number(misses)));
  EXPECT_EQ(cell("cache_entries"), number(value("gateway_cache_entries")));
  EXPECT_EQ(cell("cache_bytes"), number(value("gateway_cache_bytes")));
  // Errors by reason: the upstream's 404s and the rejected identifiers, at least.
  int reasons = 0;
  for (const auto& [series, v] : values) {
    static const std::string prefix = "gateway_call_errors_total{reason=\"";
    if (series.rfind(prefix, 0) != 0) continue;
    const std::string reason = series.substr(prefix.size(), series.size() - prefix.size() - 2);
    EXPECT_EQ(cell("errors/" + reason), number(v)) << reason;
    ++reasons;
  }
  EXPECT_GE(reasons, 2);
  EXPECT_EQ(cell("errors/UPSTREAM_NOT_FOUND"), number(value(
      "gateway_call_errors_total{reason=\"UPSTREAM_NOT_FOUND\"}")));
  double four_xx = 0, total = 0;
  for (const auto& [series, v] : values) {
    if (series.rfind("gateway_upstream_responses_total{", 0) != 0) continue;
    total += v;
    if (series.find("status=\"4") != std::string::npos) four_xx += v;
  }
  if (window < 60) {
    EXPECT_EQ(cell("responses/respondio"), number(total));
    EXPECT_EQ(cell("4xx/respondio"), number(four_xx));
  }
  EXPECT_EQ(cell("health/respondio"), "ok");
  EXPECT_EQ(cell("ready"), "ready");
  EXPECT_EQ(cell("redis"), "not configured (in-process state)");

  const std::string png = OutputsDir() + "/status_page.png";
  CommandResult shot =
      RunCommand(Chromium({"--screenshot=" + png, "--window-size=1280,1100", url}));
  ASSERT_EQ(shot.exit_code, 0) << shot.output;
  std::ifstream in(png, std::ios::binary);
  std::string header(8, '\0');
  in.read(&header[0], 8);
  EXPECT_EQ(header, "\x89PNG\r\n\x1a\n") << "no screenshot at " << png;
}

}  // namespace
}  // namespace gateway::testing
