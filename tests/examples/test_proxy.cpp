// The proxy example (examples/proxy) served in-process in front of in-process backends: bytes both ways
// intact, round-robin, skipped dead or silent backends, the error line, resets passed on, and bounded
// memory in front of a client that does not read; and a stress run: a thousand connections with resets on
// both sides, byte-exact, every connection and fd closed afterwards.
#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

SocketAddress loopback(uint16_t port) { return SocketAddress::numeric("127.0.0.1", port); }

struct Proxy {
    explicit Proxy(std::vector<uint16_t> ports,
                   std::chrono::milliseconds connect_timeout = std::chrono::milliseconds(1000)) {
        kqproxy::ProxyOptions o;
        for (uint16_t p : ports) o.backends.push_back(loopback(p));
        o.connect_timeout = connect_timeout;
        auto p = std::make_unique<kqproxy::ProxyProtocol>(std::move(o));
        protocol = p.get();
        server = std::make_unique<RunningServer>(ServerConfig{}, std::move(p));  // 2 workers
    }
    uint16_t port() const { return server->port(); }
    kqproxy::ProxyStats& stats() { return protocol->stats(); }
    // Every client and backend connection of the proxy closed.
    bool idle() const {
        return server->accepted() == server->total(&WorkerStats::closed) &&
               server->total(&WorkerStats::outbound) == server->total(&WorkerStats::outbound_closed);
    }
    kqproxy::ProxyProtocol* protocol = nullptr;
    std::unique_ptr<RunningServer> server;
};

RunningServer echo_backend() {
    ServerConfig cfg;
    cfg.workers = 1;
    return RunningServer(cfg);
}
bool backend_idle(RunningServer& b) { return b.accepted() == b.total(&WorkerStats::closed); }

std::string round_trip(uint16_t port, const std::string& s) {
    UniqueFd c = connect_with_read_timeout(port);
    send_all(c.get(), s);
    return recv_exact(c.get(), s.size());
}

TEST(Proxy, ForwardsAMebibyteBothWaysIntactAndPassesTheHalfCloseOn) {
    RunningServer backend = echo_backend();
    Proxy proxy({backend.port()});
    std::mt19937_64 rng(12);
    const std::string data = random_bytes(rng, 1 << 20);
    UniqueFd c = connect_with_read_timeout(proxy.port());
    std::thread sender([&] {
        send_all(c.get(), data);
        ::shutdown(c.get(), SHUT_WR);  // echo closes after its EOF, and the proxy passes that back
    });
    Received back = read_until_closed(c.get());
    sender.join();
    EXPECT_FALSE(back.reset);
    EXPECT_EQ(back.bytes.size(), data.size());
    EXPECT_TRUE(back.bytes == data);
    EXPECT_TRUE(eventually([&] { return proxy.idle() && backend_idle(backend); }));
    EXPECT_EQ(proxy.stats().forwarded.load(), 1u);
}

TEST(Proxy, SpreadsClientsRoundRobin) {
    RunningServer a = echo_backend(), b = echo_backend();
    Proxy proxy({a.port(), b.port()});
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(round_trip(proxy.port(), "ping " + std::to_string(i)), "ping " + std::to_string(i));
    EXPECT_EQ(a.accepted(), 5u);
    EXPECT_EQ(b.accepted(), 5u);
}

TEST(Proxy, SkipsARefusingBackend) {
    RefusingPort dead;
    RunningServer live = echo_backend();
    Proxy proxy({dead.port, live.port()});
    for (int i = 0; i < 6; ++i) EXPECT_EQ(round_trip(proxy.port(), "hello"), "hello");
    EXPECT_EQ(live.accepted(), 6u);
    EXPECT_EQ(proxy.stats().retries.load(), 3u);  // the three clients whose turn was the dead one's
    EXPECT_EQ(proxy.stats().unavailable.load(), 0u);
}

TEST(Proxy, NoBackendUpAnswersOneErrorLineThenCloses) {
    RefusingPort dead1, dead2;
    Proxy proxy({dead1.port, dead2.port});
    UniqueFd c = connect_with_read_timeout(proxy.port());
    send_all(c.get(), "some request\n");  // read by nobody: the close must not reset over it
    Received r = read_until_closed(c.get());
    EXPECT_EQ(r.bytes, "kqproxy: no backend available (last error: Connection refused)\n");
    EXPECT_FALSE(r.reset);
    EXPECT_EQ(proxy.stats().retries.load(), 2u);
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
}

