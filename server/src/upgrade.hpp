// Zero-downtime upgrade (SIGUSR2; nginx's model, systemd's socket-passing protocol): the running
// process starts the binary at the path it was started from, with the same arguments, handing it every
// listening socket as socket activation does (LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, fds 3...). The
// sockets are the same kernel objects in both processes, so nothing queued on them is lost or reset
// while the two overlap: each process accepts from the same queues, and the old one's close only drops
// its reference. The new process says it is ready on a SOCK_SEQPACKET socket pair whose other end the
// old one holds (fd named by $KQ_UPGRADE_READY_FD): a private channel no other local process can write
// to, which also ends (EOF) when the new process exits before it is ready. The new process accepts
// nothing before it says READY=1, so a failed one is killed without losing a connection.
// Thread rules: construct, abandon() and destroy on one thread; done() runs on the Upgrade's own thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kq/fd.hpp"

namespace kq {

struct UpgradeSpec {
    std::string exe;                // the binary to start
    std::vector<std::string> argv;  // its whole command line, argv[0] included
    std::vector<int> service_fds;   // the server's listening sockets, named "service"
    int metrics_fd = -1;            // the metrics endpoint's, named "metrics" (-1: none)
    std::string notify_socket;      // $NOTIFY_SOCKET for the new process ("" = none)
    int timeout_ms = 30'000;        // to be ready in, or it is killed
};

class Upgrade {
public:
    struct Result {
        bool ready = false;
        pid_t pid = -1;
        std::string error;  // why not ready: "exited with status 1", "not ready within 30 s: killed", ...
    };
    // Forks and execs the new process (throws std::system_error when it cannot), then waits on a thread
    // of its own until the new process is ready, has exited, or the time-out has passed (then it is
    // killed and reaped), and calls done(result) from that thread, once, unless destroyed first.
    Upgrade(const UpgradeSpec& spec, std::function<void(const Result&)> done);
    // Ends the thread; a new process that has not said it is ready by then is killed and reaped.
    ~Upgrade();
    Upgrade(const Upgrade&) = delete;
    Upgrade& operator=(const Upgrade&) = delete;

    pid_t pid() const noexcept { return pid_; }
    // True once done() has returned (ready or failed).
    bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
    // The old process is stopping before the new one is ready: SIGTERM to the new one, which then stops
    // as any kqserver does (it has accepted nothing).
    void abandon() noexcept;

private:
    void wait(int timeout_ms, std::function<void(const Result&)> done);
    std::string kill_and_reap();  // how it ended

    pid_t pid_ = -1;
    bool reaped_ = false;  // the thread's until it ends, then the destructor's
    bool ready_ = false;   // likewise
    UniqueFd ready_fd_;    // the old process's end of the readiness socket pair
    UniqueFd cancel_r_, cancel_w_;
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

}  // namespace kq
