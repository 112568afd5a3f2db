// Written here because Debian packages no C/C++ HdrHistogram (only the Go and Java ports), and the
// server's build must come from Debian packages alone. Same idea as HdrHistogram, independent code.
//
// Layout: the first 2048 buckets are one microsecond wide; after that, each power-of-two range
// [1024·2^s, 2048·2^s) is cut into 1024 buckets of width 2^s. A bucket is thus never wider than
// 1/1024 of its lowest value, under the 0.1% that 3 significant digits promise, and an index is
// computed from the highest set bit with a shift and an add, so record() is O(1) and branch-light.
#include "kqbench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace kq {
namespace {

using nlohmann::json;

// 2048 is the smallest power of two >= 2·10^3: 3 significant digits need 1000 distinct steps per
// decade even in the half of a power-of-two range where the steps are coarsest.
constexpr unsigned kSubBits = 11;
constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;  // 2048
constexpr unsigned kHalfBits = kSubBits - 1;               // ranges past the first use their upper 1024 sub-buckets

// The shift s of the range holding v: 0 for v < 2048, so that v >> s always lies in [1024, 2048)
// above that; bit_width(v | 2047) gives 11 for every small v and avoids a branch.
constexpr unsigned shift_of(uint64_t v) noexcept {
    return static_cast<unsigned>(std::bit_width(v | (kSubBuckets - 1))) - kSubBits;
}

// Range s starts at index s·1024 + 1024 (its sub-buckets 1024..2047 continue where range s-1 ended),
// which folds to s·1024 + (v >> s); for s = 0 it is v itself.
constexpr size_t index_for(uint64_t v) noexcept {
    const unsigned s = shift_of(v);
    return (static_cast<size_t>(s) << kHalfBits) + static_cast<size_t>(v >> s);
}

constexpr unsigned shift_of_index(size_t i) noexcept {
    return i < kSubBuckets ? 0u : static_cast<unsigned>((i >> kHalfBits) - 1);
}

constexpr uint64_t lowest_of_index(size_t i) noexcept {
    const unsigned s = shift_of_index(i);
    return (static_cast<uint64_t>(i) - (static_cast<uint64_t>(s) << kHalfBits)) << s;
}

constexpr uint64_t highest_of_index(size_t i) noexcept {
    return lowest_of_index(i) + (uint64_t{1} << shift_of_index(i)) - 1;
}

// Buckets end with the one holding kHighest, so nothing is allocated past the range.
constexpr size_t kBucketCount = index_for(Histogram::kHighest) + 1;

static_assert(Histogram::kLowest == 1, "the layout assumes a unit of one microsecond");
static_assert(index_for(kSubBuckets - 1) == kSubBuckets - 1 && index_for(kSubBuckets) == kSubBuckets);
static_assert(lowest_of_index(index_for(Histogram::kHighest)) <= Histogram::kHighest);
static_assert(highest_of_index(index_for(Histogram::kHighest)) >= Histogram::kHighest);

// A decimal percentile such as 99.9 is not exact in binary, so p/100·count can land a hair above an
// integer and a bare ceil would step one rank too far. The error of a double's decimal is ~1e-16
// relative; within 1e-15 the product is taken to be that integer.
uint64_t rank_for(double p, uint64_t total) noexcept {
    if (!(p > 0.0)) p = 0.0;  // NaN too
    if (p > 100.0) p = 100.0;
    const long double exact = static_cast<long double>(p) * static_cast<long double>(total) / 100.0L;
    const long double nearest = std::round(exact);
    const long double tolerance = exact * 1e-15L;
    const long double rank = std::fabs(exact - nearest) <= tolerance ? nearest : std::ceil(exact);
    return std::clamp<uint64_t>(static_cast<uint64_t>(rank), 1, total);
}

[[noreturn]] void reject(const std::string& why) { throw std::invalid_argument("histogram json: " + why); }

// nlohmann keeps parsed non-negative integers as unsigned and literals built in code as signed;
// both are fine, floats and negatives are not.
uint64_t unsigned_of(const json& v, const std::string& what) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    reject(what + " is not a non-negative integer");
}

uint64_t field_of(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) reject(std::string("missing '") + key + "'");
    return unsigned_of(*it, std::string("'") + key + "'");
}

// Refusing another layout is what keeps merges exact: a count never has to be spread over buckets.
void check_layout(const json& j) {
    if (!j.is_object()) reject("not an object");
    const auto unit = j.find("unit");
    if (unit == j.end() || !unit->is_string() || unit->get<std::string>() != "us") reject("unit is not \"us\"");
    const struct {
        const char* key;
        uint64_t want;
    } layout[] = {
        {"sig_digits", Histogram::kSignificantDigits},
        {"lowest", Histogram::kLowest},
        {"highest", Histogram::kHighest},
        {"sub_buckets", kSubBuckets},
        {"bucket_count", kBucketCount},
    };
    for (const auto& [key, want] : layout) {
        if (field_of(j, key) != want) reject(std::string("'") + key + "' differs from this build's layout");
    }
}