TEST(Proxy, SkipsABackendThatDoesNotAnswerWithinTheConnectTimeout) {
    UnresponsiveListener silent;
    RunningServer live = echo_backend();
    Proxy proxy({silent.port, live.port()}, std::chrono::milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(round_trip(proxy.port(), "first"), "first");  // tried the silent one first
    EXPECT_GE(ms_since(start), 190);
    EXPECT_EQ(proxy.stats().retries.load(), 1u);
    EXPECT_EQ(live.accepted(), 1u);
}

TEST(Proxy, OnlySilentBackendsTimeOutIntoTheErrorLine) {
    UnresponsiveListener silent;
    Proxy proxy({silent.port}, std::chrono::milliseconds(200));
    UniqueFd c = connect_with_read_timeout(proxy.port());
    Received r = read_until_closed(c.get());
    EXPECT_EQ(r.bytes, "kqproxy: no backend available (last error: Connection timed out)\n");
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
}

TEST(Proxy, ClientResetMidTransferClosesTheBackendSide) {
    RunningServer backend = echo_backend();
    Proxy proxy({backend.port()});
    std::mt19937_64 rng(7);
    UniqueFd c = connect_with_read_timeout(proxy.port());
    send_all(c.get(), random_bytes(rng, 256 * 1024));
    EXPECT_EQ(recv_exact(c.get(), 1000).size(), 1000u);  // the transfer is under way end to end
    close_with_reset(std::move(c));
    EXPECT_TRUE(eventually([&] { return backend_idle(backend); }));
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
    EXPECT_EQ(backend.accepted(), 1u);
}

TEST(Proxy, BackendResetClosesTheClientAfterWhatItSent) {
    // The backend is a plain socket here, so the test can reset it.
    ListenOptions opt;
    UniqueFd listener = listen_tcp(opt);
    set_nonblocking(listener.get(), false);
    Proxy proxy({local_port(listener.get())});
    UniqueFd c = connect_with_read_timeout(proxy.port());
    send_all(c.get(), "request");
    UniqueFd b(::accept(listener.get(), nullptr, nullptr));
    ASSERT_TRUE(b);
    EXPECT_EQ(recv_exact(b.get(), 7), "request");
    send_all(b.get(), "partial answer");
    close_with_reset(std::move(b));
    Received r = read_until_closed(c.get());
    EXPECT_EQ(r.bytes, "partial answer");
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
}

// A backend that answers its first bytes with `total` bytes of a known pattern, under flow control (it
// sends while its output is not congested and goes on in on_drained), then closes.
class BlastSession final : public Session {
public:
    explicit BlastSession(size_t total) : left_(total) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        if (!started_) {
            started_ = true;
            pump(conn);
        }
        return bytes.size();
    }
    void on_drained(Conn& conn) override { pump(conn); }
    static char at(size_t i) { return static_cast<char>('a' + (i * 7 + i / 4096) % 26); }

private:
    void pump(Conn& conn) {
        std::string chunk;
        while (left_ > 0 && !conn.congested()) {
            chunk.resize(std::min<size_t>(left_, 64 * 1024));
            for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = at(sent_ + i);
            conn.send(chunk);
            sent_ += chunk.size();
            left_ -= chunk.size();
        }
        if (left_ == 0) conn.close();
    }
    size_t left_, sent_ = 0;
    bool started_ = false;
};
class BlastProtocol final : public Protocol {
public:
    explicit BlastProtocol(size_t total) : total_(total) {}
    std::string_view name() const override { return "blast"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<BlastSession>(total_); }

private:
    size_t total_;
};

TEST(Proxy, ClientThatDoesNotReadHoldsTheBackendBackAndCostsBoundedMemory) {
    const size_t total = size_t{64} << 20;
    ServerConfig cfg;
    cfg.workers = 1;
    RunningServer backend(cfg, std::make_unique<BlastProtocol>(total));
    Proxy proxy({backend.port()});
    UniqueFd c = connect_with_read_timeout(proxy.port());
    send_all(c.get(), "go");
    // The backend's output stops growing while the client reads nothing: observed as no progress over
    // 300 ms (bounded: it must happen within 20 s).
    uint64_t last = 0;
    auto since = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] {
        uint64_t now = backend.bytes_written();
        if (now != last) {
            last = now;
            since = std::chrono::steady_clock::now();
        }
        return now > 0 && ms_since(since) >= 300;
    }));
    EXPECT_LT(last, total / 2);  // the kernel's socket buffers and the proxy's hold the rest back
    // The proxy paused reading the backend, holding no more than low water plus one read for the client.
    const WorkerConfig defaults;
    EXPECT_GE(proxy.stats().pauses.load(), 1u);
    EXPECT_LE(proxy.stats().max_buffered.load(), defaults.low_water + defaults.read_buffer);
    // Now the client reads: everything arrives, in order, and the close after it.
    Received r = read_until_closed(c.get());
    ASSERT_EQ(r.bytes.size(), total);
    size_t bad = 0;
    for (size_t i = 0; i < total && bad == 0; ++i) bad += r.bytes[i] != BlastSession::at(i) ? i + 1 : 0;
    EXPECT_EQ(bad, 0u) << "first wrong byte at " << bad - 1;
    // The backend's EOF reached the client as a half-close: the pair ends when the client closes too.
    c.reset();
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
}

