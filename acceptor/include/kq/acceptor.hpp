// The acceptor: owns the listening socket in its own poller, drains the backlog with accept4 until
// EAGAIN, picks a worker by the dispatch policy and hands the fd over: through that worker's mailbox
// (--handoff queue), or by registering it in the worker's poller itself (--handoff direct).
// It never touches a connection after the hand-off.
// Thread rules: run() on one thread (the process's main thread in kqserver); request_stop() and stats from any.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "kq/counter.hpp"
#include "kq/fd.hpp"
#include "kq/net.hpp"
#include "kq/poller.hpp"
#include "kq/worker_link.hpp"

namespace kq {

enum class Dispatch { round_robin, least_connections };
bool parse_dispatch(std::string_view text, Dispatch& out);
std::string_view dispatch_name(Dispatch d);

// queue: the fd goes through the worker's spsc mailbox (a wake only if the worker sleeps) and the worker
// registers it. direct: the acceptor registers it in the worker's poller; the kernel event wakes the worker.
enum class Handoff { queue, direct };
bool parse_handoff(std::string_view text, Handoff& out);
std::string_view handoff_name(Handoff h);

struct AcceptorStats {
    Counter accepted, handoff_full, accept_errors, accept_pauses, limit_pauses;
};

class Acceptor {
public:
    // max_connections: at this many open connections the acceptor stops accepting (clients wait in the
    // kernel backlog) and resumes once workers have closed some.
    Acceptor(UniqueFd listen_fd, std::vector<WorkerLink> workers, Dispatch dispatch, Backend backend,
             size_t max_connections, Handoff handoff = Handoff::queue);

    void run();
    void request_stop() noexcept;
    const AcceptorStats& stats() const noexcept { return stats_; }
    // Connections handed to worker i so far (acceptor thread, or any thread after run() returned).
    uint64_t handed(size_t i) const noexcept { return handed_[i]; }
    // Times worker i's queue was full when the acceptor tried it (any thread).
    uint64_t handoff_full(size_t i) const noexcept { return full_per_worker_[i].get(); }

private:
    void drain_backlog();
    bool hand_off(int fd);
    size_t pick() noexcept;
    uint64_t open_connections() const noexcept;
    void retry_pending();
    int wait_timeout_ms() const;

    UniqueFd listen_fd_;
    std::vector<WorkerLink> workers_;
    Dispatch dispatch_;
    Handoff handoff_;
    std::unique_ptr<Poller> poller_;
    std::atomic<bool> stop_{false};
    AcceptorStats stats_;
    std::vector<uint64_t> handed_;
    std::unique_ptr<Counter[]> full_per_worker_;
    size_t next_ = 0;
    std::deque<int> pending_;   // accepted fds no worker queue had room for yet
    std::chrono::steady_clock::time_point paused_until_{};
    AcceptPauseLog pause_log_{"accept4"};
    size_t max_connections_;
    bool at_limit_ = false;
};

}  // namespace kq
