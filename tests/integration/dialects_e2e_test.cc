// Every RPC end to end against the sandbox, in both dialects: the gateway and the sandbox are
// started speaking `live` (the default) and again speaking `openapi`, and each case of
// tests/integration/testdata/dialect_cases.json is called through the gateway. For each case the
// test asserts the exact HTTP request the sandbox received (method, path as sent, raw query,
// body as JSON) and the reply (a subset of the reply's proto JSON, field names as in the protos).
//
// The table is data, one entry per RPC:
//
//   {"rpc": "respondio.v2.ContactService/GetContact",
//    "before": [{"rpc": ..., "request": {...}}],   // optional calls made first (e.g. create)
//    "request": {...},                              // the request message as proto JSON
//    "http": {"method", "path", "query", "body"},   // what the upstream must receive
//    "reply": {...},                                // what the reply must contain
//    "code": "NOT_FOUND",                           // optional: the expected gRPC status
//    "reason": "RPC_NOT_IN_DIALECT",                // optional: its ErrorInfo reason
//    "live": {"http": ..., "reply": ...},           // per-dialect replacements of the above
//    "openapi": {...}}
//
// respond.io is reached under /v2 in the live dialect (like https://api.respond.io/v2) and at the
// root in openapi; table paths of respond.io omit the prefix, the test adds it. `body` null means
// no body; `http` null means nothing may reach the upstream. Reply subsets compare objects key by key and arrays element by element (same length).
//
// With DIALECT_CASES_RECORD=FILE the test also writes what it observed per case to FILE (to help
// write a new case; every recorded value is checked against specs before it goes in the table).
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "chatwoot/v1/account_service.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

using nlohmann::json;

std::string StatusCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",          "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : absl::StrCat(i);
}

json LoadCases() {
  std::ifstream in(Runfile("tests/integration/testdata/dialect_cases.json"));
  std::stringstream text;
  text << in.rdbuf();
  json cases = json::parse(text.str(), nullptr, false);
  return cases.is_array() ? cases : json::array();
}

struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  std::string reason;  // ErrorInfo.reason of an error
  json reply;  // proto JSON with the protos' field names; null on error
};

// Calls `rpc` ("package.Service/Method") with `request` (proto JSON) through a generic stub.
CallResult Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& rpc,
                const json& request) {
  CallResult result;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* method = pool->FindMethodByName(absl::StrReplaceAll(rpc, {{"/", "."}}));
  if (method == nullptr) {
    result.message = "no such RPC in the protos: " + rpc;
    return result;
  }
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> in(
      factory->GetPrototype(method->input_type())->New());
  if (auto s = google::protobuf::util::JsonStringToMessage(request.dump(), in.get()); !s.ok()) {
    result.message = "bad request JSON in the table: " + std::string(s.message());
    return result;
  }
  std::string out_bytes;
  const grpc::Status status = RawCall(channel, absl::StrCat("/", rpc), in->SerializeAsString(),
                                      &out_bytes, *Context(absl::Seconds(10)));
  result.code = status.error_code();
  result.message = status.error_message();
  result.reason = ErrorInfoOf(status).reason();
  if (!status.ok()) return result;
  std::unique_ptr<google::protobuf::Message> out(
      factory->GetPrototype(method->output_type())->New());
  if (!out->ParseFromString(out_bytes)) {
    result.message = "unparseable reply";
    result.code = grpc::StatusCode::INTERNAL;
    return result;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(*out, &text, options);
  result.reply = json::parse(text);
  return result;
}

// Whether `actual` contains `expected` (objects: every expected key, recursively; arrays: same
// length, element by element; scalars: equal). `path` names the first difference in `why`.
bool Contains(const json& actual, const json& expected, const std::string& path,
              std::string* why) {
  if (expected.is_object()) {
    if (!actual.is_object()) {
      *why = path + ": expected an object, got " + actual.dump();
      return false;
    }
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      if (!actual.contains(it.key())) {
        if (it.value().is_null()) continue;  // null = must be absent (proto JSON omits it)
        *why = path + "." + it.key() + ": missing";
        return false;
      }
      if (it.value().is_null()) {
        *why = path + "." + it.key() + ": expected absent, got " + actual[it.key()].dump();
        return false;
      }
      if (!Contains(actual[it.key()], it.value(), path + "." + it.key(), why)) return false;
    }
    return true;
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) {
      *why = path + ": expected " + expected.dump() + ", got " + actual.dump();
      return false;
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      if (!Contains(actual[i], expected[i], absl::StrCat(path, "[", i, "]"), why)) return false;
    }
    return true;
  }
  if (actual != expected) {
    *why = path + ": expected " + expected.dump() + ", got " + actual.dump();
    return false;
  }
  return true;
}

// The case's value of `key` for `dialect`: the dialect's own entry, else the shared one.
json ForDialect(const json& c, const std::string& dialect, const std::string& key) {
  if (c.contains(dialect) && c[dialect].contains(key)) return c[dialect][key];
  return c.contains(key) ? c[key] : json();
}

