// LogRateLimit on a clock the test moves by hand: one line per interval, and the lines (plus what is
// taken at the end) account for every occurrence.
#include <gtest/gtest.h>

#include "kq/log_rate_limit.hpp"

namespace {

using namespace std::chrono_literals;
using kq::LogRateLimit;

TEST(LogRateLimit, OneLinePerIntervalThatCountsWhatItHeldBack) {
    LogRateLimit limit(5s);
    const auto t0 = LogRateLimit::Clock::time_point{} + 1h;
    EXPECT_EQ(limit.occurred(t0), 1u) << "the first occurrence is logged at once";
    uint64_t lines = 1, reported = 1, occurrences = 1;
    // Ten a second for 12 s, as at the fd limit: a line at 5 s and 10 s, each standing for 50 pauses.
    for (int i = 1; i <= 120; ++i) {
        ++occurrences;
        if (uint64_t n = limit.occurred(t0 + i * 100ms)) {
            ++lines;
            reported += n;
            EXPECT_EQ(i % 50, 0) << "a line " << i * 100 << " ms in";
            EXPECT_EQ(n, 50u);
        }
    }
    EXPECT_EQ(lines, 3u);
    const uint64_t rest = limit.take_held_back();
    EXPECT_EQ(rest, 20u) << "11..12 s";
    EXPECT_EQ(reported + rest, occurrences);
    EXPECT_EQ(limit.take_held_back(), 0u) << "taken once";
    // After a quiet spell longer than the interval the next occurrence is logged at once, alone.
    EXPECT_EQ(limit.occurred(t0 + 60s), 1u);
}

}  // namespace
