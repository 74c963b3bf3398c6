#include "service/health.h"

#include "absl/strings/str_cat.h"

namespace gateway::service {

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::AddCheck(std::string name, std::function<bool()> check) {
  absl::MutexLock lock(&mu_);
  checks_.emplace_back(std::move(name), std::move(check));
}

void HealthMonitor::Start(grpc::HealthCheckServiceInterface* health,
                          std::vector<std::string> services) {
  {
    absl::MutexLock lock(&mu_);
    health_ = health;
    services_ = std::move(services);
    if (health_ != nullptr) health_->SetServingStatus(kLivenessService, true);
  }
  Evaluate();
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) Evaluate();
  });
}

std::pair<bool, std::string> HealthMonitor::Evaluate() {
  std::vector<std::pair<std::string, std::function<bool()>>> checks;
  {
    absl::MutexLock lock(&mu_);
    checks = checks_;
  }
  // Checks run without the lock: they may be slow-ish or take their components' locks.
  bool ready = true;
  std::string report;
  for (const auto& [name, check] : checks) {
    const bool ok = check();
    ready = ready && ok;
    absl::StrAppend(&report, name, ": ", ok ? "ok" : "failing", "\n");
  }
  absl::MutexLock lock(&mu_);
  if (draining_) {
    ready = false;
    absl::StrAppend(&report, "draining\n");
  }
  Publish(ready);
  return {ready, report};
}

void HealthMonitor::Publish(bool ready) {
  if (health_ == nullptr || published_ == static_cast<int>(ready)) return;
  health_->SetServingStatus("", ready);
  for (const std::string& service : services_) health_->SetServingStatus(service, ready);
  published_ = static_cast<int>(ready);
}

void HealthMonitor::SetDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  Publish(false);
}

bool HealthMonitor::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

void HealthMonitor::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gateway::service
