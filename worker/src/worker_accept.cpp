// --accept reuseport: the worker accepts on its own SO_REUSEPORT listening socket (nginx's model), so the
// kernel spreads new connections over the workers and no acceptor thread or hand-off is involved.
// The same rules as the acceptor's: accept until EAGAIN (edge-triggered), stop at the connection limit
// and leave clients in the backlog, pause on EMFILE instead of spinning.
#include <cstring>
#include <spdlog/spdlog.h>

#include "kq/net.hpp"
#include "worker_loop.hpp"

namespace kq {

void WorkerLoop::listen_on(UniqueFd listener, size_t max_connections) {
    listener_ = std::move(listener);
    max_open_ = max_connections;
    poller_->add_readonly(listener_.get(), &listener_);
    accept_pending_ = true;  // clients may have queued before the registration
}

// True when accept_clients() has something to do now: the backlog may hold clients, and neither the
// limit nor an EMFILE pause holds accepting back.
bool WorkerLoop::accept_ready() const noexcept {
    return accept_pending_ && listener_ && !at_limit_ && accept_paused_until_ms_ <= now_ms_;
}

// At most one batch of accepts per loop iteration, so a connection storm cannot starve the clients
// already here; accept_pending_ stays set and the next wait does not block.
void WorkerLoop::accept_clients() {
    for (int i = 0; i < cfg_.batch; ++i) {
        if (stats_.accepted.get() - stats_.closed.get() >= max_open_) {
            stats_.limit_pauses.add();
            at_limit_ = true;  // cleared by the next close
            return;
        }
        int fd = -1;
        switch (accept_client(listener_.get(), fd)) {
        case AcceptResult::accepted:
            admit(fd);
            continue;
        case AcceptResult::retry:
            continue;
        case AcceptResult::drained:
            accept_pending_ = false;  // the next client brings a new edge
            return;
        case AcceptResult::out_of_fds:
            stats_.accept_pauses.add();
            pause_log_.paused(errno);
            accept_paused_until_ms_ = now_ms_ + kAcceptPauseMs;
            return;
        case AcceptResult::failed:
            stats_.accept_errors.add();
            spdlog::error("worker accept4: {}", std::strerror(errno));
            accept_pending_ = false;
            return;
        }
    }
}

}  // namespace kq
