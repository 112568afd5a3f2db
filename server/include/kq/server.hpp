// Server assembly: listening socket, N workers, one acceptor (or, with AcceptMode::reuseport, one
// SO_REUSEPORT listening socket per worker and no acceptor). The library form of kqserver, used by the
// kqserver binary and by the tests (which run it in-process on port 0).
// Thread rules: construct and run() on one thread; stop(), stop_now(), log_summary(), accept_totals(),
// handoff_full() and the workers' stats from any thread (counters are relaxed atomics; the set of
// workers never changes after construction); the other accessors on the constructing thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kq/dispatch.hpp"
#include "kq/handler.hpp"
#include "kq/net.hpp"
#include "kq/worker_config.hpp"

namespace kq {

class Worker;    // internal (worker/include/kq/worker.hpp, not installed)
class Acceptor;  // internal (acceptor/include/kq/acceptor.hpp, not installed)

// acceptor: one thread accepts and hands connections to the workers (the project's design).
// reuseport: every worker accepts on its own SO_REUSEPORT socket and the kernel spreads clients (nginx's).
enum class AcceptMode { acceptor, reuseport };
bool parse_accept_mode(std::string_view text, AcceptMode& out);
std::string_view accept_mode_name(AcceptMode m);

struct ServerConfig {
    ListenOptions listen;
    int workers = 0;                            // 0 = number of cores
    Dispatch dispatch = Dispatch::round_robin;  // acceptor mode only
    Handoff handoff = Handoff::queue;           // acceptor mode only
    AcceptMode accept = AcceptMode::acceptor;
    size_t max_connections = 0;  // 0 = the fd limit (RLIMIT_NOFILE) minus a reserve for the server's own fds
    WorkerConfig worker;
};

// The default for ServerConfig::max_connections: the soft fd limit minus what the server itself holds.
size_t default_max_connections(int workers);

class Server {
public:
    // Binds and listens at once (so port() is known before run()); throws std::system_error on failure.
    // With a listener (a listening socket inherited by socket activation) it binds nothing: cfg.listen's
    // address, backlog and defer-accept do not apply. With AcceptMode::reuseport the workers then share
    // that one socket, each accepting from it in its own poller (a socket created elsewhere cannot be
    // given SO_REUSEPORT siblings reliably: the kernel allows them only to the same user, and systemd
    // creates it as root for a service that may run as another).
    Server(const ServerConfig& cfg, std::unique_ptr<Protocol> protocol, UniqueFd listener = {});
    // With several inherited listening sockets (an upgrade hands over a reuseport server's one per
    // worker): AcceptMode::reuseport only, worker i accepting from socket i % listeners.size(); throws
    // std::runtime_error when there are more sockets than workers (one would never be accepted from)
    // or several in acceptor mode. An empty vector binds as usual.
    Server(const ServerConfig& cfg, std::unique_ptr<Protocol> protocol, std::vector<UniqueFd> listeners);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Starts the workers, runs the acceptor on the calling thread until stop() (reuseport: waits for it),
    // then drains (or, after stop_now(), stops) and joins the workers; every fd is closed when it returns.
    void run();
    // Graceful: stop accepting (the listening socket is closed), let the workers answer what they have
    // received, flush and close, for at most WorkerConfig::drain_timeout_ms. Any thread.
    void stop() noexcept;
    // Immediate: stop accepting and close every connection now (a second SIGTERM). Any thread.
    void stop_now() noexcept;

    uint16_t port() const noexcept { return port_; }
    const std::string& address() const noexcept { return address_; }
    Backend backend() const noexcept;
    size_t worker_count() const noexcept { return workers_.size(); }
    // Worker i's counters, and its thread's CPU time so far in microseconds (-1 if unknown). Any thread.
    const WorkerStats& worker_stats(size_t i) const;
    int64_t worker_cpu_time_us(size_t i) const noexcept;
    // The worker itself, for the library's own code and tests (include kq/worker.hpp from the build tree).
    const Worker& worker(size_t i) const { return *workers_[i]; }
    AcceptMode accept_mode() const noexcept { return cfg_.accept; }
    // Accept-side counters, summed over the acceptor and (reuseport) the workers. Any thread.
    struct AcceptTotals {
        uint64_t accepted = 0, accept_errors = 0, accept_pauses = 0, limit_pauses = 0, handoff_full = 0;
    };
    AcceptTotals accept_totals() const noexcept;
    // Times the acceptor found worker i's hand-off queue full (0 with reuseport). Any thread.
    uint64_t handoff_full(size_t worker) const noexcept;
    const Protocol& protocol() const noexcept { return *protocol_; }
    // Every distinct listening socket the server accepts from (one, or with reuseport one per worker
    // unless inherited): what an upgrade hands to the new process. Valid until stop(): the acceptor or
    // the workers close them when they stop accepting.
    const std::vector<int>& listening_fds() const noexcept { return listen_fds_; }
    // One info line per worker (connections, bytes, events, waits) and one for the acceptor. Any thread:
    // kqserver logs it on SIGUSR1 while the server runs, and at exit.
    void log_summary() const;

private:
    ServerConfig cfg_;
    std::unique_ptr<Protocol> protocol_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::unique_ptr<Acceptor> acceptor_;       // null with reuseport
    std::atomic<bool> stop_requested_{false};  // reuseport: what run() waits for
    std::atomic<bool> immediate_{false};
    uint16_t port_ = 0;
    std::string address_;
    std::vector<int> listen_fds_;
};

}  // namespace kq
