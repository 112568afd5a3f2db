// A worker thread: owns one poller, the connections handed to it and their memory. It registers each
// new fd once (READ|WRITE, edge-triggered, udata = Connection*) and serves events in batches.
// Not installed: users see a worker only through kq::Server (its configuration and counters are in
// kq/worker_config.hpp).
// Thread rules: the constructor, start(), join() and stats() run on the owner (server) thread;
// request_stop() and link() from any thread; everything else only on the worker's own thread.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "kq/accept_loop.hpp"
#include "kq/counter.hpp"
#include "kq/fd.hpp"
#include "kq/handler.hpp"
#include "kq/mailbox.hpp"
#include "kq/poller.hpp"
#include "kq/worker_config.hpp"
#include "kq/worker_link.hpp"

namespace kq {

class WorkerLoop;  // the worker's thread-confined state (worker/src/worker_loop.hpp)

class Worker {
public:
    Worker(int id, const WorkerConfig& cfg, Protocol& protocol);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // --accept reuseport, before start(): the worker accepts on its own listening socket.
    void listen_on(UniqueFd listener, size_t max_connections);
    void start();
    // Immediate stop: every connection is closed.
    void request_stop() noexcept;
    // Graceful stop: the worker answers what it has received, flushes, closes each connection once its
    // output is written, and exits when none is left or after drain_timeout_ms. Any thread.
    void request_drain() noexcept;
    // Waits for the thread, then closes whatever connections it still held. Owner thread; call once the
    // acceptor has stopped handing connections over.
    void join();

    int id() const noexcept { return id_; }
    WorkerLink link() noexcept;
    const WorkerStats& stats() const noexcept { return stats_; }
    Backend backend() const noexcept;
    // Any thread: io_uring, the IORING_SETUP_* flags its ring was made with once the thread has made it
    // (the plain-ring fallback lacks SINGLE_ISSUER and DEFER_TASKRUN); 0 on the readiness backends.
    unsigned uring_setup_flags() const noexcept;
    // Any thread: the worker thread's CPU time so far, in microseconds (-1 before start or if unknown).
    int64_t cpu_time_us() const noexcept;

private:
    int id_;
    WorkerStats stats_;
    std::unique_ptr<WorkerLoop> loop_;
    std::thread thread_;
    std::atomic<uint64_t> native_handle_{0};
};

// What Backend::automatic becomes for a worker with this config: io_uring where the kernel gives a ring
// SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1) and the config needs no Poller (no --handoff direct, no
// poller_factory); otherwise the first readiness backend built (epoll on Linux).
Backend automatic_backend(const WorkerConfig& cfg);

// Empty when this machine can run a worker on backend b now; otherwise why not, in one line (a backend
// not built, or io_uring refused by the kernel: io_uring_disabled, a seccomp filter). For tests and
// start-up checks; Server itself fails with the same reason.
std::string backend_unavailable(Backend b);

}  // namespace kq
