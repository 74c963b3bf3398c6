#include "upstream/transport/upstream_json.h"

#include <string>

#include "gtest/gtest.h"

namespace gateway::upstream {
namespace {

std::string Nested(int depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(JsonNestingDepth, CountsOnlyStructureOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("1", 100), 0);
  EXPECT_EQ(JsonNestingDepth(R"({"a":[1,{"b":2}]})", 100), 3);
  EXPECT_EQ(JsonNestingDepth(R"({"a":"[[[[{{{{\"[[["})", 100), 1);
  EXPECT_EQ(JsonNestingDepth(Nested(1000), 100), 101);  // stops counting past the limit
}

TEST(ParseUpstreamJson, AcceptsUpToTheLimit) {
  auto json = ParseUpstreamJson(Nested(kMaxUpstreamJsonDepth));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_TRUE(json->is_array());
}

TEST(ParseUpstreamJson, RejectsDeeperBodiesBeforeParsing) {
  for (const std::string& body :
       {Nested(kMaxUpstreamJsonDepth + 1), Nested(60000), std::string(100000, '[')}) {
    auto json = ParseUpstreamJson(body);
    ASSERT_FALSE(json.ok());
    EXPECT_TRUE(IsJsonTooDeep(json.status())) << json.status();
    EXPECT_EQ(json.status().code(), absl::StatusCode::kOutOfRange);
  }
}

TEST(ParseUpstreamJson, NotJson) {
  auto json = ParseUpstreamJson("<html>oops</html>");
  ASSERT_FALSE(json.ok());
  EXPECT_FALSE(IsJsonTooDeep(json.status()));
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gateway::upstream
