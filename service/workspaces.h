// Workspaces: several sets of upstream credentials and budgets behind one gateway.
//
// A workspace (config `workspaces.<name>`, service/config.h) is one respond.io organization
// and/or one Chatwoot installation and account. Each has its own Dispatcher, built over the
// shared transport, limiter, cache and request_id store, so everything a dispatcher keys by
// its upstream account is kept apart per workspace:
//   - budgets: respond.io's by the workspace's token (its organization), Chatwoot's by the
//     installation's host (its limit is per client IP, so every workspace on one installation
//     shares it, as the installation counts it);
//   - cache entries by host and token; coalescing per dispatcher (never across workspaces);
//   - request_id records, since each workspace's requests carry its own account.
//
//   auto set = WorkspaceSet::Build(*config, components, nullptr);
//   Workspaces workspaces(*std::move(set));
//   auto snapshot = workspaces.Current();               // held by the call until it ends
//   auto ws = snapshot->Select(metadata_value, present); // WORKSPACE_REQUIRED, UNKNOWN_WORKSPACE
//   (*ws)->dispatcher->Call(...);
//
// Reload: Build() a new set from a new config (reusing the previous set's dispatcher for every
// workspace whose settings did not change, so its coalescing and latency state carry on) and
// Replace() it. Calls in flight keep the snapshot they started with. A dispatcher the new set
// does not reuse is retired: every Call it made keeps it alive until the Call is destroyed
// (Dispatcher, LIFETIME), after the last late callback of the call, and Sweep() (run by
// Replace and AllDispatchers, i.e. at each reload and scrape) then releases it on that thread,
// adding its counters to released_counters() so metrics that count over the process' life never
// go back. So any number of reloads keeps at most the current dispatchers plus those still
// serving calls that started before a reload.
//
// Thread-safe.
#ifndef GATEWAY_SERVICE_WORKSPACES_H_
#define GATEWAY_SERVICE_WORKSPACES_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/config.h"
#include "service/metrics.h"
#include "service/route_table.h"
#include "upstream/pipeline/dispatcher.h"

namespace gateway::service {

// The metadata key a call names its workspace with.
inline constexpr char kWorkspaceMetadata[] = "x-workspace";

// The route tables of every combination of the upstreams' dialects (respond.io and Chatwoot,
// each live or openapi), compiled once at start-up with the same route overrides, so each
// workspace calls its upstreams in its own dialects and a reload may change them.
class DialectRoutes {
 public:
  static absl::StatusOr<std::unique_ptr<DialectRoutes>> Build(
      const absl::flat_hash_map<std::string, RouteOverride>& overrides);
  // The table for `dialects` (upstream name -> dialect; an upstream not listed speaks `base`'s
  // dialect for it). Never null for the dialects LoadConfig accepts.
  const RouteTable* For(const absl::flat_hash_map<std::string, std::string>& dialects,
                        const absl::flat_hash_map<std::string, std::string>& base) const;

 private:
  std::map<std::string, std::unique_ptr<RouteTable>> tables_;  // "respondio=live,chatwoot=openapi"
};

class WorkspaceSet {
 public:
  struct Workspace {
    std::string name;
    WorkspaceConfig config;
    // The routes in this workspace's dialects (null when Build had no DialectRoutes: the
    // service's own table applies).
    const RouteTable* routes = nullptr;
    std::shared_ptr<upstream::Dispatcher> dispatcher;
    // Its metric series (workspace label resolved once, here; null without `metrics`).
    WorkspaceSeries* metrics = nullptr;
  };

  // One dispatcher per workspace of `config`, over `components`; a workspace whose settings
  // equal its namesake in `previous` (may be null) keeps that one's dispatcher. Bucket rates
  // get the config's headroom. With `metrics`, each workspace gets its series
  // (Metrics::ForWorkspace). With `routes`, each workspace gets the table of its dialects.
  static std::shared_ptr<const WorkspaceSet> Build(const GatewayConfig& config,
                                                   upstream::Dispatcher::Components components,
                                                   const WorkspaceSet* previous,
                                                   Metrics* metrics = nullptr,
                                                   const DialectRoutes* routes = nullptr);

  // The workspace a call selects: `name` when `present` (the x-workspace metadata), else
  // `default`. Errors: INVALID_ARGUMENT WORKSPACE_REQUIRED (absent and no default), NOT_FOUND
  // UNKNOWN_WORKSPACE (metadata {workspace}).
  absl::StatusOr<const Workspace*> Select(absl::string_view name, bool present) const;

  // Every workspace, by name.
  const std::map<std::string, Workspace, std::less<>>& all() const { return workspaces_; }
  // Names, sorted.
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, Workspace, std::less<>> workspaces_;
};

class Workspaces {
 public:
  explicit Workspaces(std::shared_ptr<const WorkspaceSet> initial);

  // The current set. Hold it for the whole call.
  std::shared_ptr<const WorkspaceSet> Current() const ABSL_LOCKS_EXCLUDED(mu_);
  // Installs `next`; calls already holding the old set keep it. The old set's dispatchers that
  // `next` does not reuse are retired (see the file comment), then Sweep() runs.
  void Replace(std::shared_ptr<const WorkspaceSet> next) ABSL_LOCKS_EXCLUDED(mu_);
  // Releases every retired dispatcher nothing else holds any more (no snapshot, call, exchange
  // or late callback), adding its counters to released_counters(). Returns how many it
  // released.
  int Sweep() ABSL_LOCKS_EXCLUDED(mu_);

  // The live dispatchers, each once: the current set's (by workspace name), then the retired
  // ones still serving calls, newest first. Runs Sweep() first. For metrics and for shutdown.
  struct Installed {
    std::shared_ptr<upstream::Dispatcher> dispatcher;
    std::string workspace;  // the name of the workspace it was built for
    bool retired = false;
  };
  std::vector<Installed> AllDispatchers() ABSL_LOCKS_EXCLUDED(mu_);

  // The counters of every dispatcher released so far, summed.
  upstream::Dispatcher::Counters released_counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  int SweepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::shared_ptr<const WorkspaceSet> current_ ABSL_GUARDED_BY(mu_);
  // Retired, newest last. Each entry holds a reference: a dispatcher whose only reference is
  // this one serves nothing and is released by Sweep (here, not on a callback thread).
  std::vector<Installed> retired_ ABSL_GUARDED_BY(mu_);
  upstream::Dispatcher::Counters released_ ABSL_GUARDED_BY(mu_);
};

// Adds `b` to `a`, field by field.
void AddCounters(const upstream::Dispatcher::Counters& b, upstream::Dispatcher::Counters* a);

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_WORKSPACES_H_
