// A worker's deadlines: an intrusive binary min-heap of timers ordered by expiry, O(log n) to arm, move
// or cancel one, O(1) to find the earliest. The worker's only time-out mechanism: each connection is one
// timer, and a future user timer (one-shot or repeating) is another kind of Timer on the same queue.
// Thread rules: a queue and its timers belong to one worker thread; nothing here is safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace kq {

// Something that expires. It sits on at most one queue; its owner cancels it before destroying it.
class Timer {
public:
    static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

    bool armed() const noexcept { return slot_ != kUnarmed; }
    // When it is armed to expire (kNever when not armed).
    int64_t expiry_ms() const noexcept { return expiry_ms_; }
    // The queue took it off because its expiry came: it is no longer armed and may arm itself again
    // (a repeating timer, or a connection whose real deadline moved later).
    virtual void expire(int64_t now_ms) = 0;

protected:
    Timer() = default;
    ~Timer() = default;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

private:
    friend class DeadlineQueue;
    static constexpr uint32_t kUnarmed = std::numeric_limits<uint32_t>::max();
    int64_t expiry_ms_ = kNever;
    uint32_t slot_ = kUnarmed;  // index in the queue's heap
};

class DeadlineQueue {
public:
    bool empty() const noexcept { return heap_.empty(); }
    size_t size() const noexcept { return heap_.size(); }
    // The earliest expiry, kNever when nothing is armed.
    int64_t earliest_ms() const noexcept { return heap_.empty() ? Timer::kNever : heap_.front()->expiry_ms_; }

    // Arms t to expire at expiry_ms, or moves it there if it is armed already.
    void arm(Timer& t, int64_t expiry_ms) {
        if (!t.armed()) {
            heap_.push_back(&t);  // first: if it throws, t stays unarmed
            t.slot_ = static_cast<uint32_t>(heap_.size() - 1);
            t.expiry_ms_ = expiry_ms;
            sift_up(t.slot_);
            return;
        }
        const int64_t old = t.expiry_ms_;
        t.expiry_ms_ = expiry_ms;
        if (expiry_ms <= old) sift_up(t.slot_);
        else sift_down(t.slot_);
    }
    // Arms t at expiry_ms unless it is armed to expire no later than that already.
    void arm_by(Timer& t, int64_t expiry_ms) {
        if (expiry_ms < t.expiry_ms_) arm(t, expiry_ms);
    }
    void cancel(Timer& t) noexcept {
        if (!t.armed()) return;
        const uint32_t slot = t.slot_;
        Timer* last = heap_.back();
        heap_.pop_back();
        t.slot_ = Timer::kUnarmed;
        t.expiry_ms_ = Timer::kNever;
        if (last == &t) return;
        place(last, slot);
        sift_up(slot);
        sift_down(last->slot_);
    }
    // Takes off and returns the earliest timer if it has expired by now_ms, else nullptr. The caller
    // then calls its expire(): a timer's expiry may arm, cancel or destroy other timers.
    Timer* pop_expired(int64_t now_ms) noexcept {
        if (heap_.empty() || heap_.front()->expiry_ms_ > now_ms) return nullptr;
        Timer* t = heap_.front();
        cancel(*t);
        return t;
    }

private:
    void place(Timer* t, uint32_t slot) noexcept {
        heap_[slot] = t;
        t->slot_ = slot;
    }
    void sift_up(uint32_t slot) noexcept {
        Timer* t = heap_[slot];
        while (slot > 0) {
            uint32_t parent = (slot - 1) / 2;
            if (heap_[parent]->expiry_ms_ <= t->expiry_ms_) break;
            place(heap_[parent], slot);
            slot = parent;
        }
        place(t, slot);
    }
    void sift_down(uint32_t slot) noexcept {
        Timer* t = heap_[slot];
        const size_t n = heap_.size();
        for (;;) {
            size_t child = 2 * size_t{slot} + 1;
            if (child >= n) break;
            if (child + 1 < n && heap_[child + 1]->expiry_ms_ < heap_[child]->expiry_ms_) ++child;
            if (t->expiry_ms_ <= heap_[child]->expiry_ms_) break;
            place(heap_[child], slot);
            slot = static_cast<uint32_t>(child);
        }
        place(t, slot);
    }

    std::vector<Timer*> heap_;
};

}  // namespace kq
