// The route that a method of the compiled-in protos declares (its gateway.v1.binding and
// gateway.v1.policy options), compiled as the gateway compiles it. An unknown method or a route
// that does not compile is a test failure (and an empty Route), not a crash.
#ifndef GATEWAY_TESTS_UPSTREAM_BINDING_DECLARED_ROUTE_H_
#define GATEWAY_TESTS_UPSTREAM_BINDING_DECLARED_ROUTE_H_

#include <string>
#include <utility>

#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "upstream/binding/route.h"

namespace gateway::testing {

// `full_name`: "package.Service.Method", e.g. "respondio.v2.ContactService.GetContact".
inline upstream::Route DeclaredRoute(const std::string& full_name) {
  const auto* method =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name);
  EXPECT_NE(method, nullptr) << full_name;
  if (method == nullptr) return upstream::Route();
  auto route = upstream::CompileRoute(method, method->options().GetExtension(gateway::v1::binding),
                                      method->options().GetExtension(gateway::v1::policy));
  EXPECT_TRUE(route.ok()) << route.status();
  return route.ok() ? *std::move(route) : upstream::Route();
}

}  // namespace gateway::testing

#endif  // GATEWAY_TESTS_UPSTREAM_BINDING_DECLARED_ROUTE_H_
