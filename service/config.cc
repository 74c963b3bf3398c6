#include "service/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace gateway::service {
namespace {

using nlohmann::json;

absl::Status ConfigError(absl::string_view origin, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", problem));
}

absl::Status CheckKeys(const json& object, absl::string_view where, absl::string_view origin,
                       std::initializer_list<absl::string_view> allowed) {
  if (!object.is_object()) return ConfigError(origin, absl::StrCat(where, " must be an object"));
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = false;
    for (absl::string_view key : allowed) known = known || key == it.key();
    if (!known) {
      return ConfigError(origin, absl::StrCat("unknown key '", it.key(), "' in ", where,
                                              " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(absl::string_view path) {
  std::ifstream in{std::string(path)};
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "/pkg.Service/Method" from either spelling.
std::string CanonicalRpc(absl::string_view name) {
  if (absl::StartsWith(name, "/")) return std::string(name);
  const size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos) return std::string(name);
  return absl::StrCat("/", name.substr(0, dot), "/", name.substr(dot + 1));
}

absl::Status CheckBaseUrl(absl::string_view url, absl::string_view what) {
  if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": base URL must start with http:// or https:// (got '", url, "')"));
  }
  return absl::OkStatus();
}

bool IsLoopback(absl::string_view url) {
  // Compare the whole host: "http://localhost.example.com" and "http://127.0.0.1:1@evil.example"
  // (userinfo, then the real host) are remote and need a real token.
  if (!absl::ConsumePrefix(&url, "http://")) return false;
  const absl::string_view authority = url.substr(0, url.find_first_of("/?#"));
  if (authority.find('@') != absl::string_view::npos) return false;
  for (absl::string_view host : {"127.0.0.1", "localhost", "[::1]"}) {
    if (authority == host || absl::StartsWith(authority, absl::StrCat(host, ":"))) return true;
  }
  return false;
}

absl::StatusOr<std::string> ReadToken(absl::string_view path, absl::string_view what) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", text.status().message()));
  }
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", path, " is empty"));
  return token;
}

}  // namespace

