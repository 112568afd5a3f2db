// A rate limit for a log line that can repeat fast (a warning on every failed accept4 at the fd limit):
// at most one line per interval, and the line that does go out says how many occurrences it stands for.
// Thread rules: one instance per thread (each accept loop owns one); nothing is shared.
#pragma once

#include <chrono>
#include <cstdint>

namespace kq {

class LogRateLimit {
public:
    using Clock = std::chrono::steady_clock;

    explicit LogRateLimit(Clock::duration interval) : interval_(interval) {}

    // One occurrence at now. Returns how many occurrences the line due now stands for (this one and
    // those held back since the last line), or 0 when no line is due: log only when it is not 0.
    uint64_t occurred(Clock::time_point now = Clock::now()) noexcept {
        ++held_back_;
        if (logged_once_ && now - last_line_ < interval_) return 0;
        logged_once_ = true;
        last_line_ = now;
        return take_held_back();
    }

    // The occurrences no line has reported yet, forgotten from here on: to log when the loop ends.
    uint64_t take_held_back() noexcept {
        uint64_t n = held_back_;
        held_back_ = 0;
        return n;
    }

private:
    Clock::duration interval_;
    Clock::time_point last_line_{};
    bool logged_once_ = false;
    uint64_t held_back_ = 0;
};

}  // namespace kq
