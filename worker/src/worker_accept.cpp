// --accept reuseport: the worker accepts on its own SO_REUSEPORT listening socket (nginx's model), so the
// kernel spreads new connections over the workers and no acceptor thread or hand-off is involved.
// The acceptor's accept loop (kq::AcceptLoop): accept until EAGAIN (edge-triggered), stop at the
// connection limit and leave clients in the backlog, pause on EMFILE instead of spinning; here at most
// one batch per loop iteration.
#include "worker_loop.hpp"

namespace kq {

void WorkerLoop::listen_on(UniqueFd listener, size_t max_connections) {
    accept_.listen(std::move(listener), max_connections);
    // io_uring: the loop arms a poll on it instead (UringEngine::arm_accept).
    if (poller_) poller_->add_readonly(accept_.fd(), &accept_);
    accept_pending_ = true;  // clients may have queued before the registration
}

// True when accept_clients() has something to do now: the backlog may hold clients, and neither the
// limit nor an EMFILE pause holds accepting back. A close makes room, so the limit is checked afresh.
bool WorkerLoop::accept_ready() noexcept { return accept_pending_ && accept_.may_accept(now_ms_, open_connections()); }

// What the limit counts: connections this worker has taken and not yet closed.
uint64_t WorkerLoop::open_connections() const noexcept { return stats_.accepted.get() - stats_.closed.get(); }

// At most one batch of accepts per loop iteration, so a connection storm cannot starve the clients
// already here; accept_pending_ stays set and the next wait does not block.
void WorkerLoop::accept_clients() {
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

}  // namespace kq
