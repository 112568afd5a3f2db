// libFuzzer target for the connection state machine: random sequences of client actions (connect, send,
// read, half-close, close, reset, flood without reading, pause) over a few TCP connections to one
// in-process echo kq::Server, checking that each client gets back exactly what it sent and that the
// worker has closed every connection by the end of each input.
//
// Why real sockets and not the worker driven directly: the states worth fuzzing (edge-triggered reads
// drained or pending, output paused above high water and resumed below low water, EOF hints, resets
// mid-write) come from the kernel's answers, and the worker's loop is internal with no seam for fake
// events; a real server on loopback gives the real answers in well under a millisecond per action.
// The server is small on purpose: 1 worker, 4 KiB read buffer and 4 reads per event (so the read
// budget yields), high/low water 4096/1024 and 4 KiB client socket buffers (so backpressure triggers
// with a few tens of KiB), no time-outs (so any close the server makes on its own is a bug).
//
// Input: 2 bytes per action, [op][arg]; op bits 0-2 = action, bits 4-5 = which of 4 client slots.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "kq/net.hpp"
#include "kq/server.hpp"

namespace {

constexpr size_t kClients = 4;
constexpr size_t kMaxActions = 64;
constexpr size_t kByteBudget = 512 * 1024;  // bytes sent per input: keeps one input to milliseconds
constexpr int kClientBuffer = 4096;
constexpr int kDeadlineMs = 10000;   // for what must happen promptly; generous for CI load
constexpr auto kDeadline = std::chrono::milliseconds(kDeadlineMs);

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "fuzz_connection: invariant violated: %s\n", what);
    std::abort();
}
void check(bool ok, const char* what) {
    if (!ok) violated(what);
}

// Byte i of client stream `id`: a hash, so a lost, repeated or reordered block never looks right.
char stream_byte(uint64_t id, uint64_t i) {
    uint64_t z = (id << 40) + (i >> 3) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return static_cast<char>(z >> (8 * (i & 7)));
}

// Loopback autotuning lets the server's send buffers grow to megabytes, so its output would pass high
// water only after megabytes per input. A send buffer set on the listening socket is inherited, and
// fixed, by every socket accepted from it: the harness finds that socket among its fds and shrinks it.
void shrink_server_send_buffer(uint16_t port) {
    for (int fd = 0; fd < 1024; ++fd) {
        int listening = 0;
        socklen_t len = sizeof listening;
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
        sockaddr_in addr{};
        len = sizeof addr;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || ntohs(addr.sin_port) != port) continue;
        check(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kClientBuffer, sizeof kClientBuffer) == 0, "SO_SNDBUF failed");
        return;
    }
    violated("the server's listening socket is not among this process's fds");
}

// The server, started once and never destroyed: inputs run back to back against it, and destroying it
// at exit would race libFuzzer's own exit paths for nothing.
struct Harness {
    std::unique_ptr<kq::Server> server;
    std::thread thread;
    uint64_t connects = 0;  // every client connection ever made, across inputs
    uint64_t next_id = 0;
};

Harness& harness() {
    static Harness* h = [] {
        spdlog::set_level(spdlog::level::warn);
        kq::ServerConfig cfg;
        cfg.listen.host = "127.0.0.1";
        cfg.listen.port = 0;
        cfg.workers = 1;
        cfg.worker.read_buffer = 4096;
        cfg.worker.reads_per_event = 4;
        cfg.worker.high_water = 4096;
        cfg.worker.low_water = 1024;
        cfg.worker.idle_timeout_ms = 0;
        cfg.worker.request_timeout_ms = 0;
        // The worker reads each connection before registering it (as with --defer-accept), the path with
        // more states: whatever that first read leaves (nothing there, part, a pause) the registration
        // after it must pick up. The register-first path is what every other test runs.
        cfg.worker.read_on_admit = true;
        auto* p = new Harness;
        p->server = std::make_unique<kq::Server>(cfg, kq::make_builtin_protocol("echo"));
        shrink_server_send_buffer(p->server->port());
        p->thread = std::thread([p] { p->server->run(); });
        return p;
    }();
    return *h;
}

struct Client {
    kq::UniqueFd fd;
    uint64_t id = 0;
    uint64_t sent = 0, received = 0;
    bool shut = false;  // shutdown(SHUT_WR) done
    bool eof = false;   // the server's FIN arrived
};

kq::UniqueFd connect_small(uint16_t port) {
    kq::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(fd.get() >= 0, "socket() failed");
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &kClientBuffer, sizeof kClientBuffer);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &kClientBuffer, sizeof kClientBuffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Non-blocking, then waited for: libFuzzer's SIGALRM (every timeout/2 + 1 s, no SA_RESTART) would
    // make a blocking connect() that had to wait fail with EINTR, as it once did in CI.
    kq::set_nonblocking(fd.get(), true);
    int err = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
    if (err == EINPROGRESS) err = kq::wait_connected(fd.get(), kDeadlineMs);
    if (err != 0) {
        std::fprintf(stderr, "fuzz_connection: connect(): %s\n", std::strerror(err));
        violated("connect() to the server failed");
    }
    return fd;
}

