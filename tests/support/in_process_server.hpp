// The one in-process server of the tests: a kq::Server on 127.0.0.1:0 on its own thread, built from a
// ServerConfig (backend, workers, accept mode and hand-off, time-outs) and a protocol (a built-in one by
// name, or one the test built), with the workers' counters summed for assertions.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <thread>

#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#endif

#include <gtest/gtest.h>

#include "kq/protocols.hpp"
#include "kq/server.hpp"
#include "kq/worker.hpp"

namespace kq::test {

// Polls until pred() holds or timeout_ms passes; returns pred()'s last value. For state another thread
// changes with no event a test can wait on (a worker's counters); never a fixed sleep.
template <class Pred>
bool eventually(Pred pred, int timeout_ms = 20'000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// KQ_TEST_URING_PLAIN_RING=1 in the environment (a second ctest run of a suite): every io_uring worker of
// a RunningServer makes its ring as on a kernel that refuses SINGLE_ISSUER and DEFER_TASKRUN
// (WorkerConfig::uring_plain_ring), and the server's stop checks that each one really got a plain ring.
inline bool uring_plain_ring_forced() {
    static const bool forced = [] {
        const char* v = std::getenv("KQ_TEST_URING_PLAIN_RING");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    return forced;
}

// The setup flags each io_uring worker of s got match what was asked: with uring_plain_ring, a ring
// (flags not 0) without SINGLE_ISSUER and DEFER_TASKRUN. After the workers have run.
inline void expect_uring_rings_as_configured(const Server& s, bool plain) {
#ifdef IORING_SETUP_DEFER_TASKRUN
    if (!plain) return;
    for (size_t i = 0; i < s.worker_count(); ++i) {
        if (s.worker(i).backend() != Backend::io_uring) continue;
        const unsigned flags = s.worker(i).uring_setup_flags();
        EXPECT_NE(flags, 0u) << "worker " << i << " never made its ring";
        EXPECT_EQ(flags & (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN), 0u)
            << "worker " << i << ": the plain-ring fallback was asked for, and not taken";
    }
#else
    (void)s;
    (void)plain;
#endif
}

// One worker counter summed over all of a server's workers, e.g. worker_total(srv, &WorkerStats::accepted).
inline uint64_t worker_total(const Server& s, const Counter WorkerStats::*field) {
    uint64_t sum = 0;
    for (size_t i = 0; i < s.worker_count(); ++i) sum += (s.worker(i).stats().*field).get();
    return sum;
}

// Runs a kq::Server on 127.0.0.1:0 on its own thread (2 workers unless the config says otherwise); the
// destructor stops it and joins (every test thereby ends by checking that shutdown completes). After
// stop() the workers' counters are final.
class RunningServer {
public:
    explicit RunningServer(ServerConfig cfg, std::string_view protocol = "echo")
        : plain_(cfg.worker.uring_plain_ring || uring_plain_ring_forced()),
          server_(std::make_unique<Server>(with_defaults(cfg), make_builtin_protocol(protocol))),
          thread_([this] { run(); }) {}
    // A protocol built by the test, e.g. make_http_protocol() with non-default options.
    RunningServer(ServerConfig cfg, std::unique_ptr<Protocol> protocol)
        : plain_(cfg.worker.uring_plain_ring || uring_plain_ring_forced()),
          server_(std::make_unique<Server>(with_defaults(cfg), std::move(protocol))), thread_([this] { run(); }) {}
    // The default config with the test's protocol.
    explicit RunningServer(std::unique_ptr<Protocol> protocol) : RunningServer(ServerConfig{}, std::move(protocol)) {}
    ~RunningServer() { stop(); }
    void stop() {
        if (!thread_.joinable()) return;
        server_->stop();
        thread_.join();
        expect_uring_rings_as_configured(*server_, plain_);
    }
    // Graceful stop that must complete within ms. A server that hangs cannot be joined or destroyed, so
    // the test process reports it and exits at once rather than wait for ctest's time-out.
    void stop_within(int ms) {
        server_->stop();
        if (!eventually([this] { return finished_.load(); }, ms)) {
            std::fprintf(stderr, "FAILED: the server did not stop within %d ms of its graceful stop\n", ms);
            std::fflush(stderr);
            std::_Exit(EXIT_FAILURE);
        }
        thread_.join();
        expect_uring_rings_as_configured(*server_, plain_);
    }
    // Whether every worker is running with all the fds it holds while it runs: an io_uring worker makes
    // its ring on its own thread once run() starts it. A test that counts the process's fds takes its
    // baseline once this holds.
    bool started() const {
        for (size_t i = 0; i < server_->worker_count(); ++i) {
            const Worker& w = server_->worker(i);
            if (server_->worker_cpu_time_us(i) < 0) return false;
            if (w.backend() == Backend::io_uring && w.uring_setup_flags() == 0) return false;
        }
        return true;
    }
    Server& server() { return *server_; }
    uint16_t port() const { return server_->port(); }
    // Summed over the workers (any thread; final after stop()).
    uint64_t total(const Counter WorkerStats::*field) const { return worker_total(*server_, field); }
    uint64_t accepted() const { return total(&WorkerStats::accepted); }
    uint64_t bytes_read() const { return total(&WorkerStats::bytes_read); }
    uint64_t bytes_written() const { return total(&WorkerStats::bytes_written); }

private:
    void run() {
        server_->run();
        finished_.store(true);
    }
    static ServerConfig with_defaults(ServerConfig cfg) {
        if (uring_plain_ring_forced()) cfg.worker.uring_plain_ring = true;
        cfg.listen.host = "127.0.0.1";
        cfg.listen.port = 0;
        if (cfg.workers == 0) cfg.workers = 2;
        return cfg;
    }
    bool plain_;  // a plain ring was asked for (before server_, whose workers it concerns)
    std::unique_ptr<Server> server_;
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

}  // namespace kq::test
