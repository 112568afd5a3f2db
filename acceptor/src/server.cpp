// Server assembly: binds, builds the workers and the acceptor, runs them, and reports at exit.
#include "kq/server.hpp"

#include <sys/resource.h>

#include <csignal>
#include <spdlog/spdlog.h>
#include <thread>

namespace kq {

Server::Server(const ServerConfig& cfg, std::unique_ptr<Protocol> protocol)
    : cfg_(cfg), protocol_(std::move(protocol)) {
    // Writes use MSG_NOSIGNAL; ignoring SIGPIPE also covers platforms without it.
    std::signal(SIGPIPE, SIG_IGN);
    int n = cfg_.workers > 0 ? cfg_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    UniqueFd listen_fd = listen_tcp(cfg_.listen);
    port_ = local_port(listen_fd.get());
    address_ = local_address(listen_fd.get());
    std::vector<WorkerLink> links;
    for (int i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<Worker>(i, cfg_.worker, *protocol_));
        links.push_back(workers_.back()->link());
    }
    size_t limit = cfg_.max_connections > 0 ? cfg_.max_connections : default_max_connections(n);
    acceptor_ = std::make_unique<Acceptor>(std::move(listen_fd), std::move(links), cfg_.dispatch, cfg_.worker.backend, limit);
}

size_t default_max_connections(int workers) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1'000'000;
    // Each worker holds a poller and a wake fd; the acceptor, metrics, stdio and logging a few more.
    size_t reserve = 32 + 2 * static_cast<size_t>(workers);
    return rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 1;
}

Server::~Server() {
    for (auto& w : workers_) w->request_stop();
    for (auto& w : workers_) w->join();
}

Backend Server::backend() const noexcept { return workers_.front()->backend(); }

void Server::run() {
    for (auto& w : workers_) w->start();
    acceptor_->run();
    for (auto& w : workers_) {
        if (immediate_.load(std::memory_order_acquire)) w->request_stop();
        else w->request_drain();
    }
    for (auto& w : workers_) w->join();
}

void Server::stop() noexcept { acceptor_->request_stop(); }

void Server::stop_now() noexcept {
    immediate_.store(true, std::memory_order_release);
    acceptor_->request_stop();
    for (auto& w : workers_) w->request_stop();  // also ends a drain already under way
}

void Server::log_summary() const {
    for (const auto& w : workers_) {
        const auto& s = w->stats();
        spdlog::info("worker {}: connections {} (closed {}, errors {}, idle time-outs {}, request time-outs {}), "
                     "requests {}, bytes read {} written {}, events {}, waits {}, wake-ups {}",
                     w->id(), s.accepted.get(), s.closed.get(), s.errors.get(), s.idle_timeouts.get(),
                     s.request_timeouts.get(), s.requests.get(), s.bytes_read.get(), s.bytes_written.get(),
                     s.events.get(), s.waits.get(), s.wakeups.get());
    }
    const auto& a = acceptor_->stats();
    spdlog::info("acceptor: accepted {}, hand-off queue full {}, accept errors {}, accept pauses {}, "
                 "max-connections pauses {}",
                 a.accepted.get(), a.handoff_full.get(), a.accept_errors.get(), a.accept_pauses.get(),
                 a.limit_pauses.get());
}

}  // namespace kq