// ---- Stress: a thousand connections, resets on both sides.

// The marker that makes ResettingEcho's session drop its connection: 16 bytes that random data of the
// sizes used here contains by chance with probability about 2^-108.
const std::string kResetMarker("\x00KQ-RESET-NOW!\xff\x01", 16);

// Echo that, once it sees kResetMarker, echoes what came before it and closes without reading the rest:
// input_may_follow() is false, so the worker closes at once instead of lingering, and the kernel answers
// the bytes still unread or still arriving with a reset (the handler API has no direct reset). A partial
// marker at the end of a read is held (returned unconsumed) until the next bytes decide.
class ResettingEchoSession final : public Session {
public:
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        std::string_view in(bytes.data(), bytes.size());
        if (size_t at = in.find(kResetMarker); at != std::string_view::npos) {
            conn.send(in.substr(0, at));
            conn.close();
            return bytes.size();
        }
        size_t keep = std::min(bytes.size(), kResetMarker.size() - 1);
        conn.send(in.substr(0, bytes.size() - keep));
        return bytes.size() - keep;
    }
    void on_peer_eof(Conn& conn) override {
        std::span<char> rest = conn.held_input();
        conn.send(std::string_view(rest.data(), rest.size()));
        conn.close();
    }
    bool input_may_follow() const override { return false; }
};
class ResettingEcho final : public Protocol {
public:
    std::string_view name() const override { return "resetting-echo"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<ResettingEchoSession>(); }
};

size_t open_fds() {
    size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    return n - 1;  // opendir's own
}

enum class Fate { normal, client_reset, backend_reset };

struct Outcome {
    std::string received;
    bool reset = false, timed_out = false;
};

