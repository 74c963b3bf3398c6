// Readiness of the gateway, served three ways: gRPC health (grpc.health.v1.Health, for
// Kubernetes' native gRPC probes), and the admin listener's /readyz and /healthz.
//
//   HealthMonitor health({.interval = absl::Seconds(1)});
//   health.AddCheck("redis", [&redis] { return redis.healthy(); });   // a readiness hook
//   ...builder.BuildAndStart()...
//   health.Start(server->GetHealthCheckService(), routes.ServiceNames());
//   ...on SIGTERM: health.SetDraining(); server->Shutdown(deadline); health.Stop();
//
// gRPC health statuses:
//   ""           SERVING while every check passes (the configuration was loaded, or the server
//                would not have started) and the server is not draining; else NOT_SERVING.
//   every served service name, e.g. "respondio.v2.ContactService": the same as "".
//   "liveness"   SERVING while the process serves at all (for liveness probes: a Redis outage
//                must not restart the pods).
// Checks run on the monitor's thread every `interval` (and on each Evaluate()); they must be
// quick and must not block on the network for long. Thread-safe.
#ifndef GATEWAY_SERVICE_HEALTH_H_
#define GATEWAY_SERVICE_HEALTH_H_

#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/health_check_service_interface.h"

namespace gateway::service {

// The gRPC health service name that liveness probes ask for.
inline constexpr char kLivenessService[] = "liveness";

class HealthMonitor {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
  };
  explicit HealthMonitor(Options options) : options_(options) {}
  ~HealthMonitor();

  // A named readiness hook; true = ready. Add checks before Start().
  void AddCheck(std::string name, std::function<bool()> check) ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes statuses to `health` (may be null) for "" and `services`, and re-evaluates the
  // checks every interval until Stop().
  void Start(grpc::HealthCheckServiceInterface* health, std::vector<std::string> services)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Runs every check now and publishes the result. Returns (ready, report), the report one
  // "name: ok|failing" line per check, plus "draining" while draining.
  std::pair<bool, std::string> Evaluate() ABSL_LOCKS_EXCLUDED(mu_);

  // Not ready from now on (graceful shutdown); published at once.
  void SetDraining() ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() const ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the thread. Idempotent.
  void Stop();

 private:
  void Publish(bool ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, std::function<bool()>>> checks_ ABSL_GUARDED_BY(mu_);
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::string> services_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int published_ ABSL_GUARDED_BY(mu_) = -1;  // -1 never, 0 not serving, 1 serving
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace gateway::service

#endif  // GATEWAY_SERVICE_HEALTH_H_
