// The worker's event loop: scheduling only. It admits connections, waits on its poller, dispatches each
// event to its connection, runs the resume list and the expired deadlines, drains on a graceful stop and
// frees what closed; the connections do their own I/O (connection.hpp) through WorkerContext. With
// --accept reuseport it also accepts on its own listening socket (worker_accept.cpp).
// Thread rules: request_stop(), request_drain() and register_direct() from any thread; listen_on() and
// close_all() as noted; everything else on the worker's thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <vector>

#include "connection.hpp"
#include "kq/accept_loop.hpp"
#include "kq/mailbox.hpp"
#include "kq/net.hpp"
#include "kq/poller.hpp"
#include "kq/worker.hpp"
#include "kq/worker_link.hpp"
#include "uring_engine.hpp"
#include "worker_context.hpp"

namespace kq {

// Built on the WorkerContext its connections see (a private base: the loop's own members use it directly).
class WorkerLoop final : public DirectRegistrar, private WorkerContext {
public:
    WorkerLoop(int index, const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats);
    ~WorkerLoop();

    // Worker thread: runs until request_stop(), or until a drain has finished; then closes every
    // connection it still owns.
    // Worker thread, before run(): what must exist before clients arrive (the io_uring ring). Throws.
    void prepare();
    void run();
    // Any thread.
    void request_stop() noexcept;
    void request_drain() noexcept;
    // Closes every connection and queued fd. The worker thread at the end of run(); the owner thread
    // after joining it.
    void close_all() noexcept;
    Mailbox& mailbox() noexcept { return mailbox_; }
    // Acceptor thread (--handoff direct): registers the connection in this worker's poller; the worker
    // adopts it, and opens its session, on its first event.
    bool register_direct(UniqueFd fd) noexcept override;
    // Owner thread, before run() (--accept reuseport): accept on this socket, holding at most
    // max_connections open connections.
    void listen_on(UniqueFd listener, size_t max_connections);
    Backend backend() const noexcept { return poller_ ? poller_->backend() : Backend::io_uring; }
    unsigned uring_setup_flags() const noexcept { return uring_ ? uring_->setup_flags() : 0; }

private:
    // worker_loop.cpp: the loop, admission, dispatch of events, deadlines, drain, freeing.
    void admit_new();
    void admit(UniqueFd fd);
    void adopt(Connection& c);
    void adopt_direct(Connection& c);
    void open_session(Connection& c);
    void run_tasks();
    void collect_unadopted() noexcept;
    // Direct: --handoff direct, where an event may be a connection's first (chosen once per batch).
    template <bool Direct>
    void handle(const PollEvent& ev);
    int wait_timeout_ms() const;
    void expire_timeouts();
    void begin_drain();
    bool drained() const;
    void run_scheduled();
    void reap() noexcept;
    void update_clock() noexcept;

    // worker_accept.cpp (--accept reuseport): this worker's own accept loop.
    bool accept_ready() noexcept;
    void accept_clients();
    // io_uring: a multishot accept instead of readiness and accept4.
    void ring_arm_accept();
    void ring_accepted();
    uint64_t open_connections() const noexcept;
    void close_listener() noexcept;
    Waker& waker() noexcept { return poller_ ? static_cast<Waker&>(*poller_) : *uring_; }

    Protocol& protocol_;
    std::unique_ptr<Poller> poller_;      // readiness backends (epoll, kqueue)
    std::unique_ptr<UringEngine> uring_;  // the completion backend (io_uring); its ring exists while run() runs
    Mailbox mailbox_;
    std::atomic<bool> stop_{false};
    bool prepared_ = false;  // prepare() has run (on the worker thread)
    std::atomic<bool> drain_requested_{false};
    int64_t drain_deadline_ms_ = 0;
    int64_t grace_deadline_ms_ = 0;  // the end of first_request_grace_
    std::vector<PollEvent> events_;

    // --handoff direct: connections the acceptor registered, and those this worker has taken over.
    std::atomic<uint64_t> direct_registered_{0};
    uint64_t direct_adopted_ = 0;

    // --accept reuseport: the listening socket, its limit and pauses (its udata is &accept_).
    // Named in its log lines after what accepts: accept4, or the ring's multishot accept (io_uring).
    AcceptLoop accept_{stats_.accept, cfg_.backend == Backend::io_uring ? "worker io_uring accept" : "worker accept4"};
    bool accept_pending_ = false;  // the backlog may hold clients: accept before sleeping
    // io_uring: fds the multishot accept took while the limit held (the kernel accepts before the
    // cancel takes effect); admitted, oldest first, as connections close. Closed with the listener.
    std::deque<UniqueFd> accept_held_;
};

}  // namespace kq
