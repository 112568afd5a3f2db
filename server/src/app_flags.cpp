// The flags every server binary shares (kq/app.hpp): definitions with help, defaults and checks (the
// rules of kq/cli_checks.hpp), then the checks that span flags and the conversion into a ServerConfig.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "config_file.hpp"
#include "kq/app.hpp"
#include "kq/cli_checks.hpp"
#include "kq/log.hpp"
#include "signals.hpp"

namespace kq {
namespace {

// The largest --max-connections: far above any fd limit, and small enough that splitting it over the
// workers (--accept reuseport) cannot overflow.
constexpr uint64_t kMaxConnections = uint64_t{1} << 30;
// The longest flag error printed, values quoted in it included.
constexpr size_t kMaxErrorLine = 400;

CLI::IsMember one_of(std::vector<std::string> names) { return CLI::IsMember(std::move(names)); }

void add_model_flags(CLI::App& app, AppOptions& o) {
    auto& s = o.server;
    std::string built = "auto";
    for (auto b : built_backends()) built += "|" + std::string(backend_name(b));
    app.add_option("--host", s.listen.host, "Address to listen on (IPv4 or IPv6, numeric or name)")
        ->capture_default_str();
    app.add_option("--port", s.listen.port, "TCP port; 0 picks a free one (the bound address is printed on stdout)")
        ->check(whole_number_check(0, 65535))
        ->capture_default_str();
    app.add_option("--workers", s.workers, "Worker threads, each with its own poller; 0 = number of cores")
        ->check(whole_number_check(0, 1024))
        ->capture_default_str();
    app.add_option("--backend", o.backend,
                   "Event backend built into this binary: " + built +
                       ". auto = io_uring where it is built and the kernel gives it SINGLE_ISSUER and "
                       "DEFER_TASKRUN (Linux 6.1+), unless --handoff direct; otherwise epoll (kqueue on BSD)")
        ->check(one_of({"auto", "epoll", "kqueue", "io_uring"}))
        ->capture_default_str();
    app.add_option("--dispatch", o.dispatch, "How the acceptor picks a worker: round-robin|least-connections")
        ->check(one_of({"round-robin", "least-connections"}))
        ->capture_default_str();
    app.add_option("--handoff", o.handoff,
                   "How the acceptor gives a worker a connection: queue (spsc mailbox; the worker registers "
                   "the fd) | direct (the acceptor registers it in the worker's kqueue/epoll itself)")
        ->check(one_of({"queue", "direct"}))
        ->capture_default_str();
    app.add_option("--accept", o.accept,
                   "Who accepts: acceptor (one thread hands connections to the workers) | reuseport (each "
                   "worker accepts on its own SO_REUSEPORT socket, nginx's model; --dispatch and --handoff "
                   "then do not apply)")
        ->check(one_of({"acceptor", "reuseport"}))
        ->capture_default_str();
    app.add_option("--batch", s.worker.batch, "Events a worker takes per wait (a batch bound, not a socket limit)")
        ->check(whole_number_check(1, 65536))
        ->capture_default_str();
    app.add_option("--defer-accept", o.defer_accept,
                   "auto | SECONDS: accept a client only once its first bytes have arrived (TCP_DEFER_ACCEPT, "
                   "Linux), so the worker reads and answers it at once and a connection that closes after one "
                   "answer never enters the poller; a silent client is accepted after about SECONDS. 0 = accept "
                   "at once. auto = 1 for http (a client sends its request right after connecting), 0 for the "
                   "others (their clients may hold silent connections)")
        ->check(one_of({"auto"}) | whole_number_check(0, 3600))
        ->capture_default_str();
    app.add_option("--backlog", s.listen.backlog, "listen() backlog (the kernel caps it at net.core.somaxconn)")
        ->check(whole_number_check(1, 1 << 20))
        ->capture_default_str();
    app.add_option("--tcp-nodelay", s.worker.tcp_nodelay, "Disable Nagle on client sockets (true|false)")
        ->capture_default_str();
    app.add_option("--metrics-port", o.metrics_port,
                   "Serve Prometheus metrics at GET /metrics, and GET /health and /ready, on this port of --host "
                   "(0 = a free port, printed on stdout as 'metrics HOST:PORT'); off by default")
        ->check(whole_number_check(0, 65535));
    app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error|off")
        ->check(one_of({std::begin(kLogLevels), std::end(kLogLevels)}))
        ->capture_default_str();
    app.add_option("--log-format", o.log_format,
                   "Log lines on stderr: text, or json (one object per line: time, level, thread, message)")
        ->check(one_of({std::begin(kLogFormats), std::end(kLogFormats)}))
        ->capture_default_str();
}

void add_limit_flags(CLI::App& app, AppOptions& o) {
    auto& w = o.server.worker;
    app.add_option(
           "--max-connections", o.server.max_connections,
           "Open connections at most; above it clients wait in the kernel backlog. 0 = fd limit minus a reserve")
        ->check(whole_number_check(0, kMaxConnections))
        ->capture_default_str();
    app.add_option("--idle-timeout", o.idle_timeout,
                   "Seconds without traffic before a connection is closed (0 = never)")
        ->check(seconds_check(86400))
        ->capture_default_str();
    app.add_option("--request-timeout,--header-timeout", o.request_timeout,
                   "Seconds a request may take to arrive once begun (http: 408, then close; slowloris guard; "
                   "0 = never)")
        ->check(seconds_check(86400))
        ->capture_default_str();
    app.add_option("--drain-timeout", o.drain_timeout,
                   "On SIGTERM, SIGINT or SIGQUIT: seconds to finish received requests and flush before closing "
                   "(a second one: at once)")
        ->check(seconds_check(86400))
        ->capture_default_str();
    app.add_option("--drain-delay", o.drain_delay,
                   "On the first SIGTERM, SIGINT or SIGQUIT: seconds to keep serving and accepting with GET /ready "
                   "already 503, so load balancers stop sending first (Kubernetes pre-stop); then the drain")
        ->check(seconds_check(3600))
        ->capture_default_str();
    app.add_option("--upgrade-timeout", o.upgrade_timeout,
                   "On SIGUSR2 (zero-downtime upgrade): seconds the new process may take to be ready before it is "
                   "killed and this one serves on")
        ->check(seconds_check(3600))
        ->capture_default_str();
    app.add_option("--linger", o.linger,
                   "Seconds to read and discard a client's input after answering it with a close while it is "
                   "still sending (lingering close, so it sees the answer, e.g. 413, and not a reset; 0 = off)")
        ->check(seconds_check(3600))
        ->capture_default_str();
    app.add_option("--high-water", w.high_water, "Stop reading a client whose unsent output exceeds these bytes")
        ->check(whole_number_check(1024, uint64_t{1} << 32))
        ->capture_default_str();
    app.add_option("--low-water", w.low_water, "Resume reading it once its unsent output is below these bytes")
        ->check(whole_number_check(0, uint64_t{1} << 32))
        ->capture_default_str();
}

// The path this binary was started from, resolved now: after the file is replaced (an upgrade), the
// path names the new binary while /proc/self/exe names the old, deleted one. argv[0] where there is no
// /proc (it holds a path when a shell found the binary through one, and the name alone otherwise).
std::string executable_path(const char* argv0) {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) return std::string(buf, static_cast<size_t>(n));
    return argv0;
}

}  // namespace

