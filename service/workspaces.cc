#include "service/workspaces.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "upstream/errors.h"
#include "upstream/safe_text.h"

namespace gateway::service {
namespace {

bool SameUpstream(const upstream::UpstreamConfig& a, const upstream::UpstreamConfig& b) {
  return a.name == b.name && a.base_url == b.base_url && a.token == b.token &&
         a.auth_header == b.auth_header && a.path_defaults == b.path_defaults &&
         a.limit_scope == b.limit_scope && a.max_response_bytes == b.max_response_bytes;
}

bool SameSettings(const WorkspaceConfig& a, const WorkspaceConfig& b) {
  if (a.upstreams.size() != b.upstreams.size() || a.buckets.size() != b.buckets.size()) {
    return false;
  }
  for (const auto& [name, up] : a.upstreams) {
    auto it = b.upstreams.find(name);
    if (it == b.upstreams.end() || !SameUpstream(up, it->second)) return false;
  }
  for (const auto& [key, rate] : a.buckets) {
    auto it = b.buckets.find(key);
    if (it == b.buckets.end() || it->second.rate_per_second != rate.rate_per_second ||
        it->second.burst != rate.burst) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DialectRoutes>> DialectRoutes::Build(
    const absl::flat_hash_map<std::string, RouteOverride>& overrides) {
  auto out = std::make_unique<DialectRoutes>();
  for (const char* respondio : {"live", "openapi"}) {
    for (const char* chatwoot : {"live", "openapi"}) {
      auto table = RouteTable::Build(overrides, {{"respondio", respondio}, {"chatwoot", chatwoot}});
      if (!table.ok()) return table.status();
      out->tables_[absl::StrCat("respondio=", respondio, ",chatwoot=", chatwoot)] =
          std::make_unique<RouteTable>(*std::move(table));
    }
  }
  return out;
}

const RouteTable* DialectRoutes::For(
    const absl::flat_hash_map<std::string, std::string>& dialects,
    const absl::flat_hash_map<std::string, std::string>& base) const {
  auto of = [&](const char* upstream) -> std::string {
    if (auto it = dialects.find(upstream); it != dialects.end()) return it->second;
    if (auto it = base.find(upstream); it != base.end()) return it->second;
    return "live";
  };
  auto it = tables_.find(absl::StrCat("respondio=", of("respondio"), ",chatwoot=", of("chatwoot")));
  return it == tables_.end() ? nullptr : it->second.get();
}

std::shared_ptr<const WorkspaceSet> WorkspaceSet::Build(
    const GatewayConfig& config, upstream::Dispatcher::Components components,
    const WorkspaceSet* previous, Metrics* metrics, const DialectRoutes* routes) {
  auto set = std::make_shared<WorkspaceSet>();
  for (const auto& [name, ws] : config.workspaces) {
    // Webhook secrets are configured secrets: redacted from whatever the gateway emits.
    for (const auto& [upstream_name, secret] : ws.webhook_secrets) upstream::RegisterSecret(secret);
    Workspace& out = set->workspaces_[name];
    out.name = name;
    out.config = ws;
    if (routes != nullptr) out.routes = routes->For(ws.dialects, config.dialects);
    if (metrics != nullptr) out.metrics = metrics->ForWorkspace(name);
    if (previous != nullptr) {
      auto it = previous->workspaces_.find(name);
      if (it != previous->workspaces_.end() && SameSettings(it->second.config, ws)) {
        out.dispatcher = it->second.dispatcher;
        continue;
      }
    }
    upstream::Dispatcher::Options options;
    for (const auto& [bucket, rate] : ws.buckets) {
      options.buckets[bucket] = {rate.rate_per_second * config.rate_headroom, rate.burst};
    }
    // Upstreams the workspace does not configure stay in the map without a base URL, so their
    // RPCs answer FAILED_PRECONDITION UPSTREAM_NOT_CONFIGURED.
    absl::flat_hash_map<std::string, upstream::UpstreamConfig> upstreams;
    for (const auto& [up_name, shared] : config.upstreams) {
      upstream::UpstreamConfig unconfigured;
      unconfigured.name = up_name;
      unconfigured.auth_header = shared.auth_header;
      unconfigured.limit_scope = shared.limit_scope;
      upstreams[up_name] = unconfigured;
    }
    for (const auto& [up_name, up] : ws.upstreams) {
      upstreams[up_name] = up;
      // `default` keeps the keys a gateway without workspaces used.
      if (name != kDefaultWorkspace) upstreams[up_name].partition = name;
    }
    out.dispatcher = std::make_shared<upstream::Dispatcher>(std::move(upstreams), components,
                                                            std::move(options));
  }
  return set;
}

absl::StatusOr<const WorkspaceSet::Workspace*> WorkspaceSet::Select(absl::string_view name,
                                                                    bool present) const {
  if (!present) {
    auto it = workspaces_.find(kDefaultWorkspace);
    if (it == workspaces_.end()) {
      return upstream::GatewayError(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("this gateway has no default workspace: name one with metadata \"",
                       kWorkspaceMetadata, ": NAME\""),
          {.reason = "WORKSPACE_REQUIRED"});
    }
    return &it->second;
  }
  auto it = workspaces_.find(name);
  if (it == workspaces_.end()) {
    return upstream::GatewayError(
        absl::StatusCode::kNotFound, absl::StrCat("no workspace \"", name, "\" is configured"),
        {.reason = "UNKNOWN_WORKSPACE", .metadata = {{"workspace", std::string(name)}}});
  }
  return &it->second;
}

std::vector<std::string> WorkspaceSet::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, ws] : workspaces_) names.push_back(name);
  return names;
}

Workspaces::Workspaces(std::shared_ptr<const WorkspaceSet> initial)
    : current_(std::move(initial)) {}

std::shared_ptr<const WorkspaceSet> Workspaces::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void AddCounters(const upstream::Dispatcher::Counters& b, upstream::Dispatcher::Counters* a) {
  a->calls += b.calls;
  a->upstream_requests += b.upstream_requests;
  a->retries += b.retries;
  a->coalesced += b.coalesced;
  a->idempotent_replays += b.idempotent_replays;
  a->cancelled += b.cancelled;
  a->aborted_in_flight += b.aborted_in_flight;
  a->coalescing.joined += b.coalescing.joined;
  a->coalescing.led += b.coalescing.led;
  a->coalescing.followed += b.coalescing.followed;
  a->coalescing.filled_by_replica += b.coalescing.filled_by_replica;
  a->coalescing.took_over += b.coalescing.took_over;
  a->coalescing.redis_errors += b.coalescing.redis_errors;
}

void Workspaces::Replace(std::shared_ptr<const WorkspaceSet> next) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const WorkspaceSet> old = std::move(current_);
  current_ = std::move(next);
  absl::flat_hash_set<const upstream::Dispatcher*> kept;
  for (const auto& [name, ws] : current_->all()) kept.insert(ws.dispatcher.get());
  for (const auto& [name, ws] : old->all()) {
    if (kept.insert(ws.dispatcher.get()).second) {
      retired_.push_back({ws.dispatcher, name, /*retired=*/true});
    }
  }
  old.reset();  // calls may still hold it; retired_ holds what it alone kept
  SweepLocked();
}

