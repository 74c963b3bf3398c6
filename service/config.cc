#include "service/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "upstream/safe_text.h"

// service/default_config.json, embedded by the BUILD rule.
extern "C" const unsigned char gateway_default_config[];
extern "C" const unsigned long gateway_default_config_size;

namespace gateway::service {
namespace {

using Json = nlohmann::ordered_json;  // document order, so map entries keep their positions
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

absl::Status ConfigError(absl::string_view origin, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", problem));
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
  // Every token read (top-level or a workspace's, at start-up or on a reload, even one a reload
  // then rejects) is redacted from everything the gateway emits from now on.
  upstream::RegisterSecret(token);
  return token;
}

std::string MapEntryPath(absl::string_view path, absl::string_view field, absl::string_view key) {
  return absl::StrCat(path, path.empty() ? "" : ".", field, "[\"", key, "\"]");
}
std::string FieldPath(absl::string_view path, absl::string_view field) {
  return path.empty() ? std::string(field) : absl::StrCat(path, ".", field);
}

const FieldDescriptor* FindField(const Descriptor* message, const std::string& key) {
  const FieldDescriptor* field = message->FindFieldByName(key);
  if (field == nullptr) {
    for (int i = 0; i < message->field_count() && field == nullptr; ++i) {
      if (message->field(i)->json_name() == key) field = message->field(i);
    }
  }
  return field;
}

// Unknown keys, found from the descriptors so the error names the whole path and the keys that
// would have been accepted. (Types and ranges are left to the parser and the checks below.)
absl::Status CheckKnownKeys(const Json& value, const Descriptor* message, const std::string& path,
                            absl::string_view origin) {
  if (!value.is_object()) return absl::OkStatus();  // the parser names the type mismatch
  for (auto it = value.begin(); it != value.end(); ++it) {
    const FieldDescriptor* field = FindField(message, it.key());
    if (field == nullptr) {
      std::vector<std::string> allowed;
      for (int i = 0; i < message->field_count(); ++i) allowed.push_back(message->field(i)->name());
      return ConfigError(origin, absl::StrCat("unknown key '", it.key(), "' in ",
                                              path.empty() ? "the top level" : path,
                                              " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
    if (field->is_map()) {
      const FieldDescriptor* map_value = field->message_type()->map_value();
      if (map_value->type() != FieldDescriptor::TYPE_MESSAGE || !it.value().is_object()) continue;
      for (auto entry = it.value().begin(); entry != it.value().end(); ++entry) {
        if (absl::Status s = CheckKnownKeys(entry.value(), map_value->message_type(),
                                            MapEntryPath(path, field->name(), entry.key()), origin);
            !s.ok()) {
          return s;
        }
      }
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE && !field->is_repeated()) {
      if (absl::Status s = CheckKnownKeys(it.value(), field->message_type(),
                                          FieldPath(path, field->name()), origin);
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

// The parser names map entries by position ("(routes[0].value.policy)"); this rewrites such a
// path with the entry's key ("routes[\"respondio.v2.ContactService.GetContact\"].policy").
std::string NamePath(absl::string_view parser_path, const Json& root) {
  const Json* node = &root;
  std::vector<std::string> out;
  std::vector<absl::string_view> tokens = absl::StrSplit(parser_path, '.');
  for (size_t i = 0; i < tokens.size(); ++i) {
    absl::string_view token = tokens[i];
    size_t index = std::string::npos;
    const size_t bracket = token.find('[');
    if (bracket != absl::string_view::npos && absl::EndsWith(token, "]")) {
      size_t parsed = 0;
      if (absl::SimpleAtoi(token.substr(bracket + 1, token.size() - bracket - 2), &parsed)) {
        index = parsed;
      }
      token = token.substr(0, bracket);
    }
    const Json* child = nullptr;
    if (node != nullptr && node->is_object() && node->contains(std::string(token))) {
      child = &(*node)[std::string(token)];
    }
    if (index == std::string::npos) {
      out.push_back(std::string(token));
      node = child;
      continue;
    }
    if (child != nullptr && child->is_object() && index < child->size()) {
      auto entry = child->begin();
      std::advance(entry, index);
      out.push_back(absl::StrCat(token, "[\"", entry.key(), "\"]"));
      node = &entry.value();
      if (i + 1 < tokens.size() && (tokens[i + 1] == "value" || tokens[i + 1] == "key")) ++i;
    } else {
      out.push_back(absl::StrCat(token, "[", index, "]"));
      node = child != nullptr && child->is_array() && index < child->size() ? &(*child)[index]
                                                                             : nullptr;
    }
  }
  return absl::StrJoin(out, ".");
}

// Rewrites protobuf's "(path) problem" / "(path): problem" messages with named map entries.
std::string ExplainParseError(absl::string_view message, const Json& root) {
  absl::string_view m = message;
  if (absl::ConsumePrefix(&m, "(")) {
    const size_t close = m.find(')');
    if (close != absl::string_view::npos) {
      const std::string path = NamePath(m.substr(0, close), root);
      absl::string_view rest = m.substr(close + 1);
      absl::ConsumePrefix(&rest, ":");
      return absl::StrCat(path, ": ", absl::StripAsciiWhitespace(rest));
    }
  }
  return std::string(message);
}

// The flat route form of earlier versions: these keys belong to `binding` or `policy`.
constexpr absl::string_view kBindingOverrides[] = {"method", "path", "body", "response_body"};
constexpr absl::string_view kPolicyOverrides[] = {"bucket", "cache_ttl_seconds"};

absl::Status NormalizeRoutes(Json& root, absl::string_view origin) {
  if (!root.contains("routes") || !root["routes"].is_object()) return absl::OkStatus();
  for (auto it = root["routes"].begin(); it != root["routes"].end(); ++it) {
    Json& route = it.value();
    if (!route.is_object()) continue;
    const std::string where = MapEntryPath("", "routes", it.key());
    for (const auto& [group, keys] :
         {std::pair<const char*, absl::Span<const absl::string_view>>{"binding", kBindingOverrides},
          {"policy", kPolicyOverrides}}) {
      for (absl::string_view key : keys) {
        const std::string k(key);
        if (!route.contains(k)) continue;
        if (route.contains(group) && route[group].is_object() && route[group].contains(k)) {
          return ConfigError(origin, absl::StrCat(where, ": '", k, "' is given both flat and in ",
                                                  group));
        }
        route[group][k] = route[k];
        route.erase(k);
      }
    }
  }
  return absl::OkStatus();
}

// Which binding/policy fields each route sets, with the values the parser read.
absl::Status CollectRouteOverrides(const Json& root, const gateway::v1::Config& proto,
                                   absl::string_view origin,
                                   absl::flat_hash_map<std::string, RouteOverride>* routes) {
  if (!root.contains("routes")) return absl::OkStatus();
  for (auto it = root["routes"].begin(); it != root["routes"].end(); ++it) {
    const std::string where = MapEntryPath("", "routes", it.key());
    const gateway::v1::RouteOverride& parsed = proto.routes().at(it.key());
    RouteOverride& o = (*routes)[CanonicalRpc(it.key())];
    for (const char* group : {"binding", "policy"}) {
      if (!it.value().contains(group)) continue;
      const bool binding = absl::string_view(group) == "binding";
      for (auto field = it.value()[group].begin(); field != it.value()[group].end(); ++field) {
        const Descriptor* d = binding ? gateway::v1::Binding::descriptor()
                                      : gateway::v1::Policy::descriptor();
        const std::string name = FindField(d, field.key())->name();
        if (name == "method") o.method = parsed.binding().method();
        else if (name == "path") o.path = parsed.binding().path();
        else if (name == "body") o.body = parsed.binding().body();
        else if (name == "response_body") o.response_body = parsed.binding().response_body();
        else if (name == "bucket") o.bucket = parsed.policy().bucket();
        else if (name == "cache_ttl_seconds") {
          o.cache_ttl_seconds = parsed.policy().cache_ttl_seconds();
          if (*o.cache_ttl_seconds < 0) {
            return ConfigError(origin, absl::StrCat(where, ".policy.cache_ttl_seconds must not be negative"));
          }
        } else {
          return ConfigError(
              origin, absl::StrCat(where, ".", group, ".", name,
                                   " cannot be overridden from the config (allowed: ",
                                   absl::StrJoin(binding ? absl::MakeConstSpan(kBindingOverrides)
                                                         : absl::MakeConstSpan(kPolicyOverrides),
                                                 ", "),
                                   ")"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// Replaces the password of redis://user:password@host (or any URL's userinfo) with [REDACTED].
std::string RedactUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t authority_end = url.find_first_of("/?#", scheme + 3);
  const size_t at = url.rfind('@', authority_end == std::string::npos ? url.size() : authority_end);
  if (at == std::string::npos || at < scheme + 3) return url;
  return absl::StrCat(url.substr(0, scheme + 3), "[REDACTED]", url.substr(at));
}

// Registers the password of a URL's userinfo (redis://user:password@host; the whole userinfo
// when it has no ':') for redaction (upstream/safe_text.h).
void RegisterUrlPassword(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return;
  const size_t authority_end = url.find_first_of("/?#", scheme + 3);
  const size_t at = url.rfind('@', authority_end == std::string::npos ? url.size() : authority_end);
  if (at == std::string::npos || at < scheme + 3) return;
  absl::string_view userinfo = absl::string_view(url).substr(scheme + 3, at - scheme - 3);
  const size_t colon = userinfo.find(':');
  upstream::RegisterSecret(colon == absl::string_view::npos ? userinfo : userinfo.substr(colon + 1));
}

absl::Status CheckBucketTable(const google::protobuf::Map<std::string, gateway::v1::BucketRate>& buckets,
                              absl::string_view where, absl::string_view origin,
                              absl::flat_hash_map<std::string, BucketRate>* out) {
  for (const auto& [key, rate] : buckets) {
    const std::string entry = absl::StrCat(where, ".buckets[\"", key, "\"]");
    const std::vector<absl::string_view> parts = absl::StrSplit(key, '/');
    if (parts.size() != 2 || (parts[0] != "respondio" && parts[0] != "chatwoot") ||
        parts[1].empty()) {
      return ConfigError(origin, absl::StrCat(entry, ": name buckets as upstream/bucket "
                                                     "(respondio/... or chatwoot/...)"));
    }
    if (!(rate.rate_per_second() > 0) || rate.burst() < 0) {
      return ConfigError(origin, absl::StrCat(entry, ": rate_per_second must be positive and "
                                                     "burst not negative"));
    }
    (*out)[key] = {rate.rate_per_second(), rate.burst()};
  }
  return absl::OkStatus();
}

bool ValidWorkspaceName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_islower(c) || absl::ascii_isdigit(c) ||
                    (i > 0 && (c == '-' || c == '_'));
    if (!ok) return false;
  }
  return true;
}

// The built-in defaults (service/default_config.json), parsed once.
absl::StatusOr<ParsedConfig> Defaults() {
  return ParseConfigJson(
      absl::string_view(reinterpret_cast<const char*>(gateway_default_config),
                        gateway_default_config_size),
      "built-in defaults");
}

}  // namespace

absl::StatusOr<ParsedConfig> ParseConfigJson(absl::string_view text, absl::string_view origin) {
  Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    // Ask again with exceptions for the position of the error.
    std::string where;
    try {
      Json again = Json::parse(text);
      (void)again;
    } catch (const Json::exception& e) {
      where = absl::StrCat(" (", e.what(), ")");
    }
    return ConfigError(origin, absl::StrCat("not valid JSON", where));
  }
  if (!root.is_object()) return ConfigError(origin, "the top level must be an object");
  if (absl::Status s = NormalizeRoutes(root, origin); !s.ok()) return s;
  if (absl::Status s = CheckKnownKeys(root, gateway::v1::Config::descriptor(), "", origin);
      !s.ok()) {
    return s;
  }
  ParsedConfig parsed;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(root.dump(), &parsed.proto, options);
  if (!status.ok()) {
    return ConfigError(origin, absl::StrCat("wrong value: ",
                                            ExplainParseError(std::string(status.message()), root)));
  }
  if (absl::Status s = CollectRouteOverrides(root, parsed.proto, origin, &parsed.routes); !s.ok()) {
    return s;
  }
  return parsed;
}

absl::StatusOr<GatewayConfig> LoadConfig(const ConfigSources& sources) {
  auto defaults = Defaults();
  if (!defaults.ok()) return defaults.status();
  gateway::v1::Config merged = defaults->proto;
  absl::flat_hash_map<std::string, RouteOverride> routes;
  const std::string origin = sources.config_file.empty() ? "flags" : sources.config_file;
  if (!sources.config_file.empty()) {
    auto text = ReadFile(sources.config_file);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--config: ", text.status().message()));
    auto file = ParseConfigJson(*text, sources.config_file);
    if (!file.ok()) return file.status();
    merged.MergeFrom(file->proto);
    routes = std::move(file->routes);
  }
  std::vector<std::string> source_files;
  if (!sources.config_file.empty()) source_files.push_back(sources.config_file);
  if (!sources.workspaces_file.empty()) {
    source_files.push_back(sources.workspaces_file);
    auto text = ReadFile(sources.workspaces_file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workspaces_file: ", text.status().message()));
    }
    auto file = ParseConfigJson(*text, sources.workspaces_file);
    if (!file.ok()) return file.status();
    gateway::v1::Config rest = file->proto;
    rest.clear_workspaces();
    if (rest.ByteSizeLong() != 0 || !file->routes.empty()) {
      return ConfigError(sources.workspaces_file, "a workspaces file sets only \"workspaces\"");
    }
    for (const auto& [name, ws] : file->proto.workspaces()) {
      (*merged.mutable_workspaces())[name] = ws;
    }
  }

  // Flags over the file.
  gateway::v1::Upstream& respondio = *merged.mutable_upstreams()->mutable_respondio();
  gateway::v1::Upstream& chatwoot = *merged.mutable_upstreams()->mutable_chatwoot();
  if (!sources.listen.empty()) merged.set_listen(sources.listen);
  if (!sources.redis_url.empty()) merged.set_redis_url(sources.redis_url);
  if (!sources.respondio_base_url.empty()) respondio.set_base_url(sources.respondio_base_url);
  if (!sources.chatwoot_base_url.empty()) chatwoot.set_base_url(sources.chatwoot_base_url);
  if (!sources.respondio_token_file.empty()) respondio.set_token_file(sources.respondio_token_file);
  if (!sources.chatwoot_token_file.empty()) chatwoot.set_token_file(sources.chatwoot_token_file);
  if (!sources.respondio_dialect.empty()) respondio.set_dialect(sources.respondio_dialect);
  if (!sources.chatwoot_dialect.empty()) chatwoot.set_dialect(sources.chatwoot_dialect);
  if (sources.chatwoot_account_id < 0) {
    return absl::InvalidArgumentError("--chatwoot_account_id must be positive");
  }
  if (sources.chatwoot_account_id > 0) chatwoot.set_default_account_id(sources.chatwoot_account_id);
  if (sources.cache_max_bytes < -1) {
    return absl::InvalidArgumentError("--cache_max_bytes must not be negative");
  }
  if (sources.cache_max_bytes >= 0) merged.mutable_cache()->set_max_bytes(sources.cache_max_bytes);

  GatewayConfig config;
  config.routes = std::move(routes);
  config.listen = merged.listen();
  config.redis_url = merged.redis_url();
  RegisterUrlPassword(config.redis_url);
  if (!config.redis_url.empty() && !absl::StartsWith(config.redis_url, "redis://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_url must look like redis://HOST:PORT[/DB] (got '", RedactUrl(config.redis_url),
        "')"));
  }
  if (!(merged.default_deadline_seconds() > 0)) {
    return ConfigError(origin, "default_deadline_seconds must be positive");
  }
  config.default_deadline = absl::Seconds(merged.default_deadline_seconds());
  config.cache_max_bytes = merged.cache().max_bytes();
  if (config.cache_max_bytes < 0) return ConfigError(origin, "cache.max_bytes must not be negative");

  const gateway::v1::RateLimits& limits = merged.rate_limits();
  config.rate_headroom = limits.headroom();
  if (!(config.rate_headroom > 0) || config.rate_headroom > 1) {
    return ConfigError(origin, "rate_limits.headroom must be in (0, 1]");
  }
  config.redis_fallback_share = limits.redis_fallback_share();
  if (!(config.redis_fallback_share > 0) || config.redis_fallback_share > 1) {
    return ConfigError(origin, "rate_limits.redis_fallback_share must be in (0, 1]");
  }
  for (const auto& [name, seconds, target] :
       {std::tuple<const char*, double, absl::Duration*>{
            "max_queue_wait_seconds", limits.max_queue_wait_seconds(), &config.max_queue_wait},
        {"max_pause_seconds", limits.max_pause_seconds(), &config.max_pause}}) {
    if (!(seconds > 0) || seconds > 86400) {
      return ConfigError(origin, absl::StrCat("rate_limits.", name, " must be in (0, 86400]"));
    }
    *target = absl::Seconds(seconds);
  }
  if (absl::Status s = CheckBucketTable(limits.buckets(), "rate_limits", origin, &config.buckets);
      !s.ok()) {
    return s;
  }

  // The top-level upstreams: shared settings of every workspace, and the credentials of
  // `default`.
  for (const auto& [name, up] : {std::pair<std::string, const gateway::v1::Upstream*>{
                                     "respondio", &respondio},
                                 {"chatwoot", &chatwoot}}) {
    const std::string where = absl::StrCat("upstreams.", name);
    const std::string& dialect = up->dialect();
    if (dialect != "live" && dialect != "openapi") {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " dialect must be live or openapi (got '", dialect, "'; --", name,
          "_dialect or upstreams.", name, ".dialect)"));
    }
    config.dialects[name] = dialect;
    if (up->has_max_response_bytes() && up->max_response_bytes() <= 0) {
      return ConfigError(origin, absl::StrCat(where, ".max_response_bytes must be a positive integer"));
    }
    if (up->has_default_account_id()) {
      if (name != "chatwoot") {
        return ConfigError(origin, absl::StrCat(where, ".default_account_id applies to chatwoot only"));
      }
      if (up->default_account_id() <= 0) {
        return ConfigError(origin, absl::StrCat(where, ".default_account_id must be positive"));
      }
    }
    upstream::UpstreamConfig& out = config.upstreams[name];
    out.name = name;
    out.base_url = up->base_url();
    while (absl::EndsWith(out.base_url, "/")) out.base_url.pop_back();
    out.max_response_bytes = up->max_response_bytes();
    if (name == "chatwoot") {
      out.auth_header = "api_access_token";
      out.path_defaults["account_id"] = absl::StrCat(up->default_account_id());
      // Chatwoot limits per client IP: every account and token of one installation behind the
      // gateway's egress share one budget.
      out.limit_scope = upstream::UpstreamConfig::LimitScope::kHost;
    }
    if (out.base_url.empty()) continue;  // not configured: its RPCs answer FAILED_PRECONDITION
    if (absl::Status s = CheckBaseUrl(out.base_url, absl::StrCat(name, "_base_url")); !s.ok()) return s;
  }

  // Resolves one upstream's token: a token file, else (default workspace) the environment, else
  // the sandbox's token on loopback.
  auto resolve_token = [&sources, &source_files](const std::string& token_file, const std::string& env,
                                  const std::string& base_url, const std::string& what,
                                  const std::string& hint) -> absl::StatusOr<std::string> {
    // --check_config: tokens are facts of the deployment (Secrets, flags, environment), not of
    // the file; they are neither read nor required.
    if (!sources.read_secrets) return std::string("[NOT READ]");
    if (!token_file.empty()) {
      source_files.push_back(token_file);
      return ReadToken(token_file, absl::StrCat(what, " token file"));
    }
    if (!env.empty()) {
      std::string token(absl::StripAsciiWhitespace(env));
      upstream::RegisterSecret(token);
      return token;
    }
    // Only the local sandbox may be used without a token; a real upstream needs one.
    if (!IsLoopback(base_url)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": no API token for ", base_url, " (", hint, ")"));
    }
    return std::string(kSandboxToken);
  };

  // Workspaces. With none listed, the top-level upstreams are the workspace `default`.
  google::protobuf::Map<std::string, gateway::v1::Workspace> listed = merged.workspaces();
  if (listed.empty()) listed[kDefaultWorkspace];
  for (const auto& [ws_name, ws] : listed) {
    const std::string where = absl::StrCat("workspaces[\"", ws_name, "\"]");
    if (!ValidWorkspaceName(ws_name)) {
      return ConfigError(origin, absl::StrCat(where, ": a workspace name is 1 to 63 lower-case "
                                                     "letters, digits, '-' or '_', starting "
                                                     "with a letter or digit"));
    }
    const bool is_default = ws_name == kDefaultWorkspace;
    const bool implicit = merged.workspaces().empty();
    WorkspaceConfig& out = config.workspaces[ws_name];
    out.name = ws_name;
    out.buckets = config.buckets;
    const gateway::v1::RateLimits& ws_limits = ws.rate_limits();
    if (ws_limits.has_headroom() || ws_limits.has_redis_fallback_share() ||
        ws_limits.has_max_queue_wait_seconds() || ws_limits.has_max_pause_seconds()) {
      return ConfigError(origin, absl::StrCat(where, ".rate_limits: only buckets may be set per "
                                                     "workspace"));
    }
    if (absl::Status s = CheckBucketTable(ws_limits.buckets(), absl::StrCat(where, ".rate_limits"),
                                          origin, &out.buckets);
        !s.ok()) {
      return s;
    }
    for (const auto& [name, top] :
         {std::pair<std::string, const gateway::v1::Upstream*>{"respondio", &respondio},
          {"chatwoot", &chatwoot}}) {
      const bool listed_here = name == "respondio" ? ws.has_respondio() : ws.has_chatwoot();
      // `default` takes the top-level credentials (implicitly, or as fallbacks of its own).
      if (!listed_here && !is_default) continue;
      const gateway::v1::WorkspaceUpstream& own =
          name == "respondio" ? ws.respondio() : ws.chatwoot();
      const std::string up_where = absl::StrCat(where, ".", name);
      if (!own.webhook_secret_file().empty() && sources.read_secrets) {
        source_files.push_back(own.webhook_secret_file());
        auto secret = ReadToken(own.webhook_secret_file(),
                                absl::StrCat(up_where, ".webhook_secret_file"));
        if (!secret.ok()) return secret.status();
        out.webhook_secrets[name] = *std::move(secret);
      }
      upstream::UpstreamConfig up = config.upstreams.at(name);
      if (!own.base_url().empty()) {
        up.base_url = own.base_url();
        while (absl::EndsWith(up.base_url, "/")) up.base_url.pop_back();
        if (absl::Status s = CheckBaseUrl(up.base_url, absl::StrCat(up_where, ".base_url")); !s.ok()) {
          return s;
        }
      }
      if (!own.dialect().empty() && own.dialect() != "live" && own.dialect() != "openapi") {
        return ConfigError(origin, absl::StrCat(up_where, ".dialect must be live or openapi (got '",
                                                own.dialect(), "')"));
      }
      out.dialects[name] = own.dialect().empty() ? config.dialects.at(name) : own.dialect();
      if (own.account_id() != 0) {
        if (name != "chatwoot") {
          return ConfigError(origin, absl::StrCat(up_where, ".account_id applies to chatwoot only"));
        }
        if (own.account_id() < 0) {
          return ConfigError(origin, absl::StrCat(up_where, ".account_id must be positive"));
        }
        up.path_defaults["account_id"] = absl::StrCat(own.account_id());
      }
      if (up.base_url.empty()) {
        if (listed_here) {
          return ConfigError(origin, absl::StrCat(up_where, ": no base_url (here or in upstreams.",
                                                  name, ".base_url)"));
        }
        continue;  // `default` without this upstream
      }
      std::string token_file = own.token_file();
      std::string env;
      std::string hint = absl::StrCat("set ", up_where, ".token_file");
      if (token_file.empty() && is_default) {
        token_file = top->token_file();
        env = name == "respondio" ? sources.respondio_token_env : sources.chatwoot_token_env;
        hint = absl::StrCat("set --", name, "_token_file or ", absl::AsciiStrToUpper(name),
                            "_API_TOKEN", implicit ? "" : absl::StrCat(" or ", up_where, ".token_file"));
      }
      auto token = resolve_token(token_file, env, up.base_url, implicit ? name : up_where, hint);
      if (!token.ok()) return token.status();
      up.token = *std::move(token);
      out.upstreams[name] = std::move(up);
    }
  }
  // Workspaces that share an upstream budget share its limiter bucket (the upstream's own
  // accounting: Chatwoot's per installation host, respond.io's per token), so each bucket of
  // that upstream must have one rate across them.
  {
    struct Sharer {
      const std::string* name;
      const WorkspaceConfig* ws;
    };
    std::map<std::pair<std::string, std::string>, Sharer> first;  // (upstream, scope) -> first
    for (const auto& [ws_name, ws] : config.workspaces) {
      for (const auto& [up_name, up] : ws.upstreams) {
        std::string scope;
        if (up.limit_scope == upstream::UpstreamConfig::LimitScope::kHost) {
          absl::string_view url = up.base_url;
          absl::ConsumePrefix(&url, "https://") || absl::ConsumePrefix(&url, "http://");
          scope = std::string(url.substr(0, url.find_first_of("/?#")));
        } else if (sources.read_secrets) {
          scope = up.token;  // unread (--check_config): cannot tell who shares a token
        }
        if (scope.empty()) continue;
        auto [it, inserted] = first.try_emplace({up_name, scope}, Sharer{&ws_name, &ws});
        if (inserted) continue;
        const std::string prefix = absl::StrCat(up_name, "/");
        std::map<std::string, BucketRate> mine, theirs;
        for (const auto& [key, rate] : ws.buckets) {
          if (absl::StartsWith(key, prefix)) mine[key] = rate;
        }
        for (const auto& [key, rate] : it->second.ws->buckets) {
          if (absl::StartsWith(key, prefix)) theirs[key] = rate;
        }
        for (const auto& [key, rate] : mine) {
          auto other = theirs.find(key);
          if (other == theirs.end() || other->second.rate_per_second != rate.rate_per_second ||
              other->second.burst != rate.burst) {
            const bool host = up.limit_scope == upstream::UpstreamConfig::LimitScope::kHost;
            return ConfigError(
                origin,
                absl::StrCat("workspaces \"", *it->second.name, "\" and \"", ws_name,
                             "\" share one ", up_name, " budget (",
                             host ? absl::StrCat("the installation at ", scope,
                                                 ", limited per client IP")
                                  : std::string("one token, one organization's limits"),
                             ") but set different rates for ", key,
                             ": set it once, at the top level or alike in each"));
          }
        }
      }
    }
  }
  // The default workspace's upstreams are also the gateway's upstreams; without a default
  // workspace they keep the shared settings but no credentials.
  if (auto it = config.workspaces.find(kDefaultWorkspace); it != config.workspaces.end()) {
    for (auto& [name, up] : config.upstreams) {
      auto own = it->second.upstreams.find(name);
      if (own != it->second.upstreams.end()) up = own->second;
    }
  }
  config.effective = std::move(merged);
  std::sort(source_files.begin(), source_files.end());
  source_files.erase(std::unique(source_files.begin(), source_files.end()), source_files.end());
  config.source_files = std::move(source_files);
  return config;
}

std::string PrintConfig(const GatewayConfig& config) {
  gateway::v1::Config printed = config.effective;
  printed.set_redis_url(RedactUrl(printed.redis_url()));
  for (gateway::v1::Upstream* up : {printed.mutable_upstreams()->mutable_respondio(),
                                    printed.mutable_upstreams()->mutable_chatwoot()}) {
    if (up->has_base_url()) up->set_base_url(RedactUrl(up->base_url()));
  }
  for (auto& [name, ws] : *printed.mutable_workspaces()) {
    for (gateway::v1::WorkspaceUpstream* up : {ws.mutable_respondio(), ws.mutable_chatwoot()}) {
      up->set_base_url(RedactUrl(up->base_url()));
    }
  }
  // Routes are printed from the overrides, which know every field the file set (a TTL of 0
  // included, which proto3 JSON would leave out).
  printed.clear_routes();
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(printed, &text, options);
  Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) root = Json::object();
  std::map<std::string, const RouteOverride*> sorted;
  for (const auto& [rpc, o] : config.routes) sorted[rpc] = &o;
  for (const auto& [rpc, o] : sorted) {
    Json route = Json::object();
    if (o->method) route["binding"]["method"] = *o->method;
    if (o->path) route["binding"]["path"] = *o->path;
    if (o->body) route["binding"]["body"] = *o->body;
    if (o->response_body) route["binding"]["response_body"] = *o->response_body;
    if (o->bucket) route["policy"]["bucket"] = *o->bucket;
    if (o->cache_ttl_seconds) route["policy"]["cache_ttl_seconds"] = *o->cache_ttl_seconds;
    root["routes"][rpc] = route;
  }
  return root.dump(2) + "\n";
}

absl::Status CheckBucketRates(const GatewayConfig& config, const std::vector<BucketUse>& uses) {
  for (const BucketUse& use : uses) {
    if (!config.buckets.contains(use.key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          use.rpc, " uses bucket ", use.key, ", which has no rate: add rate_limits.buckets[\"",
          use.key, "\"] = {\"rate_per_second\": N} to the config"));
    }
  }
  return absl::OkStatus();
}

}  // namespace gateway::service