void add_server_flags(CLI::App& app, AppOptions& o) {
    add_model_flags(app, o);
    add_limit_flags(app, o);
}

std::string apply_server_flags(AppOptions& o) {
    auto& w = o.server.worker;
    if (w.low_water > w.high_water) {
        return "--low-water " + std::to_string(w.low_water) + " is above --high-water " + std::to_string(w.high_water);
    }
    w.idle_timeout_ms = seconds_to_ms(o.idle_timeout);
    w.request_timeout_ms = seconds_to_ms(o.request_timeout);
    w.drain_timeout_ms = seconds_to_ms(o.drain_timeout);
    o.drain_delay_ms = seconds_to_ms(o.drain_delay);
    w.linger_ms = seconds_to_ms(o.linger);
    // Plain decimal digits by now (whole_number_check rewrote them).
    o.server.listen.defer_accept_s = o.defer_accept == "auto" ? o.defer_accept_auto_s : std::stoi(o.defer_accept);
    parse_backend(o.backend, w.backend);
    parse_dispatch(o.dispatch, o.server.dispatch);
    parse_handoff(o.handoff, o.server.handoff);
    parse_accept_mode(o.accept, o.server.accept);
    return "";
}

int parse_app_flags(CLI::App& app, int argc, char** argv, AppOptions& o) {
    if (argc > 0 && argv[0] != nullptr) {
        std::string name = argv[0];
        o.program = name.substr(name.find_last_of('/') + 1);
        o.argv.assign(argv, argv + argc);
        o.exe = executable_path(argv[0]);
    }
    add_server_flags(app, o);
    ConfigFile config;
    add_config_flag(app, config);
    add_version_flag(app, o.program);
    if (app.get_footer().empty()) {
        app.footer(
            "Signals: SIGTERM, SIGINT and SIGQUIT stop gracefully: /ready turns 503, --drain-delay, then the drain\n"
            "(a second one stops at once); SIGUSR2 upgrades: starts this binary anew (the file at its path now)\n"
            "with the same arguments on the same listening sockets, and once that is ready stops accepting and\n"
            "drains (nothing queued is lost; if the new one fails, serves on); SIGUSR1 logs the per-worker\n"
            "summary so far; SIGHUP is logged and ignored; SIGPIPE is ignored.\n"
            "systemd: READY=1, STATUS= and STOPPING=1 to $NOTIFY_SOCKET (after an upgrade, MAINPID= of the new\n"
            "process); listening sockets from LISTEN_FDS (LISTEN_FDNAMES=metrics names the metrics endpoint's).\n"
            "Exit status: 0 after a stop, 1 when the server cannot start, 2 on a bad flag (one line naming it).");
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {  // --help, --version
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // A value pasted by mistake (a whole file, from --config) must not make the one line unreadable.
        std::string what = e.what();
        if (what.size() > kMaxErrorLine) what = what.substr(0, kMaxErrorLine) + "...";
        std::cerr << o.program << ": " << what << config_origin(app, config, e.what(), argc, argv) << " (see --help)\n";
        return 2;
    }
    if (std::string err = apply_server_flags(o); !err.empty()) {
        std::cerr << o.program << ": " << err << " (see --help)\n";
        return 2;
    }
    // Now, not in serve(): a protocol built between the two may start threads (an offload pool), and
    // only a thread that starts with the stop signals blocked leaves them to serve()'s signal thread.
    SignalThread::block_signals();
    return -1;
}

}  // namespace kq
