// Linux WakeTimer: a CLOCK_MONOTONIC timerfd armed at absolute times (the steady clock's epoch), so a
// deadline is hit to within the timer slack, which tighten_slack() lowers from 50 µs to 1 ns.
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "kqbench/wake_timer.hpp"

namespace kq::bench {

WakeTimer::WakeTimer() : fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (!fd_) throw std::system_error(errno, std::system_category(), "timerfd_create");
}

void WakeTimer::arm(int64_t deadline_ns) noexcept {
    if (deadline_ns == armed_) return;
    armed_ = deadline_ns;
    itimerspec spec{};
    // A zero it_value would disarm the timer; a deadline at or before the epoch fires at once anyway.
    int64_t at = deadline_ns > 0 ? deadline_ns : 1;
    spec.it_value.tv_sec = at / 1'000'000'000;
    spec.it_value.tv_nsec = at % 1'000'000'000;
    ::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void WakeTimer::drain() noexcept {
    uint64_t expirations;
    [[maybe_unused]] ssize_t r = ::read(fd_.get(), &expirations, sizeof expirations);
    armed_ = -1;  // fired (or about to): the next arm() must reach the kernel even for the same deadline
}

void WakeTimer::tighten_slack() noexcept { ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); }

}  // namespace kq::bench
