// Prometheus metrics: the text exposition of a running Server's counters, and a small HTTP endpoint
// (GET /metrics; GET /health and /ready for supervisors and load balancers) served by a kq::Worker of its own, so scraping costs the server's workers nothing but
// their relaxed counters, and no client can hold the endpoint or the process: scrapes are served
// concurrently, each request has a whole-request deadline, connections and request bytes are bounded,
// and stop() closes every scrape at once.
// Thread rules: render_metrics() from any thread while the Server exists; MetricsServer's methods from
// the thread that owns it.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "kq/handler.hpp"
#include "kq/net.hpp"
#include "kq/server.hpp"
#include "kq/worker_config.hpp"

namespace kq {

// The whole exposition: per-worker series (label worker="i"), acceptor series, process series.
std::string render_metrics(const Server& server);

struct MetricsConfig {
    // A request must arrive whole this long after its first byte, however slowly it trickles; else 408.
    int request_timeout_ms = 5'000;
    // A connection that sends nothing, or whose client stops reading its answer, is closed after this.
    int idle_timeout_ms = 5'000;
    // After an error answer to a client that may still be sending (431, 400), read and discard this long.
    int linger_ms = 1'000;
    // Open connections at most; more wait in the kernel's backlog until one closes.
    size_t max_connections = 64;
    // Request line and headers at most; 431 above.
    size_t max_request = 8 * 1024;
};

class MetricsServer {
public:
    // Binds at once (port() is known before start()); throws std::system_error on failure.
    MetricsServer(const Server& server, const ListenOptions& listen, const MetricsConfig& cfg = {});
    // On a listening socket of its own (inherited by socket activation).
    MetricsServer(const Server& server, UniqueFd listener, const MetricsConfig& cfg = {});
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    void start();
    // Immediate: closes the listening socket and every scrape under way, waiting on no client.
    void stop() noexcept;
    uint16_t port() const noexcept { return port_; }
    // Its listening socket (an upgrade hands it to the new process). Valid until stop().
    int listening_fd() const noexcept { return listen_fd_; }
    const std::string& address() const noexcept { return address_; }
    // The endpoint's own worker: connections, scrapes answered (requests), request and idle time-outs.
    const WorkerStats& stats() const noexcept;
    // What GET /ready answers: 200 while ready (from the start), 503 once set false (the first SIGTERM,
    // so that a load balancer takes the server out before it stops accepting). GET /health answers 200
    // whenever the endpoint answers at all. Any thread.
    void set_ready(bool ready) noexcept { ready_.store(ready, std::memory_order_relaxed); }

private:
    std::atomic<bool> ready_{true};
    uint16_t port_;
    std::string address_;
    int listen_fd_ = -1;
    std::unique_ptr<Protocol> protocol_;  // outlives the worker, whose sessions refer to it
    std::unique_ptr<Worker> worker_;
};

}  // namespace kq
