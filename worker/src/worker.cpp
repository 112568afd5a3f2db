// Worker: the thread wrapper around WorkerLoop, plus what other threads may read of it.
#include "kq/worker.hpp"

#include <pthread.h>
#include <time.h>

#include <future>

#include <spdlog/spdlog.h>

#include "uring_engine.hpp"
#include "worker_loop.hpp"

namespace kq {

Worker::Worker(int id, const WorkerConfig& cfg, Protocol& protocol)
    : id_(id), loop_(std::make_unique<WorkerLoop>(id, cfg, protocol, stats_)) {}

Worker::~Worker() {
    if (thread_.joinable()) {
        request_stop();
        join();
    }
}

// Returns once the worker's thread has made what clients need (its io_uring ring), or throws what making
// it threw: a ring made only after the acceptor had begun could find the fd table already full (EMFILE).
void Worker::start() {
    std::promise<void> prepared;
    std::future<void> done = prepared.get_future();
    thread_ = std::thread([this, &prepared] {
        try {
            loop_->prepare();
        } catch (...) {
            prepared.set_exception(std::current_exception());
            return;
        }
        prepared.set_value();  // start() returns: `prepared` is not touched again
        try {
            loop_->run();
        } catch (const std::exception& e) {
            // A poller failure (epoll_wait/kevent refused) or an exception a protocol handler let escape:
            // the worker's connections are in an unknown state, so the process stops rather than limp on.
            spdlog::critical("worker {}: {}", id_, e.what());
            std::terminate();
        }
    });
    native_handle_.store(static_cast<uint64_t>(thread_.native_handle()), std::memory_order_release);
    try {
        done.get();
    } catch (...) {
        thread_.join();
        throw;
    }
}

void Worker::request_stop() noexcept { loop_->request_stop(); }
void Worker::request_drain() noexcept { loop_->request_drain(); }

void Worker::join() {
    if (thread_.joinable()) thread_.join();
    native_handle_.store(0, std::memory_order_release);
    // The thread is gone, so its state is ours now: close what reached the worker after its loop ended
    // (with --handoff direct and an immediate stop, the acceptor may register connections until it stops).
    loop_->close_all();
}

WorkerLink Worker::link() noexcept { return WorkerLink{&loop_->mailbox(), &stats_.closed, loop_.get()}; }

void Worker::listen_on(UniqueFd listener, size_t max_connections) {
    loop_->listen_on(std::move(listener), max_connections);
}

Backend Worker::backend() const noexcept { return loop_->backend(); }
unsigned Worker::uring_setup_flags() const noexcept { return loop_->uring_setup_flags(); }

int64_t Worker::cpu_time_us() const noexcept {
    auto handle = static_cast<pthread_t>(native_handle_.load(std::memory_order_acquire));
    if (handle == 0) return -1;
    clockid_t clock;
    timespec ts{};
    if (pthread_getcpuclockid(handle, &clock) != 0 || clock_gettime(clock, &ts) != 0) return -1;
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

Backend automatic_backend(const WorkerConfig& cfg) {
    // io_uring where it runs as measured: it costs less CPU per request and per new connection than
    // epoll on every load measured (docs/performance.md, "Backends"). Not with --handoff direct (its
    // acceptor registers in the worker's poller) or a poller_factory (the caller wants a Poller).
    if (!cfg.direct_handoff && !cfg.poller_factory && UringEngine::full_featured()) return Backend::io_uring;
    auto readiness = poller_backends();
    if (readiness.empty()) throw std::invalid_argument("no poller backend was built");
    return readiness.front();
}

std::string backend_unavailable(Backend b) {
    try {
        if (b == Backend::io_uring) UringEngine probe{WorkerConfig{}};
        else make_poller(b);
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

}  // namespace kq
