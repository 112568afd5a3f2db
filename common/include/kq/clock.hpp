// The coarse clock the server's deadlines use: milliseconds on steady_clock. The worker reads it once
// per loop iteration; the acceptor when it decides on a pause. AcceptLoop's now_ms is this clock.
// Thread rules: any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace kq {

inline int64_t steady_now_ms() noexcept {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace kq
