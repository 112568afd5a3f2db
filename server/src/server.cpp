// Server assembly: binds, builds the workers and the acceptor (or the workers' own listeners), runs
// them, and reports at exit.
#include "kq/server.hpp"

#include <fcntl.h>
#include <sys/resource.h>

#include <spdlog/spdlog.h>
#include <array>
#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "kq/acceptor.hpp"
#include "kq/enum_names.hpp"
#include "kq/worker.hpp"

namespace kq {
namespace {
constexpr std::array<std::string_view, 2> kAcceptNames = {"acceptor", "reuseport"};

UniqueFd dup_cloexec(int fd) {
    UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!copy) throw std::system_error(errno, std::system_category(), "fcntl(F_DUPFD_CLOEXEC)");
    return copy;
}
}  // namespace

bool parse_accept_mode(std::string_view text, AcceptMode& out) { return parse_enum_name(kAcceptNames, text, out); }
std::string_view accept_mode_name(AcceptMode m) { return enum_name(kAcceptNames, m); }

namespace {
std::vector<UniqueFd> one_or_none(UniqueFd listener) {
    std::vector<UniqueFd> v;
    if (listener) v.push_back(std::move(listener));
    return v;
}
}  // namespace

Server::Server(const ServerConfig& cfg, std::unique_ptr<Protocol> protocol, UniqueFd listener)
    : Server(cfg, std::move(protocol), one_or_none(std::move(listener))) {}

Server::Server(const ServerConfig& cfg, std::unique_ptr<Protocol> protocol, std::vector<UniqueFd> listeners)
    : cfg_(cfg), protocol_(std::move(protocol)) {
    // Writes use MSG_NOSIGNAL; ignoring SIGPIPE also covers platforms without it.
    std::signal(SIGPIPE, SIG_IGN);
    int n = cfg_.workers > 0 ? cfg_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    ListenOptions listen = cfg_.listen;
    listen.reuse_port = listen.reuse_port || cfg_.accept == AcceptMode::reuseport;
    const bool inherited = !listeners.empty();
    if (listeners.size() > 1 && cfg_.accept != AcceptMode::reuseport)
        throw std::runtime_error("acceptor mode accepts from one listening socket, but " +
                                 std::to_string(listeners.size()) + " were handed in (use --accept reuseport)");
    if (listeners.size() > static_cast<size_t>(n))
        throw std::runtime_error(std::to_string(listeners.size()) + " listening sockets were handed in for " +
                                 std::to_string(n) + " workers: each needs a worker (--workers " +
                                 std::to_string(listeners.size()) + ")");
    if (inherited) listen.defer_accept_s = 0;  // whatever the socket's creator set, it is not ours to know
    if (!inherited) listeners.push_back(listen_tcp(listen));
    for (const UniqueFd& l : listeners) listen_fds_.push_back(l.get());
    port_ = local_port(listeners.front().get());
    address_ = local_address(listeners.front().get());
    // With TCP_DEFER_ACCEPT a connection is accepted once its first bytes are there: read them at once.
    if (listen.defer_accept_s > 0) cfg_.worker.read_on_admit = true;
    cfg_.worker.direct_handoff = cfg_.accept == AcceptMode::acceptor && cfg_.handoff == Handoff::direct;
    std::vector<WorkerLink> links;
    for (int i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<Worker>(i, cfg_.worker, *protocol_));
        links.push_back(workers_.back()->link());
    }
    size_t limit = cfg_.max_connections > 0 ? cfg_.max_connections : default_max_connections(n);
    if (cfg_.accept == AcceptMode::reuseport) {
        // One socket per worker on the same port (the first one picked it when port 0 was asked for).
        listen.port = port_;
        size_t per_worker = (limit + workers_.size() - 1) / workers_.size();
        // Inherited sockets are shared: worker i accepts from a duplicate of socket i % count (the same
        // socket), and every poller sharing one sees each new connection; whichever accepts first takes it.
        const size_t count = listeners.size();
        for (size_t i = workers_.size(); i-- > 0;) {
            UniqueFd own = i < count   ? std::move(listeners[i])
                           : inherited ? dup_cloexec(listen_fds_[i % count])
                                       : listen_tcp(listen);
            if (!inherited && i > 0) listen_fds_.push_back(own.get());
            workers_[i]->listen_on(std::move(own), per_worker);
        }
        return;
    }
    acceptor_ = std::make_unique<Acceptor>(std::move(listeners.front()), std::move(links), cfg_.dispatch,
                                           poller_backend(cfg_.worker.backend), limit, cfg_.handoff);
}

