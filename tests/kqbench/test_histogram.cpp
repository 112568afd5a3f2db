// Histogram tests: the 0.1% bound checked over every bucket, percentiles against exact ones computed
// by sorting generated samples, exact merge (directly and through JSON), clamping, empty, bad JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kqbench/histogram.hpp"

namespace {

using kq::Histogram;
using nlohmann::json;

// Percentiles in hundredths of a percent, so that the expected nearest rank is computed in integers
// and owes nothing to the floating-point rounding the histogram has to get right.
const std::vector<uint64_t> kHundredths = {0,    1,    10,   100,  1000, 2500, 5000, 7500,
                                           9000, 9500, 9900, 9950, 9990, 9999, 10000};

uint64_t exact_rank(uint64_t hundredths, uint64_t n) {
    const uint64_t rank = (hundredths * n + 9999) / 10000;  // ceil(p/100 * n)
    return std::max<uint64_t>(rank, 1);
}

bool within_bound(uint64_t reported, uint64_t v) {
    return reported >= v && static_cast<double>(reported) <= static_cast<double>(v) * (1 + 1e-3) + 1;
}

Histogram record_all(const std::vector<uint64_t>& values) {
    Histogram h;
    for (uint64_t v : values) h.record(v);
    return h;
}

// The histogram's answer must be the top of the bucket holding the exact nearest-rank value (capped
// at the exact max), hence also within 0.1% above it.
void expect_percentiles_match(const Histogram& h, std::vector<uint64_t> values) {
    ASSERT_FALSE(values.empty());
    std::sort(values.begin(), values.end());
    for (uint64_t hundredths : kHundredths) {
        const double p = static_cast<double>(hundredths) / 100.0;
        const uint64_t exact = values[exact_rank(hundredths, values.size()) - 1];
        const uint64_t got = h.value_at_percentile(p);
        EXPECT_EQ(got, std::min(h.bucket_value(h.index_of(exact)), h.max())) << "p=" << p;
        EXPECT_TRUE(within_bound(got, exact)) << "p=" << p << " exact=" << exact << " got=" << got;
    }
}

void expect_exact_summary(const Histogram& h, const std::vector<uint64_t>& values) {
    long double sum = 0;
    for (uint64_t v : values) sum += static_cast<long double>(v);
    EXPECT_EQ(h.count(), values.size());
    EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
    EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
    EXPECT_DOUBLE_EQ(h.mean(), static_cast<double>(sum / static_cast<long double>(values.size())));
}

void expect_same(const Histogram& a, const Histogram& b) {
    ASSERT_EQ(a.bucket_count(), b.bucket_count());
    size_t differing = 0;
    for (size_t i = 0; i < a.bucket_count(); ++i) differing += a.bucket_count_at(i) != b.bucket_count_at(i);
    EXPECT_EQ(differing, 0u);
    EXPECT_EQ(a.count(), b.count());
    EXPECT_EQ(a.clamped(), b.clamped());
    EXPECT_EQ(a.min(), b.min());
    EXPECT_EQ(a.max(), b.max());
    EXPECT_EQ(a.mean(), b.mean());
    for (uint64_t hundredths : kHundredths) {
        const double p = static_cast<double>(hundredths) / 100.0;
        EXPECT_EQ(a.value_at_percentile(p), b.value_at_percentile(p)) << "p=" << p;
    }
}

std::vector<uint64_t> uniform_values(size_t n, uint64_t lo, uint64_t hi, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<uint64_t> dist(lo, hi);
    std::vector<uint64_t> out(n);
    for (auto& v : out) v = dist(rng);
    return out;
}

std::vector<uint64_t> exponential_values(size_t n, double mean_us, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::exponential_distribution<double> dist(1.0 / mean_us);
    std::vector<uint64_t> out(n);
    for (auto& v : out) v = static_cast<uint64_t>(std::llround(dist(rng)));
    return out;
}

// A fast mode around 200 µs and a 1% tail around 50 ms: p99 sits at the seam, p99.9 in the tail.
std::vector<uint64_t> bimodal_values(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution in_tail(0.01);
    std::normal_distribution<double> fast(200.0, 20.0), slow(50'000.0, 5'000.0);
    std::vector<uint64_t> out(n);
    for (auto& v : out) v = static_cast<uint64_t>(std::max(1.0, std::round(in_tail(rng) ? slow(rng) : fast(rng))));
    return out;
}

TEST(Histogram, EveryBucketWithinRelativeErrorBound) {
    const Histogram h;
    ASSERT_GT(h.bucket_count(), 1u);
    uint64_t lowest = 0;  // lowest value of bucket i: one past the top of bucket i-1
    for (size_t i = 0; i < h.bucket_count(); ++i) {
        const uint64_t top = h.bucket_value(i);
        // The worst value of a bucket is its lowest, so checking it covers every value in the range.
        ASSERT_TRUE(within_bound(top, lowest)) << "bucket " << i << " [" << lowest << ", " << top << "]";
        ASSERT_EQ(h.index_of(lowest), i) << lowest;
        if (top <= Histogram::kHighest) {
            ASSERT_EQ(h.index_of(top), i) << top;
        }
        lowest = top + 1;
    }
    // The buckets end with the one holding kHighest: no bucket is allocated past the range.
    EXPECT_GE(h.bucket_value(h.bucket_count() - 1), Histogram::kHighest);
    EXPECT_LT(h.bucket_value(h.bucket_count() - 2), Histogram::kHighest);
    EXPECT_EQ(h.index_of(Histogram::kHighest), h.bucket_count() - 1);
}

TEST(Histogram, ThreeSignificantDigitsAreExact) {
    const Histogram h;
    for (uint64_t v = 0; v < 1000; ++v) ASSERT_EQ(h.bucket_value(h.index_of(v)), v);
}

TEST(Histogram, RecordedValuesReadBackWithinBound) {
    Histogram h;
    std::vector<uint64_t> values = uniform_values(2000, 1, Histogram::kHighest, 11);
    for (uint64_t shift = 0; (uint64_t{1} << shift) <= Histogram::kHighest; ++shift) {
        const uint64_t edge = uint64_t{1} << shift;  // where the bucket width doubles
        values.insert(values.end(), {edge - 1, edge, edge + 1});
    }
    values.push_back(Histogram::kHighest);
    for (uint64_t v : values) {
        h.reset();
        h.record(v);
        const size_t index = h.index_of(v);
        ASSERT_EQ(h.bucket_count_at(index), 1u) << v;
        ASSERT_TRUE(within_bound(h.bucket_value(index), v)) << v;
        ASSERT_EQ(h.value_at_percentile(50), v) << "a lone value is its own max";
    }
}

TEST(Histogram, PercentilesOfUniformMatchSortedExact) {
    const auto values = uniform_values(200'000, 1, 2'000'000, 1);
    const Histogram h = record_all(values);
    expect_exact_summary(h, values);
    expect_percentiles_match(h, values);
}

TEST(Histogram, PercentilesOfExponentialMatchSortedExact) {
    const auto values = exponential_values(200'000, 500.0, 2);
    const Histogram h = record_all(values);
    expect_exact_summary(h, values);
    expect_percentiles_match(h, values);
}

TEST(Histogram, PercentilesOfBimodalWithTailMatchSortedExact) {
    const auto values = bimodal_values(200'000, 3);
    const Histogram h = record_all(values);
    expect_exact_summary(h, values);
    expect_percentiles_match(h, values);
    // The tail must show: p99.9 lands in the slow mode, the median in the fast one.
    EXPECT_GT(h.value_at_percentile(99.9), 10 * h.value_at_percentile(50));
}

TEST(Histogram, DecimalPercentilesHitTheExactRank) {
    // Values 1..n each once sit in one-wide buckets, so every answer must be the exact rank itself;
    // p = 99.9 etc. are not exact in binary and a naive ceil steps one rank too far.
    for (uint64_t n : {1u, 3u, 7u, 10u, 1000u, 2000u}) {
        Histogram h;
        for (uint64_t v = 1; v <= n; ++v) h.record(v);
        for (uint64_t hundredths = 0; hundredths <= 10000; ++hundredths) {
            const double p = static_cast<double>(hundredths) / 100.0;
            ASSERT_EQ(h.value_at_percentile(p), exact_rank(hundredths, n)) << "n=" << n << " p=" << p;
        }
    }
}

TEST(Histogram, PercentileArgumentIsClampedAndMonotonic) {
    const auto values = exponential_values(10'000, 1000.0, 4);
    const Histogram h = record_all(values);
    EXPECT_EQ(h.value_at_percentile(-5), h.value_at_percentile(0));
    EXPECT_EQ(h.value_at_percentile(250), h.value_at_percentile(100));
    EXPECT_EQ(h.value_at_percentile(std::numeric_limits<double>::quiet_NaN()), h.value_at_percentile(0));
    EXPECT_EQ(h.value_at_percentile(100), h.max());
    uint64_t previous = 0;
    for (int tenths = 0; tenths <= 1000; ++tenths) {
        const uint64_t v = h.value_at_percentile(tenths / 10.0);
        ASSERT_GE(v, previous) << tenths / 10.0;
        previous = v;
    }
}

TEST(Histogram, MergeEqualsRecordingEverythingIntoOne) {
    auto values = bimodal_values(50'000, 5);
    const auto more = exponential_values(50'000, 3000.0, 6);
    values.insert(values.end(), more.begin(), more.end());
    values.push_back(Histogram::kHighest + 7);  // a clamped one must merge too
    const Histogram all = record_all(values);

    std::vector<Histogram> parts(4);
    std::mt19937_64 rng(7);
    for (uint64_t v : values) parts[rng() % parts.size()].record(v);
    Histogram merged;  // starts empty: min must come from the parts, not from the empty sentinel
    for (const auto& part : parts) merged.merge(part);
    merged.merge(Histogram{});  // merging an empty one changes nothing
    expect_same(merged, all);
    EXPECT_EQ(merged.clamped(), 1u);
}

TEST(Histogram, RecordWithCountEqualsRepeatedRecord) {
    Histogram once, repeated;
    for (uint64_t v : {3u, 4'567u, 89'012u}) {
        once.record(v, 5);
        for (int i = 0; i < 5; ++i) repeated.record(v);
    }
    expect_same(once, repeated);
}

TEST(Histogram, JsonRoundTripEqualsOriginal) {
    auto values = exponential_values(20'000, 800.0, 8);
    values.push_back(0);
    values.push_back(Histogram::kHighest * 2);
    const Histogram h = record_all(values);
    const json j = h.to_json();

    size_t non_empty = 0;
    for (size_t i = 0; i < h.bucket_count(); ++i) non_empty += h.bucket_count_at(i) != 0;
    EXPECT_EQ(j.at("counts").size(), non_empty) << "counts must be sparse";

    const Histogram back = Histogram::from_json(json::parse(j.dump()));
    expect_same(back, h);
    EXPECT_EQ(back.to_json(), j);
}

TEST(Histogram, MergeThroughJsonIsExact) {
    const auto a_values = uniform_values(30'000, 1, 5'000'000, 9);
    const auto b_values = bimodal_values(30'000, 10);
    Histogram all = record_all(a_values);
    for (uint64_t v : b_values) all.record(v);

    // As two machines would: each serializes, the collector parses and merges.
    const std::string a_text = record_all(a_values).to_json().dump();
    const std::string b_text = record_all(b_values).to_json().dump();
    Histogram merged = Histogram::from_json(json::parse(a_text));
    merged.merge(Histogram::from_json(json::parse(b_text)));
    expect_same(merged, all);
}

TEST(Histogram, ValuesAboveRangeAreClampedAndCounted) {
    Histogram h;
    h.record(Histogram::kHighest);
    h.record(Histogram::kHighest + 1);
    h.record(std::numeric_limits<uint64_t>::max());
    h.record(Histogram::kHighest * 10, 4);
    EXPECT_EQ(h.count(), 7u);
    EXPECT_EQ(h.clamped(), 6u);
    EXPECT_EQ(h.max(), Histogram::kHighest);
    EXPECT_EQ(h.min(), Histogram::kHighest);
    EXPECT_EQ(h.mean(), static_cast<double>(Histogram::kHighest));
    EXPECT_EQ(h.bucket_count_at(h.bucket_count() - 1), 7u);
    EXPECT_EQ(h.value_at_percentile(100), Histogram::kHighest);
    EXPECT_EQ(h.index_of(std::numeric_limits<uint64_t>::max()), h.bucket_count() - 1);
}

TEST(Histogram, EmptyHistogram) {
    Histogram h;
    auto expect_empty = [](const Histogram& e) {
        EXPECT_EQ(e.count(), 0u);
        EXPECT_EQ(e.clamped(), 0u);
        EXPECT_EQ(e.min(), 0u);
        EXPECT_EQ(e.max(), 0u);
        EXPECT_EQ(e.mean(), 0.0);
        EXPECT_EQ(e.value_at_percentile(0), 0u);
        EXPECT_EQ(e.value_at_percentile(50), 0u);
        EXPECT_EQ(e.value_at_percentile(100), 0u);
        size_t non_empty = 0;
        for (size_t i = 0; i < e.bucket_count(); ++i) non_empty += e.bucket_count_at(i) != 0;
        EXPECT_EQ(non_empty, 0u);
    };
    expect_empty(h);
    h.record(1234, 0);  // a zero count records nothing, min and max included
    expect_empty(h);
    EXPECT_TRUE(h.to_json().at("counts").empty());
    expect_empty(Histogram::from_json(h.to_json()));

    h.record(5);
    h.record(Histogram::kHighest + 1);
    h.reset();
    expect_empty(h);
    h.record(42);  // after reset, min must not remember the old 5
    EXPECT_EQ(h.min(), 42u);
}

TEST(Histogram, ZeroIsRecordedInTheLowestBucket) {
    Histogram h;
    h.record(0);
    h.record(10);
    EXPECT_EQ(h.index_of(0), 0u);
    EXPECT_EQ(h.bucket_count_at(0), 1u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.count(), 2u);
    EXPECT_EQ(h.value_at_percentile(0), 0u);
}

TEST(Histogram, MalformedJsonIsRejected) {
    Histogram h;
    for (uint64_t v : {7u, 700u, 70'000u, 7'000'000u}) h.record(v, 3);
    const json good = h.to_json();
    ASSERT_NO_THROW(Histogram::from_json(good)) << "the mutations below must be the only reason to reject";

    const std::vector<std::pair<std::string, std::function<void(json&)>>> mutations = {
        {"not an object",
         [](json& j) {
             j = json::array({1, 2});
         }},
        {"null", [](json& j) { j = nullptr; }},
        {"missing unit", [](json& j) { j.erase("unit"); }},
        {"other unit", [](json& j) { j["unit"] = "ms"; }},
        {"other sig_digits", [](json& j) { j["sig_digits"] = 2; }},
        {"other highest", [](json& j) { j["highest"] = 3'600'000'000ull; }},
        {"other bucket_count", [](json& j) { j["bucket_count"] = j["bucket_count"].get<uint64_t>() + 1; }},
        {"missing total", [](json& j) { j.erase("total"); }},
        {"string total", [](json& j) { j["total"] = "12"; }},
        {"counts not an array", [](json& j) { j["counts"] = json::object(); }},
        {"pair of three", [](json& j) { j["counts"][0].push_back(1); }},
        {"negative count", [](json& j) { j["counts"][0][1] = -3; }},
        {"float index", [](json& j) { j["counts"][0][0] = 7.5; }},
        {"index out of range", [](json& j) { j["counts"].back()[0] = j["bucket_count"]; }},
        {"duplicate index", [](json& j) { j["counts"][1][0] = j["counts"][0][0]; }},
        {"zero count",
         [](json& j) {
             j["counts"][0][1] = 0;
             j["total"] = j["total"].get<uint64_t>() - 3;
         }},
        {"total differs", [](json& j) { j["total"] = j["total"].get<uint64_t>() + 1; }},
        {"min outside lowest bucket", [](json& j) { j["min"] = 8; }},
        {"max above range", [](json& j) { j["max"] = Histogram::kHighest + 1; }},
        {"sum too small", [](json& j) { j["sum"] = 1; }},
        {"clamped without max at range", [](json& j) { j["clamped"] = 1; }},
        {"empty with a summary",
         [](json& j) {
             j["counts"] = json::array();
             j["total"] = 0;
         }},
    };
    for (const auto& [name, mutate] : mutations) {
        json bad = good;
        mutate(bad);
        EXPECT_THROW(Histogram::from_json(bad), std::invalid_argument) << name;
    }
}

}  // namespace
