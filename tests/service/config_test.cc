#include "service/config.h"

#include <fstream>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/route_table.h"
#include "upstream/errors.h"
#include "upstream/safe_text.h"

namespace gateway::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Writes `text` to a fresh file under the test's temporary directory and returns its path.
std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/config_test_", name);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  EXPECT_TRUE(out.good()) << path;
  return path;
}

GatewayConfig LoadOk(const ConfigSources& sources) {
  auto config = LoadConfig(sources);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : GatewayConfig();
}

void ExpectConfigError(const absl::StatusOr<GatewayConfig>& config,
                       const std::vector<std::string>& mentions) {
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& mention : mentions) {
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(mention));
  }
}

absl::StatusOr<GatewayConfig> LoadFile(const std::string& name, const std::string& json,
                                       ConfigSources sources = {}) {
  sources.config_file = WriteTemp(name, json);
  return LoadConfig(sources);
}

// ---- defaults and tokens ----

TEST(LoadConfig, DefaultsPointAtTheSandbox) {
  const GatewayConfig config = LoadOk({});
  EXPECT_EQ(config.listen, "127.0.0.1:8080");
  EXPECT_EQ(config.default_deadline, absl::Seconds(30));
  EXPECT_TRUE(config.routes.empty());

  const upstream::UpstreamConfig& respondio = config.upstreams.at("respondio");
  EXPECT_EQ(respondio.name, "respondio");
  EXPECT_EQ(respondio.base_url, "http://127.0.0.1:8081");
  EXPECT_EQ(respondio.token, "sandbox-token");
  EXPECT_EQ(respondio.auth_header, "Authorization");
  EXPECT_TRUE(respondio.path_defaults.empty());

  const upstream::UpstreamConfig& chatwoot = config.upstreams.at("chatwoot");
  EXPECT_EQ(chatwoot.base_url, "http://127.0.0.1:8081");
  EXPECT_EQ(chatwoot.token, "sandbox-token");
  EXPECT_EQ(chatwoot.auth_header, "api_access_token");
  EXPECT_EQ(chatwoot.path_defaults.at("account_id"), "1");
}

TEST(LoadConfig, TokenFileIsTrimmedAndBeatsTheEnvironment) {
  ConfigSources sources;
  sources.respondio_base_url = "https://api.respond.io/v2";
  sources.respondio_token_file = WriteTemp("token", "  file-token-123\n\n");
  sources.respondio_token_env = "env-token";
  const GatewayConfig config = LoadOk(sources);
  EXPECT_EQ(config.upstreams.at("respondio").token, "file-token-123");
  EXPECT_EQ(config.upstreams.at("respondio").base_url, "https://api.respond.io/v2");
}

TEST(LoadConfig, EnvironmentTokenIsUsed) {
  ConfigSources sources;
  sources.respondio_base_url = "https://api.respond.io/v2/";
  sources.respondio_token_env = " env-token \n";
  sources.chatwoot_base_url = "https://chatwoot.example.com";
  sources.chatwoot_token_env = "cw-token";
  const GatewayConfig config = LoadOk(sources);
  EXPECT_EQ(config.upstreams.at("respondio").token, "env-token");
  // The trailing slash is dropped so that paths can be appended.
  EXPECT_EQ(config.upstreams.at("respondio").base_url, "https://api.respond.io/v2");
  EXPECT_EQ(config.upstreams.at("chatwoot").token, "cw-token");
}

TEST(LoadConfig, RemoteUpstreamWithoutTokenIsAnErrorNamingTheFlag) {
  ConfigSources sources;
  sources.respondio_base_url = "https://api.respond.io/v2";
  ExpectConfigError(LoadConfig(sources),
                    {"respondio", "--respondio_token_file", "RESPONDIO_API_TOKEN"});

  ConfigSources chatwoot;
  chatwoot.chatwoot_base_url = "https://chatwoot.example.com";
  ExpectConfigError(LoadConfig(chatwoot), {"--chatwoot_token_file", "CHATWOOT_API_TOKEN"});
}

TEST(LoadConfig, OnlyLoopbackHostsGetTheSandboxToken) {
  for (const char* url : {"http://127.0.0.1:9000", "http://localhost:8081/v2", "http://localhost",
                          "http://[::1]:8081"}) {
    SCOPED_TRACE(url);
    ConfigSources sources;
    sources.respondio_base_url = url;
    EXPECT_EQ(LoadOk(sources).upstreams.at("respondio").token, "sandbox-token");
  }
  // Hosts that merely start like a loopback name are remote.
  for (const char* url : {"http://localhost.example.com", "http://127.0.0.1.nip.io:8081",
                          "http://localhost@evil.example.com/",
                          "http://127.0.0.1:8081@evil.example.com/v2"}) {
    SCOPED_TRACE(url);
    ConfigSources sources;
    sources.respondio_base_url = url;
    ExpectConfigError(LoadConfig(sources), {"--respondio_token_file"});
  }
}

