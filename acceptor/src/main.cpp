// kqserver: the command-line server. Parses flags, starts the server with its signal thread (a clean
// stop on SIGTERM, SIGINT or SIGQUIT), and logs the per-worker summary at exit.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <spdlog/spdlog.h>

#include "kq/http.hpp"
#include "kq/log.hpp"
#include "kq/metrics.hpp"
#include "kq/server.hpp"
#include "signals.hpp"

namespace {

struct Options {
    kq::ServerConfig server;
    std::string protocol = "echo";
    std::string backend = "auto";
    std::string dispatch = "round-robin";
    std::string handoff = "queue";
    std::string accept = "acceptor";
    int block_ms = 0;
    std::string defer_accept = "auto";
    std::string log_level = "info";
    kq::HttpOptions http;
    int metrics_port = -1;
    double idle_timeout = 60, header_timeout = 10, drain_timeout = 10, linger = 2;  // seconds
};

std::string joined(std::span<const std::string_view> names) {
    std::string s;
    for (auto n : names) s += (s.empty() ? "" : "|") + std::string(n);
    return s;
}

void add_flags(CLI::App& app, Options& o) {
    auto& s = o.server;
    auto backends = kq::built_backends();
    std::string built = "auto";
    for (auto b : backends) built += "|" + std::string(kq::backend_name(b));
    app.add_option("--host", s.listen.host, "Address to listen on (IPv4 or IPv6, numeric or name)")->capture_default_str();
    app.add_option("--port", s.listen.port, "TCP port; 0 picks a free one (the bound address is printed on stdout)")
        ->capture_default_str();
    app.add_option("--workers", s.workers, "Worker threads, each with its own poller; 0 = number of cores")
        ->check(CLI::Range(0, 1024))->capture_default_str();
    auto protocols = kq::builtin_protocol_names();
    app.add_option("--protocol", o.protocol, "Protocol: " + joined(protocols))
        ->check(CLI::IsMember(std::vector<std::string>(protocols.begin(), protocols.end())))->capture_default_str();
    app.add_option("--backend", o.backend, "Event backend built into this binary: " + built)
        ->check(CLI::IsMember(std::vector<std::string>{"auto", "epoll", "kqueue"}))->capture_default_str();
    app.add_option("--dispatch", o.dispatch, "How the acceptor picks a worker: round-robin|least-connections")
        ->check(CLI::IsMember(std::vector<std::string>{"round-robin", "least-connections"}))->capture_default_str();
    app.add_option("--handoff", o.handoff,
                   "How the acceptor gives a worker a connection: queue (spsc mailbox; the worker registers "
                   "the fd) | direct (the acceptor registers it in the worker's kqueue/epoll itself)")
        ->check(CLI::IsMember(std::vector<std::string>{"queue", "direct"}))->capture_default_str();
    app.add_option("--accept", o.accept,
                   "Who accepts: acceptor (one thread hands connections to the workers) | reuseport (each "
                   "worker accepts on its own SO_REUSEPORT socket, nginx's model; --dispatch and --handoff "
                   "then do not apply)")
        ->check(CLI::IsMember(std::vector<std::string>{"acceptor", "reuseport"}))->capture_default_str();
    app.add_option("--block-ms", o.block_ms,
                   "Demonstration only: the handler sleeps this many ms per read before answering (the seed's "
                   "sleep(4)), stalling every connection on its worker; 0 = off")
        ->check(CLI::Range(0, 60'000))->capture_default_str();
    app.add_option("--batch", s.worker.batch, "Events a worker takes per wait (a batch bound, not a socket limit)")
        ->check(CLI::Range(1, 65536))->capture_default_str();
    app.add_option("--defer-accept", o.defer_accept,
                   "auto | SECONDS: accept a client only once its first bytes have arrived (TCP_DEFER_ACCEPT, "
                   "Linux), so the worker reads and answers it at once and a connection that closes after one "
                   "answer never enters the poller; a silent client is accepted after about SECONDS. 0 = accept "
                   "at once. auto = 1 for http (a client sends its request right after connecting), 0 for the "
                   "others (their clients may hold silent connections)")
        ->check(CLI::IsMember(std::vector<std::string>{"auto"}) | CLI::Range(0, 3600))->capture_default_str();
    app.add_option("--backlog", s.listen.backlog, "listen() backlog (the kernel caps it at net.core.somaxconn)")
        ->check(CLI::Range(1, 1 << 20))->capture_default_str();
    app.add_option("--tcp-nodelay", s.worker.tcp_nodelay, "Disable Nagle on client sockets (true|false)")
        ->capture_default_str();
    app.add_option("--max-header", o.http.max_header, "http: largest request line + headers in bytes (431 above)")
        ->check(CLI::Range(size_t{256}, size_t{1} << 20))->capture_default_str();
    app.add_option("--max-body", o.http.max_body, "http: largest request body in bytes, read and discarded (413 above)")
        ->check(CLI::Range(size_t{0}, size_t{1} << 40))->capture_default_str();
    app.add_option("--metrics-port", o.metrics_port,
                   "Serve Prometheus metrics at GET /metrics on this port of --host (0 = a free port, printed "
                   "on stdout as 'metrics HOST:PORT'); off by default")
        ->check(CLI::Range(0, 65535));
    app.add_option("--max-connections", s.max_connections,
                   "Open connections at most; above it clients wait in the kernel backlog. 0 = fd limit minus a reserve")
        ->capture_default_str();
    app.add_option("--idle-timeout", o.idle_timeout, "Seconds without traffic before a connection is closed (0 = never)")
        ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
    app.add_option("--header-timeout", o.header_timeout,
                   "Seconds a request may take to arrive once begun (http: 408, then close; slowloris guard; 0 = never)")
        ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
    app.add_option("--drain-timeout", o.drain_timeout,
                   "On SIGTERM, SIGINT or SIGQUIT: seconds to finish received requests and flush before closing (a second one: at once)")
        ->check(CLI::Range(0.0, 86400.0))->capture_default_str();
    app.add_option("--linger", o.linger,
                   "Seconds to read and discard a client's input after answering it with a close while it is "
                   "still sending (lingering close, so it sees the answer, e.g. 413, and not a reset; 0 = off)")
        ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
    app.add_option("--high-water", s.worker.high_water, "Stop reading a client whose unsent output exceeds these bytes")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 32))->capture_default_str();
    app.add_option("--low-water", s.worker.low_water, "Resume reading it once its unsent output is below these bytes")
        ->check(CLI::Range(size_t{0}, size_t{1} << 32))->capture_default_str();
    app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error|off")
        ->check(CLI::IsMember(std::vector<std::string>(std::begin(kq::kLogLevels), std::end(kq::kLogLevels))))
        ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"kqserver: multi-threaded edge-triggered TCP server (acceptor thread + N workers, each with "
                 "its own kqueue/epoll)"};
    Options o;
    add_flags(app, o);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kqserver: " << e.what() << " (see --help)\n";
        return 2;
    }
    if (o.server.worker.low_water > o.server.worker.high_water) {
        std::cerr << "kqserver: --low-water " << o.server.worker.low_water << " is above --high-water "
                  << o.server.worker.high_water << " (see --help)\n";
        return 2;
    }
    auto to_ms = [](double seconds) { return static_cast<int>(seconds * 1000); };
    o.server.worker.idle_timeout_ms = to_ms(o.idle_timeout);
    o.server.worker.request_timeout_ms = to_ms(o.header_timeout);
    o.server.worker.drain_timeout_ms = to_ms(o.drain_timeout);
    o.server.worker.linger_ms = to_ms(o.linger);
    o.server.listen.defer_accept_s = o.defer_accept == "auto" ? (o.protocol == "http" ? 1 : 0) : std::stoi(o.defer_accept);
    kq::setup_logging(o.log_level);
    kq::parse_backend(o.backend, o.server.worker.backend);
    kq::parse_dispatch(o.dispatch, o.server.dispatch);
    kq::parse_handoff(o.handoff, o.server.handoff);
    kq::parse_accept_mode(o.accept, o.server.accept);

    kq::SignalThread::block_signals();  // before any thread starts, so all inherit the mask

    std::unique_ptr<kq::Server> server;
    try {
        auto protocol = o.protocol == "http" ? kq::make_http_protocol(o.http) : kq::make_builtin_protocol(o.protocol);
        if (o.block_ms > 0)
            protocol = kq::make_blocking_protocol(std::move(protocol), std::chrono::milliseconds(o.block_ms));
        server = std::make_unique<kq::Server>(o.server, std::move(protocol));
    } catch (const std::invalid_argument& e) {
        std::cerr << "kqserver: --backend " << o.backend << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kqserver: " << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<kq::MetricsServer> metrics;
    if (o.metrics_port >= 0) {
        try {
            kq::ListenOptions mo = o.server.listen;
            mo.port = static_cast<uint16_t>(o.metrics_port);
            mo.defer_accept_s = 0;
            metrics = std::make_unique<kq::MetricsServer>(*server, mo);
        } catch (const std::exception& e) {
            std::cerr << "kqserver: --metrics-port " << o.metrics_port << ": " << e.what() << "\n";
            return 1;
        }
    }
    std::printf("listening %s\n", server->address().c_str());
    if (metrics) std::printf("metrics %s\n", metrics->address().c_str());
    std::fflush(stdout);
    spdlog::info("kqserver {}: backend {}, {} workers, accept {}, dispatch {}, handoff {}, protocol {}, batch {}, "
                 "defer-accept {} s{}",
                 server->address(), kq::backend_name(server->backend()), server->worker_count(), o.accept,
                 o.dispatch, o.handoff, o.protocol, o.server.worker.batch, o.server.listen.defer_accept_s,
                 o.block_ms > 0 ? fmt::format(", blocking {} ms per read", o.block_ms) : std::string());

    {
        kq::SignalThread signals(*server);
        if (metrics) metrics->start();
        server->run();
        if (metrics) metrics->stop();
    }
    server->log_summary();
    return 0;
}
