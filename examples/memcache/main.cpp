// kqmemcache: a memcached-compatible server on kqserver's acceptor and workers. Prints "listening
// HOST:PORT" on stdout once it accepts connections, and stops cleanly on SIGINT or SIGTERM. Exit status:
// 0 after a stop, 1 when the server cannot start, 2 on a bad flag (one line naming it).
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <thread>

#include "kq/log.hpp"
#include "kq/server.hpp"
#include "mc_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqmemcache: a memcached-compatible cache (text and meta protocol) on kqserver"};
    kq::ServerConfig config;
    config.listen.port = 11211;
    size_t memory_mb = 64;
    size_t max_item = size_t{1} << 20;
    int idle_timeout_s = 0;  // memcached keeps idle clients: connection pools stay open for hours
    app.add_option("--host", config.listen.host, "Address to listen on")->capture_default_str();
    app.add_option("--port", config.listen.port, "TCP port; 0 picks a free one (printed on stdout)")
        ->capture_default_str();
    app.add_option("--workers", config.workers, "Worker threads; 0 = number of cores")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--memory-limit", memory_mb, "Megabytes of items kept; least recently used ones are evicted")
        ->check(CLI::Range(size_t{1}, size_t{1} << 20))
        ->capture_default_str();
    app.add_option("--max-item-size", max_item, "Largest value in bytes; larger ones are refused")
        ->check(CLI::Range(size_t{1}, size_t{1} << 30))
        ->capture_default_str();
    app.add_option("--idle-timeout", idle_timeout_s, "Seconds without traffic before a client is closed (0 = never)")
        ->check(CLI::Range(0, 86400))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kqmemcache: " << e.what() << " (see --help)\n";
        return 2;
    }
    kqmc::MemcacheOptions options;
    options.memory_limit = memory_mb << 20;
    options.max_item_size = max_item;
    options.workers = config.workers > 0 ? config.workers : static_cast<int>(std::thread::hardware_concurrency());
    // The worker holds an unfinished command for the session: a line and its whole data block.
    config.worker.max_input = std::max(config.worker.max_input, options.max_input());
    config.worker.idle_timeout_ms = idle_timeout_s * 1000;
    kq::setup_logging("info");  // the server logs to stderr: stdout carries only the listening line

    // SIGINT/SIGTERM are blocked in every thread (before any starts) and taken by one thread with
    // sigwait(), so stop() runs as ordinary code, not in a signal handler. SIGUSR1 releases that thread.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<kq::Server> server;
    try {
        server = std::make_unique<kq::Server>(config, std::make_unique<kqmc::MemcacheProtocol>(options));
    } catch (const std::exception& e) {
        std::cerr << "kqmemcache: " << e.what() << "\n";
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
