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
                                 {"listen", "default_deadline_seconds", "upstreams", "routes",
                                  "redis_url", "rate_limits", "cache"});
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
    if (root.contains("redis_url")) config->redis_url = root["redis_url"].get<std::string>();
    if (root.contains("cache")) {
      const json& cache = root["cache"];
      if (absl::Status s = CheckKeys(cache, "cache", origin, {"max_bytes"}); !s.ok()) return s;
      if (cache.contains("max_bytes")) {
        config->cache_max_bytes = cache["max_bytes"].get<int64_t>();
        if (config->cache_max_bytes < 0) return ConfigError(origin, "cache.max_bytes must not be negative");
      }
    }
    if (root.contains("rate_limits")) {
      const json& limits = root["rate_limits"];
      if (absl::Status s = CheckKeys(limits, "rate_limits", origin,
                                     {"headroom", "redis_fallback_share", "buckets",
                                      "max_queue_wait_seconds", "max_pause_seconds"});
          !s.ok()) {
        return s;
      }
      if (limits.contains("headroom")) {
        config->rate_headroom = limits["headroom"].get<double>();
        if (config->rate_headroom <= 0 || config->rate_headroom > 1) {
          return ConfigError(origin, "rate_limits.headroom must be in (0, 1]");
        }
      }
      if (limits.contains("redis_fallback_share")) {
        config->redis_fallback_share = limits["redis_fallback_share"].get<double>();
        if (config->redis_fallback_share <= 0 || config->redis_fallback_share > 1) {
          return ConfigError(origin, "rate_limits.redis_fallback_share must be in (0, 1]");
        }
      }
      for (const auto& [name, target] :
           {std::pair<const char*, absl::Duration*>{"max_queue_wait_seconds",
                                                    &config->max_queue_wait},
            {"max_pause_seconds", &config->max_pause}}) {
        if (!limits.contains(name)) continue;
        const double seconds = limits[name].get<double>();
        if (!(seconds > 0) || seconds > 86400) {
          return ConfigError(origin,
                             absl::StrCat("rate_limits.", name, " must be in (0, 86400]"));
        }
        *target = absl::Seconds(seconds);
      }
      if (limits.contains("buckets")) {
        const json& buckets = limits["buckets"];
        if (!buckets.is_object()) return ConfigError(origin, "rate_limits.buckets must be an object");
        for (auto it = buckets.begin(); it != buckets.end(); ++it) {
          const std::string where = absl::StrCat("rate_limits.buckets[\"", it.key(), "\"]");
          if (it.key().find('/') == std::string::npos) {
            return ConfigError(origin, absl::StrCat(where, ": name buckets as upstream/bucket"));
          }
          if (absl::Status s = CheckKeys(it.value(), where, origin, {"rate_per_second", "burst"});
              !s.ok()) {
            return s;
          }
          BucketRate& rate = config->buckets[it.key()];
          if (it->contains("rate_per_second")) rate.rate_per_second = (*it)["rate_per_second"].get<double>();
          if (it->contains("burst")) rate.burst = (*it)["burst"].get<int>();
          if (rate.rate_per_second <= 0 || rate.burst < 0) {
            return ConfigError(origin, absl::StrCat(where, ": rate_per_second must be positive and burst not negative"));
          }
        }
      }
    }
    if (root.contains("upstreams")) {
      const json& ups = root["upstreams"];
      if (absl::Status s = CheckKeys(ups, "upstreams", origin, {"respondio", "chatwoot"}); !s.ok()) {
        return s;
      }
      for (auto it = ups.begin(); it != ups.end(); ++it) {
        const std::string where = absl::StrCat("upstreams.", it.key());
        if (absl::Status s = CheckKeys(it.value(), where, origin,
                                       {"base_url", "token_file", "default_account_id",
                                        "max_response_bytes"});
            !s.ok()) {
          return s;
        }
        upstream::UpstreamConfig& up = config->upstreams[it.key()];
        up.name = it.key();
        if (it->contains("base_url")) up.base_url = (*it)["base_url"].get<std::string>();
        if (it->contains("token_file")) {
          (*token_files)[it.key()] = (*it)["token_file"].get<std::string>();
        }
        if (it->contains("max_response_bytes")) {
          const json& limit = (*it)["max_response_bytes"];
          if (!limit.is_number_integer() || limit.get<int64_t>() <= 0) {
            return ConfigError(origin,
                               absl::StrCat(where, ".max_response_bytes must be a positive integer"));
          }
          up.max_response_bytes = limit.get<int64_t>();
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

// respond.io's per-endpoint limits (its API guide), keyed by the buckets the protos name.
void AddDefaultBuckets(GatewayConfig& config) {
  const std::pair<const char*, double> kRespondio[] = {
      {"message_send", 10},         {"message_get", 15},          {"comment_create", 10},
      {"contact_get", 10},          {"contact_write", 5},         {"contact_merge", 5},
      {"contact_create_or_update", 5}, {"contact_list", 5},       {"contact_tag", 5},
      {"contact_channel_list", 5},  {"contact_channel_get", 10},  {"conversation_assignee", 5},
      {"conversation_status", 5},   {"space_channel_list", 5},    {"closing_note_list", 5},
      {"space_user_list", 5},       {"space_user_get", 10},       {"custom_field_create", 5},
      {"custom_field_get", 10},     {"custom_field_list", 5},     {"tag_write", 5},
  };
  for (const auto& [bucket, rate] : kRespondio) {
    config.buckets[absl::StrCat("respondio/", bucket)] = {rate, 0};
  }
  // Chatwoot (Rack::Attack): 3000 requests per minute per client IP, one budget for all RPCs.
  config.buckets["chatwoot/chatwoot"] = {50, 0};
}

absl::StatusOr<GatewayConfig> LoadConfig(const ConfigSources& sources) {
  GatewayConfig config;
  AddDefaultBuckets(config);
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
  if (!sources.redis_url.empty()) config.redis_url = sources.redis_url;
  if (!config.redis_url.empty() && !absl::StartsWith(config.redis_url, "redis://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_url must look like redis://HOST:PORT[/DB] (got '", config.redis_url, "')"));
  }
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
