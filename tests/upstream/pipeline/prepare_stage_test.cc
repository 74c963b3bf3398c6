// The prepare stage alone (upstream/pipeline/prepare_stage.h): the checks it makes before any
// budget is spent, in order, and every field of PreparedCall it fills for a read and a write.
#include "upstream/pipeline/prepare_stage.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "gateway/v1/annotations.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "tests/upstream/binding/declared_route.h"
#include "tests/upstream/status_details.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DeclaredRoute;
using ::gateway::testing::ErrorInfoOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

respondio::v2::GetContactRequest Contact(const std::string& identifier) {
  respondio::v2::GetContactRequest request;
  request.set_identifier(identifier);
  return request;
}

respondio::v2::CreateCommentRequest Comment(const std::string& text,
                                            const std::string& request_id) {
  respondio::v2::CreateCommentRequest request;
  request.set_identifier("id:1");
  request.set_text(text);
  request.set_request_id(request_id);
  return request;
}

constexpr char kRequestId[] = "0b6f2f6e-8a1e-4c61-9f43-5d8f3c2e1a7b";

class PrepareStageTest : public ::testing::Test {
 protected:
  absl::flat_hash_map<std::string, UpstreamConfig> upstreams_{
      {"respondio",
       {.name = "respondio", .base_url = "http://upstream.test/v2", .token = "secret"}}};
  PrepareStage prepare_{&upstreams_,
                        {.buckets = {{"respondio/contact_get", {.rate_per_second = 9, .burst = 2}}},
                         .default_bucket = {.rate_per_second = 5, .burst = 0}}};
  const Route get_contact_ = DeclaredRoute("respondio.v2.ContactService.GetContact");
  const Route update_contact_ = DeclaredRoute("respondio.v2.ContactService.UpdateContact");
  const Route create_comment_ = DeclaredRoute("respondio.v2.CommentService.CreateComment");
};

TEST_F(PrepareStageTest, ARead) {
  PreparedCall p;
  ASSERT_TRUE(prepare_.Prepare(get_contact_, Contact("id:7"), {}, &p).ok());
  EXPECT_EQ(p.route, &get_contact_);
  EXPECT_EQ(p.upstream, &upstreams_.at("respondio"));
  EXPECT_EQ(p.parts.path_and_query, "/contact/id:7");
  EXPECT_FALSE(p.parts.has_body);
  EXPECT_THAT(p.bucket_key, StartsWith("respondio:"));
  EXPECT_THAT(p.bucket_key, HasSubstr(":contact_get"));
  EXPECT_EQ(p.bucket.rate_per_second, 9) << "the configured bucket";
  EXPECT_EQ(p.bucket.burst, 2);
  EXPECT_TRUE(p.cached);
  EXPECT_TRUE(p.coalesced);
  EXPECT_FALSE(p.cache_key.empty());
  EXPECT_THAT(p.cache_tags, ElementsAre("contact:id:7"));
  EXPECT_THAT(p.invalidations, IsEmpty());
  EXPECT_THAT(p.idempotency_key, IsEmpty());
  // The hit fast path finds the same key from the request's bytes alone.
  EXPECT_EQ(prepare_.HitKey(get_contact_, DeterministicBytes(Contact("id:7"))), p.cache_key);
  PreparedCall other;
  ASSERT_TRUE(prepare_.Prepare(get_contact_, Contact("id:8"), {}, &other).ok());
  EXPECT_NE(other.cache_key, p.cache_key);
}

TEST_F(PrepareStageTest, NoCacheMeansNeitherCachedNorCoalesced) {
  PreparedCall p;
  ASSERT_TRUE(prepare_.Prepare(get_contact_, Contact("id:7"), {.bypass_cache = true}, &p).ok());
  EXPECT_FALSE(p.cached);
  EXPECT_FALSE(p.coalesced);
  PrepareStage no_cache(&upstreams_, {.has_cache = false});
  PreparedCall q;
  ASSERT_TRUE(no_cache.Prepare(get_contact_, Contact("id:7"), {}, &q).ok());
  EXPECT_FALSE(q.cached);
  EXPECT_TRUE(q.coalesced) << "identical reads still share one request";
  EXPECT_EQ(q.bucket.rate_per_second, 5) << "the default bucket";
}

