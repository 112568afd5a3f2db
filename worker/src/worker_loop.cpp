// The worker's event loop: admit handed-off fds, wait for a batch, serve each event, expire time-outs,
// drain on a graceful stop, and free what closed.
#include "worker_loop.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <spdlog/spdlog.h>

namespace kq {

WorkerLoop::WorkerLoop(const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats)
    : cfg_(cfg), protocol_(protocol), stats_(stats),
      poller_(cfg.poller_factory ? cfg.poller_factory(cfg.backend) : make_poller(cfg.backend)), mailbox_(*poller_),
      scratch_(cfg.read_buffer), events_(static_cast<size_t>(cfg.batch)) {
    update_clock();
}

WorkerLoop::~WorkerLoop() { close_all(); }

void WorkerLoop::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    poller_->wake();
}

void WorkerLoop::request_drain() noexcept {
    drain_requested_.store(true, std::memory_order_release);
    poller_->wake();
}

void WorkerLoop::update_clock() noexcept {
    using namespace std::chrono;
    now_ms_ = duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void WorkerLoop::run() {
    while (!stop_.load(std::memory_order_acquire)) {
        admit_new();
        if (!draining_ && drain_requested_.load(std::memory_order_acquire)) begin_drain();
        if (draining_ && drained()) break;
        // Sleep only when nothing is queued for us: the mailbox, the scheduled reads and a backlog that
        // was not emptied all need a pass.
        int timeout = scheduled_.empty() && !accept_ready() ? wait_timeout_ms() : 0;
        bool may_sleep = timeout != 0 && mailbox_.prepare_sleep();
        int n = poller_->wait(events_, may_sleep ? timeout : 0);
        if (may_sleep) mailbox_.woke();
        update_clock();
        stats_.waits.add();
        stats_.events.add(static_cast<uint64_t>(n));
        stats_.events_per_wait.record(static_cast<uint64_t>(n));
        // The hand-off mode decides once per batch whether an event may be a connection's first.
        if (cfg_.direct_handoff) for (int i = 0; i < n; ++i) handle<true>(events_[static_cast<size_t>(i)]);
        else for (int i = 0; i < n; ++i) handle<false>(events_[static_cast<size_t>(i)]);
        run_scheduled();
        if (accept_ready()) accept_clients();
        expire_timeouts();
        reap();
    }
    close_all();
}

void WorkerLoop::admit_new() {
    mailbox_.drain_fds([this](UniqueFd fd) { admit(std::move(fd)); });
}

// Queue hand-off and reuseport: build, adopt, then register, all on this thread. With read_on_admit (the
// listener defers accepts until a client's first bytes arrive) the connection is read first, instead of
// after a wait that would only report what is already there, and registered only if it is still open:
// one answered and closed on that read (HTTP/1.0, ab) costs no epoll_ctl and no wake-up. Registering
// after the read loses nothing: adding an fd to epoll or kqueue reports whatever it is ready for at that
// moment (input that came after the read, room to write), the edge an earlier registration would have
// reported. Without deferred accepts the client has usually not sent yet, so that read would be wasted.
void WorkerLoop::admit(UniqueFd fd) {
    // TCP_NODELAY is set later, before the connection's second write (write_some).
    auto* c = new Connection(*this, std::move(fd), protocol_.open());
    adopt(*c);
    if (cfg_.read_on_admit) read_input(*c);
    if (c->is(ConnState::closed)) return;  // answered and closed, or failed: freed by reap()
    try {
        poller_->add(c->fd(), c);  // the only registration call this connection ever costs
    } catch (const std::system_error& e) {
        spdlog::warn("worker: cannot register fd {}: {}", c->fd(), e.what());
        stats_.errors.add();
        close_now(*c);
    }
}

// Worker thread: the connection joins this worker's lists and time-outs. One handed over just before a
// graceful stop has asked nothing yet and is ended at once; with read_on_admit its first read decides.
void WorkerLoop::adopt(Connection& c) {
    c.nodelay_pending_ = cfg_.tcp_nodelay;
    c.last_active_ms_ = now_ms_;
    open_.push_back(c);
    stats_.accepted.add();
    if (!cfg_.read_on_admit) end_if_draining(c);
}

// --handoff direct, acceptor thread. Registering READ|WRITE on a connected socket reports it writable at
// once, so the worker always gets a first event for it, however idle the client, and adopts it then.
// The connection has no session until then: sessions are created on the worker that owns them.
bool WorkerLoop::register_direct(UniqueFd fd) noexcept {
    auto* c = new (std::nothrow) Connection(*this, std::move(fd), nullptr);
    if (c == nullptr) return false;
    c->direct_pending_.store(true, std::memory_order_release);
    try {
        poller_->add(c->fd(), c);  // from the acceptor thread, while the worker may be blocked in wait
    } catch (const std::system_error& e) {
        spdlog::warn("acceptor: cannot register fd {} with a worker: {}", c->fd(), e.what());
        delete c;
        return false;
    }
    // c may already be adopted, served and freed by the worker: it is not touched again here.
    direct_registered_.fetch_add(1, std::memory_order_release);
    return true;
}

void WorkerLoop::adopt_direct(Connection& c) {
    c.direct_pending_.store(false, std::memory_order_relaxed);
    ++direct_adopted_;
    c.session_ = protocol_.open();
    adopt(c);
}

template <bool Direct>
void WorkerLoop::handle(const PollEvent& ev) {
    if (ev.wake) {
        stats_.wakeups.add();
        return;
    }
    if (ev.udata == &accept_) {
        accept_pending_ = true;
        return;
    }
    auto& c = *static_cast<Connection*>(ev.udata);
    // The acquire pairs with register_direct's release: it orders the acceptor's construction of c
    // before this thread's use of it.
    if constexpr (Direct) {
        if (c.direct_pending_.load(std::memory_order_acquire)) adopt_direct(c);
    }
    if (c.is(ConnState::closed)) return;  // stale: closed earlier in this batch
    if (ev.eof) c.eof_hint_ = true;
    if (ev.writable && !c.out_.empty()) flush(c);
    if (ev.readable || ev.eof || ev.error) read_input(c);
    // A lingering connection reads on to the EOF or the error itself: HUP (both sides shut) arrives
    // with input still unread, and closing on it would reset the connection over that input.
    if (ev.error && !c.is(ConnState::closed) && !c.is(ConnState::lingering)) {
        if (!c.out_.empty()) flush(c);  // reports the socket error, or delivers a last reply
        close_now(c);
    }
}

// The earliest deadline among: the least recently active connection's idle time-out, the oldest
// unfinished request's time-out, the drain deadline. -1 = none (sleep until an event).
int WorkerLoop::wait_timeout_ms() const {
    int64_t deadline = INT64_MAX;
    if (cfg_.idle_timeout_ms > 0 && !open_.empty())
        deadline = std::min(deadline, open_.front()->last_active_ms_ + cfg_.idle_timeout_ms);
    if (cfg_.request_timeout_ms > 0 && !mid_request_.empty())
        deadline = std::min(deadline, mid_request_.front()->request_began_ms_ + cfg_.request_timeout_ms);
    if (!lingering_.empty()) deadline = std::min(deadline, lingering_.front()->linger_since_ms_ + cfg_.linger_ms);
    if (draining_) deadline = std::min(deadline, drain_deadline_ms_);
    if (accept_pending_ && accept_.paused_until_ms() > now_ms_) deadline = std::min(deadline, accept_.paused_until_ms());
    if (deadline == INT64_MAX) return -1;
    return static_cast<int>(std::clamp<int64_t>(deadline - now_ms_ + 1, 1, 60'000));
}

// Both lists are in time order and the time-outs are uniform, so only their fronts need checking.
void WorkerLoop::expire_timeouts() {
    if (cfg_.idle_timeout_ms > 0) {
        while (!open_.empty() && open_.front()->last_active_ms_ + cfg_.idle_timeout_ms <= now_ms_) {
            stats_.idle_timeouts.add();
            close_now(*open_.front());
        }
    }
    if (cfg_.request_timeout_ms > 0) {
        while (!mid_request_.empty() && mid_request_.front()->request_began_ms_ + cfg_.request_timeout_ms <= now_ms_) {
            Connection& c = *mid_request_.front();  // open: leaving that state takes it off this list
            mid_request_.remove(c);
            stats_.request_timeouts.add();
            c.session_->on_request_timeout(c);
            end_if_draining(c);
        }
    }
    while (!lingering_.empty() && lingering_.front()->linger_since_ms_ + cfg_.linger_ms <= now_ms_)
        close_now(*lingering_.front());
    if (draining_ && now_ms_ >= drain_deadline_ms_) {
        while (!open_.empty()) close_now(*open_.front());
    }
}

// Graceful stop: answer what has arrived, and end each connection at its next request boundary (at
// once if it is between requests) as soon as its output is written. A request under way may finish;
// its own time-out and the drain deadline bound it. Connections already closing or lingering go on.
void WorkerLoop::begin_drain() {
    draining_ = true;
    accept_.close();  // reuseport: stop accepting (clients still in this socket's backlog are reset)
    drain_deadline_ms_ = now_ms_ + cfg_.drain_timeout_ms;
    std::vector<Connection*> all;
    for (Connection* c = open_.front(); c != nullptr; c = c->lru_.next) all.push_back(c);
    for (Connection* c : all) {
        if (c->is(ConnState::open)) read_input(*c);
    }
    reap();
}

void WorkerLoop::end_if_draining(Connection& c) {
    if (draining_ && c.is(ConnState::open) && !c.session_->mid_request()) close_after_flush(c);
}

// With --handoff direct, also every connection the acceptor registered must have been taken over: its
// first event may still be on its way (the acceptor has stopped by now, so the count is final).
bool WorkerLoop::drained() const {
    return open_.empty() && direct_adopted_ == direct_registered_.load(std::memory_order_acquire);
}

// open -> closing: no further input reaches the session, and no request time-out applies any more.
// From any other state it does nothing: a connection is closed once (a drain, a time-out and the
// session may all ask for it).
void WorkerLoop::close_after_flush(Connection& c) {
    if (!c.is(ConnState::open)) return;
    c.state_ = ConnState::closing;
    mid_request_.remove(c);
    if (c.out_.empty()) finish(c);
}

// Closes the fd at once (which also removes it from the poller) but keeps the object until the batch
// ends: later events in this batch may still point at it (libuv's uv__platform_invalidate_fd problem).
void WorkerLoop::close_now(Connection& c) {
    if (c.is(ConnState::closed)) return;
    c.state_ = ConnState::closed;
    c.fd_.reset();
    c.out_.release();
    open_.remove(c);
    mid_request_.remove(c);
    lingering_.remove(c);
    graveyard_.push_back(&c);
    stats_.closed.add();
}

void Connection::send(std::span<const char> bytes) { loop_.send(*this, bytes); }
void Connection::close() { loop_.close_after_flush(*this); }
void Connection::count_requests(uint64_t n) {
    answered_ = true;
    loop_.count_requests(n);
}

void WorkerLoop::reap() noexcept {
    // A connection closed after it was put on the resume list (say, its request time-out fired in the
    // same pass that used up its read budget) must leave the list before it is freed.
    bool queued = std::any_of(graveyard_.begin(), graveyard_.end(), [](const Connection* c) { return c->queued_; });
    if (queued) std::erase_if(scheduled_, [](const Connection* c) { return c->is(ConnState::closed); });
    for (Connection* c : graveyard_) delete c;
    graveyard_.clear();
}

void WorkerLoop::close_all() noexcept {
    accept_.close();
    while (!open_.empty()) close_now(*open_.front());
    scheduled_.clear();
    reap();
    mailbox_.drain_fds([](UniqueFd) {});  // closes them
    collect_unadopted();
}

// --handoff direct after an immediate stop: connections the acceptor registered whose first event this
// worker never took. Their events are pending in the poller (nothing else is registered any more), so
// a few short waits find them all; bounded in case a broken poller loses one.
void WorkerLoop::collect_unadopted() noexcept {
    try {
        for (int tries = 0; tries < 100 && direct_adopted_ != direct_registered_.load(std::memory_order_acquire);
             ++tries) {
            int n = poller_->wait(events_, 10);
            for (int i = 0; i < n; ++i) {
                const PollEvent& ev = events_[static_cast<size_t>(i)];
                if (ev.wake || ev.udata == &accept_) continue;
                auto& c = *static_cast<Connection*>(ev.udata);
                if (!c.direct_pending_.load(std::memory_order_acquire)) continue;
                adopt_direct(c);
                close_now(c);
            }
            reap();
        }
    } catch (const std::exception& e) {
        spdlog::error("worker: collecting directly registered connections: {}", e.what());
    }
    if (direct_adopted_ != direct_registered_.load(std::memory_order_acquire))
        spdlog::error("worker: {} directly registered connections never reported an event",
                      direct_registered_.load(std::memory_order_acquire) - direct_adopted_);
}

}  // namespace kq
