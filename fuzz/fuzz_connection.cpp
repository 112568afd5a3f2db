// libFuzzer target for the connection state machine: random sequences of client actions (connect, send,
// read, half-close, close, reset, flood without reading, pause, a byte that makes the session close) and
// server events (graceful stop, immediate stop, idle/request/linger time-outs) over a few TCP
// connections to a fresh in-process kq::Server per input. It checks that each client reads back exactly
// what it is owed and never a byte it did not send, that the server resets a client only when it may,
// and that the server closes every connection and stops within its bounds.
//
// Why real sockets and not the worker driven directly: the states worth fuzzing (edge-triggered reads
// drained or pending, output paused above high water and resumed below low water, EOF hints, resets
// mid-write, input unread at a close) come from the kernel's answers; a real server on loopback gives
// them in well under a millisecond per action. The server is small on purpose: 1 worker, 4 KiB read
// buffer and 4 reads per event (so the read budget yields), high/low water 4096/1024 and 4 KiB socket
// buffers (so backpressure triggers within a few tens of KiB).
//
// The protocol echoes every byte, closes after echoing a 0xFF byte (leaving what followed it unread), and
// is mid-request while the last byte it received was not '\n' (so the request time-out applies).
//
// The worker's poller is the real backend decorated by ScriptedPoller (tests/support, through
// WorkerConfig::poller_factory): real events pass through, and the input may add events a kernel reports
// rarely: each connection event duplicated at the end of its batch (after an event that closed the
// connection, the duplicate is stale), spurious readable and writable flags, an extra wake-up. The
// connection must behave exactly as without them; every check below applies unchanged.
//
// Input: byte 0 = server options: bit 0 idle time-out, bit 1 request time-out, bit 2 a short linger
// (else a long one), bit 3 read before registering (as with --defer-accept), bits 4-7 the first
// injection mode (below); then 2 bytes per action, [op][arg]; op bits 0-3 = action, bits 4-5 = which
// of 4 client slots. Action 15 sets the injection mode to arg's bits 0-3: bit 0 duplicate, bit 1 add
// readable, bit 2 add writable, bit 3 add a wake-up; it holds for every batch until the next action 15.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <thread>

#include "kq/net.hpp"
#include "kq/server.hpp"
#include "scripted_poller.hpp"

namespace {

constexpr size_t kClients = 4;
constexpr size_t kMaxActions = 64;
constexpr size_t kByteBudget = 256 * 1024;  // bytes sent per input: keeps one input to milliseconds
constexpr int kSmallBuffer = 4096;
constexpr int kTimeoutMs = 10;      // the idle, request and short linger time-outs
constexpr int kDeadlineMs = 10000;  // for what must happen promptly; generous for CI load
constexpr char kCloseByte = '\xff';

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "fuzz_connection: invariant violated: %s\n", what);
    std::abort();
}
void check(bool ok, const char* what) {
    if (!ok) violated(what);
}

// Byte i of client stream `id`: a hash, so a lost, repeated or reordered block never looks right. Never
// the close byte: that one is sent only on purpose.
char stream_byte(uint64_t id, uint64_t i) {
    uint64_t z = (id << 40) + (i >> 3) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    char c = static_cast<char>(z >> (8 * (i & 7)));
    return c == kCloseByte ? '\xfe' : c;
}

class RequestEchoSession final : public kq::Session {
public:
    size_t on_data(std::span<char> bytes, kq::Conn& reply) override {
        const char* close = static_cast<const char*>(std::memchr(bytes.data(), kCloseByte, bytes.size()));
        size_t n = close ? static_cast<size_t>(close - bytes.data()) + 1 : bytes.size();
        reply.send(bytes.first(n));
        in_request_ = bytes[n - 1] != '\n';
        if (close) reply.close();
        return bytes.size();
    }
    bool mid_request() const override { return in_request_; }

private:
    bool in_request_ = false;
};

class RequestEchoProtocol final : public kq::Protocol {
public:
    std::string_view name() const override { return "request-echo"; }
    std::unique_ptr<kq::Session> open(kq::Conn&) override { return std::make_unique<RequestEchoSession>(); }
};

