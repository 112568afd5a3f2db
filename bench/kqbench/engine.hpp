// kqbench's engine: runs one benchmark with the given settings and returns its report. The library
// entry point of the kqbench binary, also called directly by the tests.
// Thread rules: run_bench() blocks the calling thread, which supervises the bench threads; the hooks
// are called on it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "kqbench/config.hpp"
#include "kqbench/report.hpp"

namespace kq::bench {

// Every RunHooks::progress_every_ns while the run lasts.
struct ProgressSample {
    double elapsed_s = 0;       // since the measured window began; negative during ramp-up and warm-up
    double requests_per_s = 0;  // answered correctly over the last interval
    uint64_t p50_us = 0, p99_us = 0, max_us = 0;  // over the last interval (open loop: corrected)
    uint64_t errors = 0;                          // so far
};

struct RunHooks {
    std::function<void(const ProgressSample&)> on_progress;
    int64_t progress_every_ns = 1'000'000'000;  // how often on_progress is called
    // When it becomes true (e.g. from a SIGINT handler) sending stops, replies in flight are awaited
    // (up to the time-out) and the report covers the window so far.
    const std::atomic<bool>* interrupt = nullptr;
};

struct RunResult {
    Report report;
    bool unreachable = false;  // no connection ever succeeded: every first attempt failed
    std::string error;         // why, in one line
};

// Throws std::runtime_error if the target cannot be resolved or a bench thread fails to set up.
RunResult run_bench(const Config& cfg, const RunHooks& hooks = {});

}  // namespace kq::bench
