// Test helpers: the in-process server (in_process_server.hpp), the per-backend fixture, blocking client
// sockets, and a multi-connection echo driver that checks every byte.
#pragma once

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "in_process_server.hpp"
#include "kq/net.hpp"
#include "kq/protocols.hpp"
#include "kq/server.hpp"
#include "kq/worker.hpp"

namespace kq::test {

// Built with ASan/UBSan or TSan. UBSan's vptr check probes memory through a pipe(), which fails with
// EMFILE while a test holds every fd the process may have: the probe then calls a valid object's vptr
// invalid ("memory cannot be printed"), and -fno-sanitize-recover makes that fatal. Tests that exhaust
// the fd table run in the plain build only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#define KQ_SKIP_IF_SANITIZED_UNDER_EMFILE()                                                                            \
    do {                                                                                                               \
        if (::kq::test::kSanitized) GTEST_SKIP() << "UBSan's vptr check needs free fds (a false report under EMFILE)"; \
    } while (0)

// Fixture of the suites that run once per built backend: config() gives a server config on that backend.
// A backend this machine cannot run now (io_uring refused by the kernel or a sandbox) skips, with the reason.
#define KQ_SKIP_IF_UNAVAILABLE(backend)                                                              \
    do {                                                                                             \
        if (std::string why = ::kq::backend_unavailable(backend); !why.empty()) GTEST_SKIP() << why; \
    } while (0)

class BackendTest : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override { KQ_SKIP_IF_UNAVAILABLE(GetParam()); }
    ServerConfig config(int workers) const {
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker.backend = GetParam();
        return cfg;
    }
};

// Names parameterised tests after the backend ("…/epoll", "…/kqueue").
inline std::string backend_label(const ::testing::TestParamInfo<Backend>& info) {
    return std::string(backend_name(info.param));
}

// Milliseconds since t, for deadlines and measured waits.
inline int64_t ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

inline UniqueFd connect_blocking(uint16_t port) { return connect_tcp("127.0.0.1", port, false); }
// A blocking client whose reads give up after 10 s: a missing reply fails the test, never hangs it.
inline UniqueFd connect_with_read_timeout(uint16_t port) {
    UniqueFd fd = connect_blocking(port);
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

inline void send_all(int fd, const void* data, size_t len) {
    auto* p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("send failed");
        p += n;
        len -= static_cast<size_t>(n);
    }
}
inline void send_all(int fd, const std::string& s) { send_all(fd, s.data(), s.size()); }

// A client socket to 127.0.0.1:port with a receive buffer, for test clients that parse replies:
// fill() appends what one recv() returns, false at EOF or error.
class BufferedConn {
protected:
    explicit BufferedConn(uint16_t port) : fd_(connect_blocking(port)) {}
    bool fill() {
        char tmp[65536];
        ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf_.append(tmp, static_cast<size_t>(n));
        return true;
    }
    UniqueFd fd_;
    std::string buf_;
};

// True if fd becomes readable within ms (to assert that nothing arrives in a window, or to peek).
inline bool readable_within(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}

// Bytes sent on fd that the peer's kernel has not acknowledged yet (SIOCOUTQ): 0 once all of them are in
// its receive queue (or read). -1 if the kernel cannot say.
inline int unacknowledged(int fd) {
    int queued = 0;
    return ::ioctl(fd, SIOCOUTQ, &queued) == 0 ? queued : -1;
}

// Reads exactly n bytes (or fewer if the peer closes first).
inline std::string recv_exact(int fd, size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
        if (r <= 0) break;
        got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
}

// Everything a peer sent until its FIN or a reset, and which of the two ended it.
struct Received {
    std::string bytes;
    bool reset = false;
};

// Reads until FIN or reset; any other error (a receive time-out set on fd included) fails the test.
inline Received read_until_closed(int fd) {
    Received r;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            r.bytes.append(buf, static_cast<size_t>(n));
            continue;
        }
        r.reset = n < 0 && errno == ECONNRESET;
        if (n < 0 && !r.reset) ADD_FAILURE() << "recv: " << std::strerror(errno);
        return r;
    }
}

// Reads until the peer closes; returns everything received.
inline std::string recv_until_eof(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r <= 0) return out;
        out.append(buf, static_cast<size_t>(r));
    }
}

// An echo server started with --max-connections = limit: `limit` clients are served, the next one
// waits in the kernel backlog (no answer within 300 ms) and is served as soon as one of the first
// closes; the server counted at least one limit pause.
void expect_limit_queues_next_client(RunningServer& srv, int limit);

// A loopback port where nothing listens: bound but never listening, so a connect is refused at once (the
// socket is kept so no other test takes the port meanwhile).
struct RefusingPort {
    RefusingPort() : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("RefusingPort: bind");
        port = ntohs(a.sin_port);
    }
    UniqueFd fd;
    uint16_t port = 0;
};

// A loopback listener that never accepts, its queue filled (listen backlog 0, then connections until
// one does not complete): a further connect's SYN is dropped, so it neither succeeds nor fails until
// its time-out. Loopback only.
struct UnresponsiveListener {
    UnresponsiveListener() {
        ListenOptions opt;
        opt.host = "127.0.0.1";
        opt.port = 0;
        opt.backlog = 0;
        fd = listen_tcp(opt);
        port = local_port(fd.get());
        for (int i = 0; i < 64; ++i) {
            fillers.push_back(connect_tcp("127.0.0.1", port, true));
            pollfd p{fillers.back().get(), POLLOUT, 0};
            if (::poll(&p, 1, 300) == 0) return;  // this one's SYN was dropped: the queue is full
        }
        throw std::runtime_error("UnresponsiveListener: the accept queue never filled");
    }
    UniqueFd fd;
    uint16_t port = 0;
    std::vector<UniqueFd> fillers;
};

// Random bytes, eight per generator call (the per-byte loop dominates the sanitizer runs otherwise).
inline std::string random_bytes(std::mt19937_64& rng, size_t n) {
    std::string s(n + 8, '\0');
    for (size_t i = 0; i < n; i += 8) {
        uint64_t word = rng();
        std::memcpy(s.data() + i, &word, 8);
    }
    s.resize(n);
    return s;
}

// One client connection of the echo driver: payloads to send, and what came back so far.
struct EchoStream {
    UniqueFd fd;
    std::vector<std::string> payloads;
    bool pipelined = false;  // send every payload at once instead of one per round trip
    std::string sent, received;
    size_t next_payload = 0, send_offset = 0;
};

// count non-blocking connections to 127.0.0.1:port, each with 1..max_payloads random payloads of
// 1..max_size bytes (from a generator seeded with seed); every pipeline_every-th one, starting with
// the first, pipelines its payloads.
std::vector<EchoStream> random_echo_streams(uint16_t port, size_t count, size_t max_size, size_t max_payloads,
                                            size_t pipeline_every, uint64_t seed);

// Drives many non-blocking echo connections from one thread with poll(): sends each stream's payloads
// (pipelined or one round trip at a time), reads replies concurrently so neither side can block, and
// returns false if any stream timed out. Compare sent/received afterwards.
bool drive_echo(std::vector<EchoStream>& streams, int timeout_ms);

}  // namespace kq::test