class DialectsEndToEnd : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string& dialect = GetParam();
    sandbox_ = Sandbox::Start({"--rate_limits=false", "--respondio_dialect=" + dialect,
                               "--chatwoot_dialect=" + dialect});
    ASSERT_NE(sandbox_, nullptr);
    prefix_ = dialect == "live" ? "/v2" : "";
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url() + prefix_,
                               "--chatwoot_base_url=" + sandbox_->base_url(),
                               "--respondio_dialect=" + dialect, "--chatwoot_dialect=" + dialect,
                               "--cache_max_bytes=0", "--log_calls=false"});
    ASSERT_NE(gateway_, nullptr);
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Gateway> gateway_;
  std::string prefix_;
};

TEST_P(DialectsEndToEnd, EveryRpcSendsTheDialectsRequestAndDecodesItsReply) {
  const std::string& dialect = GetParam();
  const json cases = LoadCases();
  ASSERT_GE(cases.size(), 70u) << "dialect_cases.json is missing or truncated";
  const char* record_file = std::getenv("DIALECT_CASES_RECORD");
  json recorded = json::array();
  std::map<std::string, int> covered;
  for (const json& c : cases) {
    const std::string rpc = c.at("rpc");
    SCOPED_TRACE(rpc);
    covered[rpc]++;
    sandbox_->Reset();
    for (const json& before : c.value("before", json::array())) {
      CallResult r = Call(gateway_->channel(), before.at("rpc"), before.at("request"));
      ASSERT_EQ(r.code, grpc::StatusCode::OK) << "before: " << before.dump() << ": " << r.message;
    }
    sandbox_->ClearRequests();
    CallResult result = Call(gateway_->channel(), rpc, ForDialect(c, dialect, "request"));
    const json requests = sandbox_->Requests();
    json seen = json::array();
    for (const json& r : requests) {
      const std::string body = r.value("body", "");
      json parsed = body.empty() ? json() : json::parse(body, nullptr, false);
      seen.push_back({{"method", r["method"]},
                      {"path", r["raw_path"]},
                      {"query", r["query"]},
                      {"body", parsed.is_discarded() ? json(body) : parsed}});
    }
    recorded.push_back({{"rpc", rpc},
                        {"http", seen},
                        {"code", StatusCodeName(result.code)},
                        {"message", result.message},
                        {"reply", result.reply}});
    if (record_file != nullptr) continue;

    const std::string want_code = ForDialect(c, dialect, "code").is_string()
                                      ? ForDialect(c, dialect, "code").get<std::string>()
                                      : "OK";
    const std::string got_code = StatusCodeName(result.code);
    EXPECT_EQ(got_code, want_code) << result.message;

    const json want_reason = ForDialect(c, dialect, "reason");
    if (want_reason.is_string()) {
      EXPECT_EQ(result.reason, want_reason.get<std::string>());
    }

    json want_http = ForDialect(c, dialect, "http");
    const bool nothing_sent = c.contains(dialect) && c[dialect].contains("http")
                                  ? c[dialect]["http"].is_null()
                                  : c.contains("http") && c["http"].is_null();
    if (nothing_sent) {
      EXPECT_TRUE(seen.empty()) << "nothing may be sent; sent " << seen.dump();
      continue;
    }
    ASSERT_TRUE(want_http.is_object()) << "no http expectation for " << dialect;
    ASSERT_EQ(seen.size(), 1u) << seen.dump();
    const json& got = seen[0];
    EXPECT_EQ(got["method"], want_http.at("method"));
    std::string want_path = want_http.at("path");
    if (absl::StartsWith(rpc, "respondio.")) want_path = prefix_ + want_path;
    EXPECT_EQ(got["path"], want_path);
    EXPECT_EQ(got["query"], want_http.value("query", ""));
    EXPECT_EQ(got["body"], want_http.value("body", json())) << "body sent: " << got["body"].dump();

    const json want_reply = ForDialect(c, dialect, "reply");
    if (want_code == "OK") {
      ASSERT_TRUE(want_reply.is_object()) << "no reply expectation for " << dialect;
      std::string why;
      EXPECT_TRUE(Contains(result.reply, want_reply, "reply", &why))
          << why << "\nreply: " << result.reply.dump();
    }
  }
  if (record_file != nullptr) {
    std::ofstream(absl::StrCat(record_file, ".", dialect)) << recorded.dump(1);
    return;
  }
  // Every RPC the gateway serves has a case.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* service :
       {"respondio.v2.ContactService", "respondio.v2.MessageService",
        "respondio.v2.ConversationService", "respondio.v2.CommentService",
        "respondio.v2.TagService", "respondio.v2.CustomFieldService", "respondio.v2.SpaceService",
        "chatwoot.v1.ContactService", "chatwoot.v1.ConversationService",
        "chatwoot.v1.MessageService", "chatwoot.v1.GroupService",
        "chatwoot.v1.AccountService"}) {
    const auto* s = pool->FindServiceByName(service);
    ASSERT_NE(s, nullptr) << service;
    for (int i = 0; i < s->method_count(); ++i) {
      EXPECT_GE(covered[absl::StrCat(service, "/", s->method(i)->name())], 1)
          << "no case for " << service << "/" << s->method(i)->name();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BothDialects, DialectsEndToEnd, ::testing::Values("live", "openapi"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace gateway::testing