// What the server may do to a client without having been asked, given the options and the events so far.
struct Allowed {
    bool cut = false;    // end it before everything owed came back (time-outs, a stop)
    bool reset = false;  // with a reset (it closed with input unread: idle time-out, immediate stop, linger end)
};

struct Server {
    std::unique_ptr<kq::Server> server;
    std::thread thread;
    std::atomic<bool> finished{false};
    Allowed allowed;
    bool short_linger = false;
    bool stopped = false;  // a graceful or immediate stop was asked for: no more connects
    uint64_t connects = 0;
    std::atomic<uint8_t> inject{0};  // the injection mode (see the first comment); read by the worker
};

enum Inject : uint8_t { duplicate = 1, add_readable = 2, add_writable = 4, add_wake = 8 };

// Runs on the worker's thread after each real wait: adds to the batch what the injection mode asks for.
// Only connection events are touched; duplicates go to the end, so one for a connection an earlier event
// of the batch closed is stale, as a kernel's can be.
int inject(const Server& s, std::span<kq::PollEvent> out, int n) {
    uint8_t mode = s.inject.load(std::memory_order_relaxed);
    if (mode == 0) return n;
    size_t m = static_cast<size_t>(n);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
        kq::PollEvent& ev = out[i];
        if (ev.wake || ev.udata == nullptr) continue;
        ev.readable = ev.readable || (mode & add_readable) != 0;
        ev.writable = ev.writable || (mode & add_writable) != 0;
        if ((mode & duplicate) && m < out.size()) out[m++] = ev;
    }
    if ((mode & add_wake) && m < out.size()) out[m++] = kq::PollEvent{.wake = true};
    return static_cast<int>(m);
}

void start(Server& s, uint8_t options) {
    kq::ServerConfig cfg;
    cfg.listen.host = "127.0.0.1";
    cfg.listen.port = 0;
    cfg.listen.send_buffer = kSmallBuffer;  // else loopback autotuning takes megabytes before output waits
    cfg.workers = 1;
    cfg.worker.read_buffer = 4096;
    cfg.worker.reads_per_event = 4;
    cfg.worker.high_water = 4096;
    cfg.worker.low_water = 1024;
    cfg.worker.idle_timeout_ms = (options & 1) ? kTimeoutMs : 0;
    cfg.worker.request_timeout_ms = (options & 2) ? kTimeoutMs : 0;
    cfg.worker.linger_ms = (options & 4) ? kTimeoutMs : kDeadlineMs;
    cfg.worker.drain_timeout_ms = kDeadlineMs / 2;
    cfg.worker.read_on_admit = (options & 8) != 0;
    s.inject.store(static_cast<uint8_t>(options >> 4));
    cfg.worker.poller_factory = [&s](kq::Backend b) {
        auto p = std::make_unique<kq::test::ScriptedPoller>(kq::make_poller(b));
        p->set_transform([&s](std::span<kq::PollEvent> out, int n) { return inject(s, out, n); });
        return p;
    };
    s.allowed.cut = (options & 3) != 0;
    // The idle time-out closes at once; a request time-out closes as the session does, lingering: a short
    // linger that ends while the client still sends (or has not read its echo) closes on unread input.
    s.allowed.reset = (options & 1) != 0 || ((options & 2) != 0 && (options & 4) != 0);
    s.short_linger = (options & 4) != 0;
    s.server = std::make_unique<kq::Server>(cfg, std::make_unique<RequestEchoProtocol>());
    s.thread = std::thread([&s] {
        s.server->run();
        s.finished.store(true);
    });
}

// A graceful stop must end within the drain deadline (plus the clients' own finishing, done by now).
void stop(Server& s) {
    s.server->stop();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);
    while (!s.finished.load()) {
        check(std::chrono::steady_clock::now() < deadline, "the server did not stop after a graceful stop");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    s.thread.join();
}

struct Client {
    kq::UniqueFd fd;
    uint64_t id = 0;
    std::string sent;
    size_t received = 0;
    size_t owed = SIZE_MAX;    // after a close byte: the bytes up to and including it
    bool shut = false;         // shutdown(SHUT_WR) done
    bool ended = false;        // the server's FIN or reset arrived
    bool send_failed = false;  // the server closed or reset it: nothing more can be sent