TEST(LoadConfig, BadBaseUrlOrTokenFile) {
  ConfigSources scheme;
  scheme.respondio_base_url = "ftp://api.respond.io";
  ExpectConfigError(LoadConfig(scheme), {"respondio_base_url", "ftp://api.respond.io"});

  ConfigSources missing;
  missing.respondio_token_file = absl::StrCat(::testing::TempDir(), "/does-not-exist");
  ExpectConfigError(LoadConfig(missing), {"respondio token file", "does-not-exist"});

  ConfigSources empty;
  empty.respondio_token_file = WriteTemp("empty_token", " \n");
  ExpectConfigError(LoadConfig(empty), {"is empty"});
}

TEST(LoadConfig, ChatwootAccountId) {
  ConfigSources sources;
  sources.chatwoot_account_id = 7;
  EXPECT_EQ(LoadOk(sources).upstreams.at("chatwoot").path_defaults.at("account_id"), "7");

  sources.chatwoot_account_id = -1;
  ExpectConfigError(LoadConfig(sources), {"--chatwoot_account_id"});
}

// ---- the config file ----

TEST(ConfigFile, FullFile) {
  const std::string token = WriteTemp("file_token", "from-file\n");
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("full.json", absl::StrCat(R"({
      "listen": "0.0.0.0:9090",
      "default_deadline_seconds": 2.5,
      "upstreams": {
        "respondio": {"base_url": "https://api.respond.io/v2", "token_file": ")", token, R"("},
        "chatwoot": {"base_url": "http://localhost:3000", "default_account_id": 42}
      }
  })"))});
  EXPECT_EQ(config.listen, "0.0.0.0:9090");
  EXPECT_EQ(config.default_deadline, absl::Milliseconds(2500));
  EXPECT_EQ(config.upstreams.at("respondio").token, "from-file");
  EXPECT_EQ(config.upstreams.at("chatwoot").base_url, "http://localhost:3000");
  EXPECT_EQ(config.upstreams.at("chatwoot").path_defaults.at("account_id"), "42");
  EXPECT_EQ(config.upstreams.at("chatwoot").auth_header, "api_access_token");
}

TEST(ConfigFile, MaxResponseBytesPerUpstream) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("max_body.json", R"({
      "upstreams": {"chatwoot": {"max_response_bytes": 1048576}}})")});
  EXPECT_EQ(config.upstreams.at("chatwoot").max_response_bytes, 1048576);
  EXPECT_EQ(config.upstreams.at("respondio").max_response_bytes, 0);  // the client's 8 MiB
  ExpectConfigError(
      LoadFile("zero_max_body.json", R"({"upstreams":{"chatwoot":{"max_response_bytes":0}}})"),
      {"max_response_bytes must be a positive integer"});
  ExpectConfigError(
      LoadFile("str_max_body.json", R"({"upstreams":{"chatwoot":{"max_response_bytes":"8M"}}})"),
      {"upstreams.chatwoot.max_response_bytes", "8M"});
}

TEST(ConfigFile, FlagsBeatTheFile) {
  const GatewayConfig config = LoadOk(
      {.config_file = WriteTemp("flags.json", R"({"listen":"0.0.0.0:9090",
          "upstreams":{"chatwoot":{"default_account_id":42}}})"),
       .listen = "127.0.0.1:7000",
       .chatwoot_account_id = 5});
  EXPECT_EQ(config.listen, "127.0.0.1:7000");
  EXPECT_EQ(config.upstreams.at("chatwoot").path_defaults.at("account_id"), "5");
}

TEST(ConfigFile, EmptyBaseUrlLeavesTheUpstreamUnconfigured) {
  const GatewayConfig config =
      LoadOk({.config_file = WriteTemp("unconfigured.json",
                                       R"({"upstreams":{"chatwoot":{"base_url":""}}})")});
  EXPECT_EQ(config.upstreams.at("chatwoot").base_url, "");
  EXPECT_EQ(config.upstreams.at("chatwoot").token, "");
}

