// The run's time series: per second of the measured window, the answers, failures and latency
// percentiles over every bench thread (the JSON's "intervals", drawn by bench/plot-intervals).
// Thread rules: hand_over() from any bench thread; finish() once they have all ended.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "kqbench/histogram.hpp"

namespace kq::bench {

inline constexpr int64_t kIntervalNs = 1'000'000'000;

// One thread's figures for one interval.
struct IntervalAcc {
    uint64_t ok = 0, failed = 0;
    Histogram latency;  // µs, corrected in open loop
    void reset() {
        ok = failed = 0;
        latency.reset();
    }
};

// Each bench thread keeps the current interval's figures and hands them over when its clock passes
// into a later one; an interval is summed up, and its histogram freed, once every thread has passed it,
// so memory stays at a few intervals however long the run.
class IntervalCollector {
public:
    explicit IntervalCollector(int threads) : position_(static_cast<size_t>(threads), 0) {}
    // Thread `thread` hands over its figures for interval `index` and will report nothing before `next`.
    void hand_over(int thread, int64_t index, const IntervalAcc& acc, int64_t next);
    // Every interval as JSON: {"t": start s, "ok", "failed", "per_s", "p50_us", "p90_us", "p99_us", "max_us",
    // "histogram"}, in order, with empty intervals filled in up to the last one that has figures.
    nlohmann::json finish();

private:
    void close_before(int64_t index);

    std::mutex mu_;
    std::vector<int64_t> position_;
    std::map<int64_t, IntervalAcc> open_;
    nlohmann::json done_ = nlohmann::json::array();
    int64_t next_index_ = 0;  // the next interval done_ will get
};

// One interval's JSON entry (also used by kqbench merge).
nlohmann::json interval_json(int64_t index, uint64_t ok, uint64_t failed, const Histogram& latency);

}  // namespace kq::bench
