// Small helpers shared by the production-readiness integration tests (health, reflection,
// admin, auth, TLS, lifecycle).
#ifndef GATEWAY_TESTS_INTEGRATION_PRODUCTION_HELPERS_H_
#define GATEWAY_TESTS_INTEGRATION_PRODUCTION_HELPERS_H_

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"

namespace gateway::testing {

// The admin port a gateway printed ("admin listening on 127.0.0.1:PORT"), or 0.
inline int AdminPort(Gateway& gateway) {
  const std::string out = gateway.process().output();
  const std::string marker = "admin listening on 127.0.0.1:";
  const size_t at = out.find(marker);
  if (at == std::string::npos) return 0;
  int port = 0;
  const size_t start = at + marker.size();
  absl::SimpleAtoi(out.substr(start, out.find('\n', start) - start), &port);
  return port;
}

// The JSON call-log lines a process printed (objects with an "rpc" key).
inline std::vector<nlohmann::json> CallLogLines(const std::string& output) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (line.empty() || line.front() != '{') continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("rpc")) lines.push_back(j);
  }
  return lines;
}

}  // namespace gateway::testing

#endif  // GATEWAY_TESTS_INTEGRATION_PRODUCTION_HELPERS_H_
