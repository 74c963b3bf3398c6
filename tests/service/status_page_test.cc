// The status page's window arithmetic (injected times) and escaping.
#include "service/status_page.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics.h"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusPageTest, UseIsAdmissionsOverTheLastMinuteAgainstTheLimit) {
  double admitted = 0;
  const std::string bucket = "respondio:<b>:contact_get";
  StatusPage page([&] {
    MetricsWriter out;
    out.Gauge("gateway_limiter_rate_per_second", "h", {{"bucket", bucket}}, 10);
    out.Counter("gateway_limiter_admitted_total", "h", {{"bucket", bucket}}, admitted);
    out.Gauge("gateway_limiter_queued", "h", {{"bucket", bucket}}, 3);
    out.Counter("gateway_limiter_rejected_total", "h", {{"bucket", bucket}}, 7);
    return std::move(out).Families();
  });
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i <= 70; ++i) {
    admitted = 5 * i;
    page.Sample(t0 + absl::Seconds(i));
  }
  const std::string html = page.Render(t0 + absl::Seconds(70));
  // Window: the sample at 10 s (admitted 50) to now (350): 300 calls in 60 s at 10/s = 50%.
  EXPECT_THAT(html, HasSubstr("data-k=\"window_seconds\">60<"));
  const std::string b = "respondio:&lt;b&gt;:contact_get";
  EXPECT_THAT(html, HasSubstr("data-k=\"admitted/" + b + "\">300<"));
  EXPECT_THAT(html, HasSubstr("data-k=\"use/" + b + "\" class=\"\">50.0%"));
  EXPECT_THAT(html, HasSubstr("data-k=\"queued/" + b + "\">3<"));
  EXPECT_THAT(html, HasSubstr("data-k=\"rejected/" + b + "\">7<"));
  EXPECT_THAT(html, HasSubstr("data-k=\"rejected_window/" + b + "\">0<"));
  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, HasSubstr("data-k=\"redis\">not configured"));
  EXPECT_THAT(html, HasSubstr("data-k=\"cache\">disabled"));
}

TEST(StatusPageTest, AShortHistoryGivesAShorterWindow) {
  double admitted = 0;
  StatusPage page([&] {
    MetricsWriter out;
    out.Gauge("gateway_limiter_rate_per_second", "h", {{"bucket", "b"}}, 5);
    out.Counter("gateway_limiter_admitted_total", "h", {{"bucket", "b"}}, admitted);
    return std::move(out).Families();
  });
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  page.Sample(t0);
  admitted = 40;
  const std::string html = page.Render(t0 + absl::Seconds(10));
  EXPECT_THAT(html, HasSubstr("data-k=\"window_seconds\">10<"));
  EXPECT_THAT(html, HasSubstr("data-k=\"use/b\" class=\"\">80.0%"));
}

}  // namespace
}  // namespace gateway::service
