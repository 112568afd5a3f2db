// Acceptor thread: wait on the listening socket, accept with the shared AcceptLoop, dispatch, hand off;
// hold what no worker queue can take and stop accepting until it is handed on.
#include "kq/acceptor.hpp"

#include <array>

#include "kq/clock.hpp"
#include "kq/enum_names.hpp"

namespace kq {
namespace {

constexpr std::array<std::string_view, 2> kDispatchNames = {"round-robin", "least-connections"};
constexpr std::array<std::string_view, 2> kHandoffNames = {"queue", "direct"};
constexpr int kPendingRetryMs = 1;  // a full worker queue drains within a wait
constexpr int kLimitRetryMs = 10;   // at --max-connections: re-check this often
int listen_token;                   // udata of the listening socket

}  // namespace

bool parse_dispatch(std::string_view text, Dispatch& out) { return parse_enum_name(kDispatchNames, text, out); }
std::string_view dispatch_name(Dispatch d) { return enum_name(kDispatchNames, d); }
bool parse_handoff(std::string_view text, Handoff& out) { return parse_enum_name(kHandoffNames, text, out); }
std::string_view handoff_name(Handoff h) { return enum_name(kHandoffNames, h); }

Acceptor::Acceptor(UniqueFd listen_fd, std::vector<WorkerLink> workers, Dispatch dispatch, Backend backend,
                   size_t max_connections, Handoff handoff)
    : workers_(std::move(workers)), dispatch_(dispatch), handoff_(handoff), poller_(make_poller(backend)),
      handed_(workers_.size(), 0), full_per_worker_(std::make_unique<Counter[]>(workers_.size())) {
    accept_.listen(std::move(listen_fd), max_connections);
    poller_->add_readonly(accept_.fd(), &listen_token);
}

void Acceptor::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    poller_->wake();
}

int Acceptor::wait_timeout_ms() const {
    if (!pending_.empty()) return kPendingRetryMs;
    if (accept_.at_limit()) return kLimitRetryMs;
    int64_t left = accept_.paused_until_ms() - steady_now_ms();
    return left > 0 ? static_cast<int>(left) + 1 : -1;
}

void Acceptor::run() {
    std::array<PollEvent, 8> events;
    // The backlog may hold connections from before the poller saw the socket: drain once up front.
    drain_backlog();
    while (!stop_.load(std::memory_order_acquire)) {
        poller_->wait(events, wait_timeout_ms());
        // Edge-triggered: a new edge, a finished pause and a freed queue slot all mean "accept again";
        // an extra accept4 that finds EAGAIN is cheaper than tracking which one it was.
        retry_pending();
        if (!pending_.empty()) continue;
        if (accept_.paused_until_ms() > steady_now_ms()) continue;
        drain_backlog();
    }
    pending_.clear();
    accept_.close();  // new clients are refused from now on instead of waiting in the backlog
}

// One READ event per listening socket per wait however many clients queued (not one connection per
// event): the accept loop takes them until EAGAIN, the limit, a pause, or a fd no worker can take.
void Acceptor::drain_backlog() {
    if (!pending_.empty()) return;
    accept_.accept(
        steady_now_ms(), [this] { return open_connections(); },
        [this](UniqueFd fd) {
            if (hand_off(fd)) return true;
            pending_.push_back(std::move(fd));
            return false;
        });
}

uint64_t Acceptor::open_connections() const noexcept {
    uint64_t open = 0;
    for (size_t i = 0; i < workers_.size(); ++i) open += handed_[i] - workers_[i].closed->get();
    return open + pending_.size();
}

size_t Acceptor::pick() noexcept {
    if (dispatch_ == Dispatch::round_robin) {
        size_t i = next_;
        next_ = (next_ + 1) % workers_.size();
        return i;
    }
    size_t best = 0;
    uint64_t best_active = UINT64_MAX;
    for (size_t i = 0; i < workers_.size(); ++i) {
        uint64_t active = handed_[i] - workers_[i].closed->get();
        if (active < best_active) {
            best_active = active;
            best = i;
        }
    }
    return best;
}

// Tries the chosen worker, then the others in turn; false only when every queue is full.
bool Acceptor::hand_off(UniqueFd& fd) {
    size_t first = pick();
    if (handoff_ == Handoff::direct) {
        // No queue to fill: the registration either succeeds or the connection is lost (fd closed).
        if (workers_[first].direct->register_direct(std::move(fd))) ++handed_[first];
        else stats_.accept_errors.add();
        return true;
    }
    for (size_t k = 0; k < workers_.size(); ++k) {
        size_t i = (first + k) % workers_.size();
        if (workers_[i].mailbox->push(fd)) {
            ++handed_[i];
            return true;
        }
        handoff_full_.add();
        full_per_worker_[i].add();
    }
    return false;
}

void Acceptor::retry_pending() {
    while (!pending_.empty() && hand_off(pending_.front())) pending_.pop_front();
}

}  // namespace kq