TEST(ConfigFile, UnknownKeysAreErrorsNamingThem) {
  ExpectConfigError(LoadFile("unknown_top.json", R"({"listn":"0.0.0.0:1"})"),
                    {"unknown_top.json", "'listn'"});
  ExpectConfigError(
      LoadFile("unknown_upstream_key.json",
               R"({"upstreams":{"respondio":{"baseurl":"https://api.respond.io/v2"}}})"),
      {"'baseurl'", "upstreams.respondio"});
  ExpectConfigError(LoadFile("unknown_upstream.json", R"({"upstreams":{"slack":{}}})"),
                    {"'slack'"});
  ExpectConfigError(
      LoadFile("unknown_route_key.json",
               R"({"routes":{"respondio.v2.ContactService.GetContact":{"verb":"GET"}}})"),
      {"'verb'", "respondio.v2.ContactService.GetContact"});
}

TEST(ConfigFile, MalformedJson) {
  ExpectConfigError(LoadFile("malformed.json", R"({"listen": "0.0.0.0:1",)"),
                    {"malformed.json", "not valid JSON"});
  ExpectConfigError(LoadFile("array.json", "[]"), {"the top level must be an object"});
  ExpectConfigError(LoadFile("wrong_type.json", R"({"listen": 8080})"),
                    {"wrong_type.json", "wrong value", "listen"});
  // Map entries are named by their key, not by the parser's position.
  ExpectConfigError(
      LoadFile("wrong_map_type.json", R"({"routes":{
          "respondio.v2.ContactService.GetContact":{"policy":{"cache_ttl_seconds":30}},
          "respondio.v2.ContactService.ListContacts":{"policy":{"cache_ttl_seconds":"x"}}}})"),
      {"routes[\"respondio.v2.ContactService.ListContacts\"].policy.cache_ttl_seconds"});
}

TEST(ConfigFile, UnreadableFile) {
  ExpectConfigError(
      LoadConfig({.config_file = absl::StrCat(::testing::TempDir(), "/no-such-config.json")}),
      {"--config", "no-such-config.json"});
}

TEST(ConfigFile, InvalidNumbers) {
  ExpectConfigError(
      LoadFile("negative_account.json", R"({"upstreams":{"chatwoot":{"default_account_id":-3}}})"),
      {"default_account_id must be positive"});
  ExpectConfigError(
      LoadFile("respondio_account.json",
               R"({"upstreams":{"respondio":{"default_account_id":1}}})"),
      {"chatwoot only"});
  ExpectConfigError(LoadFile("deadline.json", R"({"default_deadline_seconds":0})"),
                    {"default_deadline_seconds must be positive"});
  ExpectConfigError(
      LoadFile("ttl.json",
               R"({"routes":{"respondio.v2.ContactService.GetContact":{"cache_ttl_seconds":-1}}})"),
      {"cache_ttl_seconds must not be negative"});
}

TEST(ConfigFile, LimiterWaitAndPauseCaps) {
  const GatewayConfig defaults = LoadOk({});
  EXPECT_EQ(defaults.max_queue_wait, absl::Seconds(30));
  EXPECT_EQ(defaults.max_pause, absl::Seconds(300));
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("caps.json", R"({"rate_limits":
      {"max_queue_wait_seconds": 12.5, "max_pause_seconds": 60}})")});
  EXPECT_EQ(config.max_queue_wait, absl::Milliseconds(12500));
  EXPECT_EQ(config.max_pause, absl::Seconds(60));
  ExpectConfigError(LoadFile("wait0.json", R"({"rate_limits":{"max_queue_wait_seconds":0}})"),
                    {"rate_limits.max_queue_wait_seconds must be in (0, 86400]"});
  ExpectConfigError(LoadFile("pause.json", R"({"rate_limits":{"max_pause_seconds":1e9}})"),
                    {"rate_limits.max_pause_seconds must be in (0, 86400]"});
}

// ---- route overrides ----

TEST(ParseConfigJson, RouteOverridesAreKeyedByCanonicalRpc) {
  auto parsed = ParseConfigJson(R"({"routes":{
      "respondio.v2.ContactService.ListContactChannels":
          {"method":"GET","path":"/contact/{identifier}/channels"},
      "/respondio.v2.TagService/CreateTag":
          {"path":"/space/tag","bucket":"space_tag","cache_ttl_seconds":0,"body":"*",
           "response_body":"tag"}}})",
                                "test.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ParsedConfig& config = *parsed;
  ASSERT_EQ(config.routes.size(), 2u);
  const RouteOverride& channels =
      config.routes.at("/respondio.v2.ContactService/ListContactChannels");
  EXPECT_EQ(channels.method, "GET");
  EXPECT_EQ(channels.path, "/contact/{identifier}/channels");
  EXPECT_FALSE(channels.body.has_value());
  EXPECT_FALSE(channels.bucket.has_value());
  const RouteOverride& tag = config.routes.at("/respondio.v2.TagService/CreateTag");
  EXPECT_FALSE(tag.method.has_value());
  EXPECT_EQ(tag.path, "/space/tag");
  EXPECT_EQ(tag.bucket, "space_tag");
  EXPECT_EQ(tag.cache_ttl_seconds, 0);
  EXPECT_EQ(tag.body, "*");
  EXPECT_EQ(tag.response_body, "tag");
}

