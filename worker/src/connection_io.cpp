// The worker's I/O on one connection: draining reads (edge-triggered), immediate writes that keep only
// the unsent tail, backpressure, and the bookkeeping that feeds the time-outs.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "worker_loop.hpp"

namespace kq {

// SIGPIPE must never kill the process: MSG_NOSIGNAL where the platform has it, ignored SIGPIPE otherwise.
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

// Any progress moves the connection to the back of the activity list: O(1), a few pointer writes.
void WorkerLoop::touch(Connection& c) noexcept {
    c.last_active_ms_ = now_ms_;
    open_.move_to_back(c);
}

// Input for a connection, whatever its state: the session's while open; unread while closing (noted,
// so that the close lingers); discarded while lingering.
void WorkerLoop::read_input(Connection& c) {
    switch (c.state_) {
    case ConnState::open:
        read_open(c);
        end_if_draining(c);
        return;
    case ConnState::closing: c.read_pending_ = true; return;
    case ConnState::lingering: discard_input(c); return;
    case ConnState::closed: return;
    }
}

// EV_CLEAR / EPOLLET: a connection must be drained, or no new edge will come. A short read drains it
// unless the peer also finished sending (the eof hint): then read on until read() returns 0.
void WorkerLoop::read_open(Connection& c) {
    if (c.peer_eof_) return;
    if (c.read_paused_) {
        c.read_pending_ = true;
        return;
    }
    for (size_t reads = 0; reads < cfg_.reads_per_event;) {
        ssize_t n = ::read(c.fd(), scratch_.data(), scratch_.size());
        if (n > 0) {
            ++reads;
            stats_.bytes_read.add(static_cast<uint64_t>(n));
            touch(c);
            // A full read may have left more in the kernel: if the session closes now, that input
            // is unread and the close must linger (finish() may run inside on_data).
            const bool full = static_cast<size_t>(n) == scratch_.size();
            c.read_pending_ = full;
            c.answered_ = false;
            c.session_->on_data(std::span<char>(scratch_.data(), static_cast<size_t>(n)), c);
            if (!c.is(ConnState::open)) return;  // the session is done, or a write failed
            c.read_pending_ = false;
            after_data(c);
            if (c.read_paused_) {
                c.read_pending_ = true;
                return;
            }
            if (!full && !c.eof_hint_) return;
        } else if (n == 0) {
            c.peer_eof_ = true;
            mid_request_.remove(c);
            c.session_->on_peer_eof(c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c.read_pending_ = false;
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

// A request that began stays timed from its first byte, however slowly the rest trickles in. A read
// that answered a request and left the session mid-request began the next one: its clock starts anew
// (a pipelining client whose reads end mid-request is not timed from its first request).
void WorkerLoop::after_data(Connection& c) {
    bool mid = c.session_->mid_request();
    if (mid && !MidList::contains(c)) {
        c.request_began_ms_ = now_ms_;
        mid_request_.push_back(c);
    } else if (mid && c.answered_) {
        c.request_began_ms_ = now_ms_;
        mid_request_.remove(c);  // the list is in start order
        mid_request_.push_back(c);
    } else if (!mid && MidList::contains(c)) {
        mid_request_.remove(c);
    }
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
        if (c->read_pending_ && !c->read_paused_ && !c->is(ConnState::closing)) read_input(*c);
    }
}

void WorkerLoop::send(Connection& c, std::span<const char> bytes) {
    if (!c.is(ConnState::open) || bytes.empty()) return;
    if (c.out_.empty()) {
        size_t done = 0;
        if (!write_some(c, bytes, done)) return;
        if (done == bytes.size()) return;
        bytes = bytes.subspan(done);
    }
    c.out_.append(bytes);  // keep only the unsent tail; the WRITE edge resumes it
    c.output_waited_ = true;
    if (c.out_.size() > cfg_.high_water) c.read_paused_ = true;
}

// Writes until done or the socket is full. Returns false if the connection was closed on an error.
// A short write means the send buffer is full (the kernel then arms the next WRITE edge), so it stops
// there instead of paying for a write() that would only return EAGAIN.
bool WorkerLoop::write_some(Connection& c, std::span<const char> bytes, size_t& done) {
    // Nagle delays a small segment only while earlier data is unacknowledged, so a connection's first
    // write never waits: TCP_NODELAY is set just before the second one. A connection that answers once
    // and closes (ab, HTTP/1.0) saves the setsockopt(), as nginx does by setting it only at keep-alive.
    if (c.nodelay_pending_ && c.wrote_) {
        c.nodelay_pending_ = false;
        int one = 1;
        ::setsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails only on a dead socket
    }
    c.wrote_ = true;
    while (done < bytes.size()) {
        size_t want = bytes.size() - done;
        ssize_t n = ::send(c.fd(), bytes.data() + done, want, kSendFlags);
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
    if (done > 0) touch(c);
    c.out_.consume(done);
    if (c.out_.empty() && c.is(ConnState::closing)) {
        finish(c);
        return;
    }
    if (c.read_paused_ && c.out_.size() <= cfg_.low_water) {
        c.read_paused_ = false;
        if (c.read_pending_) schedule_read(c);
    }
}

// closing -> lingering or closed, once everything owed is written. If the client may still be sending,
// close() would make the kernel answer its unread bytes with a reset, which destroys the answer still on
// its way and fails the client's own sends before it reads the answer (a 413 to an upload that goes on).
// So, as nginx's lingering close: half-close, then read and discard until the client's EOF, for at most
// linger_ms. Only when more input is possible: unread input is known (a full read, an edge while
// closing, the eof hint), the session says the client may go on (it stopped mid-stream), or the answer
// had to wait for the client, which may have sent more meanwhile. A client that asked to close and sent
// nothing after (HTTP/1.0, ab) is closed at once. Not from inside a session's call: the read is
// deferred to the resume list, since the session may still be looking at the scratch buffer.
void WorkerLoop::finish(Connection& c) {
    bool more_input_possible = !c.peer_eof_ && (c.read_pending_ || c.eof_hint_ || c.output_waited_ ||
                                                 c.session_->input_may_follow());
    if (!more_input_possible || cfg_.linger_ms <= 0 || ::shutdown(c.fd(), SHUT_WR) != 0) {
        close_now(c);
        return;
    }
    c.state_ = ConnState::lingering;
    c.read_paused_ = false;
    c.linger_since_ms_ = now_ms_;
    lingering_.push_back(c);
    schedule_read(c);
}

void WorkerLoop::discard_input(Connection& c) {
    c.read_pending_ = false;
    for (size_t reads = 0; reads < cfg_.reads_per_event; ++reads) {
        ssize_t n = ::read(c.fd(), scratch_.data(), scratch_.size());
        if (n > 0) {
            stats_.bytes_read.add(static_cast<uint64_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close_now(c);  // EOF (the client is done), or a reset: either way nothing is owed
        return;
    }
    schedule_read(c);
}

}  // namespace kq
