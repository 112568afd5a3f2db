// ScriptedPoller (scripted_poller.hpp): queued batches, recorded registrations, a wake-up that works
// whether the loop sleeps in the fake's condition variable or in the decorated kernel poller.
#include "scripted_poller.hpp"

#include <algorithm>
#include <chrono>

namespace kq::test {

void ScriptedPoller::record(int fd, void* udata, bool readonly, bool level) {
    if (inner_) {
        if (level) inner_->add_level(fd, udata);
        else if (readonly) inner_->add_readonly(fd, udata);
        else inner_->add(fd, udata);
    }
    std::lock_guard lk(m_);
    registrations_.push_back(Registration{fd, udata, readonly, level});
    changed_.notify_all();
}

void ScriptedPoller::remove(int fd) noexcept {
    if (inner_) inner_->remove(fd);
    std::lock_guard lk(m_);
    removals_.push_back(fd);
}

void ScriptedPoller::wake() noexcept {
    if (inner_) {
        inner_->wake();
        return;
    }
    std::lock_guard lk(m_);
    wake_pending_ = true;
    changed_.notify_all();
}

int ScriptedPoller::wait(std::span<PollEvent> out, int timeout_ms) {
    int n = 0;
    if (!inner_) {
        n = wait_scripted(out, timeout_ms);
    } else {
        std::unique_lock lk(m_);
        if (!batches_.empty()) {
            n = wait_scripted(out, 0);
        } else {
            lk.unlock();
            n = inner_->wait(out, timeout_ms);
        }
    }
    return transform_ ? transform_(out, n) : n;
}

// The fake's wait: sleeps on the condition variable until a batch or a wake-up is there, or timeout_ms.
int ScriptedPoller::wait_scripted(std::span<PollEvent> out, int timeout_ms) {
    std::unique_lock lk(m_, std::defer_lock);
    if (!inner_) lk.lock();  // the decorator's wait() already holds it
    auto ready = [this] { return !batches_.empty() || wake_pending_; };
    if (!ready() && timeout_ms != 0) {
        blocked_ = true;
        changed_.notify_all();
        if (timeout_ms < 0) changed_.wait(lk, ready);
        else changed_.wait_for(lk, std::chrono::milliseconds(timeout_ms), ready);
        blocked_ = false;
    }
    size_t n = 0;
    if (!batches_.empty()) {
        const std::vector<PollEvent>& batch = batches_.front();
        n = std::min(batch.size(), out.size());
        std::copy_n(batch.begin(), n, out.begin());
        batches_.pop_front();
        ++taken_;
    }
    if (wake_pending_ && n < out.size()) {
        out[n++] = PollEvent{.wake = true};
        wake_pending_ = false;
    }
    changed_.notify_all();
    return static_cast<int>(n);
}

void ScriptedPoller::queue(std::vector<PollEvent> batch) {
    {
        std::lock_guard lk(m_);
        batches_.push_back(std::move(batch));
        changed_.notify_all();
    }
    if (inner_) inner_->wake();  // a loop blocked in the kernel returns and takes the batch next
}

bool ScriptedPoller::await_idle(int timeout_ms) {
    std::unique_lock lk(m_);
    return changed_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                             [this] { return blocked_ && batches_.empty() && !wake_pending_; });
}

std::optional<ScriptedPoller::Registration> ScriptedPoller::await_registration(int fd, int timeout_ms) {
    std::unique_lock lk(m_);
    std::optional<Registration> found;
    changed_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] {
        auto it = std::find_if(registrations_.rbegin(), registrations_.rend(),
                               [fd](const Registration& r) { return r.fd == fd; });
        if (it != registrations_.rend()) found = *it;
        return found.has_value();
    });
    return found;
}

std::vector<ScriptedPoller::Registration> ScriptedPoller::registrations() const {
    std::lock_guard lk(m_);
    return registrations_;
}

std::vector<int> ScriptedPoller::removals() const {
    std::lock_guard lk(m_);
    return removals_;
}

uint64_t ScriptedPoller::batches_taken() const {
    std::lock_guard lk(m_);
    return taken_;
}

}  // namespace kq::test
