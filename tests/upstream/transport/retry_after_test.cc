#include "upstream/transport/retry_after.h"

#include <optional>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace gateway::upstream {
namespace {

// Wed, 21 Oct 2015 07:28:00 GMT.
const absl::Time kNow = absl::FromUnixSeconds(1445412480);

TEST(ParseRetryAfter, DeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("7", kNow), absl::Seconds(7));
  EXPECT_EQ(ParseRetryAfter(" 0 ", kNow), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("1.5", kNow), absl::Milliseconds(1500));
}

TEST(ParseRetryAfter, HugeNumbersAreCapped) {
  EXPECT_EQ(ParseRetryAfter("301", kNow), absl::Seconds(300));
  EXPECT_EQ(ParseRetryAfter("86400", kNow), absl::Seconds(300));  // was "absent" before
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", kNow), absl::Seconds(300));
  EXPECT_EQ(ParseRetryAfter("1e300", kNow), std::nullopt);  // not delta-seconds
  EXPECT_EQ(ParseRetryAfter("120", kNow, absl::Seconds(60)), absl::Seconds(60));
}

TEST(ParseRetryAfter, HttpDatesInAllThreeForms) {
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Wednesday, 21-Oct-15 07:28:30 GMT", kNow), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Wed Oct 21 07:28:30 2015", kNow), absl::Seconds(30));
  // In the past: now.
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", kNow), absl::ZeroDuration());
}

TEST(ParseRetryAfter, AFarFutureDateIsCapped) {
  // Paused a bucket for ~8,000 years before.
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kNow), absl::Seconds(300));
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kNow, absl::Seconds(10)),
            absl::Seconds(10));
}

TEST(ParseRetryAfter, Unparseable) {
  EXPECT_EQ(ParseRetryAfter("", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("7s", kNow), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("Someday, 99 Foo 2015 07:28:00 GMT", kNow), std::nullopt);
}

TEST(RetryAfterOf, ReadsTheHeader) {
  HttpResponse response;
  EXPECT_EQ(RetryAfterOf(response, kNow), std::nullopt);
  response.headers["retry-after"] = "Fri, 31 Dec 9999 23:59:59 GMT";
  EXPECT_EQ(RetryAfterOf(response, kNow), absl::Seconds(300));
}

}  // namespace
}  // namespace gateway::upstream
