// The shape of the offered load without a network: --segment shares that add up to the whole load,
// --rate profiles (parsing, and the intended send times of steps and ramps, whose count is the integral
// of the rate), and what kqbench merge says about several generators' start and p99s.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "kqbench/config.hpp"
#include "kqbench/load_shape.hpp"
#include "kqbench/report.hpp"

using namespace kq;
using namespace kq::bench;

namespace {

constexpr int64_t kS = 1'000'000'000;

std::vector<int64_t> all_slots(RateSchedule s, size_t limit = 10'000'000) {
    std::vector<int64_t> out;
    while (auto t = s.next()) {
        out.push_back(*t);
        if (out.size() >= limit) break;
    }
    return out;
}

TEST(load_shape, SegmentsSplitConnectionsRequestsAndRatesIntoTheWhole) {
    struct Case {
        int connections;
        uint64_t requests;
        double rate;
        int segments;
    };
    for (const Case& k : {Case{7, 10, 1000, 3}, Case{10, 1'000'001, 1000, 3}, Case{3, 3, 0.7, 3},
                          Case{1'000'003, 999'999'999'999, 123456.789, 7}, Case{5, 0, 1e9, 1}}) {
        int connections = 0;
        uint64_t requests = 0;
        double rate = 0, fraction = 0;
        std::vector<int> shares;
        for (int i = 1; i <= k.segments; ++i) {
            Config whole;
            whole.connections = k.connections, whole.requests = k.requests, whole.rate = k.rate;
            whole.segment = {i, k.segments};
            Config part = segment_config(whole);
            shares.push_back(part.connections);
            connections += part.connections;
            requests += part.requests;
            rate += part.rate;
            fraction += segment_fraction(k.connections, whole.segment);
        }
        EXPECT_EQ(connections, k.connections);
        EXPECT_EQ(requests, k.requests);
        EXPECT_NEAR(rate, k.rate, k.rate * 1e-12) << k.connections << " over " << k.segments;
        EXPECT_NEAR(fraction, 1.0, 1e-12);
        // The first C mod N segments take one more: never more than one apart, larger ones first.
        EXPECT_TRUE(std::is_sorted(shares.rbegin(), shares.rend()));
        EXPECT_LE(shares.front() - shares.back(), 1);
    }
    EXPECT_EQ(segment_share(7, {1, 3}), 3u);
    EXPECT_EQ(segment_share(7, {2, 3}), 2u);
    EXPECT_EQ(segment_share(7, {3, 3}), 2u);
    EXPECT_EQ(segment_share(2, {3, 3}), 0u);  // the command line refuses this: more segments than connections
}

TEST(load_shape, SegmentStagesScaleLikeTheRate) {
    Config whole;
    whole.connections = 7;
    whole.rate_stages = {{1000, 1000, 5 * kS}, {1000, 5000, 10 * kS}};
    double first = 0, ramp_end = 0;
    for (int i = 1; i <= 3; ++i) {
        whole.segment = {i, 3};
        Config part = segment_config(whole);
        first += part.rate_stages[0].from;
        ramp_end += part.rate_stages[1].to;
    }
    EXPECT_NEAR(first, 1000, 1e-9);
    EXPECT_NEAR(ramp_end, 5000, 1e-9);
}

TEST(load_shape, SegmentParsing) {
    EXPECT_EQ(parse_segment("1/1")->count, 1);
    EXPECT_EQ(parse_segment("3/4")->index, 3);
    for (const char* bad : {"0/0", "3/2", "a/b", "0/3", "-1/2", "1/-2", "+1/2", "1/", "/2", "1/2/3", "1", "",
                            "1/99999999999999999999", "1/1000001", " 1/2", "1/2 ", "1.0/2"}) {
        EXPECT_FALSE(parse_segment(bad)) << bad;
    }
}

TEST(load_shape, RateProfileParsing) {
    auto one = parse_rate_profile("1000", 1e9, 10 * kS);
    ASSERT_EQ(one.stages.size(), 1u) << one.error;
    EXPECT_EQ(one.stages[0].duration_ns, kForever);
    auto steps = parse_rate_profile("1000@5s,2000@500ms,0@1s,1000-5000@10s,0.5-0@2m", 1e9, 1000 * kS);
    ASSERT_EQ(steps.stages.size(), 5u) << steps.error;
    EXPECT_EQ(steps.stages[1].duration_ns, kS / 2);
    EXPECT_EQ(steps.stages[3].from, 1000);
    EXPECT_EQ(steps.stages[3].to, 5000);
    EXPECT_EQ(steps.stages[4].duration_ns, 120 * kS);
    EXPECT_EQ(steps.stages[4].to, 0);
    for (const char* bad : {"",
                            "-5",
                            "1e3",
                            "abc",
                            "nan",
                            "inf",
                            "1000@0s",
                            "1000@0",
                            "-5@1s",
                            "1000@-1s",
                            "1000@",
                            "@5s",
                            "1000@5s,",
                            ",1000@5s",
                            "1000@5s,,2000@5s",
                            "1e3@5s",
                            "1000-@5s",
                            "-1000@5s",
                            "1000--5000@5s",
                            "2000000000@1s",
                            "1000@99999999999999999999s",
                            "1000@5s,2000",
                            "0@5s",
                            "0-0@1s",
                            "1000@5x",
                            "1000@5s@5s",
                            "1000@11s"}) {
        auto p = parse_rate_profile(bad, 1e9, 10 * kS);
        EXPECT_FALSE(p.error.empty()) << "'" << bad << "' was accepted";
        EXPECT_TRUE(p.stages.empty()) << bad;
    }
    // Each stage fits, the sum does not.
    EXPECT_FALSE(parse_rate_profile("1@6s,1@6s", 1e9, 10 * kS).error.empty());
}

// Steps: slot k of a 1000/s stage is at k ms, and the 2000/s stage takes over exactly at 5 s.
TEST(load_shape, StepScheduleSendsAtTheStagesRates) {
    const int64_t start = 1'000 * kS;
    auto slots = all_slots(RateSchedule({{1000, 1000, 5 * kS}, {2000, 2000, 5 * kS}}, start, 0));
    ASSERT_EQ(slots.size(), 15'000u);  // 1000 * 5 + 2000 * 5: the integral of the rate
    EXPECT_EQ(slots[0], start);
    EXPECT_EQ(slots[1], start + 1'000'000);
    EXPECT_EQ(slots[4'999], start + 4'999'000'000);
    EXPECT_EQ(slots[5'000], start + 5 * kS);
    EXPECT_EQ(slots[5'001], start + 5 * kS + 500'000);
    EXPECT_EQ(slots.back(), start + 5 * kS + 4'999'500'000);
    // A pause (0@D) offers nothing and shifts what follows.
    auto paused = all_slots(RateSchedule({{10, 10, kS}, {0, 0, 3 * kS}, {10, 10, kS}}, 0, 0));
    ASSERT_EQ(paused.size(), 20u);
    EXPECT_EQ(paused[9], 900'000'000);
    EXPECT_EQ(paused[10], 4 * kS);
}

// A ramp from 1000 to 5000/s over 10 s: slot k is where 1000 t + 200 t^2 = k.
TEST(load_shape, RampScheduleFollowsTheIntegral) {
    auto slots = all_slots(RateSchedule({{1000, 5000, 10 * kS}}, 0, 0));
    ASSERT_EQ(slots.size(), 30'000u);  // (1000 + 5000) / 2 * 10
    EXPECT_TRUE(std::is_sorted(slots.begin(), slots.end()));
    for (size_t k : {size_t{1}, size_t{1000}, size_t{12'000}, size_t{29'999}}) {
        const double kd = static_cast<double>(k);
        const double t = (-1000 + std::sqrt(1000.0 * 1000 + 4 * 200 * kd)) / (2 * 200);
        EXPECT_NEAR(static_cast<double>(slots[k]), t * 1e9, 2) << "slot " << k;
    }
    EXPECT_LT(slots.back(), 10 * kS);
    // The gap between slots follows the rate: about 1 ms at the start, 0.2 ms at the end.
    EXPECT_NEAR(static_cast<double>(slots[1] - slots[0]), 1e6, 1e3);
    EXPECT_NEAR(static_cast<double>(slots.back() - slots[slots.size() - 2]), 2e5, 1e3);
    // Down, and from 0 (t = sqrt(k / 250) for 0-1000 over 2 s).
    EXPECT_EQ(all_slots(RateSchedule({{5000, 1000, 10 * kS}}, 0, 0)).size(), 30'000u);
    auto up = all_slots(RateSchedule({{0, 1000, 2 * kS}}, 0, 0));
    ASSERT_EQ(up.size(), 1'000u);
    EXPECT_EQ(up[0], 0);
    EXPECT_NEAR(static_cast<double>(up[250]), 1e9, 2);
}

// Side by side, schedules with their shares and staggered phases offer the whole integral, give or take
// one slot each; a phase p gives ceil(integral - p) slots.
TEST(load_shape, SharesAndPhasesKeepTheCount) {
    EXPECT_EQ(all_slots(RateSchedule({{10.4, 10.4, kS}}, 0, 0.5)).size(), 10u);
    EXPECT_EQ(all_slots(RateSchedule({{10.6, 10.6, kS}}, 0, 0.5)).size(), 11u);
    const std::vector<RateStage> profile = {{1000, 1000, 3 * kS}, {1000, 3000, 2 * kS}, {333.3, 333.3, kS}};
    for (int threads : {1, 2, 3, 7}) {
        size_t total = 0;
        for (int t = 0; t < threads; ++t) {
            std::vector<RateStage> mine = profile;
            const double share = static_cast<double>(segment_share(7, {t + 1, threads})) / 7;
            for (RateStage& s : mine) s.from *= share, s.to *= share;
            total += all_slots(RateSchedule(mine, 0, static_cast<double>(t) / threads)).size();
        }
        const double integral = 3000 + 4000 + 333.3;
        EXPECT_LE(std::abs(static_cast<double>(total) - integral), threads) << threads << " schedules";
    }
}

TEST(load_shape, EndlessRateKeepsItsInterval) {
    RateSchedule s({{100, 100, kForever}}, 5, 0.25);
    EXPECT_EQ(*s.next(), 5 + 2'500'000);
    for (int i = 1; i < 100'000; ++i) ASSERT_EQ(*s.next(), 5 + 2'500'000 + int64_t{i} * 10'000'000);
}

Report run_with(uint64_t latency_us, uint64_t count, double at, double first_send) {
    Report r;
    r.config = {{"x", 1}};
    r.description = "echo";
    r.target = "127.0.0.1:1";
    r.open_loop = true;
    r.elapsed_s = 1;
    r.connections = 2;
    r.stats.sent = r.stats.ok = count;
    for (uint64_t i = 0; i < count; ++i) r.stats.latency.record(latency_us);
    r.stats.latency_uncorrected = r.stats.latency;
    r.requests_per_s = static_cast<double>(count);
    r.start = StartReport{at, first_send - 0.0001, first_send, first_send, first_send - at};
    return r;
}

// Two generators: one fast and busy, one slow and idle. The merged p99 is the slow one's latency (it
// holds 2 % of the samples); averaging the two p99s would claim half way, which no request saw.
TEST(load_shape, MergeReportsStartSkewAndWhatAveragedP99sWouldClaim) {
    const double at = 1'800'000'000.0;
    Report fast = run_with(100, 9'800, at, at + 0.0004);
    Report slow = run_with(10'000, 200, at, at + 0.0011);
    Report m = merge_reports({fast, slow});
    EXPECT_EQ(m.stats.ok, 10'000u);
    EXPECT_EQ(m.stats.latency.count(), 10'000u);
    EXPECT_NEAR(static_cast<double>(m.stats.latency.value_at_percentile(99)), 10'000, 10);
    ASSERT_EQ(m.run_p99_us.size(), 2u);
    EXPECT_NEAR(averaged_p99(m), (100 + 10'000) / 2.0, 10);
    ASSERT_TRUE(m.start);
    // Unix times near 1.8e9 s keep about 0.2 µs in a double: compared to the µs.
    EXPECT_NEAR((m.start->last_first_send - m.start->first_send) * 1e3, 0.7, 1e-3);
    EXPECT_NEAR(m.start->max_skew_s * 1e3, 1.1, 1e-3);

    // Through JSON and merged again with a third run: the per-run p99s and the skew carry over.
    Report late = run_with(100, 1'000, at, at - 0.002);
    Report again = merge_reports({report_from_json(to_json(m)), late});
    ASSERT_EQ(again.run_p99_us.size(), 3u);
    EXPECT_NEAR(again.start->max_skew_s * 1e3, -2.0, 1e-3);
    EXPECT_NEAR((again.start->last_first_send - again.start->first_send) * 1e3, 3.1, 1e-3);

    std::ostringstream out;
    print_summary(out, m);
    const std::string text = out.str();
    EXPECT_NE(text.find("averaging the 2 runs' p99s would claim 5.05ms"), std::string::npos) << text;
    EXPECT_NE(text.find("first sends of the 2 runs 0.700 ms apart; start skew vs --start-at +1.100 ms"),
              std::string::npos)
        << text;
    std::ostringstream single;
    print_summary(single, fast);
    EXPECT_NE(single.str().find("start skew vs --start-at 1800000000.000000 +0.400 ms"), std::string::npos)
        << single.str();
    EXPECT_EQ(single.str().find("averaging"), std::string::npos);
}

}  // namespace