TEST(ParseConfigJson, TokenFilesAreRead) {
  auto parsed =
      ParseConfigJson(R"({"upstreams":{"chatwoot":{"token_file":"/run/secrets/cw"}}})", "test.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->proto.upstreams().chatwoot().token_file(), "/run/secrets/cw");
}

TEST(ParseConfigJson, TypedRouteFormEqualsTheFlatForm) {
  auto typed = ParseConfigJson(R"({"routes":{"respondio.v2.TagService.CreateTag":
      {"binding":{"path":"/space/tag","body":"*"},"policy":{"bucket":"tag_write","cache_ttl_seconds":0}}}})",
                               "typed.json");
  ASSERT_TRUE(typed.ok()) << typed.status();
  const RouteOverride& o = typed->routes.at("/respondio.v2.TagService/CreateTag");
  EXPECT_FALSE(o.method.has_value());
  EXPECT_EQ(o.path, "/space/tag");
  EXPECT_EQ(o.body, "*");
  EXPECT_EQ(o.bucket, "tag_write");
  EXPECT_EQ(o.cache_ttl_seconds, 0);  // present though zero: an override to "never cache"

  auto both = ParseConfigJson(R"({"routes":{"respondio.v2.TagService.CreateTag":
      {"path":"/a","binding":{"path":"/b"}}}})", "both.json");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("both flat and in binding"));

  auto fixed = ParseConfigJson(R"({"routes":{"respondio.v2.TagService.CreateTag":
      {"binding":{"upstream":"chatwoot"}}}})", "fixed.json");
  ASSERT_FALSE(fixed.ok());
  EXPECT_THAT(std::string(fixed.status().message()),
              HasSubstr("routes[\"respondio.v2.TagService.CreateTag\"].binding.upstream cannot be overridden"));

  auto typo = ParseConfigJson(R"({"routes":{"respondio.v2.TagService.CreateTag":
      {"policy":{"buckt":"x"}}}})", "typo.json");
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(std::string(typo.status().message()),
              HasSubstr("unknown key 'buckt' in routes[\"respondio.v2.TagService.CreateTag\"].policy"));
}

TEST(RouteOverride, ChangesVerbAndPathAndRouteTableAppliesIt) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("override.json", R"({"routes":{
      "respondio.v2.ContactService.ListContacts": {"method": "POST", "path": "/contact/list",
                                                   "body": "*"},
      "respondio.v2.ContactService.ListContactChannels":
          {"method": "GET", "path": "/contact/{identifier}/channels", "bucket": "channels"}}})")});
  auto table = RouteTable::Build(config.routes);
  ASSERT_TRUE(table.ok()) << table.status();
  const upstream::Route* list = table->Find("/respondio.v2.ContactService/ListContacts");
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list->binding.method(), "POST");
  EXPECT_EQ(list->binding.body(), "*");
  // Still a read: its policy declares it retry_safe, and Route::read is decided once from the
  // verb and the policy (cache, coalescing, retries, pooling and @read agree on it).
  EXPECT_TRUE(list->is_read());
  EXPECT_EQ(list->binding.pagination(), "respondio_cursor");  // not overridden: kept
  const upstream::Route* channels =
      table->Find("/respondio.v2.ContactService/ListContactChannels");
  ASSERT_NE(channels, nullptr);
  EXPECT_EQ(channels->binding.path(), "/contact/{identifier}/channels");
  EXPECT_EQ(channels->policy.bucket(), "channels");
  EXPECT_EQ(channels->policy.cache_ttl_seconds(), 60);  // not overridden: kept
}

TEST(RouteOverride, UnknownRpcIsAnError) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("unknown_rpc.json", R"({"routes":{
      "respondio.v2.ContactService.GetContacts": {"path": "/contact/{identifier}"}}})")});
  auto table = RouteTable::Build(config.routes);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("/respondio.v2.ContactService/GetContacts"));
}

TEST(RouteOverride, BadPlaceholderIsAnError) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("bad_placeholder.json",
      R"({"routes":{"respondio.v2.ContactService.GetContact": {"path": "/contact/{id}"}}})")});
  auto table = RouteTable::Build(config.routes);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("respondio.v2.ContactService.GetContact"));
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("{id}"));
}

