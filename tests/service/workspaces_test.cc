// WorkspaceSet and Workspaces: selecting a workspace, and what a rebuild keeps.
#include "service/workspaces.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/workspaces_test_", name);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return path;
}

GatewayConfig Load(const std::string& name, const std::string& json) {
  auto config = LoadConfig({.config_file = WriteTemp(name, json)});
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : GatewayConfig();
}

constexpr char kTwo[] = R"({"workspaces": {
    "acme": {"respondio": {"token_file": "TOKEN_A"}},
    "globex": {"respondio": {"token_file": "TOKEN_B"},
               "rate_limits": {"buckets": {"respondio/contact_get": {"rate_per_second": 2}}}}}})";

std::string Two(const std::string& token_a, const std::string& token_b) {
  std::string json = kTwo;
  json.replace(json.find("TOKEN_A"), 7, token_a);
  json.replace(json.find("TOKEN_B"), 7, token_b);
  return json;
}

TEST(WorkspaceSet, SelectByMetadataWithTheReasonsOfTheErrorModel) {
  const GatewayConfig config =
      Load("two.json", Two(WriteTemp("a", "token-a-0123456789"), WriteTemp("b", "token-b-0123456789")));
  auto set = WorkspaceSet::Build(config, {}, nullptr);
  EXPECT_EQ(set->Names(), (std::vector<std::string>{"acme", "globex"}));

  auto acme = set->Select("acme", true);
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_EQ((*acme)->name, "acme");
  EXPECT_EQ((*acme)->config.upstreams.at("respondio").token, "token-a-0123456789");

  const absl::Status required = set->Select("", false).status();
  EXPECT_EQ(required.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(upstream::ErrorReasonOf(required), "WORKSPACE_REQUIRED");
  const absl::Status unknown = set->Select("initech", true).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(upstream::ErrorReasonOf(unknown), "UNKNOWN_WORKSPACE");

  // Without a workspaces map the top level is `default`, used by calls that name none.
  auto single = WorkspaceSet::Build(Load("single.json", "{}"), {}, nullptr);
  auto fallback = single->Select("", false);
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ((*fallback)->name, "default");
}

TEST(WorkspaceSet, ARebuildKeepsTheDispatchersOfUnchangedWorkspaces) {
  const std::string a = WriteTemp("ra", "token-a-0123456789");
  const std::string b = WriteTemp("rb", "token-b-0123456789");
  auto first = WorkspaceSet::Build(Load("r1.json", Two(a, b)), {}, nullptr);
  Workspaces workspaces(first);
  // Same files: every dispatcher carries on.
  auto same = WorkspaceSet::Build(Load("r2.json", Two(a, b)), {}, first.get());
  EXPECT_EQ(same->all().at("acme").dispatcher, first->all().at("acme").dispatcher);
  EXPECT_EQ(same->all().at("globex").dispatcher, first->all().at("globex").dispatcher);
  // A rotated token gives that workspace a new dispatcher; the other keeps its own.
  const std::string b2 = WriteTemp("rb2", "token-b-rotated-0123456789");
  auto rotated = WorkspaceSet::Build(Load("r3.json", Two(a, b2)), {}, same.get());
  EXPECT_EQ(rotated->all().at("acme").dispatcher, first->all().at("acme").dispatcher);
  EXPECT_NE(rotated->all().at("globex").dispatcher, first->all().at("globex").dispatcher);
  workspaces.Replace(rotated);
  EXPECT_EQ(workspaces.Current(), rotated);
  // The replaced dispatcher is still listed (metrics count over the process' life).
  EXPECT_EQ(workspaces.AllDispatchers().size(), 3u);
  // A call that took the first snapshot still has it.
  EXPECT_EQ(first->all().at("globex").config.upstreams.at("respondio").token, "token-b-0123456789");
}

TEST(WorkspaceSet, RatesAreTheWorkspaceOwn) {
  const GatewayConfig config =
      Load("rates.json", Two(WriteTemp("qa", "token-a-0123456789"), WriteTemp("qb", "token-b-0123456789")));
  EXPECT_EQ(config.workspaces.at("acme").buckets.at("respondio/contact_get").rate_per_second, 10);
  EXPECT_EQ(config.workspaces.at("globex").buckets.at("respondio/contact_get").rate_per_second, 2);
}

}  // namespace
}  // namespace gateway::service
