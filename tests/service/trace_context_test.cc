// W3C trace context: valid headers continue the caller's trace, anything malformed starts a new
// one, and nothing malformed is forwarded.
#include "service/trace_context.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gateway::service {
namespace {

using ::testing::MatchesRegex;

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ContinuesAValidTraceWithANewSpanAndForwardsTracestate) {
  const TraceContext t = TraceContext::ForCall(kParent, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  EXPECT_EQ(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.parent_span_id(), "00f067aa0ba902b7");
  EXPECT_TRUE(t.sampled());
  EXPECT_THAT(std::string(t.span_id()), MatchesRegex("[0-9a-f]{16}"));
  EXPECT_NE(t.span_id(), t.parent_span_id());
  EXPECT_EQ(t.Traceparent(),
            absl::StrCat("00-4bf92f3577b34da6a3ce929d0e0e4736-", t.span_id(), "-01"));
  const auto headers = t.Headers();
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].first, "traceparent");
  EXPECT_EQ(headers[1], std::make_pair(std::string("tracestate"),
                                       std::string("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")));
}

TEST(TraceContextTest, WithoutATraceparentTheGatewayStartsOne) {
  const TraceContext a = TraceContext::ForCall("", "rojo=1");
  const TraceContext b = TraceContext::ForCall("", "");
  EXPECT_THAT(std::string(a.trace_id()), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_THAT(std::string(a.span_id()), MatchesRegex("[0-9a-f]{16}"));
  EXPECT_NE(a.trace_id(), b.trace_id());
  EXPECT_EQ(a.parent_span_id(), "");
  EXPECT_FALSE(a.sampled());
  // A tracestate without a traceparent means nothing: not forwarded.
  EXPECT_EQ(a.tracestate(), "");
  EXPECT_EQ(a.Headers().size(), 1u);
  EXPECT_THAT(a.Traceparent(), MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-00"));
}

TEST(TraceContextTest, MalformedTraceparentsStartANewTrace) {
  const std::string bad[] = {
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // v00 with extra
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // forbidden version
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y",
  };
  for (const std::string& header : bad) {
    const TraceContext t = TraceContext::ForCall(header, "rojo=1");
    EXPECT_NE(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736") << header;
    EXPECT_THAT(t.Traceparent(), MatchesRegex("00-[0-9a-f]{32}-[0-9a-f]{16}-00")) << header;
    EXPECT_EQ(t.tracestate(), "") << header;
  }
}

TEST(TraceContextTest, LaterVersionsAreReadAsVersion00) {
  const TraceContext t = TraceContext::ForCall(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds", "");
  EXPECT_EQ(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_THAT(t.Traceparent(), MatchesRegex("00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01"));
}

TEST(TraceContextTest, MalformedTracestateIsDroppedButTheTraceContinues) {
  const std::string states[] = {"no-equals", "UPPER=1", "k=v\x01", "k=va,lue=",
                                std::string(600, 'a') + "=1", "=v"};
  for (const std::string& state : states) {
    const TraceContext t = TraceContext::ForCall(kParent, state);
    EXPECT_EQ(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736") << state;
    EXPECT_EQ(t.tracestate(), "") << state;
  }
  EXPECT_TRUE(ValidTracestate("tenant@system=x, a=b"));
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  EXPECT_FALSE(ValidTracestate(many));
}

}  // namespace
}  // namespace gateway::service