// Sends up to `want` bytes of the client's stream without blocking; the server never resets a client
// that has not reset it, so any error is a violation.
void send_some(Client& c, size_t want, size_t& budget) {
    char buf[16384];
    want = std::min(want, budget);
    while (want > 0) {
        size_t n = std::min(want, sizeof buf);
        for (size_t i = 0; i < n; ++i) buf[i] = stream_byte(c.id, c.sent + i);
        ssize_t r = ::send(c.fd.get(), buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // the server stopped reading: fine
        check(r > 0, "send() to the server failed");
        c.sent += static_cast<uint64_t>(r);
        budget -= static_cast<size_t>(r);
        want -= static_cast<size_t>(r);
    }
}

// Sends without reading anything back until the server stops taking bytes (its output to us passed
// high water, so it stopped reading us) or `want` bytes went out.
void flood(Client& c, size_t want, size_t& budget) {
    while (want > 0 && budget > 0) {
        uint64_t before = c.sent;
        send_some(c, want, budget);
        want -= std::min<size_t>(want, c.sent - before);
        pollfd p{c.fd.get(), POLLOUT, 0};
        if (::poll(&p, 1, 2) == 0) return;
    }
}

// Reads up to `max` bytes without blocking. Echo: what arrives is the next part of what was sent,
// never more; the server's FIN comes only after a half-close and only once everything came back.
void receive_some(Client& c, size_t max) {
    char buf[16384];
    while (max > 0 && !c.eof) {
        ssize_t r = ::recv(c.fd.get(), buf, std::min(max, sizeof buf), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        check(r >= 0, "recv() from the server failed (the server reset a client)");
        if (r == 0) {
            check(c.shut, "the server closed a client that had not half-closed");
            check(c.received == c.sent, "the server closed before echoing every byte");
            c.eof = true;
            return;
        }
        check(c.received + static_cast<uint64_t>(r) <= c.sent, "received more than was sent");
        for (ssize_t i = 0; i < r; ++i) {
            check(buf[i] == stream_byte(c.id, c.received + static_cast<uint64_t>(i)), "echo differs from what was sent");
        }
        c.received += static_cast<uint64_t>(r);
        max -= static_cast<size_t>(r);
    }
}

// Half-closes if not done yet, then reads until the server's FIN: every byte must come back first.
void finish(Client& c) {
    if (!c.shut) {
        check(::shutdown(c.fd.get(), SHUT_WR) == 0, "shutdown() failed");
        c.shut = true;
    }
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (!c.eof) {
        check(std::chrono::steady_clock::now() < deadline, "no FIN from the server after a half-close");
        pollfd p{c.fd.get(), POLLIN, 0};
        ::poll(&p, 1, 100);
        receive_some(c, SIZE_MAX);
    }
    c.fd.reset();
}

void open_client(Client& c, Harness& h) {
    c = Client{};
    c.fd = connect_small(h.server->port());
    c.id = h.next_id++;
    ++h.connects;
}

void act(Client& c, uint8_t action, uint8_t arg, Harness& h, size_t& budget) {
    bool open = c.fd.get() >= 0;
    switch (action) {
    case 0: if (!open) open_client(c, h); break;
    case 1: if (open && !c.shut) send_some(c, (arg + 1u) * 64u, budget); break;
    case 2: if (open) receive_some(c, (arg + 1u) * 256u); break;
    case 3:
        if (open && !c.shut) {
            check(::shutdown(c.fd.get(), SHUT_WR) == 0, "shutdown() failed");
            c.shut = true;
        }
        break;
    case 4: c.fd.reset(); break;  // unread echo in our buffer turns this close into a reset
    case 5: if (open) kq::close_with_reset(std::move(c.fd)); break;
    case 6: if (open && !c.shut) flood(c, (arg + 1u) * 4096u, budget); break;
    case 7:  // stop reading for a while: give the server time to fill our buffer and pause
        if (open) {
            pollfd p{c.fd.get(), POLLIN, 0};
            ::poll(&p, 1, arg % 4);
        }
        break;
    }
}

// The worker closes every connection the clients closed: it has seen them all and counted each close.
void wait_until_all_closed(Harness& h) {
    const kq::WorkerStats& s = h.server->worker(0).stats();
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (s.accepted.get() != h.connects || s.closed.get() != s.accepted.get()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            std::fprintf(stderr, "fuzz_connection: connects %llu, accepted %llu, closed %llu\n",
                         static_cast<unsigned long long>(h.connects), static_cast<unsigned long long>(s.accepted.get()),
                         static_cast<unsigned long long>(s.closed.get()));
            violated("the server did not accept and close every connection");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Harness& h = harness();
    Client clients[kClients];
    size_t budget = kByteBudget;
    for (size_t i = 0; i + 1 < size && i / 2 < kMaxActions; i += 2) {
        act(clients[(data[i] >> 4) % kClients], data[i] & 7, data[i + 1], h, budget);
    }
    for (Client& c : clients) {
        if (c.fd.get() >= 0) finish(c);
    }
    wait_until_all_closed(h);
    return 0;
}