absl::Status ApplyConfigJson(absl::string_view text, absl::string_view origin,
                             GatewayConfig* config,
                             absl::flat_hash_map<std::string, std::string>* token_files) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return ConfigError(origin, "not valid JSON");
  if (absl::Status s = CheckKeys(root, "the top level", origin,
                                 {"listen", "default_deadline_seconds", "upstreams", "routes"});
      !s.ok()) {
    return s;
  }
  try {
    if (root.contains("listen")) config->listen = root["listen"].get<std::string>();
    if (root.contains("default_deadline_seconds")) {
      const double seconds = root["default_deadline_seconds"].get<double>();
      if (seconds <= 0) return ConfigError(origin, "default_deadline_seconds must be positive");
      config->default_deadline = absl::Seconds(seconds);
    }
    if (root.contains("upstreams")) {
      const json& ups = root["upstreams"];
      if (absl::Status s = CheckKeys(ups, "upstreams", origin, {"respondio", "chatwoot"}); !s.ok()) {
        return s;
      }
      for (auto it = ups.begin(); it != ups.end(); ++it) {
        const std::string where = absl::StrCat("upstreams.", it.key());
        if (absl::Status s = CheckKeys(it.value(), where, origin,
                                       {"base_url", "token_file", "default_account_id"});
            !s.ok()) {
          return s;
        }
        upstream::UpstreamConfig& up = config->upstreams[it.key()];
        up.name = it.key();
        if (it->contains("base_url")) up.base_url = (*it)["base_url"].get<std::string>();
        if (it->contains("token_file")) {
          (*token_files)[it.key()] = (*it)["token_file"].get<std::string>();
        }
        if (it->contains("default_account_id")) {
          if (it.key() != "chatwoot") {
            return ConfigError(origin, absl::StrCat(where, ".default_account_id applies to chatwoot only"));
          }
          const int64_t id = (*it)["default_account_id"].get<int64_t>();
          if (id <= 0) return ConfigError(origin, absl::StrCat(where, ".default_account_id must be positive"));
          up.path_defaults["account_id"] = absl::StrCat(id);
        }
      }
    }
    if (root.contains("routes")) {
      const json& routes = root["routes"];
      if (!routes.is_object()) return ConfigError(origin, "routes must be an object");
      for (auto it = routes.begin(); it != routes.end(); ++it) {
        const std::string where = absl::StrCat("routes[\"", it.key(), "\"]");
        if (absl::Status s = CheckKeys(it.value(), where, origin,
                                       {"method", "path", "body", "response_body", "bucket",
                                        "cache_ttl_seconds"});
            !s.ok()) {
          return s;
        }
        RouteOverride& o = config->routes[CanonicalRpc(it.key())];
        const json& v = it.value();
        if (v.contains("method")) o.method = v["method"].get<std::string>();
        if (v.contains("path")) o.path = v["path"].get<std::string>();
        if (v.contains("body")) o.body = v["body"].get<std::string>();
        if (v.contains("response_body")) o.response_body = v["response_body"].get<std::string>();
        if (v.contains("bucket")) o.bucket = v["bucket"].get<std::string>();
        if (v.contains("cache_ttl_seconds")) {
          o.cache_ttl_seconds = v["cache_ttl_seconds"].get<int>();
          if (*o.cache_ttl_seconds < 0) {
            return ConfigError(origin, absl::StrCat(where, ".cache_ttl_seconds must not be negative"));
          }
        }
      }
    }
  } catch (const json::exception& e) {
    // nlohmann's type_error names the expected and actual JSON types.
    return ConfigError(origin, absl::StrCat("wrong value type: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<GatewayConfig> LoadConfig(const ConfigSources& sources) {
  GatewayConfig config;
  config.upstreams["respondio"] = {.name = "respondio", .base_url = kSandboxRespondioUrl};
  config.upstreams["chatwoot"] = {.name = "chatwoot",
                                  .base_url = kSandboxChatwootUrl,
                                  .auth_header = "api_access_token",
                                  .path_defaults = {{"account_id", "1"}}};
  absl::flat_hash_map<std::string, std::string> token_files;
  if (!sources.config_file.empty()) {
    auto text = ReadFile(sources.config_file);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--config: ", text.status().message()));
    if (absl::Status s = ApplyConfigJson(*text, sources.config_file, &config, &token_files); !s.ok()) {
      return s;
    }
  }
  if (!sources.listen.empty()) config.listen = sources.listen;
  upstream::UpstreamConfig& respondio = config.upstreams["respondio"];
  upstream::UpstreamConfig& chatwoot = config.upstreams["chatwoot"];
  chatwoot.auth_header = "api_access_token";
  if (!sources.respondio_base_url.empty()) respondio.base_url = sources.respondio_base_url;
  if (!sources.chatwoot_base_url.empty()) chatwoot.base_url = sources.chatwoot_base_url;
  if (!sources.respondio_token_file.empty()) token_files["respondio"] = sources.respondio_token_file;
  if (!sources.chatwoot_token_file.empty()) token_files["chatwoot"] = sources.chatwoot_token_file;
  if (sources.chatwoot_account_id < 0) {
    return absl::InvalidArgumentError("--chatwoot_account_id must be positive");
  }
  if (sources.chatwoot_account_id > 0) {
    chatwoot.path_defaults["account_id"] = absl::StrCat(sources.chatwoot_account_id);
  }

  for (auto& [name, up] : config.upstreams) {
    up.name = name;
    while (absl::EndsWith(up.base_url, "/")) up.base_url.pop_back();
    if (up.base_url.empty()) continue;  // not configured: its RPCs answer FAILED_PRECONDITION
    if (absl::Status s = CheckBaseUrl(up.base_url, absl::StrCat(name, "_base_url")); !s.ok()) return s;
    // Token precedence: a token file (flag or config), then the environment.
    if (auto it = token_files.find(name); it != token_files.end()) {
      auto token = ReadToken(it->second, absl::StrCat(name, " token file"));
      if (!token.ok()) return token.status();
      up.token = *std::move(token);
    } else {
      const std::string& env =
          name == "respondio" ? sources.respondio_token_env : sources.chatwoot_token_env;
      if (!env.empty()) up.token = std::string(absl::StripAsciiWhitespace(env));
    }
    if (up.token.empty()) {
      // Only the local sandbox may be used without a token; a real upstream needs one.
      if (!IsLoopback(up.base_url)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": no API token for ", up.base_url, " (set --", name, "_token_file or ",
            absl::AsciiStrToUpper(name), "_API_TOKEN)"));
      }
      up.token = kSandboxToken;
    }
  }
  return config;
}

}  // namespace gateway::service