    size_t expected() const { return std::min(owed, sent.size()); }
};

kq::UniqueFd connect_small(uint16_t port) {
    kq::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(fd.get() >= 0, "socket() failed");
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &kSmallBuffer, sizeof kSmallBuffer);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &kSmallBuffer, sizeof kSmallBuffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Non-blocking, then waited for: libFuzzer's SIGALRM (every timeout/2 + 1 s, no SA_RESTART) would
    // make a blocking connect() that had to wait fail with EINTR.
    kq::set_nonblocking(fd.get(), true);
    int err = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
    if (err == EINPROGRESS) err = kq::wait_connected(fd.get(), kDeadlineMs);
    if (err != 0) {
        std::fprintf(stderr, "fuzz_connection: connect(): %s\n", std::strerror(err));
        violated("connect() to the server failed");
    }
    return fd;
}

// Whether the server may have ended this client by now: it sent the close byte, or the server may cut.
bool may_end(const Client& c, const Server& s) { return c.owed != SIZE_MAX || s.allowed.cut; }
// A linger that ends while the client still sends closes on unread input: a reset, which may destroy
// echo still in the server's send queue. A long one outlasts every input.
bool may_reset(const Client& c, const Server& s) { return s.allowed.reset || (c.owed != SIZE_MAX && s.short_linger); }
bool may_cut(const Client& c, const Server& s) { return s.allowed.cut || may_reset(c, s); }