TEST_F(PrepareStageTest, AWrite) {
  PreparedCall p;
  respondio::v2::UpdateContactRequest update;
  update.set_identifier("id:7");
  update.set_first_name("Ann");
  ASSERT_TRUE(prepare_.Prepare(update_contact_, update, {}, &p).ok());
  EXPECT_FALSE(p.cached);
  EXPECT_FALSE(p.coalesced);
  EXPECT_THAT(p.cache_key, IsEmpty());
  EXPECT_THAT(p.invalidations, ElementsAre("contact:id:7", "contacts"));
  EXPECT_TRUE(p.parts.has_body);
}

// request_id records are per caller: the key names the caller; the fingerprint is of the
// request alone.
TEST_F(PrepareStageTest, RequestIdKeysArePerCaller) {
  PreparedCall alice, bob, alice_other, none;
  ASSERT_TRUE(
      prepare_.Prepare(create_comment_, Comment("hi", kRequestId), {.caller = "alice"}, &alice)
          .ok());
  ASSERT_TRUE(
      prepare_.Prepare(create_comment_, Comment("hi", kRequestId), {.caller = "bob"}, &bob).ok());
  ASSERT_TRUE(prepare_
                  .Prepare(create_comment_, Comment("other", kRequestId), {.caller = "alice"},
                           &alice_other)
                  .ok());
  ASSERT_TRUE(prepare_.Prepare(create_comment_, Comment("hi", ""), {.caller = "alice"}, &none).ok());
  EXPECT_EQ(alice.request_id, kRequestId);
  EXPECT_FALSE(alice.idempotency_key.empty());
  EXPECT_NE(alice.idempotency_key, bob.idempotency_key);
  EXPECT_EQ(alice.fingerprint, bob.fingerprint);
  EXPECT_EQ(alice.idempotency_key, alice_other.idempotency_key);
  EXPECT_NE(alice.fingerprint, alice_other.fingerprint);
  EXPECT_THAT(none.idempotency_key, IsEmpty());
  EXPECT_THAT(none.fingerprint, IsEmpty());
  PrepareStage no_store(&upstreams_, {.has_idempotency = false});
  PreparedCall unrecorded;
  ASSERT_TRUE(no_store.Prepare(create_comment_, Comment("hi", kRequestId), {}, &unrecorded).ok());
  EXPECT_THAT(unrecorded.idempotency_key, IsEmpty());
}

TEST_F(PrepareStageTest, PartitionedTags) {
  upstreams_.at("respondio").partition = "ws1";
  PrepareStage partitioned(&upstreams_, {});
  PreparedCall read, write;
  ASSERT_TRUE(partitioned.Prepare(get_contact_, Contact("id:7"), {}, &read).ok());
  EXPECT_THAT(read.cache_tags, ElementsAre("ws1/contact:id:7"));
  respondio::v2::UpdateContactRequest update;
  update.set_identifier("id:7");
  ASSERT_TRUE(partitioned.Prepare(update_contact_, update, {}, &write).ok());
  EXPECT_THAT(write.invalidations, ElementsAre("ws1/contact:id:7", "ws1/contacts"));
}

// The checks, in order, each before anything is derived.
TEST_F(PrepareStageTest, RefusesBeforeAnyBudgetIsSpent) {
  PreparedCall p;
  absl::flat_hash_map<std::string, UpstreamConfig> none;
  PrepareStage unconfigured(&none, {});
  const absl::Status missing = unconfigured.Prepare(get_contact_, Contact("nonsense"), {}, &p);
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition) << missing;
  EXPECT_EQ(ErrorInfoOf(missing).reason(), "UPSTREAM_NOT_CONFIGURED");

  const absl::Status invalid = prepare_.Prepare(get_contact_, Contact("nonsense"), {}, &p);
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInvalidArgument) << invalid;
  EXPECT_EQ(p.route, nullptr) << "nothing is filled for a refused request";
  EXPECT_THAT(p.bucket_key, IsEmpty());

  respondio::v2::ListContactsRequest list;
  list.set_page_token("not a token");
  const Route list_contacts = DeclaredRoute("respondio.v2.ContactService.ListContacts");
  const absl::Status token = prepare_.Prepare(list_contacts, list, {}, &p);
  EXPECT_EQ(token.code(), absl::StatusCode::kInvalidArgument) << token;
  EXPECT_EQ(::gateway::testing::BadRequestFieldOf(token), "page_token");
}

}  // namespace
}  // namespace gateway::upstream
