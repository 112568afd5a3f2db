// A connection's life on its worker: draining reads (edge-triggered), immediate writes that keep only
// the unsent tail, backpressure, the state moves, and its one deadline.
#include "connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "worker_context.hpp"

namespace kq {

// SIGPIPE must never kill the process: MSG_NOSIGNAL where the platform has it, ignored SIGPIPE otherwise.
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

void Connection::start() {
    nodelay_pending_ = w_.cfg_.tcp_nodelay;
    last_active_ms_ = w_.now_ms_;
    w_.open_.push_back(*this);
    if (int64_t d = deadline(); d != Timer::kNever) w_.timers_.arm(*this, d);
}

void Connection::on_event(const PollEvent& ev) {
    if (is(ConnState::closed)) return;  // stale: closed earlier in this batch
    if (ev.eof) eof_hint_ = true;
    if (ev.writable && !out_.empty()) flush();
    if (ev.readable || ev.eof || ev.error) read_input();
    // A lingering connection reads on to the EOF or the error itself: HUP (both sides shut) arrives
    // with input still unread, and closing on it would reset the connection over that input.
    if (ev.error && !is(ConnState::closed) && !is(ConnState::lingering)) {
        if (!out_.empty()) flush();  // reports the socket error, or delivers a last reply
        close_now();
    }
}

// Progress stores the time and nothing else: the timer is armed no later than the real deadline and
// moves on when it fires (expire), so a busy connection costs no queue operation per request.
void Connection::touch() noexcept { last_active_ms_ = w_.now_ms_; }

// Each time-out's deadline in the current state, Timer::kNever where it does not apply: idle always
// (write progress counts while closing); the request's while one is timed (open only); the linger's while
// lingering. The timer, its re-arming and the expiry all read them from here.
int64_t Connection::idle_deadline() const noexcept {
    return w_.cfg_.idle_timeout_ms > 0 ? last_active_ms_ + w_.cfg_.idle_timeout_ms : Timer::kNever;
}
int64_t Connection::request_deadline() const noexcept {
    return request_timed_ && w_.cfg_.request_timeout_ms > 0 ? request_began_ms_ + w_.cfg_.request_timeout_ms
                                                            : Timer::kNever;
}
int64_t Connection::linger_deadline() const noexcept {
    return is(ConnState::lingering) ? linger_since_ms_ + w_.cfg_.linger_ms : Timer::kNever;
}
int64_t Connection::deadline() const noexcept {
    return std::min({idle_deadline(), request_deadline(), linger_deadline()});
}

// The timer fired, at or before the real deadline. Idle wins over the others when both have passed.
void Connection::expire(int64_t now_ms) {
    if (idle_deadline() <= now_ms) {
        w_.stats_.idle_timeouts.add();
        close_now();
        return;
    }
    if (request_deadline() <= now_ms) {
        request_timed_ = false;
        w_.stats_.request_timeouts.add();
        session_->on_request_timeout(*this);
        end_if_draining();
    } else if (linger_deadline() <= now_ms) {
        close_now();
        return;
    }
    if (is(ConnState::closed)) return;
    if (int64_t d = deadline(); d != Timer::kNever) w_.timers_.arm(*this, d);  // later than now_ms
}

void Connection::read_input() {
    switch (state_) {
    case ConnState::open:
        read_open();
        end_if_draining();
        return;
    case ConnState::closing:
        read_pending_ = true;
        return;
    case ConnState::lingering:
        discard_input();
        return;
    case ConnState::closed:
        return;
    }
}

// EV_CLEAR / EPOLLET: a connection must be drained, or no new edge will come. A short read drains it
// unless the peer also finished sending (the eof hint): then read on until read() returns 0.
void Connection::read_open() {
    if (peer_eof_) return;
    if (read_paused_) {
        read_pending_ = true;
        return;
    }
    std::vector<char>& scratch = w_.scratch_;
    for (size_t reads = 0; reads < w_.cfg_.reads_per_event;) {
        ssize_t n = ::read(fd(), scratch.data(), scratch.size());
        if (n > 0) {
            ++reads;
            w_.stats_.bytes_read.add(static_cast<uint64_t>(n));
            touch();
            // A full read may have left more in the kernel: if the session closes now, that input
            // is unread and the close must linger (finish() may run inside on_data).
            const bool full = static_cast<size_t>(n) == scratch.size();
            read_pending_ = full;
            answered_ = false;
            session_->on_data(std::span<char>(scratch.data(), static_cast<size_t>(n)), *this);
            if (!is(ConnState::open)) return;  // the session is done, or a write failed
            read_pending_ = false;
            after_data();
            if (read_paused_) {
                read_pending_ = true;
                return;
            }
            if (!full && !eof_hint_) return;
        } else if (n == 0) {
            peer_eof_ = true;
            request_timed_ = false;
            session_->on_peer_eof(*this);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            read_pending_ = false;
            return;
        } else {
            w_.stats_.errors.add();
            close_now();
            return;
        }
    }
    // Read budget used up: let the other connections run, and come back without waiting for an edge.
    schedule_read();
}

// A request that began stays timed from its first byte, however slowly the rest trickles in. A read
// that answered a request and left the session mid-request began the next one: its clock starts anew
// (a pipelining client whose reads end mid-request is not timed from its first request). A new clock
// can only bring the deadline nearer than the timer's when it starts; a restart only moves it later.
void Connection::after_data() {
    bool mid = session_->mid_request();
    if (mid && (!request_timed_ || answered_)) {
        request_timed_ = true;
        request_began_ms_ = w_.now_ms_;
        w_.timers_.arm_by(*this, request_deadline());  // kNever (no request time-out): no change
    } else if (!mid) {
        request_timed_ = false;
    }
}

void Connection::schedule_read() {
    read_pending_ = true;
    if (queued_) return;
    queued_ = true;
    w_.scheduled_.push_back(this);
}

void Connection::resume() {
    queued_ = false;
    if (read_pending_ && !read_paused_ && !is(ConnState::closing)) read_input();
}

void Connection::send(std::span<const char> bytes) {
    if (!is(ConnState::open) || bytes.empty()) return;
    if (out_.empty()) {
        size_t done = 0;
        if (!write_some(bytes, done)) return;
        if (done == bytes.size()) return;
        bytes = bytes.subspan(done);
    }
    out_.append(bytes);  // keep only the unsent tail; the WRITE edge resumes it
    output_waited_ = true;
    if (out_.size() > w_.cfg_.high_water) read_paused_ = true;
}

void Connection::count_requests(uint64_t n) {
    answered_ = true;
    w_.stats_.requests.add(n);
}

// Writes until done or the socket is full. Returns false if the connection was closed on an error.
// A short write means the send buffer is full (the kernel then arms the next WRITE edge), so it stops
// there instead of paying for a write() that would only return EAGAIN.
bool Connection::write_some(std::span<const char> bytes, size_t& done) {
    // Nagle delays a small segment only while earlier data is unacknowledged, so a connection's first
    // write never waits: TCP_NODELAY is set just before the second one. A connection that answers once
    // and closes (ab, HTTP/1.0) saves the setsockopt(), as nginx does by setting it only at keep-alive.
    if (nodelay_pending_ && wrote_) {
        nodelay_pending_ = false;
        int one = 1;
        ::setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails only on a dead socket
    }
    wrote_ = true;
    while (done < bytes.size()) {
        size_t want = bytes.size() - done;
        ssize_t n = ::send(fd(), bytes.data() + done, want, kSendFlags);
        if (n > 0) {
            done += static_cast<size_t>(n);
            w_.stats_.bytes_written.add(static_cast<uint64_t>(n));
            if (static_cast<size_t>(n) < want) return true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            w_.stats_.errors.add();  // EPIPE, ECONNRESET: this connection only
            close_now();
            return false;
        }
    }
    return true;
}

void Connection::flush() {
    size_t done = 0;
    if (!write_some(out_.pending(), done)) return;
    if (done > 0) touch();
    out_.consume(done);
    if (out_.empty() && is(ConnState::closing)) {
        finish();
        return;
    }
    if (read_paused_ && out_.size() <= w_.cfg_.low_water) {
        read_paused_ = false;
        if (read_pending_) schedule_read();
    }
}

// open -> closing: no further input reaches the session, and no request time-out applies any more.
// From any other state it does nothing: a connection is closed once (a drain, a time-out and the
// session may all ask for it).
void Connection::close() {
    if (!is(ConnState::open)) return;
    state_ = ConnState::closing;
    request_timed_ = false;
    if (out_.empty()) finish();
}

void Connection::end_if_draining() {
    if (w_.draining_ && is(ConnState::open) && !session_->mid_request()) close();
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
void Connection::finish() {
    bool more_input_possible =
        !peer_eof_ && (read_pending_ || eof_hint_ || output_waited_ || session_->input_may_follow());
    if (!more_input_possible || w_.cfg_.linger_ms <= 0 || ::shutdown(fd(), SHUT_WR) != 0) {
        close_now();
        return;
    }
    state_ = ConnState::lingering;
    read_paused_ = false;
    linger_since_ms_ = w_.now_ms_;
    w_.timers_.arm_by(*this, linger_deadline());
    schedule_read();
}

void Connection::discard_input() {
    read_pending_ = false;
    std::vector<char>& scratch = w_.scratch_;
    for (size_t reads = 0; reads < w_.cfg_.reads_per_event; ++reads) {
        ssize_t n = ::read(fd(), scratch.data(), scratch.size());
        if (n > 0) {
            w_.stats_.bytes_read.add(static_cast<uint64_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close_now();  // EOF (the client is done), or a reset: either way nothing is owed
        return;
    }
    schedule_read();
}

// Closes the fd at once (which also removes it from the poller) but keeps the object until the batch
// ends: later events in this batch may still point at it (libuv's uv__platform_invalidate_fd problem).
void Connection::close_now() {
    if (is(ConnState::closed)) return;
    state_ = ConnState::closed;
    request_timed_ = false;
    fd_.reset();
    out_.release();
    w_.open_.remove(*this);
    w_.timers_.cancel(*this);
    w_.graveyard_.push_back(this);
    w_.stats_.closed.add();
}

}  // namespace kq
