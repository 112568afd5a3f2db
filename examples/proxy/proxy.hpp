// kqproxy: a TCP proxy on kqserver's handler API. Each client gets one backend, round-robin across the
// configured ones (a counter shared by the workers); a backend that refuses or does not answer within the
// connect time-out is skipped for the next, each tried at most once, and a client for whom none is up
// gets one error line and is closed. Bytes are passed on as they arrive, from the worker's read buffer
// straight into the other side's Conn on the same worker (the outbound connection lives there), with flow
// control both ways and half-closes passed on.
// Thread rules: ProxyProtocol is shared by every worker (its counters are atomic); each client's pair of
// sessions lives on one worker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kq/handler.hpp"

namespace kqproxy {

struct ProxyOptions {
    std::vector<kq::SocketAddress> backends;  // at least one
    std::chrono::milliseconds connect_timeout{1000};
};

// What the sessions count, for tests and the exit log (any thread).
struct ProxyStats {
    std::atomic<uint64_t> forwarded{0};     // clients connected to a backend
    std::atomic<uint64_t> retries{0};       // backends skipped because their connect failed
    std::atomic<uint64_t> unavailable{0};   // clients answered "no backend available"
    std::atomic<uint64_t> pauses{0};        // a side paused because the other's output was congested
    std::atomic<uint64_t> max_buffered{0};  // the most unsent bytes a congested side held when the other paused
};

class ProxyProtocol final : public kq::Protocol {
public:
    explicit ProxyProtocol(ProxyOptions options);
    std::string_view name() const override { return "proxy"; }
    std::unique_ptr<kq::Session> open(kq::Conn& conn) override;

    const ProxyOptions& options() const noexcept { return options_; }
    // The backend a new client tries first: round-robin over all workers' clients.
    size_t next_backend() noexcept;
    ProxyStats& stats() noexcept { return stats_; }

private:
    ProxyOptions options_;
    std::atomic<uint64_t> next_{0};
    ProxyStats stats_;
};

// "HOST:PORT" or "[IPV6]:PORT", HOST a name or a numeric address, resolved now with getaddrinfo (which
// may block: call it before the server starts); the first address it gives. Throws std::invalid_argument
// with a one-line reason.
kq::SocketAddress resolve_backend(const std::string& host_port);

}  // namespace kqproxy
