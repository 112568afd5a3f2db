// The worker's event loop: admit handed-off fds, wait for a batch, dispatch each event to its connection,
// run the resume list and the expired deadlines, drain on a graceful stop, and free what closed.
#include "worker_loop.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <new>
#include <stdexcept>

#include "kq/clock.hpp"

namespace kq {
namespace {
// How long, in a graceful stop, a connection that has had no answer yet may take to ask (begin_drain):
// its first request follows the handshake within a round trip or two, and a client that connects and
// waits longer holds the stop up no further.
constexpr int64_t kFirstRequestGraceMs = 1'000;

// Before anything is made: automatic becomes the backend it picks, and a combination that cannot work
// is refused with its reason.
WorkerConfig resolved(const WorkerConfig& cfg) {
    WorkerConfig r = cfg;
    if (r.backend == Backend::automatic) r.backend = automatic_backend(r);
    if (r.backend == Backend::io_uring && r.direct_handoff)
        throw std::invalid_argument(
            "--handoff direct cannot work with io_uring: only the worker's own thread "
            "may submit to its ring (use --handoff queue)");
    return r;
}
}  // namespace

WorkerLoop::WorkerLoop(int index, const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats)
    : WorkerContext(index, resolved(cfg), stats), protocol_(protocol),
      poller_(cfg_.backend == Backend::io_uring ? nullptr
              : cfg_.poller_factory             ? cfg_.poller_factory(cfg_.backend)
                                                : make_poller(cfg_.backend)),
      uring_(cfg_.backend == Backend::io_uring ? std::make_unique<UringEngine>(cfg_) : nullptr), mailbox_(waker()),
      events_(poller_ ? static_cast<size_t>(cfg_.batch) : 0) {
    port_ = std::make_shared<ConnPort>(mailbox_);
    io_ = poller_.get();
    update_clock();
}

WorkerLoop::~WorkerLoop() { close_all(); }

void WorkerLoop::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    waker().wake();
}

void WorkerLoop::request_drain() noexcept {
    drain_requested_.store(true, std::memory_order_release);
    waker().wake();
}

void WorkerLoop::update_clock() noexcept { now_ms_ = steady_now_ms(); }

void WorkerLoop::prepare() {
    if (prepared_) return;
    thread_ = std::this_thread::get_id();
    if (uring_) {
        uring_->start(*this);  // on this thread: the ring's only submitter
        ring_ = uring_.get();
    }
    prepared_ = true;
}

void WorkerLoop::run() {
    prepare();
    while (!stop_.load(std::memory_order_acquire)) {
        admit_new();
        if (!draining_ && drain_requested_.load(std::memory_order_acquire)) begin_drain();
        if (draining_ && drained()) break;
        // Sleep only when nothing is queued for us: the mailbox, the scheduled reads and a backlog that
        // was not emptied all need a pass.
        int timeout = scheduled_.empty() && !accept_ready() ? wait_timeout_ms() : 0;
        bool may_sleep = timeout != 0 && mailbox_.prepare_sleep();
        int n = 0;
        if (ring_ != nullptr) {
            // io_uring: the sends of this iteration go in with the wait; completions are handed out after it.
            ring_arm_accept();
            n = static_cast<int>(ring_->wait(may_sleep ? timeout : 0));
        } else {
            n = poller_->wait(events_, may_sleep ? timeout : 0);
        }
        if (may_sleep) mailbox_.woke();
        update_clock();
        stats_.waits.add();
        stats_.events.add(static_cast<uint64_t>(n));
        stats_.events_per_wait.record(static_cast<uint64_t>(n));
        if (ring_ != nullptr) {
            UringEngine::Batch b = ring_->dispatch();
            if (b.woken) stats_.wakeups.add();
            if (!ring_->accepted().empty()) ring_accepted();
        } else if (cfg_.direct_handoff) {
            // The hand-off mode decides once per batch whether an event may be a connection's first.
            for (int i = 0; i < n; ++i) handle<true>(events_[static_cast<size_t>(i)]);
        } else {
            for (int i = 0; i < n; ++i) handle<false>(events_[static_cast<size_t>(i)]);
        }
        run_tasks();
        run_scheduled();
        if (accept_ready()) accept_clients();
        expire_timeouts();
        reap();
    }
    close_all();
    if (ring_ != nullptr) {
        ring_->finish();  // waits for the cancelled operations, frees their connections
        ring_ = nullptr;
    }
    thread_ = std::thread::id();  // the owner closes what arrives later (Worker::join)
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
    auto* c = new Connection(*this, std::move(fd));
    open_session(*c);
    adopt(*c);
    if (ring_ != nullptr) {
        c->read_input();  // io_uring: arms its multishot receive (what is there already comes at once)
        return;
    }
    if (cfg_.read_on_admit) c->read_input();
    if (c->is(ConnState::closed)) return;  // answered and closed, or failed: freed by reap()
    try {
        poller_->add(c->fd(), c);  // the only registration call this connection ever costs
    } catch (const std::system_error& e) {
        spdlog::warn("worker: cannot register fd {}: {}", c->fd(), e.what());
        stats_.errors.add();
        c->close_now();
    }
}

