// A connection's life on its worker: draining reads (edge-triggered), immediate writes that keep only
// the unsent tail, backpressure, the state moves, and its one deadline.
#include "connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "conn_port.hpp"
#include "uring_engine.hpp"
#include "worker_context.hpp"

namespace kq {

// SIGPIPE must never kill the process: MSG_NOSIGNAL where the platform has it, ignored SIGPIPE otherwise.
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

Connection::~Connection() {
    // Timers were cancelled when it closed (close_now); one that never opened has none.
    session_.reset();
}

void Connection::start() {
    nodelay_pending_ = w_.cfg_.tcp_nodelay;
    last_active_ms_ = w_.now_ms_;
    w_.open_.push_back(*this);
    if (int64_t d = deadline(); d != Timer::kNever) w_.timers_.arm(*this, d);
}

void Connection::on_event(const PollEvent& ev) {
    if (is(ConnState::closed)) return;  // stale: closed earlier in this batch
    if (is(ConnState::connecting)) {
        if (!(ev.writable || ev.error || ev.eof)) return;
        finish_connect(connect_error(ev.error));
        if (!is(ConnState::open)) return;
    }
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
    if (is(ConnState::connecting)) return Timer::kNever;
    return w_.cfg_.idle_timeout_ms > 0 ? last_active_ms_ + w_.cfg_.idle_timeout_ms : Timer::kNever;
}
int64_t Connection::connect_deadline() const noexcept {
    return is(ConnState::connecting) ? connect_by_ms_ : Timer::kNever;
}
int64_t Connection::request_deadline() const noexcept {
    return request_timed_ && w_.cfg_.request_timeout_ms > 0 ? request_began_ms_ + w_.cfg_.request_timeout_ms
                                                            : Timer::kNever;
}
int64_t Connection::linger_deadline() const noexcept {
    return is(ConnState::lingering) ? linger_since_ms_ + w_.cfg_.linger_ms : Timer::kNever;
}
int64_t Connection::deadline() const noexcept {
    return std::min({idle_deadline(), request_deadline(), linger_deadline(), connect_deadline()});
}

// The timer fired, at or before the real deadline. Idle wins over the others when both have passed.
void Connection::expire(int64_t now_ms) {
    if (connect_deadline() <= now_ms) {
        finish_connect(ETIMEDOUT);
        if (is(ConnState::closed)) return;
    }
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
    case ConnState::connecting:
    case ConnState::closed:
        return;
    }
}

// Writes bytes now if nothing waits before them, and keeps the unsent tail. Open or closing.
inline void Connection::emit(std::span<const char> bytes) {
    if (bytes.empty()) return;
    if (w_.ring_ != nullptr) {  // io_uring: sent with the next wait
        ring_emit(bytes);
        return;
    }
    if (out_.empty()) {
        size_t done = 0;
        if (!write_some(bytes, done)) return;
        if (done == bytes.size()) return;
        bytes = bytes.subspan(done);
    }
    out_.append(bytes);  // keep only the unsent tail; the WRITE edge resumes it
    output_waited_ = true;
    if (out_.size() > w_.cfg_.low_water) drain_wanted_ = true;
    if (out_.size() > w_.cfg_.high_water) read_paused_ = true;
}

