// The worker's event loop: admit handed-off fds, wait for a batch, serve each event, free what closed.
#include "worker_loop.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <spdlog/spdlog.h>

#include "kq/net.hpp"

namespace kq {

// SIGPIPE must never kill the process: MSG_NOSIGNAL where the platform has it, ignored SIGPIPE otherwise.
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

WorkerLoop::WorkerLoop(const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats)
    : cfg_(cfg), protocol_(protocol), stats_(stats), poller_(make_poller(cfg.backend)), mailbox_(*poller_),
      scratch_(cfg.read_buffer), events_(static_cast<size_t>(cfg.batch)) {}

WorkerLoop::~WorkerLoop() { close_all(); }

void WorkerLoop::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    poller_->wake();
}

void WorkerLoop::run() {
    while (!stop_.load(std::memory_order_acquire)) {
        admit_new();
        // Sleep only when nothing is queued for us: the mailbox and the scheduled reads both need a pass.
        bool may_sleep = scheduled_.empty() && mailbox_.prepare_sleep();
        int n = poller_->wait(events_, may_sleep ? -1 : 0);
        if (may_sleep) mailbox_.woke();
        stats_.waits.add();
        stats_.events.add(static_cast<uint64_t>(n));
        stats_.events_per_wait.record(static_cast<uint64_t>(n));
        for (int i = 0; i < n; ++i) handle(events_[static_cast<size_t>(i)]);
        run_scheduled();
        reap();
    }
    close_all();
}

void WorkerLoop::admit_new() {
    mailbox_.drain([this](int fd) { admit(fd); });
}

void WorkerLoop::admit(int raw_fd) {
    UniqueFd fd(raw_fd);
    if (cfg_.tcp_nodelay) {
        try {
            set_nodelay(fd.get(), true);
        } catch (const std::system_error&) {
            // A peer that already reset makes this fail; the first read will report it.
        }
    }
    auto* c = new Connection(*this, std::move(fd), protocol_.open());
    try {
        poller_->add(c->fd_.get(), c);  // the only registration call this connection ever costs
    } catch (const std::system_error& e) {
        spdlog::warn("worker: cannot register fd {}: {}", c->fd_.get(), e.what());
        stats_.errors.add();
        delete c;
        return;
    }
    c->next_ = open_;
    if (open_) open_->prev_ = c;
    open_ = c;
    stats_.accepted.add();
}

void WorkerLoop::handle(const PollEvent& ev) {
    if (ev.wake) {
        stats_.wakeups.add();
        return;
    }
    auto& c = *static_cast<Connection*>(ev.udata);
    if (c.closed_) return;  // stale: closed earlier in this batch
    if (ev.eof) c.eof_hint_ = true;
    if (ev.writable && !c.out_.empty()) flush(c);
    if (!c.closed_ && (ev.readable || ev.eof || ev.error)) read_input(c);
    if (!c.closed_ && ev.error) {
        if (!c.out_.empty()) flush(c);  // reports the socket error, or delivers a last reply
        if (!c.closed_) close_now(c);
    }
}

