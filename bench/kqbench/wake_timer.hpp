// A precise wake-up for a bench thread's poller, so open-loop requests leave at their intended time
// rather than at the next whole millisecond. The build picks the file: timerfd on Linux
// (wake_timer_timerfd.cpp); elsewhere no fd and the poller's millisecond timeout (wake_timer_none.cpp).
// Thread rules: owned and used by one bench thread.
#pragma once

#include <cstdint>

#include "kq/fd.hpp"

namespace kq::bench {

class WakeTimer {
public:
    WakeTimer();
    // The fd to register read-only in the poller, or -1 if this build has none.
    int fd() const noexcept { return fd_.get(); }
    // Makes fd() readable at the steady-clock time deadline_ns (re-arming only when it changes).
    void arm(int64_t deadline_ns) noexcept;
    // Clears a fired timer's readiness.
    void drain() noexcept;
    // Asks the kernel for the least timer slack on the calling thread (Linux: PR_SET_TIMERSLACK).
    static void tighten_slack() noexcept;

private:
    UniqueFd fd_;
    int64_t armed_ = -1;
};

}  // namespace kq::bench
