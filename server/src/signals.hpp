// kqserver's signals and what each one means, taken by one thread of their own with sigwait(), so no
// code runs in a signal handler (nginx's meanings where they apply):
//   SIGTERM, SIGINT, SIGQUIT  graceful stop: readiness turns at once (StopPlan::on_first), the server
//                             keeps serving and accepting for StopPlan::delay_ms (--drain-delay), then
//                             stops accepting and drains (Server::stop); a second one of any of them,
//                             during the delay or the drain, stops at once (Server::stop_now)
//   SIGHUP                    logged and ignored: there is no configuration to reload
//   SIGUSR1                   logs the per-worker summary so far and goes on
//   SIGUSR2                   zero-downtime upgrade (upgrade.hpp), when StopPlan::upgrade is set:
//                             start the binary anew on the same listening sockets; once it is ready,
//                             StopPlan::on_upgraded, then stop accepting and drain (no drain delay, no
//                             turn of readiness: the service stays ready in the new process). If it
//                             fails (exits, or is not ready in time), log why and serve on. Ignored
//                             during a stop or while an upgrade is under way; a stop signal during one
//                             abandons it (SIGTERM to the new process, which has accepted nothing)
// SIGPIPE is ignored by the Server itself.
// Thread rules: block_signals() on the main thread before any other thread starts; the constructor and
// destructor on the thread that owns the Server.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "kq/server.hpp"
#include "upgrade.hpp"

namespace kq {

// What the first stop signal does before the drain, and what SIGUSR2 starts.
struct StopPlan {
    int delay_ms = 0;                        // keep serving this long before Server::stop() (--drain-delay)
    std::function<void()> on_first;          // at once, on the signal thread: turn /ready, notify STOPPING=1
    std::function<UpgradeSpec()> upgrade;    // the new process to start on SIGUSR2 (null: SIGUSR2 is ignored)
    std::function<void(pid_t)> on_upgraded;  // it is ready (any thread): tell the supervisor its new pid
};

class SignalThread {
public:
    // Blocks the signals above in the calling thread; every thread it starts later inherits the mask,
    // so they reach no thread but the one sigwait() waits in.
    static void block_signals();

    explicit SignalThread(Server& server, StopPlan plan = {});
    // Ends the thread. The wake-up is a signal sent to that thread alone, and it leaves only when the
    // exiting flag is also set, so no signal from outside can end it early.
    ~SignalThread();
    SignalThread(const SignalThread&) = delete;
    SignalThread& operator=(const SignalThread&) = delete;

private:
    void run();
    void on_signal(int sig);
    void on_stop_signal(const char* name);
    void on_upgrade_signal();
    void on_upgrade_done(const Upgrade::Result& r);
    // The drain delay's own thread: Server::stop() when delay_ms have passed, unless cancelled first.
    void delayed_stop();
    void cancel_delay();

    Server& server_;
    StopPlan plan_;
    std::mutex delay_mu_;
    std::condition_variable delay_cv_;
    bool delay_cancelled_ = false;  // guarded by delay_mu_
    std::thread delay_;
    std::atomic<bool> exiting_{false};
    std::mutex state_mu_;               // stopping_ and upgrade_: the signal thread's and the upgrade's
    bool stopping_ = false;             // a graceful stop (or a hand-over to a new process) is under way
    std::unique_ptr<Upgrade> upgrade_;  // the last one started
    std::thread thread_;
};

}  // namespace kq
