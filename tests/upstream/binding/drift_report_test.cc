#include "upstream/binding/drift_report.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace gateway::upstream {
namespace {

DriftReport::Options FixedClock(std::vector<std::string>* logged) {
  DriftReport::Options options;
  options.now = [] { return absl::FromUnixSeconds(1764587400); };  // 2025-12-01T11:10:00Z
  options.on_first = [logged](const DriftReport::Entry& e) {
    logged->push_back(e.rpc + " " + e.field + " " + std::string(DriftKindName(e.kind)));
  };
  return options;
}

TEST(DriftReport, CountsPerKeyAndLogsEachKeyOnce) {
  std::vector<std::string> logged;
  DriftReport drift(FixedClock(&logged));
  drift.Record("/a.S/M", "x", DriftKind::kUnknownField, "1");
  drift.Record("/a.S/M", "x", DriftKind::kUnknownField, "2");
  drift.Record("/a.S/M", "x", DriftKind::kTypeMismatch, "3");
  drift.Record("/a.S/N", "x", DriftKind::kUnknownField, "4");
  const auto entries = drift.Snapshot();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].rpc, "/a.S/M");
  EXPECT_EQ(entries[0].kind, DriftKind::kUnknownField);
  EXPECT_EQ(entries[0].count, 2);
  EXPECT_EQ(entries[0].sample, "1");  // the first sample is kept
  EXPECT_EQ(entries[1].kind, DriftKind::kTypeMismatch);
  EXPECT_EQ(entries[2].rpc, "/a.S/N");
  EXPECT_THAT(logged, ::testing::ElementsAre("/a.S/M x unknown_field", "/a.S/M x type_mismatch",
                                             "/a.S/N x unknown_field"));
}

TEST(DriftReport, JsonShape) {
  std::vector<std::string> logged;
  DriftReport drift(FixedClock(&logged));
  drift.Record("/a.S/M", "items[].mood", DriftKind::kUnknownEnum, "away");
  drift.Record("/a.S/M", "(reply)", DriftKind::kEnvelope, "array of 2");
  const nlohmann::json j = nlohmann::json::parse(drift.ToJson());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0], nlohmann::json::parse(R"j({"rpc":"/a.S/M","field":"(reply)","kind":"envelope",
      "count":1,"first_seen":"2025-12-01T11:10:00Z","sample":"array of 2"})j"));
  EXPECT_EQ(j[1]["kind"], "unknown_enum");
  EXPECT_EQ(j[1]["field"], "items[].mood");
}

TEST(DriftReport, SamplesAreCutAt64CharactersWithoutSplittingUtf8) {
  std::vector<std::string> logged;
  DriftReport drift(FixedClock(&logged));
  std::string sample(63, 'a');
  sample += "\xC3\xA9tail";  // the 64th character is two bytes: it stays whole
  drift.Record("/a.S/M", "f", DriftKind::kUnknownField, sample);
  EXPECT_EQ(drift.Snapshot()[0].sample, std::string(63, 'a') + "\xC3\xA9");
  // 70 three-byte characters (210 bytes) keep 64 characters, 192 bytes.
  std::string wide;
  for (int i = 0; i < 70; ++i) wide += "\xE2\x82\xAC";  // the euro sign
  EXPECT_EQ(TruncateSample(wide, 64).size(), 64u * 3);
  EXPECT_EQ(TruncateSample("short", 64), "short");
  EXPECT_EQ(TruncateSample(std::string(64, 'x'), 64), std::string(64, 'x'));
  EXPECT_EQ(TruncateSample(std::string(65, 'x'), 64), std::string(64, 'x'));
  // Invalid UTF-8 never breaks the JSON.
  drift.Record("/a.S/M", "g", DriftKind::kUnknownField, "\xFF\xFE");
  EXPECT_TRUE(nlohmann::json::parse(drift.ToJson(), nullptr, false).is_array());
}

TEST(DriftReport, KeysAreBounded) {
  std::vector<std::string> logged;
  DriftReport drift(FixedClock(&logged));
  for (size_t i = 0; i < DriftReport::kMaxKeys + 10; ++i) {
    drift.Record("/a.S/M", std::to_string(i), DriftKind::kUnknownField, "");
  }
  EXPECT_EQ(drift.Snapshot().size(), DriftReport::kMaxKeys);
  EXPECT_EQ(drift.dropped(), 10);
}

TEST(DriftReport, ConcurrentRecordsAreAllCounted) {
  std::vector<std::string> logged;
  DriftReport drift(FixedClock(&logged));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&drift] {
      for (int i = 0; i < 1000; ++i) drift.Record("/a.S/M", "f", DriftKind::kUnknownField, "v");
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(drift.Snapshot().size(), 1u);
  EXPECT_EQ(drift.Snapshot()[0].count, 4000);
  EXPECT_EQ(logged.size(), 1u);
}

}  // namespace
}  // namespace gateway::upstream