int Workspaces::Sweep() {
  absl::MutexLock lock(&mu_);
  return SweepLocked();
}

int Workspaces::SweepLocked() {
  int released = 0;
  for (auto it = retired_.begin(); it != retired_.end();) {
    // Only this entry holds it: no snapshot (which holds its set) and no Call (which holds its
    // dispatcher) is left, and none can appear, since only those hand out references.
    if (it->dispatcher.use_count() == 1) {
      AddCounters(it->dispatcher->counters(), &released_);
      it = retired_.erase(it);  // destroys the dispatcher
      ++released;
    } else {
      ++it;
    }
  }
  return released;
}

std::vector<Workspaces::Installed> Workspaces::AllDispatchers() {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  std::vector<Installed> out;
  absl::flat_hash_set<const upstream::Dispatcher*> seen;
  for (const auto& [name, ws] : current_->all()) {
    if (seen.insert(ws.dispatcher.get()).second) out.push_back({ws.dispatcher, name, false});
  }
  for (auto it = retired_.rbegin(); it != retired_.rend(); ++it) {
    if (seen.insert(it->dispatcher.get()).second) out.push_back(*it);
  }
  return out;
}

upstream::Dispatcher::Counters Workspaces::released_counters() const {
  absl::MutexLock lock(&mu_);
  return released_;
}

}  // namespace gateway::service