TEST(Dialect, LiveByDefaultFlagsAndConfigKeyChooseIt) {
  EXPECT_EQ(LoadOk({}).dialects.at("respondio"), "live");
  EXPECT_EQ(LoadOk({}).dialects.at("chatwoot"), "live");
  const std::string file = WriteTemp("dialect.json",
      R"({"upstreams":{"respondio":{"dialect":"openapi"},"chatwoot":{"dialect":"openapi"}}})");
  GatewayConfig config = LoadOk({.config_file = file});
  EXPECT_EQ(config.dialects.at("respondio"), "openapi");
  EXPECT_EQ(config.dialects.at("chatwoot"), "openapi");
  // The flag beats the file.
  config = LoadOk({.config_file = file, .respondio_dialect = "live"});
  EXPECT_EQ(config.dialects.at("respondio"), "live");
  EXPECT_EQ(config.dialects.at("chatwoot"), "openapi");
}

TEST(Dialect, UnknownDialectIsAnError) {
  auto config = LoadConfig({.chatwoot_dialect = "rest"});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("chatwoot"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("live or openapi"));
  config = LoadConfig({.config_file = WriteTemp("bad_dialect.json",
                                                R"({"upstreams":{"respondio":{"dialect":3}}})")});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("upstreams.respondio.dialect"));
}

// ---- bucket rates are data ----

std::vector<BucketUse> UsesOf(const RouteTable& table) {
  std::vector<BucketUse> uses;
  for (const auto& route : table.routes()) {
    uses.push_back({route->rpc, absl::StrCat(route->binding.upstream(), "/", route->policy.bucket())});
  }
  return uses;
}

TEST(BucketRates, TheDefaultsRateEveryRoute) {
  const GatewayConfig config = LoadOk({});
  auto table = RouteTable::Build(config.routes);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(CheckBucketRates(config, UsesOf(*table)).ok());
  EXPECT_EQ(config.buckets.at("respondio/contact_get").rate_per_second, 10);
  EXPECT_EQ(config.buckets.at("respondio/message_get").rate_per_second, 15);
  EXPECT_EQ(config.buckets.at("chatwoot/chatwoot").rate_per_second, 50);
}

TEST(BucketRates, ARouteNamingABucketWithoutARateIsAnError) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("no_rate.json", R"({"routes":{
      "respondio.v2.ContactService.ListContactChannels": {"policy": {"bucket": "channels"}}}})")});
  auto table = RouteTable::Build(config.routes);
  ASSERT_TRUE(table.ok()) << table.status();
  const absl::Status status = CheckBucketRates(config, UsesOf(*table));
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("/respondio.v2.ContactService/ListContactChannels uses bucket "
                        "respondio/channels, which has no rate"));

  const GatewayConfig rated = LoadOk({.config_file = WriteTemp("rate.json", R"({"routes":{
      "respondio.v2.ContactService.ListContactChannels": {"policy": {"bucket": "channels"}}},
      "rate_limits": {"buckets": {"respondio/channels": {"rate_per_second": 2}}}})")});
  EXPECT_TRUE(CheckBucketRates(rated, UsesOf(*RouteTable::Build(rated.routes))).ok());
  ExpectConfigError(LoadFile("bad_bucket.json",
                             R"({"rate_limits":{"buckets":{"slack/x":{"rate_per_second":1}}}})"),
                    {"rate_limits.buckets[\"slack/x\"]", "upstream/bucket"});
  ExpectConfigError(LoadFile("no_rate_value.json",
                             R"({"rate_limits":{"buckets":{"respondio/x":{"burst":1}}}})"),
                    {"rate_per_second must be positive"});
}

// ---- the repository's config files ----

TEST(ConfigFile, KubernetesConfigsParse) {
  for (const char* file : {"k8s/base/config.json", "k8s/overlays/dev/config.json",
                           "k8s/overlays/prod/config.json"}) {
    SCOPED_TRACE(file);
    ConfigSources sources{.config_file = file};
    sources.workspaces_file = "k8s/base/workspaces.json";  // what the Deployment mounts
    sources.read_secrets = false;  // remote upstreams: token files are mounted in the pod
    const GatewayConfig config = LoadOk(sources);
    auto table = RouteTable::Build(config.routes);
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_TRUE(CheckBucketRates(config, UsesOf(*table)).ok());
  }
}

// ---- workspaces ----

