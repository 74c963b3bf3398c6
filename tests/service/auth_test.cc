// CallerAuth against the real route table: parsing, pattern expansion, and every decision.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth.h"
#include "service/route_table.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto table = RouteTable::Build({});
    ASSERT_TRUE(table.ok()) << table.status();
    routes_ = std::make_unique<RouteTable>(*std::move(table));
  }
  const upstream::Route& Route(const std::string& rpc) { return *routes_->Find(rpc); }
  std::unique_ptr<RouteTable> routes_;
};

TEST_F(AuthTest, PatternsMatchWholeNamesWithWildcards) {
  EXPECT_TRUE(RpcPatternMatches("*", "/a.B/C"));
  EXPECT_TRUE(RpcPatternMatches("a.B/*", "/a.B/C"));
  EXPECT_TRUE(RpcPatternMatches("/a.B/C", "/a.B/C"));
  EXPECT_TRUE(RpcPatternMatches("a.*/Get*", "/a.B/GetX"));
  EXPECT_FALSE(RpcPatternMatches("a.B/C", "/a.B/CD"));
  EXPECT_FALSE(RpcPatternMatches("a.*/Get*", "/a.B/ListX"));
}

TEST_F(AuthTest, DecisionsAndTheirErrors) {
  auto auth = CallerAuth::Parse(R"({"callers": [
      {"name": "reader", "token": "reader-token-0123456789", "allow": ["@read"]},
      {"name": "writer", "token": "writer-token-0123456789", "allow": ["respondio.v2.ContactService/*"]}]})",
                                "callers.json", *routes_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  const auto& get = Route("/respondio.v2.ContactService/GetContact");
  const auto& create = Route("/respondio.v2.ContactService/CreateContact");
  const auto& send = Route("/respondio.v2.MessageService/SendMessage");

  EXPECT_EQ(*auth->Check("Bearer reader-token-0123456789", get), "reader");
  EXPECT_EQ(*auth->Check("  bearer   writer-token-0123456789 ", create), "writer");

  absl::Status missing = auth->Check("", get).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(upstream::ErrorReasonOf(missing), "MISSING_CREDENTIALS");
  absl::Status unknown = auth->Check("Bearer reader-token-012345678X", get).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(upstream::ErrorReasonOf(unknown), "INVALID_TOKEN");
  EXPECT_EQ(upstream::ErrorReasonOf(auth->Check("reader-token-0123456789", get).status()),
            "INVALID_TOKEN");
  absl::Status denied = auth->Check("Bearer reader-token-0123456789", create).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(upstream::ErrorReasonOf(denied), "RPC_NOT_ALLOWED");
  EXPECT_THAT(denied.message(), Not(HasSubstr("token-0123")));
  EXPECT_EQ(auth->Check("Bearer writer-token-0123456789", send).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthTest, InvalidFilesNameTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "not a JSON object"},
      {R"({"callers": [{"name": "a b", "token": "0123456789abcdef", "allow": ["*"]}]})",
       "names use only"},
      {R"({"callers": [{"name": "a", "allow": ["*"]}]})", "exactly one of"},
      {R"({"callers": [{"name": "a", "token": "0123456789abcdef"}]})", "\"allow\" must be"},
      {R"({"callers": [{"name": "a", "token": "0123456789 abcdef", "allow": ["*"]}]})",
       "whitespace"},
      {R"({"callers": [{"name": "a", "token": "0123456789abcdef", "allow": ["*"]},
                       {"name": "a", "token": "0123456789abcdeX", "allow": ["*"]}]})",
       "listed twice"},
      {R"({"callers": [{"name": "a", "token_file": "/nonexistent", "allow": ["*"]}]})",
       "cannot read /nonexistent"},
  };
  for (const auto& [text, message] : cases) {
    auto auth = CallerAuth::Parse(text, "callers.json", *routes_);
    ASSERT_FALSE(auth.ok()) << text;
    EXPECT_THAT(auth.status().message(), HasSubstr(message)) << text;
    EXPECT_THAT(auth.status().message(), HasSubstr("callers.json"));
  }
}

}  // namespace
}  // namespace gateway::service
