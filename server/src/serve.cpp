// serve() (kq/app.hpp): a server binary's life from its parsed flags to its exit status, including what
// a supervisor sees of it: systemd readiness (READY=1, STATUS=, STOPPING=1), listening sockets inherited
// by socket activation, and /ready turning before the drain.
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "kq/app.hpp"
#include "kq/log.hpp"
#include "kq/metrics.hpp"
#include "signals.hpp"
#include "systemd.hpp"

namespace kq {
namespace {

// How often STATUS= is refreshed while serving: often enough that `systemctl status` is current, rare
// enough to cost nothing.
constexpr int kStatusIntervalMs = 2'000;

// "connections 12, requests 3456": open connections and requests answered, over every worker.
std::string counts(const Server& server) {
    uint64_t open = 0, requests = 0;
    for (size_t i = 0; i < server.worker_count(); ++i) {
        const WorkerStats& s = server.worker_stats(i);
        open += s.accepted.get() - s.closed.get();
        requests += s.requests.get();
    }
    return "connections " + std::to_string(open) + ", requests " + std::to_string(requests);
}

// Sends STATUS= every kStatusIntervalMs until destroyed; draining() changes its first word.
class StatusReporter {
public:
    StatusReporter(Notifier& notifier, const Server& server) : notifier_(notifier), server_(server) {
        if (notifier_.enabled()) thread_ = std::thread([this] { run(); });
    }
    ~StatusReporter() {
        {
            std::lock_guard lock(mu_);
            done_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    StatusReporter(const StatusReporter&) = delete;
    StatusReporter& operator=(const StatusReporter&) = delete;

    std::string status() const {
        return std::string(draining_.load(std::memory_order_relaxed) ? "STATUS=draining: " : "STATUS=serving: ") +
               counts(server_);
    }
    void draining() { draining_.store(true, std::memory_order_relaxed); }

private:
    void run() {
        std::unique_lock lock(mu_);
        while (!cv_.wait_for(lock, std::chrono::milliseconds(kStatusIntervalMs), [this] { return done_; }))
            notifier_.send(status());
    }

    Notifier& notifier_;
    const Server& server_;
    std::atomic<bool> draining_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// The inherited sockets sorted: the service's (one, or a reuseport server's one per worker handed over
// by an upgrade) and the metrics endpoint's (LISTEN_FDNAMES "metrics", optional). Throws
// std::runtime_error naming the problem.
struct Inherited {
    std::vector<UniqueFd> service;
    UniqueFd metrics;
};
Inherited sort_inherited(InheritedSockets in) {
    Inherited out;
    for (size_t i = 0; i < in.fds.size(); ++i) {
        if (in.names[i] != "metrics") {
            out.service.push_back(std::move(in.fds[i]));
            continue;
        }
        if (out.metrics) throw std::runtime_error("LISTEN_FDS: more than one listening socket named 'metrics'");
        out.metrics = std::move(in.fds[i]);
    }
    if (out.service.empty())
        throw std::runtime_error("LISTEN_FDS: no listening socket for the service, only 'metrics'");
    return out;
}

std::unique_ptr<MetricsServer> start_metrics(const AppOptions& o, const Server& server, UniqueFd inherited) {
    if (inherited) return std::make_unique<MetricsServer>(server, std::move(inherited));
    if (o.metrics_port < 0) return nullptr;
    ListenOptions mo = o.server.listen;
    mo.port = static_cast<uint16_t>(o.metrics_port);
    mo.defer_accept_s = 0;
    return std::make_unique<MetricsServer>(server, mo);
}

// What SIGUSR2 starts: this binary anew with the same command line, on this server's listening sockets.
UpgradeSpec upgrade_spec(const AppOptions& o, const Server& server, const MetricsServer* metrics,
                         const Notifier& notifier) {
    UpgradeSpec spec;
    spec.exe = o.exe;
    spec.argv = o.argv;
    spec.service_fds = server.listening_fds();
    spec.metrics_fd = metrics ? metrics->listening_fd() : -1;
    spec.notify_socket = notifier.path();
    spec.timeout_ms = static_cast<int>(o.upgrade_timeout * 1000);
    return spec;
}

void run_until_stopped(const AppOptions& o, Server& server, MetricsServer* metrics, Notifier& notifier,
                       UniqueFd upgrade_ready) {
    StatusReporter status(notifier, server);
    StopPlan plan;
    plan.delay_ms = o.drain_delay_ms;
    plan.on_first = [&] {
        if (metrics) metrics->set_ready(false);
        status.draining();
        notifier.send("STOPPING=1\n" + status.status());
    };
    if (!o.exe.empty()) plan.upgrade = [&] { return upgrade_spec(o, server, metrics, notifier); };
    // systemd follows the new process as the service's main one (sent while this one still is).
    plan.on_upgraded = [&](pid_t pid) {
        notifier.send("MAINPID=" + std::to_string(pid) + "\nSTATUS=upgraded: the new process is " +
                      std::to_string(pid));
    };
    SignalThread signals(server, std::move(plan));
    if (metrics) metrics->start();
    notifier.send("READY=1\n" + status.status());
    if (upgrade_ready) {  // the process this one replaces: it stops accepting once it reads this
        [[maybe_unused]] ssize_t n = ::send(upgrade_ready.get(), "READY=1", 7, MSG_DONTWAIT);
        upgrade_ready.reset();
    }
    server.run();
    if (metrics) metrics->stop();
}

}  // namespace

int serve(const AppOptions& o, std::unique_ptr<Protocol> protocol, const ServeHooks& hooks) {
    setup_logging(o.log_level, o.log_format);
    Notifier notifier;  // takes NOTIFY_SOCKET out of the environment before any thread starts
    UniqueFd upgrade_ready = take_upgrade_ready_fd();  // set when an older process started this one
    Inherited inherited;
    try {
        if (InheritedSockets in = take_listen_fds(); !in.fds.empty()) inherited = sort_inherited(std::move(in));
    } catch (const std::exception& e) {
        std::cerr << o.program << ": socket activation: " << e.what() << "\n";
        return 1;
    }
    SignalThread::block_signals();  // before any thread starts, so all inherit the mask

    const bool activated = !inherited.service.empty();
    const char* inherited_from =
        upgrade_ready ? " (sockets handed over by the process it replaces)" : " (socket activation)";
    std::unique_ptr<Server> server;
    try {
        server = std::make_unique<Server>(o.server, std::move(protocol), std::move(inherited.service));
    } catch (const std::invalid_argument& e) {
        std::cerr << o.program << ": --backend " << o.backend << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << o.program << ": " << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<MetricsServer> metrics;
    try {
        metrics = start_metrics(o, *server, std::move(inherited.metrics));
    } catch (const std::exception& e) {
        std::cerr << o.program << ": --metrics-port " << o.metrics_port << ": " << e.what() << "\n";
        return 1;
    }
    std::printf("listening %s\n", server->address().c_str());
    if (metrics) std::printf("metrics %s\n", metrics->address().c_str());
    std::fflush(stdout);
    spdlog::info("{} {}{}: backend {}, {} workers, accept {}, dispatch {}, handoff {}, batch {}, defer-accept {} s{}{}",
                 o.program, server->address(), activated ? inherited_from : "", backend_name(server->backend()),
                 server->worker_count(), o.accept, o.dispatch, o.handoff, o.server.worker.batch,
                 activated ? 0 : o.server.listen.defer_accept_s, hooks.describe.empty() ? "" : ", ", hooks.describe);
    run_until_stopped(o, *server, metrics.get(), notifier, std::move(upgrade_ready));
    server->log_summary();
    if (hooks.after_stop) hooks.after_stop(*server);
    return 0;
}

}  // namespace kq
