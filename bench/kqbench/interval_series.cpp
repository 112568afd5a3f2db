// Per-second figures over all bench threads, summed up as each second is passed by every thread.
#include "kqbench/interval_series.hpp"

#include <algorithm>

namespace kq::bench {

nlohmann::json interval_json(int64_t index, uint64_t ok, uint64_t failed, const Histogram& latency) {
    const double seconds = static_cast<double>(kIntervalNs) / 1e9;
    return {{"t", static_cast<double>(index) * seconds},
            {"ok", ok},
            {"failed", failed},
            {"per_s", static_cast<double>(ok) / seconds},
            {"p50_us", latency.value_at_percentile(50)},
            {"p90_us", latency.value_at_percentile(90)},
            {"p99_us", latency.value_at_percentile(99)},
            {"max_us", latency.max()},
            {"histogram", latency.to_json()}};
}

void IntervalCollector::hand_over(int thread, int64_t index, const IntervalAcc& acc, int64_t next) {
    std::lock_guard lock(mu_);
    if (acc.ok + acc.failed > 0 && index >= next_index_) {
        IntervalAcc& into = open_[index];
        into.ok += acc.ok;
        into.failed += acc.failed;
        into.latency.merge(acc.latency);
    }
    position_[static_cast<size_t>(thread)] = std::max(position_[static_cast<size_t>(thread)], next);
    close_before(*std::min_element(position_.begin(), position_.end()));
}

// Intervals before `index` will get nothing more: out they go, empty ones between them included.
void IntervalCollector::close_before(int64_t index) {
    static const Histogram kEmpty;
    while (!open_.empty() && open_.begin()->first < index) {
        auto it = open_.begin();
        for (; next_index_ < it->first; ++next_index_) done_.push_back(interval_json(next_index_, 0, 0, kEmpty));
        done_.push_back(interval_json(it->first, it->second.ok, it->second.failed, it->second.latency));
        next_index_ = it->first + 1;
        open_.erase(it);
    }
}

nlohmann::json IntervalCollector::finish() {
    std::lock_guard lock(mu_);
    close_before(INT64_MAX);
    return done_;
}

}  // namespace kq::bench