// EV_CLEAR / EPOLLET: a connection must be drained, or no new edge will come. A short read drains it
// unless the peer also finished sending (the eof hint): then read on until read() returns 0.
void WorkerLoop::read_input(Connection& c) {
    if (c.peer_eof_ || c.close_after_flush_) return;
    if (c.read_paused_) {
        c.read_pending_ = true;
        return;
    }
    c.read_pending_ = false;
    for (size_t reads = 0; reads < cfg_.reads_per_event;) {
        ssize_t n = ::read(c.fd_.get(), scratch_.data(), scratch_.size());
        if (n > 0) {
            ++reads;
            stats_.bytes_read.add(static_cast<uint64_t>(n));
            c.session_->on_data(std::span<char>(scratch_.data(), static_cast<size_t>(n)), c);
            if (c.closed_ || c.close_after_flush_) return;
            if (c.read_paused_) {
                c.read_pending_ = true;
                return;
            }
            if (static_cast<size_t>(n) < scratch_.size() && !c.eof_hint_) return;
        } else if (n == 0) {
            c.peer_eof_ = true;
            c.session_->on_peer_eof(c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            stats_.errors.add();
            close_now(c);
            return;
        }
    }
    // Read budget used up: let the other connections run, and come back without waiting for an edge.
    schedule_read(c);
}

void WorkerLoop::schedule_read(Connection& c) {
    c.read_pending_ = true;
    if (c.queued_) return;
    c.queued_ = true;
    scheduled_.push_back(&c);
}

void WorkerLoop::run_scheduled() {
    if (scheduled_.empty()) return;
    std::vector<Connection*> now;
    now.swap(scheduled_);
    for (Connection* c : now) {
        c->queued_ = false;
        if (!c->closed_ && c->read_pending_ && !c->read_paused_) read_input(*c);
    }
}

void WorkerLoop::send(Connection& c, std::span<const char> bytes) {
    if (c.closed_ || c.close_after_flush_ || bytes.empty()) return;
    if (c.out_.empty()) {
        size_t done = 0;
        if (!write_some(c, bytes, done)) return;
        if (done == bytes.size()) return;
        bytes = bytes.subspan(done);
    }
    c.out_.append(bytes);  // keep only the unsent tail; the WRITE edge resumes it
    if (c.out_.size() > cfg_.high_water) c.read_paused_ = true;
}

// Writes until done or the socket is full. Returns false if the connection was closed on an error.
// A short write means the send buffer is full (the kernel then arms the next WRITE edge), so it stops
// there instead of paying for a write() that would only return EAGAIN.
bool WorkerLoop::write_some(Connection& c, std::span<const char> bytes, size_t& done) {
    while (done < bytes.size()) {
        size_t want = bytes.size() - done;
        ssize_t n = ::send(c.fd_.get(), bytes.data() + done, want, kSendFlags);
        if (n > 0) {
            done += static_cast<size_t>(n);
            stats_.bytes_written.add(static_cast<uint64_t>(n));
            if (static_cast<size_t>(n) < want) return true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            stats_.errors.add();  // EPIPE, ECONNRESET: this connection only
            close_now(c);
            return false;
        }
    }
    return true;
}

void WorkerLoop::flush(Connection& c) {
    size_t done = 0;
    if (!write_some(c, c.out_.pending(), done)) return;
    c.out_.consume(done);
    if (c.out_.empty() && c.close_after_flush_) {
        close_now(c);
        return;
    }
    if (c.read_paused_ && c.out_.size() <= cfg_.low_water) {
        c.read_paused_ = false;
        if (c.read_pending_) schedule_read(c);
    }
}

void WorkerLoop::close_after_flush(Connection& c) {
    if (c.closed_) return;
    c.close_after_flush_ = true;
    if (c.out_.empty()) close_now(c);
}

// Closes the fd at once (which also removes it from the poller) but keeps the object until the batch
// ends: later events in this batch may still point at it (libuv's uv__platform_invalidate_fd problem).
void WorkerLoop::close_now(Connection& c) {
    if (c.closed_) return;
    c.closed_ = true;
    c.fd_.reset();
    c.out_.release();
    if (c.prev_) c.prev_->next_ = c.next_; else open_ = c.next_;
    if (c.next_) c.next_->prev_ = c.prev_;
    c.prev_ = c.next_ = nullptr;
    graveyard_.push_back(&c);
    stats_.closed.add();
}

void Connection::send(std::span<const char> bytes) { loop_.send(*this, bytes); }
void Connection::close() { loop_.close_after_flush(*this); }
void Connection::count_requests(uint64_t n) { loop_.count_requests(n); }

void WorkerLoop::reap() noexcept {
    for (Connection* c : graveyard_) delete c;
    graveyard_.clear();
}

void WorkerLoop::close_all() noexcept {
    while (open_) close_now(*open_);
    scheduled_.clear();
    reap();
    mailbox_.drain([](int fd) { ::close(fd); });
}

}  // namespace kq
