// WakeTimer without a timer fd (non-Linux builds): the bench thread falls back to the poller's
// millisecond timeout, rounded up, so open-loop sends may leave up to a millisecond late.
#include "kqbench/wake_timer.hpp"

namespace kq::bench {

WakeTimer::WakeTimer() = default;
void WakeTimer::arm(int64_t deadline_ns) noexcept { armed_ = deadline_ns; }
void WakeTimer::drain() noexcept {}
void WakeTimer::tighten_slack() noexcept {}

}  // namespace kq::bench
