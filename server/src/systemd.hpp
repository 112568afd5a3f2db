// The two systemd protocols a service speaks, implemented inline rather than with libsystemd: readiness
// notification (sd_notify: one datagram per state change to $NOTIFY_SOCKET) and socket activation
// (sd_listen_fds: listening sockets inherited at fd 3... with $LISTEN_FDS and $LISTEN_PID). Both are
// stable, documented interfaces that systemd invites services to implement themselves (sd_notify(3),
// sd_listen_fds(3)); each is a few dozen lines here, so libsystemd (not installed on the build machines,
// Linux-only while kqserver also builds on macOS and the BSDs, and whose sd_notify() may block on a full
// socket) would add a dependency and buy nothing. Any supervisor that speaks them works, not only systemd.
// Thread rules: take_listen_fds() and Notifier's constructor on the main thread before any other thread
// starts (they change the environment); Notifier::send() from any thread.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kq/fd.hpp"

namespace kq {

// $NOTIFY_SOCKET's datagram socket. The constructor reads and unsets the variable (children must not
// notify for this process); without it, or when the address is unusable, every send() does nothing.
// send() never blocks and never fails the server: a datagram the socket cannot take (it is gone, full,
// or refuses) is dropped, and the first such failure is logged once at warning level.
class Notifier {
public:
    Notifier();
    bool enabled() const noexcept { return fd_.get() >= 0; }
    // $NOTIFY_SOCKET as it was ("" without it): what a process this one starts to replace it is given.
    const std::string& path() const noexcept { return path_; }
    // One datagram of newline-separated assignments, e.g. "READY=1\nSTATUS=serving".
    void send(std::string_view state) noexcept;

private:
    UniqueFd fd_;
    std::string path_;
    std::string address_;  // the sockaddr_un bytes, NUL first for an abstract name
    std::mutex mu_;        // the warned flag
    bool warned_ = false;
};

// The listening sockets handed in by socket activation, each checked to be a listening SOCK_STREAM
// socket and made non-blocking and close-on-exec; names[i] from $LISTEN_FDNAMES ("" when not given).
// Empty when $LISTEN_PID is absent or names another process (the variables were meant for a parent or
// sibling: bind as usual). Unsets the three variables either way. Throws std::runtime_error with a line
// naming the problem when the variables are present for this process but malformed, or an fd is not a
// listening stream socket.
struct InheritedSockets {
    std::vector<UniqueFd> fds;
    std::vector<std::string> names;
};
InheritedSockets take_listen_fds();

// The upgrade's readiness socket (upgrade.hpp): the fd named by $KQ_UPGRADE_READY_FD when an older
// process started this one to replace it, made close-on-exec; the variable is unset either way. Empty
// without it, or (logged) when it names no SOCK_SEQPACKET socket.
constexpr const char* kUpgradeReadyFdEnv = "KQ_UPGRADE_READY_FD";
UniqueFd take_upgrade_ready_fd();

}  // namespace kq
