// Latency histogram in the HdrHistogram style: log-linear buckets with 3 significant digits over
// 1 µs .. 60 s, O(1) record, exact merge. Written here because Debian packages no C/C++ HdrHistogram.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kq {

class Histogram {
public:
    static constexpr uint64_t kLowest = 1;            // µs
    static constexpr uint64_t kHighest = 60'000'000;  // µs (60 s); larger values are clamped and counted
    static constexpr int kSignificantDigits = 3;      // relative error of a bucket's value: at most 0.1%

    Histogram();
    // Records a value in microseconds (0 counts as the lowest bucket; above kHighest is recorded as kHighest,
    // min/max/mean included, and counted in clamped()).
    void record(uint64_t value_us, uint64_t count = 1) noexcept;
    // Adds every count of other (exact: same bucket layout).
    void merge(const Histogram& other) noexcept;
    void reset() noexcept;

    uint64_t count() const noexcept { return total_; }
    uint64_t clamped() const noexcept { return clamped_; }  // how many recorded values exceeded kHighest
    uint64_t min() const noexcept;                          // 0 when empty
    uint64_t max() const noexcept;                          // 0 when empty
    double mean() const noexcept;                           // exact sum / count; 0 when empty
    // The value at percentile p (0..100, clamped): the highest value equivalent to the bucket holding the
    // rank ceil(p/100*count) (at least 1), clamped to max(). 0 when empty.
    uint64_t value_at_percentile(double p) const noexcept;

    // {"unit":"us","sig_digits":3,"lowest":1,"highest":60000000,"sub_buckets":2048,"bucket_count":..,
    //  "counts":[[bucket_index,count],...],"min":..,"max":..,"total":..,"sum":..,"clamped":..}
    // counts is sparse, by increasing index, non-zero counts only.
    nlohmann::json to_json() const;
    // Throws std::invalid_argument on a malformed or incompatible document.
    static Histogram from_json(const nlohmann::json& j);

    // Bucket layout, exposed for the percentile spectrum and tests.
    size_t bucket_count() const noexcept { return counts_.size(); }
    uint64_t bucket_value(size_t index) const noexcept;  // highest value equivalent to the bucket
    uint64_t bucket_count_at(size_t index) const noexcept { return counts_[index]; }
    size_t index_of(uint64_t value_us) const noexcept;  // values above kHighest: kHighest's bucket

private:
    std::vector<uint64_t> counts_;
    uint64_t total_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
    uint64_t sum_ = 0;  // exact while the summed latencies stay below 2^64 µs (~584,000 years)
    uint64_t clamped_ = 0;
};

}  // namespace kq
