// The gateway's cache-hit fast path end to end: the key from the request bytes, the stored reply
// written as is; requests whose bytes are not the deterministic form, and no-cache calls, take
// the full path and still get the right answer.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"

namespace gateway::testing {
namespace {

constexpr char kMethod[] = "/respondio.v2.ContactService/GetContact";

int GetContactRequests(Sandbox& sandbox) {
  int n = 0;
  for (const auto& r : sandbox.Requests()) {
    if (r.value("endpoint", "") == "get_contact") ++n;
  }
  return n;
}

// One call of kMethod with raw request bytes; `no_cache` asks the gateway to skip its cache.
grpc::Status GetContactRaw(Gateway& gateway, const std::string& request, std::string* reply,
                           bool no_cache = false) {
  auto context = Context();
  if (no_cache) context->AddMetadata("cache-control", "no-cache");
  return RawCall(gateway.channel(), kMethod, request, reply, *context);
}

TEST(CacheHitTest, HitsServeTheStoredReplyWhateverTheRequestEncoding) {
  auto sandbox = Sandbox::Start({"--rate_limits=false"});
  ASSERT_NE(sandbox, nullptr);
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox->base_url()});
  ASSERT_NE(gateway, nullptr);
  respondio::v2::GetContactRequest request;
  request.set_identifier("id:12345");
  const std::string canonical = request.SerializeAsString();

  std::string first, second, other, fresh;
  ASSERT_TRUE(GetContactRaw(*gateway, canonical, &first).ok());  // miss: fills the cache
  respondio::v2::GetContactResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(first));
  EXPECT_EQ(parsed.contact().id(), 12345);
  ASSERT_TRUE(GetContactRaw(*gateway, canonical, &second).ok());  // fast-path hit
  EXPECT_EQ(second, first);
  EXPECT_EQ(GetContactRequests(*sandbox), 1);

  // The same message encoded otherwise (the field twice: the last one wins): not the key's
  // bytes, so the fast path misses; the full path parses it and hits the same entry.
  respondio::v2::GetContactRequest decoy;
  decoy.set_identifier("id:99999");
  ASSERT_TRUE(GetContactRaw(*gateway, decoy.SerializeAsString() + canonical, &other).ok());
  EXPECT_EQ(other, first);
  EXPECT_EQ(GetContactRequests(*sandbox), 1);

  // no-cache skips the fast path too: a fresh upstream read.
  ASSERT_TRUE(GetContactRaw(*gateway, canonical, &fresh, /*no_cache=*/true).ok());
  EXPECT_EQ(GetContactRequests(*sandbox), 2);

  // Bytes that are not a request at all are still refused, not looked up as hits.
  std::string ignored;
  EXPECT_EQ(GetContactRaw(*gateway, "\xff\xff\xff", &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace gateway::testing
