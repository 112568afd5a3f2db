// Hand-off of accepted fds from the acceptor (one producer) to one worker (one consumer): a lock-free
// spsc queue plus a coalesced wake-up through the worker's own poller or ring (a kq::Waker). Other work
// for the worker (the calls other threads make on connection handles, queued elsewhere) shares the
// wake-up through signal().
// Thread rules: push() on the producer thread only; signal() and wakes_sent() from any thread;
// prepare_sleep(), woke(), take_signal() and the drains on the consumer thread only.
// Ownership: the queue holds plain ints (a lock-free queue of move-only objects would cost a
// destructor per slot). A descriptor pushed with push(UniqueFd&) belongs to the queue until
// drain_fds() hands it out as a UniqueFd; whoever destroys a mailbox drains it first. push(int) and
// drain() are for callers whose ints are not descriptors (benchmarks, tests).
#pragma once

#include <atomic>
#include <cstdint>

#include <boost/lockfree/spsc_queue.hpp>

#include "kq/fd.hpp"
#include "kq/poller.hpp"

namespace kq {

class Mailbox {
public:
    static constexpr size_t kCapacity = 8192;

    explicit Mailbox(Waker& consumer) : poller_(consumer) {}

    // Producer thread only. Returns false when the queue is full (the fd stays with the caller).
    // Wakes the consumer only if it announced it sleeps, and then at most once per sleep.
    bool push(int fd) noexcept {
        if (!queue_.push(fd)) return false;
        wake_if_sleeping();
        return true;
    }

    // Any thread: work other than fds is queued for the consumer (take_signal() reports it); wakes it
    // as push() does.
    void signal() noexcept {
        signalled_.store(true, std::memory_order_release);
        wake_if_sleeping();
    }
    // Consumer thread: whether signal() was called since the last take_signal().
    bool take_signal() noexcept {
        return signalled_.load(std::memory_order_relaxed) && signalled_.exchange(false, std::memory_order_acq_rel);
    }

    // Producer side of push() and signal(): wakes the consumer only if it announced it sleeps, and then
    // at most once per sleep.
    void wake_if_sleeping() noexcept {
        // Both sides read-modify-write sleeping_, so their two RMWs are ordered: if ours comes second we
        // see true and wake; if it comes first, the consumer's RMW acquires our push and it sees the fd.
        // (The usual pair of seq_cst fences works too, but TSan does not model fences.)
        if (sleeping_.exchange(false, std::memory_order_acq_rel)) {
            wakes_sent_.fetch_add(1, std::memory_order_relaxed);
            poller_.wake();
        }
    }

    // Producer thread only: on success the queue owns fd (fd is left empty); when full, fd stays with the caller.
    bool push(UniqueFd& fd) noexcept {
        if (!push(fd.get())) return false;
        fd.release();
        return true;
    }

    // Consumer thread only: announces an indefinite wait. Returns false (and stays awake) when fds or a
    // signal are already queued, so the caller polls without blocking instead.
    bool prepare_sleep() noexcept {
        sleeping_.exchange(true, std::memory_order_acq_rel);
        if (queue_.read_available() == 0 && !signalled_.load(std::memory_order_acquire)) return true;
        woke();
        return false;
    }
    // Consumer thread only: after the wait returns. An exchange, not a plain store: a store would break
    // the release sequence of a producer's exchange, and the next prepare_sleep() could then miss its fd.
    void woke() noexcept { sleeping_.exchange(false, std::memory_order_acq_rel); }

    // Consumer thread only: pops every queued int into fn(int).
    template <class Fn>
    size_t drain(Fn&& fn) {
        return queue_.consume_all(fn);
    }
    // Consumer thread only: pops every queued descriptor into fn(UniqueFd), which then owns it. One pop
    // at a time (consume_all moves its read index only after the last call): if fn throws, the
    // descriptors already handed out have left the queue and cannot be handed out, or closed, twice.
    template <class Fn>
    size_t drain_fds(Fn&& fn) {
        size_t n = 0;
        for (int fd; queue_.pop(fd); ++n) fn(UniqueFd(fd));
        return n;
    }

    // Any thread: wakes sent by push() (for the comparison of hand-off costs and tests).
    uint64_t wakes_sent() const noexcept { return wakes_sent_.load(std::memory_order_relaxed); }

private:
    Waker& poller_;  // the consumer's poller, or its io_uring engine
    boost::lockfree::spsc_queue<int, boost::lockfree::capacity<kCapacity>> queue_;
    alignas(64) std::atomic<bool> sleeping_{false};
    std::atomic<bool> signalled_{false};
    std::atomic<uint64_t> wakes_sent_{0};
};

}  // namespace kq
