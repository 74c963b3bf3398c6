#include "service/auth.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "upstream/safe_text.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

absl::Status Invalid(absl::string_view origin, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", message));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Compares without an early exit on the first differing byte.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  // Iterative glob with '*' only.
  size_t p = 0, t = 0, star = absl::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

bool RpcPatternMatches(absl::string_view pattern, absl::string_view rpc) {
  absl::ConsumePrefix(&rpc, "/");
  absl::ConsumePrefix(&pattern, "/");
  return GlobMatch(pattern, rpc);
}

absl::StatusOr<CallerAuth> CallerAuth::Load(const std::string& path, const RouteTable& routes,
                                            const std::vector<std::string>* workspaces) {
  auto text = ReadFile(path);
  if (!text.ok()) return Invalid("callers file", text.status().message());
  return Parse(*text, path, routes, workspaces);
}

absl::StatusOr<CallerAuth> CallerAuth::Parse(absl::string_view text, absl::string_view origin,
                                             const RouteTable& routes,
                                             const std::vector<std::string>* workspaces) {
  nlohmann::json root = nlohmann::json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) return Invalid(origin, "not a JSON object");
  for (const auto& [key, value] : root.items()) {
    if (key != "callers") return Invalid(origin, absl::StrCat("unknown key \"", key, "\""));
  }
  if (!root.contains("callers") || !root["callers"].is_array() || root["callers"].empty()) {
    return Invalid(origin, "\"callers\" must be a non-empty array");
  }
  Callers auth;
  for (size_t i = 0; i < root["callers"].size(); ++i) {
    const nlohmann::json& entry = root["callers"][i];
    std::string where = absl::StrCat("callers[", i, "]");
    if (!entry.is_object()) return Invalid(origin, absl::StrCat(where, " is not an object"));
    for (const auto& [key, value] : entry.items()) {
      if (key != "name" && key != "token" && key != "token_file" && key != "allow" &&
          key != "workspaces") {
        return Invalid(origin, absl::StrCat(where, ": unknown key \"", key, "\""));
      }
    }
    Caller caller;
    if (!entry.contains("name") || !entry["name"].is_string() ||
        entry["name"].get<std::string>().empty()) {
      return Invalid(origin, absl::StrCat(where, ": \"name\" must be a non-empty string"));
    }
    caller.name = entry["name"].get<std::string>();
    where = absl::StrCat("caller \"", caller.name, "\"");
    for (char c : caller.name) {
      if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
        return Invalid(origin, absl::StrCat(where, ": names use only letters, digits, - _ ."));
      }
    }
    if (entry.contains("token") == entry.contains("token_file")) {
      return Invalid(origin, absl::StrCat(where, ": give exactly one of \"token\", \"token_file\""));
    }
    if (entry.contains("token")) {
      if (!entry["token"].is_string()) return Invalid(origin, absl::StrCat(where, ": bad token"));
      caller.token = entry["token"].get<std::string>();
    } else {
      if (!entry["token_file"].is_string()) {
        return Invalid(origin, absl::StrCat(where, ": \"token_file\" must be a string"));
      }
      auth.token_files.push_back(entry["token_file"].get<std::string>());
      auto token = ReadFile(entry["token_file"].get<std::string>());
      if (!token.ok()) return Invalid(origin, absl::StrCat(where, ": ", token.status().message()));
      caller.token = std::string(absl::StripAsciiWhitespace(*token));
    }
    if (caller.token.size() < 16) {
      return Invalid(origin, absl::StrCat(where, ": the token must have at least 16 characters"));
    }
    for (char c : caller.token) {
      if (absl::ascii_isspace(c) || !absl::ascii_isprint(c)) {
        return Invalid(origin, absl::StrCat(where, ": the token has whitespace or control characters"));
      }
    }
    // A configured secret: redacted from everything the gateway emits (status messages, error
    // details, logs), even when an upstream quotes it back.
    upstream::RegisterSecret(caller.token);
    for (const Caller& other : auth.callers) {
      if (other.name == caller.name) return Invalid(origin, absl::StrCat(where, " is listed twice"));
      if (other.token == caller.token) {
        return Invalid(origin, absl::StrCat(where, " has the same token as caller \"", other.name,
                                            "\""));
      }
    }
    if (!entry.contains("allow") || !entry["allow"].is_array() || entry["allow"].empty()) {
      return Invalid(origin, absl::StrCat(where, ": \"allow\" must be a non-empty array of RPC patterns"));
    }
    for (const nlohmann::json& pattern_json : entry["allow"]) {
      if (!pattern_json.is_string()) {
        return Invalid(origin, absl::StrCat(where, ": allow patterns are strings"));
      }
      const std::string pattern = pattern_json.get<std::string>();
      size_t matched = 0;
      for (const auto& route : routes.routes()) {
        const bool match = pattern == "@read" ? route->is_read()
                                              : RpcPatternMatches(pattern, route->rpc);
        if (match) {
          caller.allowed.insert(route->rpc);
          ++matched;
        }
      }
      for (const char* rpc : kGatewayRpcs) {
        if (pattern != "@read" && RpcPatternMatches(pattern, rpc)) {
          caller.allowed.insert(rpc);
          ++matched;
        }
      }
      if (matched == 0) {
        return Invalid(origin, absl::StrCat(where, ": allow pattern \"", pattern,
                                            "\" matches no RPC the gateway serves"));
      }
    }
    if (entry.contains("workspaces")) {
      const nlohmann::json& list = entry["workspaces"];
      if (!list.is_array() || list.empty()) {
        return Invalid(origin, absl::StrCat(where, ": \"workspaces\" must be a non-empty array of "
                                                   "workspace names (or [\"*\"])"));
      }
      caller.all_workspaces = false;
      for (const nlohmann::json& name_json : list) {
        if (!name_json.is_string()) {
          return Invalid(origin, absl::StrCat(where, ": workspace names are strings"));
        }
        const std::string name = name_json.get<std::string>();
        if (name == "*") {
          caller.all_workspaces = true;
          continue;
        }
        if (workspaces != nullptr &&
            std::find(workspaces->begin(), workspaces->end(), name) == workspaces->end()) {
          return Invalid(origin, absl::StrCat(where, ": workspace \"", name,
                                              "\" is not in the configuration's workspaces"));
        }
        caller.workspaces.insert(name);
      }
    }
    auth.callers.push_back(std::move(caller));
  }
  CallerAuth out;
  {
    absl::MutexLock lock(&out.shared_->mu);
    out.shared_->current = std::make_shared<const Callers>(std::move(auth));
  }
  return out;
}

