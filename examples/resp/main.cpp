// kqresp: a Redis-protocol (RESP2) key-value server on kqserver's acceptor and workers. Prints
// "listening HOST:PORT" on stdout once it accepts connections, and stops cleanly on SIGINT or SIGTERM.
// Exit status: 0 after a stop, 1 when the server cannot start, 2 on a bad flag (one line naming it).
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "kq/log.hpp"
#include "kq/server.hpp"
#include "resp_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqresp: a Redis-protocol key-value server on kqserver (strings, lists, expiry)"};
    kq::ServerConfig config;
    config.listen.port = 6379;
    resp::RespOptions options;
    int idle_timeout_s = 0;  // Redis's default: idle clients are never closed
    app.add_option("--host", config.listen.host, "Address to listen on")->capture_default_str();
    app.add_option("--port", config.listen.port, "TCP port; 0 picks a free one (printed on stdout)")
        ->capture_default_str();
    app.add_option("--workers", config.workers, "Worker threads; 0 = number of cores")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--idle-timeout", idle_timeout_s, "Seconds without traffic before a client is closed (0 = never)")
        ->check(CLI::Range(0, 86400))
        ->capture_default_str();
    app.add_option("--max-bulk", options.limits.max_bulk, "Longest argument in bytes (Redis: proto-max-bulk-len)")
        ->check(CLI::Range(size_t{1}, size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--max-request", options.limits.max_request,
                   "Largest request in bytes, all its arguments together; a connection may hold this much")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 34))
        ->capture_default_str();
    app.add_option("--max-args", options.limits.max_args, "Most arguments in one request")
        ->check(CLI::Range(size_t{1}, size_t{1} << 31))
        ->capture_default_str();
    app.add_option("--max-inline", options.limits.max_inline, "Longest inline (non-RESP) request line in bytes")
        ->check(CLI::Range(size_t{16}, size_t{1} << 30))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kqresp: " << e.what() << " (see --help)\n";
        return 2;
    }
    config.worker.idle_timeout_ms = idle_timeout_s * 1000;
    config.worker.max_input = resp::max_input_for(options.limits);
    kq::setup_logging("info");  // the server logs to stderr: stdout carries only the listening line

    // SIGINT/SIGTERM are blocked in every thread (before any starts) and taken by one thread with
    // sigwait(), so stop() runs as ordinary code, not in a signal handler. SIGUSR1 releases that thread.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<kq::Server> server;
    try {
        server = std::make_unique<kq::Server>(config, std::make_unique<resp::RespProtocol>(options));
    } catch (const std::exception& e) {
        std::cerr << "kqresp: " << e.what() << "\n";
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
    return 0;
}