// EV_CLEAR / EPOLLET: a connection must be drained, or no new edge will come. A short read drains it
// unless the peer also finished sending (the eof hint): then read on until read() returns 0.
void Connection::read_open() {
    if (peer_eof_) return;
    if (reading_held()) {
        read_pending_ = true;
        if (w_.ring_ != nullptr) w_.ring_->cancel_recv(*this);
        return;
    }
    if (w_.ring_ != nullptr) {  // io_uring: input comes as completions (ring_received)
        ring_read();
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
            if (!deliver(std::span<char>(scratch.data(), static_cast<size_t>(n)))) return;  // closed
            read_pending_ = false;
            after_data();
            if (reading_held()) {
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
inline void Connection::after_data() {
    // Held input is an unfinished request, unless the session paused: then it waits for the session.
    bool mid = session_->mid_request() || (has_held() && !user_paused_);
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
    queue_resume();
}

void Connection::queue_resume() {
    if (queued_) return;
    queued_ = true;
    w_.scheduled_.push_back(this);
}

void Connection::resume() {
    queued_ = false;
    if (is(ConnState::connecting)) {  // a connect that failed at once, reported here (never in the caller's call)
        if (ext_ && ext_->outbound && ext_->outbound->error != 0) finish_connect(ext_->outbound->error);
        return;
    }
    // While backpressure still holds reading, the held input waits (reoffer_ stays set): flush() brings
    // the connection back here once the output has drained below low water.
    if (reoffer_ && !reading_held()) {
        reoffer_ = false;
        offer_held();
    }
    if (read_pending_ && !reading_held() && !is(ConnState::closing)) read_input();
    end_if_draining();  // a session that resumed during a graceful stop may now be between requests
}

// The session gets fresh bytes, after whatever it left unconsumed before; what it leaves now is held.
// Returns false when the connection is no longer open (the session closed it, a write failed, or it
// held more than max_input): reading stops.
inline bool Connection::deliver(std::span<char> fresh) {
    const bool held = has_held();
    std::span<char> data = fresh;
    if (held) {
        std::string& h = ext_->held;
        if (refuse_input(h.size() + fresh.size())) return false;
        h.append(fresh.data(), fresh.size());
        data = std::span<char>(h.data(), h.size());
    }
    size_t used = session_->on_data(data, *this);
    if (!is(ConnState::open)) return false;  // the held input, if any, goes with the connection
    used = std::min(used, data.size());
    if (held) {
        std::string& h = ext_->held;
        if (used == h.size()) {
            std::string().swap(h);  // an idle connection keeps no buffer
            release_extras_if_empty();
        } else {
            h.erase(0, used);
        }
    } else if (used < data.size()) {
        if (refuse_input(data.size() - used)) return false;
        extras().held.assign(data.data() + used, data.size() - used);
    }
    return true;
}

// More input left unconsumed than max_input: the session is not going to make a request of it.
bool Connection::refuse_input(size_t unconsumed) {
    if (unconsumed <= w_.cfg_.max_input) return false;
    w_.stats_.input_overflows.add();
    if (ext_) ext_->held.clear();
    close();
    return true;
}

// Reading resumed over held input (resume(), which then ends the connection if a graceful stop waits
// for it): the session sees it again without waiting for new bytes.
void Connection::offer_held() {
    if (!is(ConnState::open) || !has_held()) return;
    answered_ = false;
    if (deliver({})) after_data();
}

std::span<char> Connection::held_input() noexcept {
    if (!has_held()) return {};
    return {ext_->held.data(), ext_->held.size()};
}

void Connection::pause_reading() {
    assert(w_.on_worker_thread());
    user_paused_ = true;
}

void Connection::resume_reading() {
    assert(w_.on_worker_thread());
    if (!user_paused_) return;
    user_paused_ = false;
    if (!is(ConnState::open)) return;
    if (has_held()) reoffer_ = true;
    // Input that arrived while paused raised no edge we acted on (read_pending_), or is held: both are
    // taken from the resume list, after the call that resumed returns. So is a graceful stop's end of
    // the connection, which waited for the session (end_if_draining).
    if (reoffer_ || read_pending_ || w_.draining_) queue_resume();
    after_data();  // held input is timed again
}

bool Connection::congested() const noexcept { return unsent() > w_.cfg_.low_water; }

// Output, in order: while a reservation is unfilled, sends queue behind it.
void Connection::send(std::span<const char> bytes) {
    assert(w_.on_worker_thread());
    if (!is(ConnState::open) || bytes.empty() || write_shut_) return;
    if (reserving()) {
        auto& pending = ext_->pending;
        if (pending.back().ticket != 0) pending.push_back(Pending{0, {}});
        pending.back().bytes.append(bytes.data(), bytes.size());
        return;
    }
    emit(bytes);
}

Reservation Connection::reserve() {
    assert(w_.on_worker_thread());
    Extras& e = extras();
    const uint64_t ticket = ++w_.last_id_;  // unique on this worker: never reused
    e.pending.push_back(Pending{ticket, {}});
    return Reservation{ticket};
}

// Fills a reservation, then writes what is no longer waiting for an earlier one. While closing too: a
// close() waits for its reservations. An unknown or already filled ticket is ignored.
void Connection::fill(Reservation r, std::string bytes) {
    if (!(is(ConnState::open) || is(ConnState::closing)) || !reserving() || r.ticket == 0) return;
    auto& pending = ext_->pending;
    auto it = std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.ticket == r.ticket; });
    if (it == pending.end()) return;
    it->ticket = 0;
    it->bytes = std::move(bytes);
    while (!pending.empty() && pending.front().ticket == 0) {
        std::string b = std::move(pending.front().bytes);
        pending.pop_front();
        emit(std::span<const char>(b.data(), b.size()));
        if (is(ConnState::closed)) return;  // a write failed: ext_ is still there, but nothing is owed
    }
    if (reserving()) return;
    if (is(ConnState::closing) && all_sent()) finish();
    else release_extras_if_empty();
    shut_write_if_flushed();
}

// Closes where reservation r is: what was queued before it (earlier reservations included) is still
// written, r and everything queued after it never is. An unknown or already filled ticket is ignored.
void Connection::fail(Reservation r) {
    if (!(is(ConnState::open) || is(ConnState::closing)) || !reserving() || r.ticket == 0) return;
    auto& pending = ext_->pending;
    auto it = std::find_if(pending.begin(), pending.end(), [&](const Pending& p) { return p.ticket == r.ticket; });
    if (it == pending.end()) return;
    pending.erase(it, pending.end());
    if (is(ConnState::open)) {
        close();  // finishes at once if nothing before r is still owed
    } else if (!reserving() && all_sent()) {
        finish();  // closing already, and r was all it waited for
    }
}

void Connection::count_requests(uint64_t n) {
    assert(w_.on_worker_thread());
    answered_ = true;
    w_.stats_.requests.add(n);
}

// Nagle delays a small segment only while earlier data is unacknowledged, so a connection's first
// write never waits: TCP_NODELAY is set just before the second one. A connection that answers once
// and closes (ab, HTTP/1.0) saves the setsockopt(), as nginx does by setting it only at keep-alive.
void Connection::nodelay_before_second_write(bool written_before) {
    if (!nodelay_pending_ || !written_before) return;
    nodelay_pending_ = false;
    int one = 1;
    ::setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails only on a dead socket
}

// An outbound connect's outcome once the socket reported (writable, or an error when failed): 0 or
// the errno it failed with.
int Connection::connect_error(bool failed) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && failed) err = ECONNREFUSED;
    return err;
}