// Reads the sparse pairs into counts and returns their sum. Strictly increasing indices rule out
// duplicates, so a document has one reading only.
uint64_t read_counts(const json& j, std::vector<uint64_t>& counts) {
    const auto it = j.find("counts");
    if (it == j.end() || !it->is_array()) reject("'counts' is not an array");
    uint64_t total = 0;
    size_t next = 0;  // the lowest index the next pair may have
    for (const json& pair : *it) {
        if (!pair.is_array() || pair.size() != 2) reject("a count is not an [index, count] pair");
        const uint64_t index = unsigned_of(pair[0], "a bucket index");
        const uint64_t count = unsigned_of(pair[1], "a bucket count");
        if (index >= counts.size()) reject("bucket index " + std::to_string(index) + " out of range");
        if (index < next) reject("bucket indices are not strictly increasing");
        if (count == 0) reject("a listed bucket has a zero count");
        if (count > UINT64_MAX - total) reject("counts overflow");
        counts[index] = count;
        total += count;
        next = static_cast<size_t>(index) + 1;
    }
    return total;
}

}  // namespace

Histogram::Histogram() : counts_(kBucketCount, 0) {}

size_t Histogram::index_of(uint64_t value_us) const noexcept { return index_for(std::min(value_us, kHighest)); }

uint64_t Histogram::bucket_value(size_t index) const noexcept { return highest_of_index(index); }

void Histogram::record(uint64_t value_us, uint64_t count) noexcept {
    if (count == 0) return;  // would otherwise move min/max without adding a sample
    if (value_us > kHighest) {
        value_us = kHighest;
        clamped_ += count;
    }
    counts_[index_for(value_us)] += count;
    total_ += count;
    sum_ += value_us * count;
    min_ = std::min(min_, value_us);
    max_ = std::max(max_, value_us);
}

void Histogram::merge(const Histogram& other) noexcept {
    // Every Histogram has the same layout (fixed at compile time), so bucket i is bucket i everywhere.
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    sum_ += other.sum_;
    clamped_ += other.clamped_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
}

void Histogram::reset() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    min_ = UINT64_MAX;
    max_ = 0;
    sum_ = 0;
    clamped_ = 0;
}

uint64_t Histogram::min() const noexcept { return total_ == 0 ? 0 : min_; }

uint64_t Histogram::max() const noexcept { return total_ == 0 ? 0 : max_; }

double Histogram::mean() const noexcept {
    if (total_ == 0) return 0.0;
    return static_cast<double>(static_cast<long double>(sum_) / static_cast<long double>(total_));
}

uint64_t Histogram::value_at_percentile(double p) const noexcept {
    if (total_ == 0) return 0;
    const uint64_t rank = rank_for(p, total_);
    uint64_t seen = 0;
    for (size_t i = index_for(min_); i < counts_.size(); ++i) {
        seen += counts_[i];
        // The bucket's top can exceed every recorded value; max() is exact, so never report past it.
        if (seen >= rank) return std::min(bucket_value(i), max_);
    }
    return max_;  // not reached: the counts sum to total_
}

json Histogram::to_json() const {
    json counts = json::array();
    for (size_t i = 0; i < counts_.size(); ++i) {
        if (counts_[i] != 0) counts.push_back(json::array({i, counts_[i]}));
    }
    return json{
        {"unit", "us"},
        {"sig_digits", kSignificantDigits},
        {"lowest", kLowest},
        {"highest", kHighest},
        {"sub_buckets", kSubBuckets},
        {"bucket_count", counts_.size()},
        {"counts", std::move(counts)},
        {"min", min()},
        {"max", max()},
        {"total", total_},
        {"sum", sum_},
        {"clamped", clamped_},
    };
}

Histogram Histogram::from_json(const json& j) {
    check_layout(j);
    Histogram h;
    const uint64_t counted = read_counts(j, h.counts_);
    const uint64_t min = field_of(j, "min"), max = field_of(j, "max");
    h.total_ = field_of(j, "total");
    h.sum_ = field_of(j, "sum");
    h.clamped_ = field_of(j, "clamped");
    if (h.total_ != counted) reject("'total' differs from the sum of the counts");
    if (h.total_ == 0) {
        if (min != 0 || max != 0 || h.sum_ != 0 || h.clamped_ != 0) reject("an empty histogram with a summary");
        return h;
    }
    // min and max must fall in the outermost non-empty buckets, and the sum between min·n and max·n
    // (compared by division, which cannot overflow); anything else was edited or corrupted.
    const auto first = std::find_if(h.counts_.begin(), h.counts_.end(), [](uint64_t c) { return c != 0; });
    const auto last = std::find_if(h.counts_.rbegin(), h.counts_.rend(), [](uint64_t c) { return c != 0; });
    if (min > max || max > kHighest) reject("'min'/'max' out of order or out of range");
    if (index_for(min) != static_cast<size_t>(first - h.counts_.begin())) reject("'min' is not in the lowest bucket");
    if (index_for(max) != static_cast<size_t>(h.counts_.rend() - last) - 1)
        reject("'max' is not in the highest bucket");
    const uint64_t floor_mean = h.sum_ / h.total_;
    const uint64_t ceil_mean = floor_mean + (h.sum_ % h.total_ != 0 ? 1 : 0);
    if (floor_mean < min || ceil_mean > max) reject("'sum' is inconsistent with min, max and total");
    if (h.clamped_ > h.counts_.back() || (h.clamped_ != 0 && max != kHighest)) reject("'clamped' is inconsistent");
    h.min_ = min;
    h.max_ = max;
    return h;
}

}  // namespace kq
