// --accept reuseport: the worker accepts on its own SO_REUSEPORT listening socket (nginx's model), so the
// kernel spreads new connections over the workers and no acceptor thread or hand-off is involved.
// The acceptor's accept loop (kq::AcceptLoop): accept until EAGAIN (edge-triggered), stop at the
// connection limit and leave clients in the backlog, pause on EMFILE instead of spinning; here at most
// one batch per loop iteration.
// On io_uring a multishot accept takes the clients instead (ring_arm_accept, ring_accepted): each of its
// completions is a new fd, admitted (its receive armed) in the iteration that brings it, with no poll
// and no accept4; it is cancelled while the limit or an EMFILE pause holds accepting back, and armed
// again when it may go on, as it is whenever it ends.
#include "worker_loop.hpp"

#include <unistd.h>

#include <utility>

namespace kq {

void WorkerLoop::listen_on(UniqueFd listener, size_t max_connections) {
    accept_.listen(std::move(listener), max_connections);
    // io_uring: the loop arms a poll on it instead (UringEngine::arm_accept).
    if (poller_) poller_->add_readonly(accept_.fd(), &accept_);
    accept_pending_ = true;  // clients may have queued before the registration
}

// True when accept_clients() has something to do now: the backlog may hold clients, and neither the
// limit nor an EMFILE pause holds accepting back. A close makes room, so the limit is checked afresh.
// io_uring: true when held fds may be admitted (the multishot accept needs no pass of its own).
bool WorkerLoop::accept_ready() noexcept {
    if (ring_ != nullptr) return !accept_held_.empty() && accept_.below_limit(open_connections());
    return accept_pending_ && accept_.may_accept(now_ms_, open_connections());
}

// What the limit counts: connections this worker has taken and not yet closed.
uint64_t WorkerLoop::open_connections() const noexcept { return stats_.accepted.get() - stats_.closed.get(); }

// At most one batch of accepts per loop iteration, so a connection storm cannot starve the clients
// already here; accept_pending_ stays set and the next wait does not block.
void WorkerLoop::accept_clients() {
    if (ring_ != nullptr) {  // the held fds, oldest first, while there is room
        while (!accept_held_.empty() && accept_.below_limit(open_connections())) {
            UniqueFd fd = std::move(accept_held_.front());
            accept_held_.pop_front();
            admit(std::move(fd));
        }
        return;
    }
    auto open = [this] { return open_connections(); };
    auto take = [this](UniqueFd fd) {
        admit(std::move(fd));
        return true;
    };
    switch (accept_.accept(now_ms_, open, take, static_cast<size_t>(cfg_.batch))) {
    case AcceptLoop::Outcome::drained:  // the next client brings a new edge
    case AcceptLoop::Outcome::failed:
    case AcceptLoop::Outcome::closed:
        accept_pending_ = false;
        return;
    default:  // bounded, at the limit or paused: clients are still queued
        return;
    }
}

// io_uring, before each wait: the multishot accept is on the ring while accepting may go on, and
// cancelled while it is held back (held fds first, the limit, a pause). accept_pending_ then says it
// waits to be armed, so the end of a pause bounds the wait (wait_timeout_ms).
void WorkerLoop::ring_arm_accept() {
    if (!accept_.listening()) return;
    const bool may = accept_held_.empty() && accept_.may_accept(now_ms_, open_connections());
    if (may) ring_->arm_accept(accept_.fd());  // nothing when it is armed already
    else ring_->hold_accept();
    accept_pending_ = !may;
}

// io_uring, after a dispatch: the multishot accept's results, in order. An fd is admitted at once while
// there is room; past the limit it is held (the kernel took it before the cancel could stop it), or,
// once the listener has closed (a drain), closed, as the backlog was.
void WorkerLoop::ring_accepted() {
    auto take = [this](UniqueFd fd) {
        if (accept_held_.empty() && accept_.below_limit(open_connections())) admit(std::move(fd));
        else if (accept_.listening()) accept_held_.push_back(std::move(fd));
        return true;  // past the limit and no listener: fd closes here
    };
    std::vector<int>& results = ring_->accepted();
    try {
        for (int& res : results)  // an error ends the multishot: it is armed again before the next wait
            accept_.completed(now_ms_, std::exchange(res, -1), take);
    } catch (...) {  // admit() failed: the fds not yet taken are closed, not leaked
        for (int fd : results)
            if (fd >= 0) ::close(fd);
        results.clear();
        throw;
    }
    results.clear();
}

}  // namespace kq
