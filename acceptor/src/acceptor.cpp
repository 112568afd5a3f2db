// Acceptor thread: wait on the listening socket, accept with the shared AcceptLoop, dispatch, hand off;
// hold what no worker queue can take and stop accepting until it is handed on.
#include "kq/acceptor.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <system_error>

#include "kq/clock.hpp"
#include "kq/enum_names.hpp"

namespace kq {
namespace {

constexpr std::array<std::string_view, 2> kDispatchNames = {"round-robin", "least-connections"};
constexpr std::array<std::string_view, 2> kHandoffNames = {"queue", "direct"};
constexpr int kPendingRetryMs = 1;  // a full worker queue drains within a wait
constexpr int kLimitRetryMs = 10;   // at --max-connections (or after a failed accept4): re-check this often
constexpr size_t kMaxBatch = 64;    // accepts per report of the listening socket, at most
// A wait that returned sooner than this found the socket already reported: clients are queueing faster
// than one per wait. (A hint for the batch size only: level-triggered, no client can be left behind.)
constexpr auto kQuickWait = std::chrono::microseconds(20);
int listen_token;  // udata of the listening socket

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
    // Level-triggered, so a backlog from before this registration is reported by the first wait.
    poller_->add_level(accept_.fd(), &listen_token);
}

void Acceptor::request_stop() noexcept {
    stop_.store(true, std::memory_order_release);
    poller_->wake();
}

// Watching the listening socket: wait until a client arrives. Not watching (held): re-check when the
// held state may have ended.
int Acceptor::wait_timeout_ms() const {
    if (!pending_.empty()) return kPendingRetryMs;
    if (watching_) return -1;
    int64_t left = std::max(accept_.paused_until_ms(), failed_until_ms_) - steady_now_ms();
    return left > 0 ? static_cast<int>(left) + 1 : kLimitRetryMs;
}

// The listening socket is level-triggered: each wait that finds clients queued reports it, and the
// acceptor takes a bounded batch per report. So it never needs an accept4 that fails with EAGAIN to
// know the backlog is empty (under EPOLLET it did, once per wake-up: a third of the system calls of
// the accept path when clients arrive one at a time). While accepting is held back (fds no worker
// queue could take, the limit, an EMFILE pause) the socket is taken out of the poller, or every wait
// would report it at once.
void Acceptor::run() {
    std::array<PollEvent, 8> events;
    // Clients may be queued from before run() (socket activation, an upgrade's inherited sockets, a
    // client that connected as soon as "listening" was printed), and a stop may be requested already:
    // take them now, or a stop before the first wait would close the socket on them.
    watch();
    if (watching_) {
        batch_ = kMaxBatch;
        while (pending_.empty() && accept_batch(true) == AcceptLoop::Outcome::bounded) {}
        batch_ = 1;
    }
    while (!stop_.load(std::memory_order_acquire)) {
        watch();
        const auto before = std::chrono::steady_clock::now();
        int n = poller_->wait(events, wait_timeout_ms());
        const bool quick = std::chrono::steady_clock::now() - before < kQuickWait;
        retry_pending();
        for (int i = 0; i < n; ++i) {
            if (events[static_cast<size_t>(i)].udata != &listen_token) continue;
            if (watching_ && pending_.empty()) accept_batch(quick);
            break;
        }
    }
    pending_.clear();
    accept_.close();  // new clients are refused from now on instead of waiting in the backlog
}

// Registers the listening socket while accepting may go on and takes it out while it is held. A limit
// reached is noticed here too (may_accept counts the stretch once), before any accept4.
void Acceptor::watch() {
    const int64_t now = steady_now_ms();
    const bool want = pending_.empty() && failed_until_ms_ <= now && accept_.may_accept(now, open_connections());
    if (want == watching_) return;
    if (!want) {
        poller_->remove(accept_.fd());
        watching_ = false;
        return;
    }
    try {
        poller_->add_level(accept_.fd(), &listen_token);  // reports a backlog that queued meanwhile
        watching_ = true;
    } catch (const std::system_error& e) {
        spdlog::error("acceptor: cannot watch the listening socket again: {}", e.what());
        failed_until_ms_ = now + kLimitRetryMs;
    }
}

// One batch per report: up to batch_ accepts, fewer at EAGAIN, the limit, a pause, or a fd no worker
// can take. A report that woke the acceptor from a sleep takes one client (clients arriving one at a
// time: each costs one accept4 and no failing one). Reports that come back at once after a full batch
// mean a burst: the batch doubles for each, so a burst of n costs about log2(n) waits and at most one
// failing accept4, at its end.
AcceptLoop::Outcome Acceptor::accept_batch(bool quick) {
    if (!quick) batch_ = 1;
    const int64_t now = steady_now_ms();
    auto outcome = accept_.accept(
        now, [this] { return open_connections(); },
        [this](UniqueFd fd) {
            if (hand_off(fd)) return true;
            pending_.push_back(std::move(fd));
            return false;
        },
        batch_);
    switch (outcome) {
    case AcceptLoop::Outcome::bounded:
        batch_ = std::min(batch_ * 2, kMaxBatch);
        break;
    case AcceptLoop::Outcome::failed:
        // Level-triggered, the next wait would report the socket at once: do not spin on an error.
        failed_until_ms_ = now + kLimitRetryMs;
        batch_ = 1;
        break;
    default:
        batch_ = 1;
        break;
    }
    return outcome;
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