// Worker thread: the connection joins this worker's open list and deadlines. One handed over during a
// graceful stop has asked nothing yet: it is ended at once once the first-request grace is over.
void WorkerLoop::adopt(Connection& c) {
    c.start();
    stats_.accepted.add();
    if (!cfg_.read_on_admit) c.end_if_draining();
}

// --handoff direct, acceptor thread. Registering READ|WRITE on a connected socket reports it writable at
// once, so the worker always gets a first event for it, however idle the client, and adopts it then.
// The connection has no session until then: sessions are created on the worker that owns them.
bool WorkerLoop::register_direct(UniqueFd fd) noexcept {
    // Only a worker built for direct hand-off checks each event for a connection to adopt (handle<true>);
    // cfg_ never changes after construction, so reading it here is safe.
    if (!cfg_.direct_handoff) {
        spdlog::error("acceptor: direct hand-off to a worker not configured for it (WorkerConfig::direct_handoff)");
        return false;
    }
    auto* c = new (std::nothrow) Connection(*this, std::move(fd));
    if (c == nullptr) return false;
    c->mark_direct();
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

// The session is opened with its connection, whose id it may read: the worker's index over its count.
void WorkerLoop::open_session(Connection& c) {
    c.set_id((static_cast<uint64_t>(index_) << 48) | ++opened_);
    c.attach_session(protocol_.open(c));
}

// Calls other threads made through ConnHandles (ConnPort), in their order, on this thread.
void WorkerLoop::run_tasks() {
    if (!mailbox_.take_signal()) return;
    if (uint64_t dropped = port_->run()) stats_.handle_dropped.add(dropped);
}

void WorkerLoop::adopt_direct(Connection& c) {
    open_session(c);
    ++direct_adopted_;
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
    if constexpr (Direct) {
        if (c.direct_pending()) adopt_direct(c);
    }
    c.on_event(ev);
}

// The earliest deadline among: the connections' timers, the drain deadline, the end of an accept pause.
// -1 = none (sleep until an event). A connection's timer may come before its real deadline (it moves
// on lazily): the wait then ends early once, and expire_timeouts() re-arms it.
int WorkerLoop::wait_timeout_ms() const {
    int64_t deadline = timers_.earliest_ms();
    if (draining_) deadline = std::min(deadline, drain_deadline_ms_);
    if (first_request_grace_) deadline = std::min(deadline, grace_deadline_ms_);
    if ((accept_pending_ || ring_ != nullptr) && accept_.paused_until_ms() > now_ms_)
        deadline = std::min(deadline, accept_.paused_until_ms());
    if (deadline == Timer::kNever) return -1;
    return static_cast<int>(std::clamp<int64_t>(deadline - now_ms_ + 1, 1, 60'000));
}

// One expiry loop for every deadline. Each timer taken off has expired or re-armed itself later than
// now, so the loop ends.
void WorkerLoop::expire_timeouts() {
    while (Timer* t = timers_.pop_expired(now_ms_)) t->expire(now_ms_);
    if (first_request_grace_ && now_ms_ >= grace_deadline_ms_) {
        first_request_grace_ = false;
        std::vector<Connection*> all;
        for (Connection* c = open_.front(); c != nullptr; c = c->open_hook_.next) all.push_back(c);
        for (Connection* c : all) c->end_if_draining();
    }
    if (draining_ && now_ms_ >= drain_deadline_ms_) {
        while (!open_.empty()) open_.front()->close_now();
    }
}

// Graceful stop: answer what has arrived, and end each connection at its next request boundary (at
// once if it is between requests) as soon as its output is written. A connection that has had no
// answer yet (accepted just before the stop, its first request still on its way) is not between
// requests: it may ask for kFirstRequestGraceMs (at most the drain time-out), so that a client that
// connected to a server about to stop, or to one handing over to its upgrade, is not failed. A request under way may finish;
// its own time-out and the drain deadline bound it. Connections already closing or lingering go on.
void WorkerLoop::begin_drain() {
    draining_ = true;
    close_listener();  // reuseport: stop accepting (clients still in this socket's backlog are reset)
    drain_deadline_ms_ = now_ms_ + cfg_.drain_timeout_ms;
    const int64_t grace = std::min<int64_t>(kFirstRequestGraceMs, cfg_.drain_timeout_ms);
    first_request_grace_ = grace > 0;
    grace_deadline_ms_ = now_ms_ + grace;
    std::vector<Connection*> all;
    for (Connection* c = open_.front(); c != nullptr; c = c->open_hook_.next) all.push_back(c);
    for (Connection* c : all) {
        if (c->is(ConnState::open)) c->read_input();
    }
    reap();
}

// With --handoff direct, also every connection the acceptor registered must have been taken over: its
// first event may still be on its way (the acceptor has stopped by now, so the count is final).
bool WorkerLoop::drained() const {
    return open_.empty() && direct_adopted_ == direct_registered_.load(std::memory_order_acquire);
}

void WorkerLoop::run_scheduled() {
    if (scheduled_.empty()) return;
    std::vector<Connection*> now;
    now.swap(scheduled_);
    for (Connection* c : now) c->resume();
}

void WorkerLoop::reap() noexcept {
    // A connection closed after it was put on the resume list (say, its request time-out fired in the
    // same pass that used up its read budget) must leave the list before it is freed.
    // A session's destructor may close another connection (a proxy closes its other side), which joins
    // the graveyard meanwhile: each round frees what the previous one added, until none is added.
    for (size_t done = 0; done < graveyard_.size();) {
        const auto first = graveyard_.begin() + static_cast<std::ptrdiff_t>(done);
        bool queued = std::any_of(first, graveyard_.end(), [](const Connection* c) { return c->queued(); });
        if (queued) std::erase_if(scheduled_, [](const Connection* c) { return c->is(ConnState::closed); });
        bool listed = std::any_of(first, graveyard_.end(), [](const Connection* c) { return c->send_listed(); });
        if (listed) std::erase_if(to_send_, [](const Connection* c) { return c->is(ConnState::closed); });
        const size_t end = graveyard_.size();
        for (; done < end; ++done) {  // may append: index, not iterator
            Connection* c = graveyard_[done];
            if (c->reap_now()) delete c;  // io_uring, operations in flight: freed with the last
        }
    }
    graveyard_.clear();
}

void WorkerLoop::close_listener() noexcept {
    if (ring_ != nullptr && accept_.fd() >= 0) ring_->cancel_accept();
    accept_.close();
    accept_held_.clear();  // like the backlog, which closing the socket resets
}

void WorkerLoop::close_all() noexcept {
    close_listener();
    port_->shutdown();  // handles say false from now on
    while (!open_.empty()) open_.front()->close_now();
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
                if (!c.direct_pending()) continue;
                // Never served: closed without a session (no protocol_.open() off the worker's thread).
                c.attach_session(nullptr);
                ++direct_adopted_;
                stats_.accepted.add();
                c.close_now();
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