std::shared_ptr<const CallerAuth::Callers> CallerAuth::Snapshot() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->current;
}

void CallerAuth::Replace(const CallerAuth& next) {
  std::shared_ptr<const Callers> callers = next.Snapshot();
  absl::MutexLock lock(&shared_->mu);
  shared_->current = std::move(callers);
}

std::vector<std::string> CallerAuth::TokenFiles() const { return Snapshot()->token_files; }

absl::Status CallerAuth::CheckWorkspace(absl::string_view caller,
                                        absl::string_view workspace) const {
  const std::shared_ptr<const Callers> callers = Snapshot();
  for (const Caller& c : callers->callers) {
    if (c.name != caller) continue;
    if (c.all_workspaces || c.workspaces.contains(workspace)) return absl::OkStatus();
    break;
  }
  return upstream::GatewayError(
      absl::StatusCode::kPermissionDenied,
      absl::StrCat("caller \"", caller, "\" may not use workspace \"", workspace, "\""),
      {.reason = "WORKSPACE_NOT_ALLOWED",
       .metadata = {{"caller", std::string(caller)}, {"workspace", std::string(workspace)}}});
}

absl::StatusOr<std::string> CallerAuth::Check(absl::string_view authorization,
                                              const upstream::Route& route) const {
  return CheckRpc(authorization, route.rpc);
}

absl::StatusOr<std::string> CallerAuth::CheckRpc(absl::string_view authorization,
                                                 absl::string_view rpc) const {
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.empty()) {
    return upstream::GatewayError(
        absl::StatusCode::kUnauthenticated,
        "this gateway requires a caller token: send metadata \"authorization: Bearer <token>\"",
        {.reason = "MISSING_CREDENTIALS"});
  }
  absl::string_view token;
  if (value.size() > 7 && absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    token = absl::StripLeadingAsciiWhitespace(value.substr(7));
  }
  const std::shared_ptr<const Callers> callers = Snapshot();
  const Caller* found = nullptr;
  for (const Caller& caller : callers->callers) {
    // Check every caller, so the time taken does not tell which one was close.
    if (ConstantTimeEquals(caller.token, token) && !token.empty()) found = &caller;
  }
  if (found == nullptr) {
    return upstream::GatewayError(absl::StatusCode::kUnauthenticated,
                                  "the caller token is not valid (expected \"Bearer <token>\" "
                                  "with a token from the callers file)",
                                  {.reason = "INVALID_TOKEN"});
  }
  if (!found->allowed.contains(rpc)) {
    return upstream::GatewayError(
        absl::StatusCode::kPermissionDenied,
        absl::StrCat("caller \"", found->name, "\" may not call ", rpc),
        {.reason = "RPC_NOT_ALLOWED",
         .metadata = {{"caller", found->name}, {"rpc", std::string(rpc)}}});
  }
  return found->name;
}

}  // namespace gateway::service
