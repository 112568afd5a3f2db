// Cost of kq::Histogram's operations on the bench client's hot path (record, once per response) and
// in its reports (value_at_percentile, merge of the per-thread histograms).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kqbench/histogram.hpp"
#include "micro_util.hpp"

namespace kq::micro {
namespace {

// Latencies from 1 µs to 1 s, log-uniform (every decade equally likely, like real latency spreads;
// uniform values would almost all land in the top decade), fixed seed, generated before timing.
std::vector<uint64_t> latencies(size_t n) {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> exponent(0.0, 6.0);
    std::vector<uint64_t> v(n);
    for (auto& x : v) x = static_cast<uint64_t>(std::pow(10.0, exponent(rng)));
    return v;
}

Histogram filled(size_t n) {
    Histogram h;
    for (uint64_t x : latencies(n)) h.record(x);
    return h;
}

void BM_Histogram_Record(benchmark::State& state) {
    const auto values = latencies(1 << 16);  // 512 KiB: cycled through, mostly from L2
    Histogram h;
    size_t i = 0;
    for (auto _ : state) {
        h.record(values[i]);
        i = (i + 1) & (values.size() - 1);
    }
    benchmark::DoNotOptimize(h.count());
    state.SetItemsProcessed(state.iterations());
}

// The five percentiles a kqbench report prints, from a histogram of one million values.
void BM_Histogram_Percentiles(benchmark::State& state) {
    const Histogram h = filled(1'000'000);
    for (auto _ : state) {
        for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) benchmark::DoNotOptimize(h.value_at_percentile(p));
    }
    state.SetItemsProcessed(state.iterations() * 5);
}

// Merging one thread's histogram into the total: linear in the bucket count, whatever the counts.
void BM_Histogram_Merge(benchmark::State& state) {
    const Histogram part = filled(100'000);
    Histogram total;
    for (auto _ : state) {
        total.merge(part);
        benchmark::ClobberMemory();
    }
    state.counters["buckets"] = static_cast<double>(part.bucket_count());
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

void register_histogram_benchmarks() {
    benchmark::RegisterBenchmark("BM_Histogram_Record", BM_Histogram_Record);
    benchmark::RegisterBenchmark("BM_Histogram_Percentiles", BM_Histogram_Percentiles);
    benchmark::RegisterBenchmark("BM_Histogram_Merge", BM_Histogram_Merge);
}

}  // namespace kq::micro
