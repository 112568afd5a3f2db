// A worker thread: owns one poller, the connections handed to it and their memory. It registers each
// new fd once (READ|WRITE, edge-triggered, udata = Connection*) and serves events in batches.
// Thread rules: the constructor, start(), join() and stats() run on the owner (server) thread;
// request_stop() and link() from any thread; everything else only on the worker's own thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "kq/counter.hpp"
#include "kq/handler.hpp"
#include "kq/mailbox.hpp"
#include "kq/poller.hpp"
#include "kq/worker_link.hpp"

namespace kq {

struct WorkerConfig {
    Backend backend = Backend::automatic;
    int batch = 256;                   // events taken per wait
    bool tcp_nodelay = true;
    size_t read_buffer = 64 * 1024;    // per-worker scratch buffer; idle connections hold none
    size_t reads_per_event = 16;       // then the connection yields to others and is resumed next loop
    size_t high_water = 1 << 20;       // stop reading a client whose unsent output exceeds this
    size_t low_water = 256 * 1024;     // resume reading once its output drains below this
};

struct WorkerStats {
    Counter accepted, closed, errors, bytes_read, bytes_written, events, waits, wakeups;
};

class WorkerLoop;  // the worker's thread-confined state (worker/src/worker_loop.hpp)

class Worker {
public:
    Worker(int id, const WorkerConfig& cfg, Protocol& protocol);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    void request_stop() noexcept;
    void join();

    int id() const noexcept { return id_; }
    WorkerLink link() noexcept;
    const WorkerStats& stats() const noexcept { return stats_; }
    Backend backend() const noexcept;
    // Any thread: the worker thread's CPU time so far, in microseconds (-1 before start or if unknown).
    int64_t cpu_time_us() const noexcept;

private:
    int id_;
    WorkerStats stats_;
    std::unique_ptr<WorkerLoop> loop_;
    std::thread thread_;
    std::atomic<uint64_t> native_handle_{0};
};

}  // namespace kq
