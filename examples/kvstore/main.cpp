// kvstore: the key-value protocol served by kqserver's acceptor and workers. Prints "listening HOST:PORT"
// on stdout once it accepts connections, and stops cleanly on SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <algorithm>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "kq/log.hpp"
#include "kq/server.hpp"
#include "kv_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kvstore: a line-based in-memory key-value store on kqserver (SET k v, GET k, DEL k)"};
    kq::ServerConfig config;
    kvstore::KvOptions kv;
    app.add_option("--host", config.listen.host, "Address to listen on")->capture_default_str();
    app.add_option("--port", config.listen.port, "TCP port; 0 picks a free one (printed on stdout)")
        ->capture_default_str();
    app.add_option("--workers", config.workers, "Worker threads; 0 = number of cores")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--max-line", kv.max_line, "Longest command line in bytes; longer ones close the connection")
        ->check(CLI::Range(size_t{16}, size_t{1} << 30))
        ->capture_default_str();
    app.add_option("--shards", kv.shards, "Independently locked parts of the store")
        ->check(CLI::Range(size_t{1}, size_t{1} << 16))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kvstore: " << e.what() << " (see --help)\n";
        return 2;
    }
    // The worker holds an unfinished line for the session: enough for the longest one and its "\r\n".
    config.worker.max_input = std::max(config.worker.max_input, kv.max_line + 2);
    kq::setup_logging("info");  // the server logs to stderr: stdout carries only the listening line

    // SIGINT/SIGTERM are blocked in every thread (before any starts) and taken by one thread with
    // sigwait(), so stop() runs as ordinary code, not in a signal handler. SIGUSR1 releases that thread.
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::unique_ptr<kq::Server> server;
    try {
        server = std::make_unique<kq::Server>(config, std::make_unique<kvstore::KvProtocol>(kv));
    } catch (const std::exception& e) {
        std::cerr << "kvstore: " << e.what() << "\n";
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