TEST(Workspaces, WithoutTheMapTheTopLevelIsTheDefault) {
  const GatewayConfig config = LoadOk({});
  ASSERT_EQ(config.workspaces.size(), 1u);
  const WorkspaceConfig& ws = config.workspaces.at("default");
  EXPECT_EQ(ws.upstreams.at("respondio").token, "sandbox-token");
  EXPECT_EQ(ws.upstreams.at("chatwoot").path_defaults.at("account_id"), "1");
  EXPECT_EQ(ws.upstreams.at("chatwoot").limit_scope,
            upstream::UpstreamConfig::LimitScope::kHost);  // Chatwoot limits per client IP
  EXPECT_EQ(ws.buckets.at("respondio/contact_get").rate_per_second, 10);
}

TEST(Workspaces, ListedWorkspacesWithTheirOwnCredentialsAndRates) {
  const std::string acme = WriteTemp("acme_token", "acme-token-0123456789\n");
  const std::string globex = WriteTemp("globex_token", "globex-token-0123456789");
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("workspaces.json", absl::StrCat(R"({
      "upstreams": {"respondio": {"base_url": "https://api.respond.io/v2"}},
      "workspaces": {
        "acme": {"respondio": {"token_file": ")", acme, R"(", "dialect": "live"},
                 "rate_limits": {"buckets": {"respondio/contact_get": {"rate_per_second": 3}}}},
        "globex": {"chatwoot": {"base_url": "https://chat.globex.example", "token_file": ")",
                                globex, R"(", "account_id": 3}}
      }})"))});
  ASSERT_EQ(config.workspaces.size(), 2u);  // no default: calls must name a workspace
  const WorkspaceConfig& a = config.workspaces.at("acme");
  EXPECT_EQ(a.upstreams.at("respondio").token, "acme-token-0123456789");
  EXPECT_EQ(a.upstreams.at("respondio").base_url, "https://api.respond.io/v2");
  EXPECT_FALSE(a.upstreams.contains("chatwoot"));
  EXPECT_EQ(a.buckets.at("respondio/contact_get").rate_per_second, 3);
  EXPECT_EQ(a.buckets.at("respondio/message_get").rate_per_second, 15);  // top level
  const WorkspaceConfig& g = config.workspaces.at("globex");
  EXPECT_EQ(g.upstreams.at("chatwoot").base_url, "https://chat.globex.example");
  EXPECT_EQ(g.upstreams.at("chatwoot").token, "globex-token-0123456789");
  EXPECT_EQ(g.upstreams.at("chatwoot").path_defaults.at("account_id"), "3");
  EXPECT_EQ(g.upstreams.at("chatwoot").auth_header, "api_access_token");
  EXPECT_FALSE(g.upstreams.contains("respondio"));
  EXPECT_EQ(config.upstreams.at("respondio").token, "");  // no default workspace, no token
}

TEST(Workspaces, AListedDefaultFallsBackOnTheTopLevelCredentials) {
  ConfigSources sources{.config_file = WriteTemp("default_ws.json", R"({
      "upstreams": {"respondio": {"base_url": "https://api.respond.io/v2"}},
      "workspaces": {"default": {"chatwoot": {"account_id": 9}}}})")};
  sources.respondio_token_env = "env-token";
  const GatewayConfig config = LoadOk(sources);
  const WorkspaceConfig& ws = config.workspaces.at("default");
  EXPECT_EQ(ws.upstreams.at("respondio").token, "env-token");
  EXPECT_EQ(ws.upstreams.at("chatwoot").path_defaults.at("account_id"), "9");
  EXPECT_EQ(config.upstreams.at("respondio").token, "env-token");
}