size_t default_max_connections(int workers) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1'000'000;
    // Each worker holds a poller and a wake fd (and a listener with reuseport); the acceptor, metrics,
    // stdio and logging a few more.
    size_t reserve = 32 + 3 * static_cast<size_t>(workers);
    return rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 1;
}

const WorkerStats& Server::worker_stats(size_t i) const { return workers_.at(i)->stats(); }
int64_t Server::worker_cpu_time_us(size_t i) const noexcept {
    return i < workers_.size() ? workers_[i]->cpu_time_us() : -1;
}

Server::~Server() {
    for (auto& w : workers_) w->request_stop();
    for (auto& w : workers_) w->join();
}

Backend Server::backend() const noexcept { return workers_.front()->backend(); }

void Server::run() {
    for (auto& w : workers_) w->start();
    if (acceptor_) {
        acceptor_->run();
    } else {
        stop_requested_.wait(false, std::memory_order_acquire);
    }
    for (auto& w : workers_) {
        if (immediate_.load(std::memory_order_acquire)) w->request_stop();
        else w->request_drain();  // reuseport: each worker also closes its listening socket
    }
    for (auto& w : workers_) w->join();
}

void Server::stop() noexcept {
    if (acceptor_) acceptor_->request_stop();
    stop_requested_.store(true, std::memory_order_release);
    stop_requested_.notify_all();
}

void Server::stop_now() noexcept {
    immediate_.store(true, std::memory_order_release);
    stop();
    for (auto& w : workers_) w->request_stop();  // also ends a drain already under way
}

Server::AcceptTotals Server::accept_totals() const noexcept {
    AcceptTotals t;
    auto add = [&t](const AcceptStats& a) {
        t.accepted += a.accepted.get();
        t.accept_errors += a.accept_errors.get();
        t.accept_pauses += a.accept_pauses.get();
        t.limit_pauses += a.limit_pauses.get();
    };
    if (acceptor_) {
        add(acceptor_->stats());
        t.handoff_full = acceptor_->handoff_full();
        return t;
    }
    for (const auto& w : workers_) add(w->stats().accept);  // reuseport: each worker's own accept loop
    return t;
}

uint64_t Server::handoff_full(size_t worker) const noexcept { return acceptor_ ? acceptor_->handoff_full(worker) : 0; }

void Server::log_summary() const {
    for (const auto& w : workers_) {
        const auto& s = w->stats();
        spdlog::info(
            "worker {}: connections {} (closed {}, errors {}, idle time-outs {}, request time-outs {}), "
            "requests {}, bytes read {} written {}, events {}, waits {}, wake-ups {}",
            w->id(), s.accepted.get(), s.closed.get(), s.errors.get(), s.idle_timeouts.get(), s.request_timeouts.get(),
            s.requests.get(), s.bytes_read.get(), s.bytes_written.get(), s.events.get(), s.waits.get(),
            s.wakeups.get());
    }
    auto a = accept_totals();
    spdlog::info(
        "{}: accepted {}, hand-off queue full {}, accept errors {}, accept pauses {}, "
        "max-connections pauses {}",
        acceptor_ ? "acceptor" : "reuseport listeners", a.accepted, a.handoff_full, a.accept_errors, a.accept_pauses,
        a.limit_pauses);
}

}  // namespace kq
