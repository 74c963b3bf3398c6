// CallerAuth against the real route table: parsing, pattern expansion, and every decision.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth.h"
#include "service/route_table.h"
#include "upstream/errors.h"
#include "upstream/safe_text.h"

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

// Caller tokens are configured secrets: nothing the gateway emits carries one, even when an
// upstream quotes it back (issue 9).
TEST_F(AuthTest, CallerTokensAreRedactedFromEmittedText) {
  auto auth = CallerAuth::Parse(R"({"callers": [
      {"name": "quoted", "token": "quoted-caller-token-42xyz", "allow": ["*"]}]})",
                                "callers.json", *routes_);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(upstream::RedactSecrets("a quoted-caller-token-42xyz b"), "a [REDACTED] b");
  const absl::Status quoted = upstream::GatewayError(
      absl::StatusCode::kInvalidArgument, "rejected: quoted-caller-token-42xyz",
      {.reason = "UPSTREAM_INVALID_ARGUMENT"});
  EXPECT_EQ(quoted.message().find("quoted-caller-token-42xyz"), absl::string_view::npos)
      << quoted.message();
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

TEST_F(AuthTest, WorkspacesACallerMayUse) {
  const std::vector<std::string> configured = {"acme", "globex"};
  auto auth = CallerAuth::Parse(R"({"callers": [
      {"name": "acme-bot", "token": "acme-token-0123456789", "allow": ["*"], "workspaces": ["acme"]},
      {"name": "ops", "token": "ops-token-0123456789", "allow": ["*"], "workspaces": ["*"]},
      {"name": "legacy", "token": "legacy-token-0123456789", "allow": ["*"]}]})",
                                "callers.json", *routes_, &configured);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->CheckWorkspace("acme-bot", "acme").ok());
  const absl::Status refused = auth->CheckWorkspace("acme-bot", "globex");
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(upstream::ErrorReasonOf(refused), "WORKSPACE_NOT_ALLOWED");
  EXPECT_THAT(std::string(refused.message()), HasSubstr("globex"));
  EXPECT_TRUE(auth->CheckWorkspace("ops", "globex").ok());
  EXPECT_TRUE(auth->CheckWorkspace("legacy", "globex").ok());  // no list: every workspace
  EXPECT_FALSE(auth->CheckWorkspace("nobody", "acme").ok());

  // A workspace the configuration does not define is a typo, caught at load.
  auto typo = CallerAuth::Parse(R"({"callers": [
      {"name": "a", "token": "acme-token-0123456789", "allow": ["*"], "workspaces": ["acmee"]}]})",
                                "callers.json", *routes_, &configured);
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(std::string(typo.status().message()), HasSubstr("workspace \"acmee\" is not in"));
  auto empty = CallerAuth::Parse(R"({"callers": [
      {"name": "a", "token": "acme-token-0123456789", "allow": ["*"], "workspaces": []}]})",
                                 "callers.json", *routes_, &configured);
  EXPECT_FALSE(empty.ok());
}

TEST_F(AuthTest, ReplaceSwapsTheCallersOfEveryCopy) {
  auto first = CallerAuth::Parse(R"({"callers": [
      {"name": "old", "token": "old-token-0123456789", "allow": ["*"]}]})",
                                 "callers.json", *routes_);
  ASSERT_TRUE(first.ok());
  const CallerAuth copy = *first;  // e.g. the one the service holds
  auto next = CallerAuth::Parse(R"({"callers": [
      {"name": "new", "token": "new-token-0123456789", "allow": ["@read"]}]})",
                                "callers.json", *routes_);
  ASSERT_TRUE(next.ok());
  const auto& get = Route("/respondio.v2.ContactService/GetContact");
  EXPECT_EQ(*copy.Check("Bearer old-token-0123456789", get), "old");
  first->Replace(*next);
  EXPECT_EQ(upstream::ErrorReasonOf(copy.Check("Bearer old-token-0123456789", get).status()),
            "INVALID_TOKEN");  // a rotated token stops working at once
  EXPECT_EQ(*copy.Check("Bearer new-token-0123456789", get), "new");
}

}  // namespace
}  // namespace gateway::service
