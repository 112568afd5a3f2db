// kqproxy: a TCP proxy on kqserver's acceptor and workers. Prints "listening HOST:PORT" on stdout once it
// accepts connections, and stops cleanly on SIGINT or SIGTERM. Exit status: 0 after a stop, 1 when the
// server cannot start, 2 on a bad flag (one line naming it).
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "kq/log.hpp"
#include "kq/server.hpp"
#include "proxy.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqproxy: a TCP proxy on kqserver; each client is forwarded to one backend, round-robin"};
    kq::ServerConfig config;
    std::vector<std::string> backends;
    int connect_timeout_ms = 1000;
    int idle_timeout_s = config.worker.idle_timeout_ms / 1000;
    app.add_option("--host", config.listen.host, "Address to listen on")->capture_default_str();
    app.add_option("--port", config.listen.port, "TCP port; 0 picks a free one (printed on stdout)")
        ->capture_default_str();
    app.add_option("--workers", config.workers, "Worker threads; 0 = number of cores")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--backend", backends,
                   "A backend as HOST:PORT or [IPV6]:PORT, HOST resolved at startup; repeat it for several "
                   "(clients are spread round-robin, one that fails to connect is skipped)")
        ->required()
        ->take_all();
    app.add_option("--connect-timeout", connect_timeout_ms,
                   "Milliseconds a backend has to accept the connection before the next one is tried")
        ->check(CLI::Range(1, 3'600'000))
        ->capture_default_str();
    app.add_option("--idle-timeout", idle_timeout_s,
                   "Seconds without traffic either way before a client and its backend are closed (0 = never)")
        ->check(CLI::Range(0, 86400))
        ->capture_default_str();
    kqproxy::ProxyOptions options;
    try {
        app.parse(argc, argv);
        for (const auto& b : backends) options.backends.push_back(kqproxy::resolve_backend(b));
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kqproxy: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::invalid_argument& e) {
        std::cerr << "kqproxy: " << e.what() << " (see --help)\n";
        return 2;
    }
    options.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
    config.worker.idle_timeout_ms = idle_timeout_s * 1000;
    kq::setup_logging("info");  // the server logs to stderr: stdout carries only the listening line

    // SIGINT/SIGTERM are blocked in every thread (before any starts) and taken by one thread with
    // sigwait(), so stop() runs as ordinary code, not in a signal handler. SIGUSR1 releases that thread.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<kq::Server> server;
    kqproxy::ProxyProtocol* proxy = nullptr;  // owned by the server
    try {
        auto protocol = std::make_unique<kqproxy::ProxyProtocol>(std::move(options));
        proxy = protocol.get();
        server = std::make_unique<kq::Server>(config, std::move(protocol));
    } catch (const std::exception& e) {
        std::cerr << "kqproxy: " << e.what() << "\n";
        return 1;
    }
    std::printf("listening %s\n", server->address().c_str());
    std::fflush(stdout);

    std::thread stopper([&server, signals] {
        int sig = 0;
        while (sigwait(&signals, &sig) == 0 && sig != SIGUSR1) server->stop();
    });
    server->run();
    pthread_kill(stopper.native_handle(), SIGUSR1);
    stopper.join();
    server->log_summary();
    auto& s = proxy->stats();
    std::cerr << "kqproxy: " << s.forwarded.load() << " clients forwarded, " << s.retries.load()
              << " backend connects failed, " << s.unavailable.load() << " clients found no backend\n";
    return 0;
}
