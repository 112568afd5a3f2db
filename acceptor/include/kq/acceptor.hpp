// The acceptor: owns the listening socket in its own poller (level-triggered), accepts with the shared
// AcceptLoop (a batch per report of the socket), picks a worker by the dispatch policy and hands the fd over: through that worker's mailbox
// (--handoff queue), or by registering it in the worker's poller itself (--handoff direct).
// It never touches a connection after the hand-off.
// Thread rules: run() on one thread (the process's main thread in kqserver); request_stop() and the
// counters (stats(), handoff_full()) from any; handed() as it says.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "kq/accept_loop.hpp"
#include "kq/counter.hpp"
#include "kq/dispatch.hpp"
#include "kq/fd.hpp"
#include "kq/net.hpp"
#include "kq/poller.hpp"
#include "kq/worker_link.hpp"

namespace kq {

class Acceptor {
public:
    // max_connections: at this many open connections the acceptor stops accepting (clients wait in the
    // kernel backlog) and resumes once workers have closed some.
    Acceptor(UniqueFd listen_fd, std::vector<WorkerLink> workers, Dispatch dispatch, Backend backend,
             size_t max_connections, Handoff handoff = Handoff::queue);

    void run();
    void request_stop() noexcept;
    // The accept loop's counters; accept_errors also counts connections --handoff direct could not register.
    const AcceptStats& stats() const noexcept { return stats_; }
    // Times a worker's queue was full when the acceptor tried it, all workers (any thread).
    uint64_t handoff_full() const noexcept { return handoff_full_.get(); }
    // Connections handed to worker i so far (acceptor thread, or any thread after run() returned).
    uint64_t handed(size_t i) const noexcept { return handed_[i]; }
    // Times worker i's queue was full when the acceptor tried it (any thread).
    uint64_t handoff_full(size_t i) const noexcept { return full_per_worker_[i].get(); }

private:
    void watch();
    AcceptLoop::Outcome accept_batch(bool quick);
    bool hand_off(UniqueFd& fd);
    size_t pick() noexcept;
    uint64_t open_connections() const noexcept;
    void retry_pending();
    int wait_timeout_ms() const;

    std::vector<WorkerLink> workers_;
    Dispatch dispatch_;
    Handoff handoff_;
    std::unique_ptr<Poller> poller_;
    std::atomic<bool> stop_{false};
    AcceptStats stats_;
    AcceptLoop accept_{stats_, "accept4"};
    Counter handoff_full_;
    std::vector<uint64_t> handed_;
    std::unique_ptr<Counter[]> full_per_worker_;
    size_t next_ = 0;
    std::deque<UniqueFd> pending_;  // accepted fds no worker queue had room for yet
    bool watching_ = true;          // the listening socket is registered (level-triggered)
    size_t batch_ = 1;              // accepts per report of the listening socket (accept_batch)
    int64_t failed_until_ms_ = 0;   // after an accept4 error, or a failed re-registration: held until then
};

}  // namespace kq
