// kqserver's signals and what each one means, taken by one thread of their own with sigwait(), so no
// code runs in a signal handler (nginx's meanings where they apply):
//   SIGTERM, SIGINT, SIGQUIT  graceful stop: readiness turns at once (StopPlan::on_first), the server
//                             keeps serving and accepting for StopPlan::delay_ms (--drain-delay), then
//                             stops accepting and drains (Server::stop); a second one of any of them,
//                             during the delay or the drain, stops at once (Server::stop_now)
//   SIGHUP                    logged and ignored: there is no configuration to reload
//   SIGUSR1                   logs the per-worker summary so far and goes on
//   SIGUSR2                   logged and ignored: reserved
// SIGPIPE is ignored by the Server itself.
// Thread rules: block_signals() on the main thread before any other thread starts; the constructor and
// destructor on the thread that owns the Server.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "kq/server.hpp"

namespace kq {

// What the first stop signal does before the drain.
struct StopPlan {
    int delay_ms = 0;                // keep serving this long before Server::stop() (--drain-delay)
    std::function<void()> on_first;  // at once, on the signal thread: turn /ready, notify STOPPING=1
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
    bool stopping_ = false;  // signal thread only: a graceful stop is under way
    std::thread thread_;
};

}  // namespace kq