// One non-blocking client connection driven with poll(), reading concurrently with sending so that
// neither side can block the other. Without reset_at_stop: sends all of data, then SHUT_WR, and reads until
// the peer's FIN or reset (a send the peer's reset fails stops the sending). With it: sends the first
// stop_after bytes, waits until wait_echo bytes came back, and closes with a reset. timed_out if either
// takes longer than timeout_ms.
Outcome drive_one(uint16_t port, const std::string& data, size_t stop_after, size_t wait_echo, bool reset_at_stop,
                  int timeout_ms) {
    Outcome out;
    UniqueFd fd = connect_blocking(port);
    set_nonblocking(fd.get(), true);
    auto start = std::chrono::steady_clock::now();
    size_t sent = 0;
    bool shut = false, send_failed = false;
    for (;;) {
        if (reset_at_stop && sent >= stop_after && out.received.size() >= wait_echo) {
            close_with_reset(std::move(fd));
            return out;
        }
        if (!reset_at_stop && !shut && !send_failed && sent == data.size()) {
            ::shutdown(fd.get(), SHUT_WR);
            shut = true;
        }
        const int left = timeout_ms - static_cast<int>(ms_since(start));
        if (left <= 0) {
            out.timed_out = true;
            return out;
        }
        const size_t limit = reset_at_stop ? stop_after : data.size();
        pollfd p{fd.get(), static_cast<short>(POLLIN | (sent < limit && !send_failed ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, std::min(left, 100)) < 0) continue;
        if ((p.revents & POLLOUT) && sent < limit) {
            ssize_t n = ::send(fd.get(), data.data() + sent, std::min<size_t>(limit - sent, 16384), MSG_NOSIGNAL);
            if (n > 0) sent += static_cast<size_t>(n);
            else if (n < 0 && errno != EAGAIN) send_failed = true;  // the backend's reset reached us
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[65536];
            ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
            if (n > 0) {
                out.received.append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EAGAIN) {
                out.reset = n < 0 && errno == ECONNRESET;
                return out;
            }
        }
    }
}

TEST(ProxyStress, AThousandConnectionsWithRandomResetsOnBothSidesByteExactNoFdLeak) {
    constexpr size_t kConnections = 1000, kThreads = 64;
    ServerConfig bcfg;
    bcfg.workers = 1;
    RunningServer backend_a(bcfg, std::make_unique<ResettingEcho>());
    RunningServer backend_b(bcfg, std::make_unique<ResettingEcho>());
    Proxy proxy({backend_a.port(), backend_b.port()});  // 2 workers
    // The baseline once every worker holds what it holds while running (an io_uring ring is made on
    // the worker's thread after the server's run() starts it).
    ASSERT_TRUE(eventually([&] { return backend_a.started() && backend_b.started() && proxy.server->started(); }));
    const size_t fds_before = open_fds();

    struct Plan {
        Fate fate;
        std::string data;
        size_t stop_after = 0, wait_echo = 0, marker_at = 0;
    };
    std::vector<Plan> plans(kConnections);
    size_t count[3] = {0, 0, 0};
    for (size_t i = 0; i < kConnections; ++i) {
        std::mt19937_64 rng(90'000 + i);
        Plan& p = plans[i];
        const uint64_t pick = rng() % 10;
        p.fate = pick < 6 ? Fate::normal : pick < 8 ? Fate::client_reset : Fate::backend_reset;
        ++count[static_cast<int>(p.fate)];
        p.data = random_bytes(rng, 1 + rng() % (64 * 1024));
        if (p.fate == Fate::client_reset) {
            p.stop_after = rng() % p.data.size();
            // Wait for some of it to come back first (the transfer under way end to end), or not. The backend
            // holds back the last kResetMarker.size() - 1 bytes it got until more follow.
            const size_t echoable = p.stop_after > kResetMarker.size() ? p.stop_after - kResetMarker.size() : 0;
            p.wait_echo = rng() % 2 == 0 || echoable == 0 ? 0 : 1 + rng() % std::min<size_t>(echoable, 1024);
        } else if (p.fate == Fate::backend_reset) {
            p.marker_at = rng() % p.data.size();
            p.data.insert(p.marker_at, kResetMarker);
        }
    }

    std::vector<Outcome> outcomes(kConnections);
    std::atomic<size_t> next{0};
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (size_t t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (size_t i; (i = next.fetch_add(1)) < kConnections;) {
                const Plan& p = plans[i];
                outcomes[i] =
                    drive_one(proxy.port(), p.data, p.stop_after, p.wait_echo, p.fate == Fate::client_reset, 10'000);
            }
        });
    }
    for (auto& t : threads) t.join();
    const int64_t drive_ms = ms_since(start);

    size_t exact_backend_resets = 0;
    for (size_t i = 0; i < kConnections; ++i) {
        const Plan& p = plans[i];
        const Outcome& o = outcomes[i];
        EXPECT_FALSE(o.timed_out) << "connection " << i << " hung (fate " << static_cast<int>(p.fate) << ")";
        if (p.fate == Fate::normal) {
            EXPECT_FALSE(o.reset) << "connection " << i;
            EXPECT_EQ(o.received.size(), p.data.size()) << "connection " << i;
            EXPECT_TRUE(o.received == p.data) << "connection " << i << ": bytes differ";
        } else if (p.fate == Fate::backend_reset) {
            // What the backend echoed before the marker, passed on before the close (a prefix of it at
            // least: never a byte the backend did not send).
            std::string_view before(p.data.data(), p.marker_at);
            EXPECT_TRUE(before.starts_with(o.received)) << "connection " << i << ": not a prefix of the echo";
            exact_backend_resets += o.received.size() == before.size();
        }
    }
    EXPECT_TRUE(eventually([&] {
        return proxy.server->accepted() == kConnections && proxy.idle() && backend_idle(backend_a) &&
               backend_idle(backend_b);
    })) << "proxy accepted "
        << proxy.server->accepted() << " closed " << proxy.server->total(&WorkerStats::closed) << " outbound "
        << proxy.server->total(&WorkerStats::outbound) << " outbound_closed "
        << proxy.server->total(&WorkerStats::outbound_closed);
    EXPECT_TRUE(eventually([&] { return open_fds() == fds_before; }))
        << open_fds() << " fds open, " << fds_before << " before";
    std::printf(
        "[ stats    ] %zu normal, %zu client resets, %zu backend resets (%zu echoed up to the marker), "
        "%lld ms; backends accepted %llu + %llu\n",
        count[0], count[1], count[2], exact_backend_resets, static_cast<long long>(drive_ms),
        static_cast<unsigned long long>(backend_a.accepted()), static_cast<unsigned long long>(backend_b.accepted()));
}

}  // namespace