// Each workspace has its own dialects: its own, else the top-level one.
TEST(Workspaces, DialectsPerWorkspace) {
  const GatewayConfig config = LoadOk({.config_file = WriteTemp("ws_dialects.json", R"({
      "upstreams": {"chatwoot": {"dialect": "openapi"}},
      "workspaces": {"acme": {"respondio": {"dialect": "live"}, "chatwoot": {}},
                     "globex": {"respondio": {"dialect": "openapi"}}}})")});
  EXPECT_EQ(config.workspaces.at("acme").dialects.at("respondio"), "live");
  EXPECT_EQ(config.workspaces.at("acme").dialects.at("chatwoot"), "openapi");
  EXPECT_EQ(config.workspaces.at("globex").dialects.at("respondio"), "openapi");
  EXPECT_FALSE(config.workspaces.at("globex").dialects.contains("chatwoot"));
}

// Workspaces that share an upstream budget (one Chatwoot installation: its limit is per client
// IP; one respond.io token: its organization's) share one limiter bucket, so a rate set
// differently in each would make the bucket's rate depend on whichever called last: refused.
TEST(Workspaces, SharedBudgetsHaveOneRate) {
  ExpectConfigError(
      LoadFile("ws_shared_rates.json", R"({"workspaces": {
          "acme": {"chatwoot": {"base_url": "http://127.0.0.1:3000", "account_id": 1},
                   "rate_limits": {"buckets": {"chatwoot/chatwoot": {"rate_per_second": 2}}}},
          "globex": {"chatwoot": {"base_url": "http://127.0.0.1:3000/", "account_id": 2}}}})"),
      {"workspaces \"acme\" and \"globex\"", "chatwoot/chatwoot", "127.0.0.1:3000"});
  ExpectConfigError(
      LoadFile("ws_shared_token_rates.json", R"({"workspaces": {
          "acme": {"respondio": {"base_url": "http://127.0.0.1:3000"}},
          "globex": {"respondio": {"base_url": "http://127.0.0.1:3000"},
                     "rate_limits": {"buckets": {"respondio/contact_get": {"rate_per_second": 1}}}}}})"),
      {"workspaces \"acme\" and \"globex\"", "respondio/contact_get"});
  // Other installations, or the same rate everywhere, are fine.
  LoadOk({.config_file = WriteTemp("ws_separate_rates.json", R"({"workspaces": {
      "acme": {"chatwoot": {"base_url": "http://127.0.0.1:3000"},
               "rate_limits": {"buckets": {"chatwoot/chatwoot": {"rate_per_second": 2}}}},
      "globex": {"chatwoot": {"base_url": "http://127.0.0.1:3001"}},
      "initech": {"chatwoot": {"base_url": "http://127.0.0.1:3000"},
                  "rate_limits": {"buckets": {"chatwoot/chatwoot": {"rate_per_second": 2}}}}}})")});
}

TEST(Workspaces, Errors) {
  ExpectConfigError(LoadFile("ws_typo.json", R"({"workspaces":{"acme":{"respondio":{"token_fil":"x"}}}})"),
                    {"unknown key 'token_fil' in workspaces[\"acme\"].respondio", "token_file"});
  ExpectConfigError(LoadFile("ws_name.json", R"({"workspaces":{"Acme Corp":{}}})"),
                    {"workspaces[\"Acme Corp\"]", "lower-case"});
  ExpectConfigError(
      LoadFile("ws_remote.json", R"({"workspaces":{"acme":{"respondio":{"base_url":"https://api.respond.io/v2"}}}})"),
      {"workspaces[\"acme\"].respondio", "no API token", "token_file"});
  ExpectConfigError(
      LoadFile("ws_missing_token.json", R"({"workspaces":{"acme":{"respondio":{"token_file":"/nonexistent/t"}}}})"),
      {"/nonexistent/t"});
  ExpectConfigError(
      LoadFile("ws_dialect.json", R"({"workspaces":{"acme":{"respondio":{"dialect":"rest"}}}})"),
      {"workspaces[\"acme\"].respondio.dialect must be live or openapi", "'rest'"});
  ExpectConfigError(
      LoadFile("ws_account.json", R"({"workspaces":{"acme":{"respondio":{"account_id":2}}}})"),
      {"account_id applies to chatwoot only"});
  ExpectConfigError(
      LoadFile("ws_limits.json", R"({"workspaces":{"acme":{"rate_limits":{"headroom":0.5}}}})"),
      {"only buckets may be set per workspace"});
  ExpectConfigError(
      LoadFile("ws_no_url.json", R"({"upstreams":{"chatwoot":{"base_url":""}},
                                     "workspaces":{"acme":{"chatwoot":{"token_file":"/x"}}}})"),
      {"workspaces[\"acme\"].chatwoot: no base_url"});
}

// ---- --check_config and --print_config ----

TEST(CheckConfig, TokensAreNeitherReadNorRequired) {
  ConfigSources sources{.config_file = WriteTemp("check.json", R"({
      "upstreams": {"respondio": {"base_url": "https://api.respond.io/v2",
                                  "token_file": "/run/secrets/not-here"}}})")};
  EXPECT_FALSE(LoadConfig(sources).ok());
  sources.read_secrets = false;
  EXPECT_TRUE(LoadConfig(sources).ok());
  ConfigSources no_token{.respondio_base_url = "https://api.respond.io/v2"};
  EXPECT_FALSE(LoadConfig(no_token).ok());
  no_token.read_secrets = false;
  EXPECT_TRUE(LoadConfig(no_token).ok());
}

