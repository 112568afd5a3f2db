// DeadlineQueue, the worker's timer heap: random arms, moves and cancels checked against a plain
// multiset, and timers that re-arm themselves from expire() (the lazy connection timer, a repeating one).
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <utility>
#include <vector>

#include "deadline_queue.hpp"

namespace kq {
namespace {

struct Probe final : Timer {
    int fired = 0;
    int64_t repeat_ms = 0;  // > 0: re-arms itself this long after each expiry
    DeadlineQueue* queue = nullptr;
    void expire(int64_t now_ms) override {
        ++fired;
        if (repeat_ms > 0) queue->arm(*this, now_ms + repeat_ms);
    }
};

TEST(DeadlineQueue, MatchesAReferenceUnderRandomArmsMovesAndCancels) {
    std::mt19937 rng(7);
    DeadlineQueue q;
    std::vector<Probe> timers(200);
    std::multiset<std::pair<int64_t, Probe*>> ref;
    for (int step = 0; step < 20'000; ++step) {
        Probe& t = timers[rng() % timers.size()];
        if (t.armed()) ref.erase(ref.find({t.expiry_ms(), &t}));
        switch (rng() % 4) {
        case 0:
            q.cancel(t);
            break;
        case 1:
            q.arm_by(t, static_cast<int64_t>(rng() % 1000));
            break;
        default:
            q.arm(t, static_cast<int64_t>(rng() % 1000));
            break;
        }
        if (t.armed()) ref.insert({t.expiry_ms(), &t});
        ASSERT_EQ(q.size(), ref.size());
        ASSERT_EQ(q.earliest_ms(), ref.empty() ? Timer::kNever : ref.begin()->first);
    }
    for (int64_t expiry = q.earliest_ms(); Timer* t = q.pop_expired(Timer::kNever - 1); expiry = q.earliest_ms()) {
        auto& p = static_cast<Probe&>(*t);
        ASSERT_FALSE(p.armed());
        ASSERT_EQ(expiry, ref.begin()->first);  // in expiry order
        auto it = ref.find({expiry, &p});
        ASSERT_NE(it, ref.end());
        ref.erase(it);
    }
    EXPECT_TRUE(ref.empty());
}

TEST(DeadlineQueue, ArmByOnlyBringsAnExpiryNearer) {
    DeadlineQueue q;
    Probe t;
    q.arm_by(t, 50);
    EXPECT_EQ(t.expiry_ms(), 50);
    q.arm_by(t, 80);
    EXPECT_EQ(t.expiry_ms(), 50);
    q.arm_by(t, 20);
    EXPECT_EQ(t.expiry_ms(), 20);
    q.arm(t, 90);
    EXPECT_EQ(q.earliest_ms(), 90);
    q.cancel(t);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(t.armed());
}

TEST(DeadlineQueue, OnlyExpiredTimersArePoppedAndARepeatingOneReArms) {
    DeadlineQueue q;
    Probe once, every;
    every.repeat_ms = 10;
    every.queue = &q;
    q.arm(once, 25);
    q.arm(every, 10);
    for (int64_t now = 0; now <= 40; now += 5) {
        while (Timer* t = q.pop_expired(now)) t->expire(now);
    }
    EXPECT_EQ(once.fired, 1);
    EXPECT_EQ(every.fired, 4);  // 10, 20, 30, 40
    EXPECT_EQ(every.expiry_ms(), 50);
    EXPECT_EQ(q.size(), 1u);
}

}  // namespace
}  // namespace kq
