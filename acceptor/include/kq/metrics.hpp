// Prometheus metrics: the text exposition of a running Server's counters, and a small HTTP endpoint
// (GET /metrics) on its own thread, so scraping costs the workers nothing but their relaxed counters.
// Thread rules: render_metrics() from any thread while the Server exists; MetricsServer's methods from
// the thread that owns it.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "kq/net.hpp"
#include "kq/poller.hpp"
#include "kq/server.hpp"

namespace kq {

// The whole exposition: per-worker series (label worker="i"), acceptor series, process series.
std::string render_metrics(const Server& server);

class MetricsServer {
public:
    // Binds at once (port() is known before start()); throws std::system_error on failure.
    MetricsServer(const Server& server, const ListenOptions& listen);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    void start();
    void stop() noexcept;
    uint16_t port() const noexcept { return port_; }
    const std::string& address() const noexcept { return address_; }

private:
    void run();
    void serve_one(UniqueFd client);

    const Server& server_;
    UniqueFd listen_fd_;
    std::unique_ptr<Poller> poller_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    uint16_t port_;
    std::string address_;
};

}  // namespace kq
