// A worker's settings and counters: the part of the worker a user of kq::Server configures and reads.
// Thread rules: WorkerConfig is copied into each worker before it starts; WorkerStats are written by
// their worker only and read from any thread (relaxed counters).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "kq/accept_stats.hpp"
#include "kq/counter.hpp"
#include "kq/poller.hpp"

namespace kq {

struct WorkerConfig {
    Backend backend = Backend::automatic;
    int batch = 256;  // events taken per wait
    // --backend io_uring: each worker's provided receive buffers (a power of two; rounded down) and
    // their size. A multishot receive that finds none left ends and is armed again: nothing is lost.
    unsigned uring_buffers = 512;
    size_t uring_buffer_size = 8 * 1024;
    // Tests only (no flag sets it): make each ring as on a kernel that refuses SINGLE_ISSUER and
    // DEFER_TASKRUN (before 6.1), so that the plain-ring fallback runs where the kernel has them.
    bool uring_plain_ring = false;
    bool tcp_nodelay = true;
    size_t read_buffer = 64 * 1024;   // per-worker scratch buffer; idle connections hold none
    size_t reads_per_event = 16;      // then the connection yields to others and is resumed next loop
    size_t high_water = 1 << 20;      // stop reading a client whose unsent output exceeds this
    size_t low_water = 256 * 1024;    // resume reading once its output drains below this (and on_drained())
    size_t max_input = 1 << 20;       // input a session may leave unconsumed; past it the connection closes
    int idle_timeout_ms = 60'000;     // close a connection with no traffic for this long (0 = never)
    int request_timeout_ms = 10'000;  // a request begun but unfinished this long: on_request_timeout (0 = never)
    int drain_timeout_ms = 10'000;    // graceful stop: connections still owing output are cut after this
    int linger_ms = 2'000;            // lingering close: read and discard a closing client's input this long (0 = off)
    // Read a new connection before registering it: worth it when its first bytes are known to be there
    // (the Server sets it when the listener defers accepts); otherwise that read mostly finds nothing.
    bool read_on_admit = false;
    // --handoff direct: the acceptor registers connections in this worker's poller itself, so each
    // event may be the first of a connection the worker has not adopted yet. Off, events need no check.
    bool direct_handoff = false;
    // Makes the worker's poller instead of make_poller(backend) when set; called once, on the owner
    // thread, with `backend`. A seam for tests and fuzzing (a scripted or decorated poller).
    std::function<std::unique_ptr<Poller>(Backend)> poller_factory;
};

// Events returned per wait, in power-of-two buckets: bucket i counts waits that returned at most 2^i
// events (bucket 0: 0 or 1), the last bucket everything above. Written by the worker only.
class EventsPerWait {
public:
    static constexpr size_t kBuckets = 12;  // ..1, 2, 4, ... 1024, more
    void record(uint64_t n) noexcept {
        size_t i = n <= 1 ? 0 : static_cast<size_t>(std::bit_width(n - 1));
        buckets_[i < kBuckets ? i : kBuckets - 1].add();
        sum_.add(n);
    }
    uint64_t bucket(size_t i) const noexcept { return buckets_[i].get(); }
    static uint64_t bucket_bound(size_t i) noexcept { return uint64_t{1} << i; }
    uint64_t sum() const noexcept { return sum_.get(); }

private:
    Counter buckets_[kBuckets];
    Counter sum_;
};

struct WorkerStats {
    Counter accepted, closed, errors, bytes_read, bytes_written, requests, events, waits, wakeups;
    Counter idle_timeouts, request_timeouts;
    // Connections closed because their session held more than max_input unconsumed; ConnHandle calls
    // that arrived after their connection closed.
    Counter input_overflows, handle_dropped;
    // Outbound connections (Conn::connect) made, and those that failed or timed out. `closed` counts
    // accepted connections only (the connection limit compares it with those accepted): outbound ones
    // are counted apart, when started and when closed (connected or not).
    Counter connects, connect_failures, outbound, outbound_closed;
    // --accept reuseport only: this worker's own accept loop (accepted, accept4 failures, pauses).
    AcceptStats accept;
    EventsPerWait events_per_wait;
};

}  // namespace kq
