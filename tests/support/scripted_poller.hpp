// ScriptedPoller: a kq::Poller test double for WorkerConfig::poller_factory. It records every
// registration and hands the worker's loop the batches a test queues, so a test can script sequences a
// kernel produces only rarely (spurious, duplicated or stale events). Given a real poller it decorates
// it instead: registrations reach the kernel, real events pass through, and a transform may add to them.
// Thread rules: add(), add_readonly(), remove() and wake() from any thread; wait() on the loop's thread;
// queue(), await_*() and the accessors from the test's thread. No gtest dependency (the fuzz target
// links it too).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "kq/poller.hpp"

namespace kq::test {

class ScriptedPoller final : public Poller {
public:
    struct Registration {
        int fd = -1;
        void* udata = nullptr;
        bool readonly = false;  // add_readonly() or add_level() rather than add()
        bool level = false;     // add_level()
    };
    // Called on the loop's thread after each wait() with the events about to be returned (out[0..n)); it
    // may edit them or append up to out.size() and returns the new count.
    using Transform = std::function<int(std::span<PollEvent> out, int n)>;

    // A fake: nothing reaches a kernel, wait() returns only queued batches and wake-ups.
    explicit ScriptedPoller(Backend reported = Backend::epoll) : reported_(reported) {}
    // A decorator of inner: queued batches come first, then inner's own events.
    explicit ScriptedPoller(std::unique_ptr<Poller> inner) : reported_(inner->backend()), inner_(std::move(inner)) {}

    void add(int fd, void* udata) override { record(fd, udata, false, false); }
    void add_readonly(int fd, void* udata) override { record(fd, udata, true, false); }
    void add_level(int fd, void* udata) override { record(fd, udata, true, true); }
    void remove(int fd) noexcept override;
    int wait(std::span<PollEvent> out, int timeout_ms) override;
    void wake() noexcept override;
    Backend backend() const noexcept override { return reported_; }

    // Before the loop starts.
    void set_transform(Transform t) { transform_ = std::move(t); }

    // The next wait() returns exactly this batch (at most the loop's batch size; the rest is dropped).
    void queue(std::vector<PollEvent> batch);
    // Waits until every queued batch was taken and the loop is blocked in wait() again with nothing
    // pending: it has handled the batch, and whatever the batch caused, completely. False on time-out.
    bool await_idle(int timeout_ms = 10'000);
    // Waits for fd's registration (the newest one); nullopt on time-out.
    std::optional<Registration> await_registration(int fd, int timeout_ms = 10'000);

    std::vector<Registration> registrations() const;  // every add(), add_readonly() and add_level(), in order
    std::vector<int> removals() const;                // every remove(), in order
    uint64_t batches_taken() const;

private:
    void record(int fd, void* udata, bool readonly, bool level);
    int wait_scripted(std::span<PollEvent> out, int timeout_ms);

    const Backend reported_;
    std::unique_ptr<Poller> inner_;
    Transform transform_;
    mutable std::mutex m_;
    std::condition_variable changed_;
    std::deque<std::vector<PollEvent>> batches_;
    std::vector<Registration> registrations_;
    std::vector<int> removals_;
    bool wake_pending_ = false;
    bool blocked_ = false;  // the loop sleeps in wait() with nothing to return
    uint64_t taken_ = 0;
};

}  // namespace kq::test