TEST(PrintConfig, EffectiveConfigWithSecretsRedacted) {
  const std::string token = WriteTemp("print_token", "very-secret-token-value\n");
  ConfigSources sources{.config_file = WriteTemp("print.json", absl::StrCat(R"({
      "redis_url": "redis://:hunter2-password@redis:6379/0",
      "upstreams": {"respondio": {"base_url": "https://api.respond.io/v2", "token_file": ")",
                                  token, R"("}},
      "routes": {"respondio.v2.ContactService.GetContact": {"cache_ttl_seconds": 0}}})"))};
  sources.listen = "127.0.0.1:7000";
  sources.chatwoot_token_env = "env-secret-token";
  const GatewayConfig config = LoadOk(sources);
  const std::string printed = PrintConfig(config);
  EXPECT_THAT(printed, Not(HasSubstr("very-secret-token-value")));
  EXPECT_THAT(printed, Not(HasSubstr("env-secret-token")));
  EXPECT_THAT(printed, Not(HasSubstr("hunter2-password")));
  EXPECT_THAT(printed, HasSubstr("redis://[REDACTED]@redis:6379/0"));
  EXPECT_THAT(printed, HasSubstr(token));                    // the file's path, not its content
  EXPECT_THAT(printed, HasSubstr("\"listen\": \"127.0.0.1:7000\""));  // flags applied
  EXPECT_THAT(printed, HasSubstr("\"respondio/contact_get\""));      // defaults included
  EXPECT_THAT(printed, HasSubstr("\"cache_ttl_seconds\": 0"));       // a zero override shown
  // What it prints is a valid config again.
  auto reparsed = ParseConfigJson(printed, "printed");
  EXPECT_TRUE(reparsed.ok()) << reparsed.status();
}

// Every secret the configuration reads is a configured secret (issue 9): a workspace's token
// file, the top-level token (file or environment) and the Redis password are redacted from
// whatever the gateway emits, even when an upstream quotes them back in an error.
TEST(Workspaces, EverySecretReadIsRedactedFromEmittedText) {
  const std::string acme = WriteTemp("redact_acme_token", "acme-ws-token-redact-me\n");
  ConfigSources sources{.config_file = WriteTemp("redact.json", absl::StrCat(R"({
      "redis_url": "redis://:redis-password-redact-me@redis:6379/0",
      "upstreams": {"respondio": {"base_url": "https://api.respond.io/v2"}},
      "workspaces": {
        "acme": {"respondio": {"token_file": ")", acme, R"("}},
        "default": {}
      }})"))};
  sources.respondio_token_env = "env-default-token-redact-me";
  const GatewayConfig config = LoadOk(sources);
  ASSERT_EQ(config.workspaces.at("acme").upstreams.at("respondio").token, "acme-ws-token-redact-me");
  for (const std::string secret : {"acme-ws-token-redact-me", "env-default-token-redact-me",
                                   "redis-password-redact-me"}) {
    const absl::Status quoted = upstream::GatewayError(
        absl::StatusCode::kInvalidArgument, absl::StrCat("the upstream said: ", secret, " is bad"),
        {.reason = "UPSTREAM_INVALID_ARGUMENT", .metadata = {{"upstream_message", secret}}});
    EXPECT_EQ(quoted.message(), "the upstream said: [REDACTED] is bad") << secret;
    EXPECT_EQ(upstream::RedactSecrets(secret), "[REDACTED]");
  }
}

TEST(Workspaces, AWorkspacesFileAddsToTheConfigsAndIsWatched) {
  const std::string token = WriteTemp("wsfile_token", "wsfile-token-0123456789");
  ConfigSources sources{.config_file = WriteTemp("wsfile_main.json", R"({"workspaces":{
      "default":{}, "acme":{"respondio":{"base_url":"http://127.0.0.1:9"}}}})")};
  sources.workspaces_file = WriteTemp("wsfile.json", absl::StrCat(R"({"workspaces":{
      "acme":{"respondio":{"token_file":")", token, R"("}}, "globex":{}}})"));
  const GatewayConfig config = LoadOk(sources);
  EXPECT_EQ(config.workspaces.size(), 3u);
  // The file's entry replaces the config's of the same name.
  EXPECT_EQ(config.workspaces.at("acme").upstreams.at("respondio").base_url,
            "http://127.0.0.1:8081");
  EXPECT_EQ(config.workspaces.at("acme").upstreams.at("respondio").token, "wsfile-token-0123456789");
  EXPECT_THAT(config.source_files, ::testing::UnorderedElementsAre(
                                       sources.config_file, sources.workspaces_file, token));

  sources.workspaces_file = WriteTemp("wsfile_bad.json", R"({"listen":"0.0.0.0:1"})");
  ExpectConfigError(LoadConfig(sources), {"wsfile_bad.json", "sets only \"workspaces\""});
}

}  // namespace
}  // namespace gateway::service
