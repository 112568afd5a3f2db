// The worker's thread-confined state and event loop: poller, mailbox, connections, scratch buffer.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "connection.hpp"
#include "kq/mailbox.hpp"
#include "kq/poller.hpp"
#include "kq/worker.hpp"

namespace kq {

class WorkerLoop {
public:
    WorkerLoop(const WorkerConfig& cfg, Protocol& protocol, WorkerStats& stats);
    ~WorkerLoop();

    // Worker thread: runs until request_stop(), then closes every connection it owns.
    void run();
    // Any thread.
    void request_stop() noexcept;
    Mailbox& mailbox() noexcept { return mailbox_; }
    Backend backend() const noexcept { return poller_->backend(); }

    // Called through Connection (Reply) by sessions, on the worker thread.
    void send(Connection& c, std::span<const char> bytes);
    void close_after_flush(Connection& c);
    void count_requests(uint64_t n) noexcept { stats_.requests.add(n); }

private:
    void admit_new();
    void admit(int fd);
    void handle(const PollEvent& ev);
    void read_input(Connection& c);
    void flush(Connection& c);
    bool write_some(Connection& c, std::span<const char> bytes, size_t& done);
    void schedule_read(Connection& c);
    void run_scheduled();
    void close_now(Connection& c);
    void reap() noexcept;
    void close_all() noexcept;

    WorkerConfig cfg_;
    Protocol& protocol_;
    WorkerStats& stats_;
    std::unique_ptr<Poller> poller_;
    Mailbox mailbox_;
    std::atomic<bool> stop_{false};
    std::vector<char> scratch_;
    std::vector<PollEvent> events_;
    std::vector<Connection*> scheduled_;   // connections with input no edge will announce again
    std::vector<Connection*> graveyard_;   // closed during this batch; freed after it
    Connection* open_ = nullptr;           // head of the list of open connections
};

}  // namespace kq