// Writes until done or the socket is full. Returns false if the connection was closed on an error.
// A short write means the send buffer is full (the kernel then arms the next WRITE edge), so it stops
// there instead of paying for a write() that would only return EAGAIN.
bool Connection::write_some(std::span<const char> bytes, size_t& done) {
    nodelay_before_second_write(wrote_);
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
    after_written();
}

void Connection::after_written() {
    if (all_sent() && is(ConnState::closing)) {
        if (!reserving()) finish();
        return;
    }
    shut_write_if_flushed();
    if (unsent() > w_.cfg_.low_water) return;
    if (read_paused_) {
        read_paused_ = false;
        if (read_pending_ || reoffer_) queue_resume();  // input in the kernel, or held input to offer again
    }
    if (drain_wanted_ && is(ConnState::open)) {
        drain_wanted_ = false;
        session_->on_drained(*this);
    }
}

// open -> closing: no further input reaches the session, and no request time-out applies any more.
// From any other state it does nothing: a connection is closed once (a drain, a time-out and the
// session may all ask for it).
void Connection::close() {
    assert(w_.on_worker_thread());
    if (!is(ConnState::open)) return;
    state_ = ConnState::closing;
    request_timed_ = false;
    if (all_sent() && !reserving()) finish();
}

// Half-close once the output owed is written; the session goes on reading (a proxy's other direction).
void Connection::shutdown_write() {
    if (!is(ConnState::open) || write_shut_) return;
    write_shut_ = true;
    shut_write_if_flushed();
}

