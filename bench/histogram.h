// A lock-free latency histogram: log-linear buckets over nanoseconds (64 per power of two, so
// any reported value is within 1.6% of the true one), recorded from any thread.
#ifndef GATEWAY_BENCH_HISTOGRAM_H_
#define GATEWAY_BENCH_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace gateway::bench {

class Histogram {
 public:
  Histogram() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  }

  void Record(int64_t nanos) {
    const uint64_t v = nanos < 0 ? 0 : static_cast<uint64_t>(nanos);
    counts_[Index(v)].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    uint64_t max = max_.load(std::memory_order_relaxed);
    while (v > max && !max_.compare_exchange_weak(max, v, std::memory_order_relaxed)) {
    }
  }

  uint64_t count() const { return total_.load(std::memory_order_relaxed); }
  double MeanMicros() const {
    const uint64_t n = count();
    return n == 0 ? 0 : sum_.load(std::memory_order_relaxed) / 1e3 / n;
  }
  double MaxMicros() const { return max_.load(std::memory_order_relaxed) / 1e3; }

  // The value at quantile q (0..1), in microseconds (a bucket's midpoint).
  double QuantileMicros(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return Midpoint(i) / 1e3;
    }
    return MaxMicros();
  }

 private:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = 64 * kSub;

  static int Index(uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<int>((v >> shift) - kSub);
  }
  static double Midpoint(int index) {
    if (index < kSub) return index;
    const int shift = index / kSub - 1;
    const uint64_t top = static_cast<uint64_t>(index % kSub + kSub);
    return (static_cast<double>(top << shift) + static_cast<double>((top + 1) << shift)) / 2;
  }

  std::array<std::atomic<uint64_t>, kBuckets> counts_;
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace gateway::bench

#endif  // GATEWAY_BENCH_HISTOGRAM_H_