// Sends up to `want` bytes of the client's stream (or one close byte) without blocking.
void send_some(Client& c, const Server& s, size_t want, size_t& budget, bool close_byte = false) {
    char buf[16384];
    want = std::min({want, budget, sizeof buf});
    if (close_byte) want = 1;
    if (want == 0 || c.ended || c.send_failed) return;
    for (size_t i = 0; i < want; ++i) buf[i] = close_byte ? kCloseByte : stream_byte(c.id, c.sent.size() + i);
    ssize_t r = ::send(c.fd.get(), buf, want, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // the server stopped reading: fine
    if (r < 0) {
        check(may_end(c, s), "send() to the server failed (the server ended a client it owed)");
        c.send_failed = true;
        return;
    }
    c.sent.append(buf, static_cast<size_t>(r));
    budget -= static_cast<size_t>(r);
    if (close_byte && r == 1 && c.owed == SIZE_MAX) c.owed = c.sent.size();
}

// Reads up to `max` bytes without blocking: always the next part of what was sent, never more than
// owed; a FIN only once everything owed came back, unless the server may cut; a reset only when allowed.
void receive_some(Client& c, const Server& s, size_t max) {
    char buf[16384];
    while (max > 0 && !c.ended) {
        ssize_t r = ::recv(c.fd.get(), buf, std::min(max, sizeof buf), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            c.ended = true;
            check(r == 0 || may_reset(c, s), "the server reset a client it owed a clean end");
            check(may_end(c, s) || c.shut, "the server ended a client that had not half-closed");
            check(may_cut(c, s) || c.received == c.expected(), "the server ended before echoing what it owed");
            return;
        }
        check(c.received + static_cast<size_t>(r) <= c.expected(), "received more than was sent or owed");
        check(std::memcmp(buf, c.sent.data() + c.received, static_cast<size_t>(r)) == 0,
              "echo differs from what was sent");
        c.received += static_cast<size_t>(r);
        max -= static_cast<size_t>(r);
    }
}

// Sends without reading anything back until the server stops taking bytes or `want` bytes went out.
void flood(Client& c, const Server& s, size_t want, size_t& budget) {
    while (want > 0 && budget > 0 && !c.ended && !c.send_failed) {
        size_t before = c.sent.size();
        send_some(c, s, want, budget);
        want -= std::min(want, c.sent.size() - before);
        pollfd p{c.fd.get(), POLLOUT, 0};
        if (c.sent.size() == before && ::poll(&p, 1, 2) == 0) return;
    }
}

// Half-closes if not done yet, then reads until the server's FIN or reset.
void finish(Client& c, const Server& s) {
    if (!c.shut && !c.ended) {
        ::shutdown(c.fd.get(), SHUT_WR);
        c.shut = true;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);
    while (!c.ended) {
        check(std::chrono::steady_clock::now() < deadline, "no FIN from the server after a half-close");
        pollfd p{c.fd.get(), POLLIN, 0};
        ::poll(&p, 1, 100);
        receive_some(c, s, SIZE_MAX);
    }
    c.fd.reset();
}

void pause_ms(int ms) { ::poll(nullptr, 0, ms); }

// Before a stop: every client connected so far has reached the worker (one still in the kernel's
// backlog when the listening socket closes is reset by the kernel, not by the server).
void wait_until_accepted(const Server& s) {
    const kq::WorkerStats& st = s.server->worker_stats(0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);
    while (st.accepted.get() < s.connects) {
        check(std::chrono::steady_clock::now() < deadline, "a connected client never reached the worker");
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

void act(Client& c, uint8_t action, uint8_t arg, Server& s, size_t& budget) {
    bool open = c.fd.get() >= 0;
    switch (action) {
    case 0:
        if (!open && !s.stopped) {
            c = Client{};
            c.fd = connect_small(s.server->port());
            c.id = s.connects++;
        }
        break;
    case 1:
    case 13:
        if (open && !c.shut) send_some(c, s, (arg + 1u) * 64u, budget);
        break;
    case 2:
    case 14:
        if (open) receive_some(c, s, (arg + 1u) * 256u);
        break;
    case 3:
        if (open && !c.shut) {
            check(::shutdown(c.fd.get(), SHUT_WR) == 0 || may_end(c, s), "shutdown() failed");
            c.shut = true;
        }
        break;
    case 4:
        c.fd.reset();
        break;  // unread echo in our buffer turns this close into a reset
    case 5:
        if (open) kq::close_with_reset(std::move(c.fd));
        break;
    case 6:
        if (open && !c.shut) flood(c, s, (arg + 1u) * 4096u, budget);
        break;
    case 7:
        if (open) pause_ms(arg % 4);
        break;  // give the server time to fill our buffer and pause
    case 8:
        if (open && !c.shut) send_some(c, s, 1, budget, true);
        break;
    case 9:
        if (open && !c.shut) {  // ends a request: the session is between requests again
            char nl = '\n';
            if (::send(c.fd.get(), &nl, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) c.sent += nl;
        }
        break;
    case 10:  // graceful stop: every connection ends at its next request boundary
        wait_until_accepted(s);
        if (!s.stopped) s.server->stop();
        s.stopped = true;
        s.allowed.cut = true;
        s.allowed.reset = s.allowed.reset || s.short_linger;
        break;
    case 11:  // immediate stop
        wait_until_accepted(s);
        s.server->stop_now();
        s.stopped = true;
        s.allowed.cut = s.allowed.reset = true;
        break;
    case 12:
        pause_ms(arg % (2 * kTimeoutMs));
        break;  // let the time-outs fire
    case 15:
        s.inject.store(static_cast<uint8_t>(arg & 15), std::memory_order_relaxed);
        break;
    default:
        break;
    }
}

// The worker closes every connection the clients closed: it has seen them all and counted each close.
void check_all_closed(const Server& s) {
    const kq::WorkerStats& st = s.server->worker_stats(0);
    check(st.accepted.get() == s.connects, "the server did not accept every connection");
    check(st.closed.get() == st.accepted.get(), "the server did not close every connection it accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool quiet = (spdlog::set_level(spdlog::level::warn), true);
    (void)quiet;
    if (size == 0) return 0;
    Server s;
    start(s, data[0]);
    Client clients[kClients];
    size_t budget = kByteBudget;
    for (size_t i = 1; i + 1 < size && i / 2 < kMaxActions; i += 2)
        act(clients[(data[i] >> 4) % kClients], data[i] & 15, data[i + 1], s, budget);
    for (Client& c : clients) {
        if (c.fd.get() >= 0) finish(c, s);
    }
    // A client's connect() returns once the kernel has it in the backlog: wait for the worker to have it
    // before stopping, or a loaded machine stops the server with it still there (and never accepted).
    if (!s.stopped) wait_until_accepted(s);
    stop(s);
    check_all_closed(s);
    return 0;
}
