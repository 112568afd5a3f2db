// kqserver's signals and what each one means, taken by one thread of their own with sigwait(), so no
// code runs in a signal handler (nginx's meanings where they apply):
//   SIGTERM, SIGINT, SIGQUIT  graceful stop (Server::stop); a second one of any of them stops at once
//   SIGHUP                    logged and ignored: there is no configuration to reload
//   SIGUSR1                   logs the per-worker summary so far and goes on
//   SIGUSR2                   logged and ignored: reserved
// SIGPIPE is ignored by the Server itself.
// Thread rules: block_signals() on the main thread before any other thread starts; the constructor and
// destructor on the thread that owns the Server.
#pragma once

#include <atomic>
#include <thread>

#include "kq/server.hpp"

namespace kq {

class SignalThread {
public:
    // Blocks the signals above in the calling thread; every thread it starts later inherits the mask,
    // so they reach no thread but the one sigwait() waits in.
    static void block_signals();

    explicit SignalThread(Server& server);
    // Ends the thread. The wake-up is a signal sent to that thread alone, and it leaves only when the
    // exiting flag is also set, so no signal from outside can end it early.
    ~SignalThread();
    SignalThread(const SignalThread&) = delete;
    SignalThread& operator=(const SignalThread&) = delete;

private:
    void run();
    void on_signal(int sig);

    Server& server_;
    std::atomic<bool> exiting_{false};
    bool stopping_ = false;  // signal thread only: a graceful stop is under way
    std::thread thread_;
};

}  // namespace kq