// SHUT_WR fails only on a socket that is already dead: its next read or event reports that.
void Connection::shut_write_if_flushed() {
    if (!write_shut_ || write_shut_done_ || !is(ConnState::open) || !all_sent() || reserving()) return;
    write_shut_done_ = true;
    ::shutdown(fd(), SHUT_WR);
}

// Not while the session paused reading: it is in the middle of something it finishes without input (an
// answer it streams as the output drains, Session::on_drained), and ending the connection now would cut
// that short. It resumes (resume() then ends the connection) or closes; the drain deadline bounds it.
// Nor while backpressure holds reading back: input that arrived may wait unread behind the output (in
// the socket, or on io_uring in the stash); once the output drains below low water, reading resumes,
// answers it, and comes back here. A client that never reads is cut at the drain deadline, as it would
// be while its output was flushed. Nor one that has had no answer yet, during the first-request grace
// (WorkerLoop::begin_drain).
// io_uring: the readiness backends read the socket dry before this, but here input the client sent
// before the stop may not have reached the session yet. In completions still to be handed out: look
// again after them (the resume list). Taken but not yet delivered (the stash): the resume list
// delivers it. Still in the socket, where a receive has not taken it yet: its completion calls this
// again (or resume(), once reading is no longer held back).
void Connection::end_if_draining() {
    if (!w_.draining_ || !is(ConnState::open) || reading_held() || session_->mid_request() || has_held() ||
        (!wrote_ && w_.first_request_grace_))
        return;
    if (w_.ring_ != nullptr && !peer_eof_) {
        if (has_stash()) return;
        if (w_.ring_->completions_pending()) {
            queue_resume();
            return;
        }
        int unread = 0;
        if (::ioctl(fd(), FIONREAD, &unread) == 0 && unread > 0) return;
    }
    close();
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
    if (w_.ring_ != nullptr) {  // io_uring: what arrives while lingering is dropped (ring_received)
        if (!recv_armed_) w_.ring_->arm_recv(*this);
        return;
    }
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
    if (ops_ > 0 && w_.ring_ != nullptr) {
        w_.ring_->cancel_all(*this);  // the fd closes with the object, once nothing of it is in flight
    } else {
        fd_.reset();
        inflight_.release();
    }
    out_.release();
    w_.open_.remove(*this);
    w_.timers_.cancel(*this);
    if (ext_) {
        for (auto& t : ext_->timers) w_.timers_.cancel(*t);  // freed with the connection
        ext_->held.clear();
        ext_->pending.clear();
    }
    if (slot_ != ConnPort::kNoSlot) w_.port_->release(slot_);  // its handles go dead
    w_.graveyard_.push_back(this);
    (outbound_ ? w_.stats_.outbound_closed : w_.stats_.closed).add();
}

bool Connection::reap_now() noexcept {
    if (ops_ == 0 || w_.ring_ == nullptr) return true;
    reaped_ = true;
    session_.reset();  // when a readiness backend's would go; the shell waits for its completions
    w_.ring_->keep_until_idle(*this);
    return false;
}

}  // namespace kq

