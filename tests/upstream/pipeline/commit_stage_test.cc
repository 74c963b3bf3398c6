// The commit stage alone (upstream/pipeline/commit_stage.h) over the in-process cache and
// idempotency store on a manual clock: a read's reply stored with its miss ticket, a write's
// invalidation only when its request may have reached the upstream, and the request_id record
// completed or abandoned as what happened upstream says; `settled` once, after the commit.
#include "upstream/pipeline/commit_stage.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.pb.h"
#include "tests/upstream/binding/declared_route.h"
#include "upstream/budget/idempotency_store.h"
#include "upstream/budget/response_cache.h"
#include "upstream/scheduler.h"

namespace gateway::upstream {
namespace {

using ::gateway::testing::DeclaredRoute;
class CommitStageTest : public ::testing::Test {
 protected:
  CommitStageTest()
      : cache_({}, &clock_, nullptr), store_({}, &clock_, nullptr), commit_(&cache_, &store_) {
    read_.route = &get_contact_;
    read_.upstream = &upstream_;
    read_.cache_key = "acct|GetContact|id:7";
    read_.cache_tags = {"contact:id:7"};
    read_.cached = true;
    write_.route = &update_contact_;
    write_.upstream = &upstream_;
    write_.invalidations = {"contact:id:7"};
    write_.idempotency_key = "acct|alice|UpdateContact|id-1";
    write_.fingerprint = "f";
  }

  // Looks `key` up in the cache: the stored bytes, or nullopt (and the miss's ticket).
  std::optional<std::string> Lookup(const std::string& key,
                                    ResponseCache::ReadTicket* ticket = nullptr) {
    std::optional<std::string> hit;
    cache_.Lookup(key, [&](std::optional<std::string> bytes, ResponseCache::ReadTicket t) {
      hit = std::move(bytes);
      if (ticket != nullptr) *ticket = t;
    });
    return hit;
  }

  // Caches a reply for read_ as an earlier read would have.
  void CacheRead() {
    ResponseCache::ReadTicket ticket;
    ASSERT_FALSE(Lookup(read_.cache_key, &ticket).has_value());
    int settled = 0;
    commit_.Commit(read_, &ticket, std::string("old reply"), true, true, [&] { ++settled; });
    ASSERT_EQ(settled, 1);
    ASSERT_EQ(Lookup(read_.cache_key), "old reply");
  }

  IdempotencyStore::Outcome BeginAgain() {
    IdempotencyStore::Outcome outcome = IdempotencyStore::Outcome::kRejected;
    store_.Begin(write_.idempotency_key, write_.fingerprint, clock_.Now() + absl::Seconds(1),
                 [&](IdempotencyStore::BeginResult r) { outcome = r.outcome; });
    clock_.RunDue();
    return outcome;
  }

  void BeginWrite() {
    ASSERT_EQ(BeginAgain(), IdempotencyStore::Outcome::kFirst);
  }

  ManualScheduler clock_;
  ResponseCache cache_;
  IdempotencyStore store_;
  CommitStage commit_;
  const UpstreamConfig upstream_{.name = "respondio", .base_url = "http://upstream.test/v2"};
  const Route get_contact_ = DeclaredRoute("respondio.v2.ContactService.GetContact");
  const Route update_contact_ = DeclaredRoute("respondio.v2.ContactService.UpdateContact");
  PreparedCall read_;
  PreparedCall write_;
};

TEST_F(CommitStageTest, AReadsReplyIsStoredWithItsTicketAnErrorIsNot) {
  ResponseCache::ReadTicket ticket;
  ASSERT_FALSE(Lookup(read_.cache_key, &ticket).has_value());
  int settled = 0;
  commit_.Commit(read_, &ticket, absl::UnavailableError("503"), true, true, [&] { ++settled; });
  EXPECT_EQ(settled, 1);
  EXPECT_FALSE(Lookup(read_.cache_key, &ticket).has_value()) << "an error was cached";
  commit_.Commit(read_, &ticket, std::string("reply"), true, true, [&] { ++settled; });
  EXPECT_EQ(settled, 2);
  EXPECT_EQ(Lookup(read_.cache_key), "reply");
  // Without a ticket (a read not to be stored) nothing is stored.
  PreparedCall other = read_;
  other.cache_key = "acct|GetContact|id:8";
  commit_.Commit(other, nullptr, std::string("reply"), true, true, [&] { ++settled; });
  EXPECT_FALSE(Lookup(other.cache_key).has_value());
}

TEST_F(CommitStageTest, AWriteThatMayHaveReachedTheUpstreamInvalidates) {
  CacheRead();
  BeginWrite();
  int settled = 0;
  // Its answer was lost (aborted in flight): the upstream may have changed the resource.
  commit_.Commit(write_, nullptr, absl::CancelledError("aborted"), /*maybe_sent=*/true,
                 /*maybe_processed=*/true, [&] {
                   ++settled;
                   EXPECT_FALSE(Lookup(read_.cache_key).has_value())
                       << "answered before the invalidation";
                 });
  EXPECT_EQ(settled, 1);
  EXPECT_FALSE(Lookup(read_.cache_key).has_value());
  // ... and its result is recorded: a repeat replays it rather than writing again.
  EXPECT_EQ(BeginAgain(), IdempotencyStore::Outcome::kReplay);
}

TEST_F(CommitStageTest, AWriteNeverSentChangesNothingAndReleasesItsRequestId) {
  CacheRead();
  BeginWrite();
  int settled = 0;
  commit_.Commit(write_, nullptr, absl::UnavailableError("shutting down"), /*maybe_sent=*/false,
                 /*maybe_processed=*/false, [&] { ++settled; });
  EXPECT_EQ(settled, 1);
  EXPECT_EQ(Lookup(read_.cache_key), "old reply") << "invalidated for a write never sent";
  EXPECT_EQ(BeginAgain(), IdempotencyStore::Outcome::kFirst) << "the retry must run";
}

// Sent, but the upstream said it did not act (429, 4xx): the request_id is released.
TEST_F(CommitStageTest, AWriteTheUpstreamRefusedReleasesItsRequestId) {
  BeginWrite();
  int settled = 0;
  commit_.Commit(write_, nullptr, absl::ResourceExhaustedError("429"), /*maybe_sent=*/true,
                 /*maybe_processed=*/false, [&] { ++settled; });
  EXPECT_EQ(settled, 1);
  EXPECT_EQ(BeginAgain(), IdempotencyStore::Outcome::kFirst);
}

}  // namespace
}  // namespace gateway::upstream
