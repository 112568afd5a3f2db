// The worker's thread-confined state and event loop: poller, mailbox, connections, scratch buffer,
// time-outs and graceful drain; with --accept reuseport also its own listening socket.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "conn_list.hpp"
#include "connection.hpp"
#include "kq/accept_loop.hpp"
#include "kq/mailbox.hpp"
#include "kq/net.hpp"
#include "kq/poller.hpp"
#include "kq/worker.hpp"
#include "kq/worker_link.hpp"

namespace kq {

class WorkerLoop final : public DirectRegistrar {
public:
    WorkerLoop(const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats);
    ~WorkerLoop();

    // Worker thread: runs until request_stop(), or until a drain has finished; then closes every
    // connection it still owns.
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
    Backend backend() const noexcept { return poller_->backend(); }

    // Called through Connection (Reply) by sessions, on the worker thread.
    void send(Connection& c, std::span<const char> bytes);
    void close_after_flush(Connection& c);
    void count_requests(uint64_t n) noexcept { stats_.requests.add(n); }

private:
    // worker_loop.cpp: the loop, admission, dispatch of events, time-outs, drain, closing.
    void admit_new();
    void admit(UniqueFd fd);
    void adopt(Connection& c);
    void adopt_direct(Connection& c);
    void collect_unadopted() noexcept;
    // Direct: --handoff direct, where an event may be a connection's first (chosen once per batch).
    template <bool Direct>
    void handle(const PollEvent& ev);
    int wait_timeout_ms() const;
    void expire_timeouts();
    void begin_drain();
    // During a graceful stop: ends an open connection that is between requests.
    void end_if_draining(Connection& c);
    bool drained() const;
    void close_now(Connection& c);
    void reap() noexcept;
    void update_clock() noexcept;

    // worker_accept.cpp (--accept reuseport): this worker's own accept loop.
    bool accept_ready() noexcept;
    void accept_clients();

    // connection_io.cpp: reading, writing, backpressure.
    void read_input(Connection& c);
    void read_open(Connection& c);
    void finish(Connection& c);
    void discard_input(Connection& c);
    void after_data(Connection& c);
    void flush(Connection& c);
    bool write_some(Connection& c, std::span<const char> bytes, size_t& done);
    void schedule_read(Connection& c);
    void run_scheduled();
    void touch(Connection& c) noexcept;

    using OpenList = IntrusiveList<Connection, &Connection::lru_>;
    using MidList = IntrusiveList<Connection, &Connection::mid_>;
    using LingerList = IntrusiveList<Connection, &Connection::linger_>;

    WorkerConfig cfg_;
    Protocol& protocol_;
    WorkerStats& stats_;
    std::unique_ptr<Poller> poller_;
    Mailbox mailbox_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> drain_requested_{false};
    bool draining_ = false;
    int64_t drain_deadline_ms_ = 0;
    int64_t now_ms_ = 0;                   // coarse clock, read once per loop iteration
    std::vector<char> scratch_;
    std::vector<PollEvent> events_;
    std::vector<Connection*> scheduled_;   // connections with input no edge will announce again
    std::vector<Connection*> graveyard_;   // closed during this batch; freed after it
    OpenList open_;                        // open connections, least recently active first
    MidList mid_request_;                  // connections with a request under way, oldest first
    LingerList lingering_;                 // half-closed connections discarding input, oldest first

    // --handoff direct: connections the acceptor registered, and those this worker has taken over.
    std::atomic<uint64_t> direct_registered_{0};
    uint64_t direct_adopted_ = 0;

    // --accept reuseport: the listening socket, its limit and pauses (its udata is &accept_).
    AcceptLoop accept_{stats_.accept, "worker accept4"};
    bool accept_pending_ = false;          // the backlog may hold clients: accept before sleeping
};

}  // namespace kq
