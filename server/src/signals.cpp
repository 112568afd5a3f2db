// kqserver's signal thread: one sigwait() loop that turns each signal into what it means (signals.hpp).
#include "signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>
#include <chrono>
#include <system_error>

namespace kq {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
// Sent by the destructor to the signal thread alone; its meaning from outside (the summary) is harmless.
constexpr int kWakeSignal = SIGUSR1;

sigset_t signal_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kSignals) sigaddset(&set, sig);
    return set;
}

const char* signal_name(int sig) {
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGHUP:
        return "SIGHUP";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    default:
        return "signal";
    }
}

}  // namespace

void SignalThread::block_signals() {
    sigset_t set = signal_set();
    if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0)
        throw std::system_error(err, std::system_category(), "pthread_sigmask");
}

SignalThread::SignalThread(Server& server, StopPlan plan)
    : server_(server), plan_(std::move(plan)), thread_([this] { run(); }) {}

SignalThread::~SignalThread() {
    exiting_.store(true, std::memory_order_release);
    // A signal directed at the thread stays pending for it until its next sigwait(), so it is never lost,
    // whatever the thread is doing when it is sent.
    pthread_kill(thread_.native_handle(), kWakeSignal);
    thread_.join();
    cancel_delay();  // after the signal thread, the only other caller, has ended
    std::unique_ptr<Upgrade> last;
    {
        std::lock_guard lock(state_mu_);
        last = std::move(upgrade_);
    }
    last.reset();  // outside the lock: its thread may be waiting for it in on_upgrade_done()
}

void SignalThread::run() {
    const sigset_t set = signal_set();
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
        if (exiting_.load(std::memory_order_acquire)) return;
        on_signal(sig);
    }
}

void SignalThread::on_stop_signal(const char* name) {
    std::unique_lock lock(state_mu_);
    if (stopping_) {
        lock.unlock();
        spdlog::info("{}: stopping now", name);
        cancel_delay();
        server_.stop_now();
        return;
    }
    stopping_ = true;
    if (upgrade_ && !upgrade_->finished()) {
        spdlog::warn("{}: abandoning the upgrade: SIGTERM to the new process {}", name, upgrade_->pid());
        upgrade_->abandon();
    }
    lock.unlock();
    if (plan_.on_first) plan_.on_first();
    if (plan_.delay_ms > 0) {
        spdlog::info(
            "{}: not ready; still serving for the drain delay of {} ms, then draining (a second SIGTERM, "
            "SIGINT or SIGQUIT stops at once)",
            name, plan_.delay_ms);
        delay_ = std::thread([this] { delayed_stop(); });
        return;
    }
    spdlog::info("{}: no longer accepting; draining connections (a second SIGTERM, SIGINT or SIGQUIT stops at once)",
                 name);
    server_.stop();
}

void SignalThread::on_upgrade_signal() {
    if (!plan_.upgrade) {
        spdlog::info("SIGUSR2: ignored (this server cannot start its own upgrade)");
        return;
    }
    std::unique_ptr<Upgrade> previous;
    {
        std::lock_guard lock(state_mu_);
        if (stopping_) {
            spdlog::info("SIGUSR2: ignored: stopping");
            return;
        }
        if (upgrade_ && !upgrade_->finished()) {
            spdlog::info("SIGUSR2: ignored: the upgrade to process {} is under way", upgrade_->pid());
            return;
        }
        previous = std::move(upgrade_);
    }
    previous.reset();  // a failed one's thread has ended; joined outside the lock all the same
    UpgradeSpec spec = plan_.upgrade();
    std::lock_guard lock(state_mu_);  // held until the start is logged: its outcome is logged after
    try {
        upgrade_ = std::make_unique<Upgrade>(spec, [this](const Upgrade::Result& r) { on_upgrade_done(r); });
    } catch (const std::exception& e) {
        spdlog::error("SIGUSR2: upgrade failed: {}; still serving", e.what());
        return;
    }
    spdlog::info(
        "SIGUSR2: upgrading: started {} as process {} on the same listening sockets; waiting up to {:g} s "
        "for it to be ready",
        spec.exe, upgrade_->pid(), spec.timeout_ms / 1000.0);
}

void SignalThread::on_upgrade_done(const Upgrade::Result& r) {
    std::lock_guard lock(state_mu_);
    if (!r.ready) {
        spdlog::error("upgrade failed: the new process {} {}; still serving", r.pid, r.error);
        return;
    }
    if (stopping_) return;  // a stop signal came first and abandoned it
    stopping_ = true;
    spdlog::info("upgrade: the new process {} is ready; no longer accepting; draining connections", r.pid);
    if (plan_.on_upgraded) plan_.on_upgraded(r.pid);
    server_.stop();
}

void SignalThread::delayed_stop() {
    std::unique_lock lock(delay_mu_);
    if (delay_cv_.wait_for(lock, std::chrono::milliseconds(plan_.delay_ms), [this] { return delay_cancelled_; }))
        return;
    lock.unlock();
    spdlog::info("drain delay over: no longer accepting; draining connections");
    server_.stop();
}

void SignalThread::cancel_delay() {
    {
        std::lock_guard lock(delay_mu_);
        delay_cancelled_ = true;
    }
    delay_cv_.notify_all();
    if (delay_.joinable()) delay_.join();
}

void SignalThread::on_signal(int sig) {
    const char* name = signal_name(sig);
    switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        on_stop_signal(name);
        return;
    case SIGUSR1:
        spdlog::info("{}: the summary so far", name);
        server_.log_summary();
        return;
    case SIGHUP:
        spdlog::info("{}: ignored (kqserver has no configuration to reload)", name);
        return;
    case SIGUSR2:
        on_upgrade_signal();
        return;
    default:
        spdlog::info("{}: ignored (reserved)", name);
        return;
    }
}

}  // namespace kq
