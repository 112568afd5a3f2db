// Statistics counter written by one thread and read by any: relaxed atomics, no read-modify-write
// instruction on the hot path because there is a single writer.
#pragma once

#include <atomic>
#include <cstdint>

namespace kq {

class Counter {
public:
    // Writer thread only.
    void add(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    // Any thread.
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

}  // namespace kq
