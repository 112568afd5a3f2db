// Socket helpers shared by the server, the bench client and the tests: listen, connect, options.
#pragma once

#include <cstdint>
#include <string>

#include "kq/fd.hpp"
#include "kq/log_rate_limit.hpp"

namespace kq {

struct ListenOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 0;  // 0 = ephemeral
    int backlog = 4096;
    bool reuse_port = false;
    // TCP_DEFER_ACCEPT (Linux): a client reaches accept() only once its first bytes have arrived, or
    // after about this many seconds of silence. Only for protocols where the client speaks first.
    // 0 = off. Elsewhere it is ignored (it changes when a connection is accepted, never what it sees).
    int defer_accept_s = 0;
    // SO_SNDBUF for every accepted connection (they inherit it from the listening socket, and a size
    // set so is no longer autotuned), as nginx's "listen ... sndbuf=". 0 = the kernel's autotuning.
    int send_buffer = 0;
    // SO_RCVBUF the same way (nginx's "rcvbuf="): bounds what the kernel queues for one client. 0 = autotuning.
    int recv_buffer = 0;
};

// Resolves host (numeric or name, IPv4 or IPv6), binds with SO_REUSEADDR, listens; non-blocking, close-on-exec.
// Throws std::system_error naming the failing call.
UniqueFd listen_tcp(const ListenOptions& opt);
// Connects to host:port. nonblocking: returns the fd with the connect possibly still in progress.
// Blocking: returns once connected; a signal that interrupts connect() does not fail it (see below).
UniqueFd connect_tcp(const std::string& host, uint16_t port, bool nonblocking);
// Waits for a connect() in progress (EINPROGRESS, or EINTR from a blocking connect, after which the
// kernel goes on connecting and a second connect() would only say EALREADY), retrying poll() when a
// signal interrupts it. Returns 0 once connected, else the connect's errno (ETIMEDOUT after timeout_ms).
int wait_connected(int fd, int timeout_ms) noexcept;
// The port a bound socket listens on, and "host:port" for printing.
uint16_t local_port(int fd);
std::string local_address(int fd);
void set_nonblocking(int fd, bool on);
void set_nodelay(int fd, bool on);
// Closes with SO_LINGER 0 so the peer sees a reset (tests and the bench's error paths).
void close_with_reset(UniqueFd fd);

// One accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) on a non-blocking listening socket, its errno sorted the way
// an accept loop needs (kq::AcceptLoop, the acceptor's and, with --accept reuseport, each worker's):
//   accepted    fd owns the new connection;
//   drained     EAGAIN: the backlog is empty, the next client brings a new edge;
//   retry       EINTR, or the client gave up while queued (ECONNABORTED, EPROTO);
//   out_of_fds  EMFILE, ENFILE, ENOBUFS, ENOMEM: pause for kAcceptPauseMs, never spin;
//   failed      anything else.
// errno is left as accept4 set it, for the caller's log line.
enum class AcceptResult { accepted, drained, retry, out_of_fds, failed };
AcceptResult accept_client(int listen_fd, UniqueFd& fd) noexcept;
// The same sorting for an accept that failed with err done elsewhere (io_uring's multishot accept).
AcceptResult accept_error(int err) noexcept;
inline constexpr int kAcceptPauseMs = 100;  // back-off after out_of_fds, as nginx does

// The warning an accept loop logs on out_of_fds. At the fd limit a pause begins every kAcceptPauseMs,
// so a line per pause would flood the log (ten a second); this logs at most one per kAcceptLogIntervalMs,
// each saying how many pauses it stands for ("pauses since the last such line: N"), and the pauses held
// back since the last line when the loop ends, so the lines add up to the pause counter.
// Thread rules: one per accept loop, used on that loop's thread only.
inline constexpr int kAcceptLogIntervalMs = 5000;
class AcceptPauseLog {
public:
    explicit AcceptPauseLog(const char* who) : who_(who), limit_(std::chrono::milliseconds(kAcceptLogIntervalMs)) {}
    ~AcceptPauseLog() { flush(); }
    AcceptPauseLog(const AcceptPauseLog&) = delete;
    AcceptPauseLog& operator=(const AcceptPauseLog&) = delete;
    // A pause began because accept4 failed with err.
    void paused(int err);
    // Logs the pauses no line has reported yet, if any.
    void flush() noexcept;

private:
    const char* who_;  // "accept4", "worker accept4", "worker io_uring accept"
    LogRateLimit limit_;
};

}  // namespace kq
