// The proxy example (examples/proxy) served in-process in front of in-process backends: bytes both ways
// intact, round-robin, skipped dead or silent backends, the error line, resets passed on, and bounded
// memory in front of a client that does not read.
#include <gtest/gtest.h>
#include <sys/socket.h>

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

UniqueFd client_of(uint16_t port) {
    UniqueFd fd = connect_blocking(port);
    timeval tv{10, 0};  // a missing reply fails the test, never hangs it
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

std::string round_trip(uint16_t port, const std::string& s) {
    UniqueFd c = client_of(port);
    send_all(c.get(), s);
    return recv_exact(c.get(), s.size());
}

TEST(Proxy, ForwardsAMebibyteBothWaysIntactAndPassesTheHalfCloseOn) {
    RunningServer backend = echo_backend();
    Proxy proxy({backend.port()});
    std::mt19937_64 rng(12);
    const std::string data = random_bytes(rng, 1 << 20);
    UniqueFd c = client_of(proxy.port());
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
    UniqueFd c = client_of(proxy.port());
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
    UniqueFd c = client_of(proxy.port());
    Received r = read_until_closed(c.get());
    EXPECT_EQ(r.bytes, "kqproxy: no backend available (last error: Connection timed out)\n");
    EXPECT_TRUE(eventually([&] { return proxy.idle(); }));
}

TEST(Proxy, ClientResetMidTransferClosesTheBackendSide) {
    RunningServer backend = echo_backend();
    Proxy proxy({backend.port()});
    std::mt19937_64 rng(7);
    UniqueFd c = client_of(proxy.port());
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
    UniqueFd c = client_of(proxy.port());
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
    UniqueFd c = client_of(proxy.port());
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

}  // namespace