namespace kq {

Connection::Extras& Connection::extras() {
    if (!ext_) ext_ = std::make_unique<Extras>();
    return *ext_;
}

void Connection::release_extras_if_empty() noexcept {
    if (ext_ && ext_->empty()) ext_.reset();
}

// ---- User timers: each is a Timer on the worker's queue, owned by the connection.

TimerId Connection::after(std::chrono::milliseconds delay, std::function<void(Conn&)> fn) {
    return add_timer(delay, 0, std::move(fn));
}

TimerId Connection::every(std::chrono::milliseconds period, std::function<void(Conn&)> fn) {
    return add_timer(period, std::max<int64_t>(1, period.count()), std::move(fn));
}

TimerId Connection::add_timer(std::chrono::milliseconds delay, int64_t period_ms, std::function<void(Conn&)> fn) {
    assert(w_.on_worker_thread());
    if (is(ConnState::closed) || !fn) return 0;
    const TimerId id = ++w_.last_id_;
    auto& timers = extras().timers;
    timers.push_back(std::make_unique<UserTimer>(*this, id, period_ms, std::move(fn)));
    // At least 1 ms: a callback that sets a 0 ms timer runs it on a later pass, not in an endless loop.
    w_.timers_.arm(*timers.back(), w_.now_ms_ + std::max<int64_t>(1, delay.count()));
    return id;
}

bool Connection::cancel(TimerId id) {
    assert(w_.on_worker_thread());
    if (!ext_ || id == 0) return false;
    auto& timers = ext_->timers;
    auto it = std::find_if(timers.begin(), timers.end(), [id](const auto& t) { return t->id_ == id; });
    if (it == timers.end() || (*it)->cancelled_) return false;
    UserTimer& t = **it;
    if (!t.armed()) {  // running now: fire() forgets it when its callback returns
        t.cancelled_ = true;
        return true;
    }
    w_.timers_.cancel(t);
    timers.erase(it);
    release_extras_if_empty();
    return true;
}

void UserTimer::expire(int64_t now_ms) { conn_.fire(*this, now_ms); }

// The queue took t off: run it, then re-arm it (repeating) or forget it. Its callback may cancel it, set
// others, or close the connection (which cancels the rest; the objects go with the connection).
void Connection::fire(UserTimer& t, int64_t now_ms) {
    if (is(ConnState::closed)) return;
    t.fn_(*this);
    if (is(ConnState::closed)) return;
    if (t.period_ms_ > 0 && !t.cancelled_) {
        w_.timers_.arm(t, now_ms + t.period_ms_);  // from now: a late worker skips beats, never bunches them
        return;
    }
    auto& timers = ext_->timers;
    timers.erase(std::find_if(timers.begin(), timers.end(), [&t](const auto& p) { return p.get() == &t; }));
    release_extras_if_empty();
}

// ---- Who and where.

namespace {
SocketAddress ask(int fd, int (*call)(int, sockaddr*, socklen_t*)) {
    SocketAddress a;
    socklen_t len = sizeof a.storage;
    if (fd >= 0 && call(fd, reinterpret_cast<sockaddr*>(&a.storage), &len) == 0) a.length = len;
    return a;
}
}  // namespace

SocketAddress Connection::peer() const { return ask(fd_.get(), ::getpeername); }
SocketAddress Connection::local() const { return ask(fd_.get(), ::getsockname); }
int Connection::worker() const noexcept { return w_.index_; }

ConnHandle Connection::handle() {
    assert(w_.on_worker_thread());
    if (is(ConnState::closed)) return {};
    if (slot_ == ConnPort::kNoSlot) {
        slot_ = w_.port_->acquire(this);
        if (slot_ == ConnPort::kNoSlot) return {};
    }
    return ConnHandle(w_.port_, slot_, w_.port_->generation(slot_));
}

std::string SocketAddress::to_string() const {
    char text[INET6_ADDRSTRLEN] = "?";
    if (length == 0) return "?";
    if (storage.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(storage);
        ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(a.sin_port));
    }
    if (storage.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(storage);
        ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
        return "[" + std::string(text) + "]:" + std::to_string(ntohs(a.sin6_port));
    }
    return "?";
}

uint16_t SocketAddress::port() const noexcept {
    if (length == 0) return 0;
    if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
    if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
    return 0;
}

}  // namespace kq

namespace kq {

// ---- Outbound connections.

void Connection::connect(const SocketAddress& to, std::chrono::milliseconds timeout,
                         std::function<std::unique_ptr<Session>(Conn&)> open, std::function<void(int)> failed) {
    assert(w_.on_worker_thread());
    if (!is(ConnState::open)) return;
    int err = 0;
    int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) err = errno;
    else if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.storage), to.length) != 0 && errno != EINPROGRESS)
        err = errno;
    auto* c = new Connection(w_, UniqueFd(fd));
    c->state_ = ConnState::connecting;
    c->outbound_ = true;
    w_.stats_.outbound.add();
    c->set_id((static_cast<uint64_t>(w_.index_) << 48) | ++w_.opened_);
    c->connect_by_ms_ = w_.now_ms_ + std::max<int64_t>(1, timeout.count());
    c->extras().outbound = std::make_unique<Outbound>(Outbound{handle(), std::move(open), std::move(failed), err});
    c->start();  // the open list (closed with the worker) and the connect deadline
    if (err == 0 && w_.ring_ != nullptr) {
        w_.ring_->poll_connect(*c);  // io_uring: POLLOUT ends the connect
        return;
    }
    if (err == 0) {
        try {
            w_.io_->add(c->fd(), c);  // the connect's completion is its first WRITE edge
            return;
        } catch (const std::system_error& e) {
            c->ext_->outbound->error = e.code().value();
        }
    }
    c->queue_resume();  // failed already: reported on the resume list, after the caller's call
}

// The connect finished (error 0) or failed: the new connection opens its session, or reports and closes.
// Nothing runs if the connection that asked has closed meanwhile.
void Connection::finish_connect(int error) {
    std::unique_ptr<Outbound> ob = std::move(ext_->outbound);
    release_extras_if_empty();
    const bool origin_open = ob->origin.alive();
    if (error != 0 || !origin_open) {
        if (error != 0) w_.stats_.connect_failures.add();
        close_now();
        if (error != 0 && origin_open && ob->failed) ob->failed(error);
        return;
    }
    state_ = ConnState::open;
    last_active_ms_ = w_.now_ms_;
    w_.stats_.connects.add();
    session_ = ob->open ? ob->open(*this) : nullptr;
    if (!session_) {
        close_now();
        return;
    }
    w_.timers_.arm(*this, deadline());  // from the connect deadline to the idle one
}

SocketAddress SocketAddress::numeric(const std::string& host, uint16_t port) {
    SocketAddress a;
    auto& v4 = reinterpret_cast<sockaddr_in&>(a.storage);
    auto& v6 = reinterpret_cast<sockaddr_in6&>(a.storage);
    if (::inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        a.length = sizeof v4;
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        a.length = sizeof v6;
    } else {
        throw std::invalid_argument("not a numeric IPv4 or IPv6 address: " + host);
    }
    return a;
}

}  // namespace kq

namespace kq {

// ---- The completion side (io_uring): the engine (uring_engine.cpp) hands each completion here. Sessions
// see the same calls in the same order as on a readiness backend.

// Open, on the ring, reading not held and no EOF yet (read_open checked both): input that came while
// reading was held back is delivered first (and an EOF that followed it); then a multishot receive is
// armed unless one is.
void Connection::ring_read() {
    read_pending_ = false;
    if (ext_ && !ext_->stash.empty()) {
        std::string stash;
        stash.swap(ext_->stash);
        touch();
        answered_ = false;
        if (!deliver(std::span<char>(stash.data(), stash.size()))) return;
        after_data();
        if (reading_held()) {
            read_pending_ = true;
            return;
        }
    }
    if (stash_eof_) {
        stash_eof_ = false;
        peer_eof_ = true;
        request_timed_ = false;
        session_->on_peer_eof(*this);
        return;
    }
    if (!recv_armed_) w_.ring_->arm_recv(*this);
}

bool Connection::ring_wants_recv() const noexcept {
    if (is(ConnState::lingering)) return true;
    return is(ConnState::open) && !peer_eof_ && !stash_eof_ && !reading_held();
}

// One receive completion: bytes (res > 0, valid during this call only), EOF (0) or an error. The
// engine has already noted whether the multishot receive ended.
void Connection::ring_received(int res, std::span<char> bytes) {
    if (is(ConnState::closed)) return;
    if (res > 0) {
        w_.stats_.bytes_read.add(static_cast<uint64_t>(res));
        if (is(ConnState::open)) {
            // Held back: it came before the cancel took effect, and waits for reading to resume. After
            // stashed input that the resume list has not delivered yet, it waits too: the order is kept.
            if (reading_held() || has_stash()) {
                extras().stash.append(bytes.data(), bytes.size());
                read_pending_ = true;
                if (reading_held()) w_.ring_->cancel_recv(*this);
                else queue_resume();
                return;
            }
            touch();
            // A full buffer may have left more in the kernel: a close inside on_data must linger.
            read_pending_ = bytes.size() == w_.ring_->buffer_size();
            answered_ = false;
            if (!deliver(bytes)) return;  // closed
            read_pending_ = false;
            after_data();
            if (reading_held()) {
                read_pending_ = true;
                w_.ring_->cancel_recv(*this);
                return;
            }
            // Output above low water: the multishot receive gives way to one buffer at a time (arm_recv).
            if (recv_armed_ && recv_multishot_ && unsent() > w_.cfg_.low_water) w_.ring_->cancel_recv(*this);
            end_if_draining();
            if (is(ConnState::closed)) return;
        } else if (is(ConnState::closing)) {
            read_pending_ = true;  // input the lingering close discards: it is dropped now instead
        }
    } else if (res == 0) {
        if (is(ConnState::lingering)) {
            close_now();  // the client is done
            return;
        }
        if (is(ConnState::open) && (has_stash() || reading_held())) {
            stash_eof_ = true;  // after any stashed input, when reading resumes (readiness: read then)
            read_pending_ = true;
            if (!reading_held()) queue_resume();
        } else {
            peer_eof_ = true;
            request_timed_ = false;
            if (is(ConnState::open)) {
                session_->on_peer_eof(*this);
                end_if_draining();
            }
        }
        return;
    } else if (res != -ENOBUFS && res != -ECANCELED) {
        if (is(ConnState::open)) w_.stats_.errors.add();
        close_now();  // a reset, or another error: nothing more can be read
        return;
    }
    // A multishot receive ends on ENOBUFS (every buffer in use) and sometimes on its own: armed again
    // (the buffers return before it is submitted).
    if (!recv_armed_ && ring_wants_recv()) w_.ring_->arm_recv(*this);
}

// New output joins out_; the send list prepares one send per connection before the next wait. The bytes
// of a send in flight (inflight_) stay where they are until its completion.
void Connection::ring_emit(std::span<const char> bytes) {
    out_.append(bytes);
    wrote_ = true;
    if (!send_listed_ && inflight_.empty()) {
        send_listed_ = true;
        w_.to_send_.push_back(this);
    }
    if (unsent() > w_.cfg_.low_water) drain_wanted_ = true;
    if (unsent() > w_.cfg_.high_water) read_paused_ = true;
}

void Connection::ring_start_send() {
    send_listed_ = false;
    if (is(ConnState::closed) || !inflight_.empty() || out_.empty()) return;
    nodelay_before_second_write(ring_sent_once_);  // wrote_ is set when output is queued, not sent
    ring_sent_once_ = true;
    std::swap(inflight_, out_);
    auto p = inflight_.pending();
    w_.ring_->send(*this, p.data(), p.size());
}

void Connection::ring_sent(int res) {
    if (is(ConnState::closed)) {
        inflight_.release();
        return;
    }
    if (res < 0) {
        w_.stats_.errors.add();  // EPIPE, ECONNRESET: this connection only
        close_now();
        return;
    }
    w_.stats_.bytes_written.add(static_cast<uint64_t>(res));
    if (res > 0) touch();
    inflight_.consume(static_cast<size_t>(res));
    if (!inflight_.empty()) {  // partial: the socket was full; the rest, from where it stopped
        output_waited_ = true;
        auto p = inflight_.pending();
        w_.ring_->send(*this, p.data(), p.size());
    } else if (!out_.empty()) {
        ring_start_send();  // what was sent meanwhile, in order
    }
    after_written();  // progress, partial or not: below low water reading resumes, as after a short write
}

// The outbound connect's POLLOUT: the connect finished or failed.
void Connection::ring_polled(int res) {
    if (!is(ConnState::connecting)) return;
    finish_connect(res < 0 ? -res : connect_error((res & (POLLERR | POLLHUP)) != 0));
    if (is(ConnState::open)) read_input();
}

}  // namespace kq
