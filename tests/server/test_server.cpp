// Integration tests: an in-process kqserver on port 0 driven by real loopback clients, on every backend.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using ServerTest = BackendTest;

// 200 connections at once, each sending 1..4 random payloads of 1 B to 256 KiB; a third of them
// pipeline every payload without waiting. Every byte that comes back is compared with what was sent.
TEST_P(ServerTest, TwoHundredConcurrentEchoStreamsAreByteExact) {
    RunningServer srv(config(2));
    std::vector<EchoStream> streams = random_echo_streams(srv.port(), 200, 256 * 1024, 4, 3, 2026);
    ASSERT_TRUE(drive_echo(streams, 60'000)) << "some streams did not finish";
    size_t total = 0;
    for (auto& s : streams) {
        ASSERT_EQ(s.sent.size(), s.received.size());
        ASSERT_TRUE(s.sent == s.received);
        total += s.sent.size();
    }
    srv.stop();
    EXPECT_EQ(worker_total(srv.server(), &WorkerStats::bytes_written), total);
}

// A client that streams 4 MiB, half-closes, and expects all 4 MiB back before the server's EOF.
TEST_P(ServerTest, HalfClosingClientGetsEveryByteBeforeEof) {
    RunningServer srv(config(2));
    std::mt19937_64 rng(7);
    std::string payload = random_bytes(rng, 4 << 20);
    UniqueFd fd = connect_blocking(srv.port());
    std::string received;
    std::thread reader([&] { received = recv_until_eof(fd.get()); });
    send_all(fd.get(), payload);
    ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
    reader.join();  // returns only at the server's EOF
    EXPECT_EQ(received.size(), payload.size());
    EXPECT_TRUE(received == payload);
}

TEST_P(ServerTest, UpperAnswersUppercase) {
    RunningServer srv(config(2), "upper");
    UniqueFd fd = connect_blocking(srv.port());
    std::string in = "Hello, kqueue World! 123 \xe9\xff abc\n";
    send_all(fd.get(), in);
    std::string want = in;
    std::transform(want.begin(), want.end(), want.begin(), [](char c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; });
    EXPECT_EQ(recv_exact(fd.get(), in.size()), want);
}

// Round-robin hands connection k to worker k mod 4, so 100 connections split 25 each (±1 allowed).
// A round trip on every connection proves each one was admitted before the counters are read.
TEST_P(ServerTest, RoundRobinSpreadsConnectionsEvenly) {
    RunningServer srv(config(4));
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 100; ++i) {
        fds.push_back(connect_blocking(srv.port()));
        send_all(fds.back().get(), "x");
        ASSERT_EQ(recv_exact(fds.back().get(), 1), "x");
    }
    for (size_t w = 0; w < 4; ++w) {
        uint64_t n = srv.server().worker(w).stats().accepted.get();
        EXPECT_GE(n, 24u) << "worker " << w;
        EXPECT_LE(n, 26u) << "worker " << w;
    }
}

// Least-connections sends a new client to the worker with the fewest open connections: after closing
// every connection of worker 0 (the first of each group of 4), the next 25 go there.
TEST_P(ServerTest, LeastConnectionsFillsTheEmptiestWorker) {
    ServerConfig cfg = config(4);
    cfg.dispatch = Dispatch::least_connections;
    RunningServer srv(cfg);
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 40; ++i) {
        fds.push_back(connect_blocking(srv.port()));
        send_all(fds.back().get(), "x");
        ASSERT_EQ(recv_exact(fds.back().get(), 1), "x");
    }
    for (size_t w = 0; w < 4; ++w) EXPECT_EQ(srv.server().worker(w).stats().accepted.get(), 10u);
    // Close worker 0's clients: their EOF makes the worker close them too; wait for its counter.
    for (size_t i = 0; i < fds.size(); i += 4) fds[i].reset();
    const auto& w0 = srv.server().worker(0).stats();
    while (w0.closed.get() < 10) std::this_thread::yield();
    for (int i = 0; i < 10; ++i) {
        fds.push_back(connect_blocking(srv.port()));
        send_all(fds.back().get(), "y");
        ASSERT_EQ(recv_exact(fds.back().get(), 1), "y");
    }
    EXPECT_EQ(w0.accepted.get(), 20u);
}

// A client that resets mid-stream (SO_LINGER 0 while the server still owes it data) costs only its own
// connection: 20 other streams on the same workers finish byte-exact.
TEST_P(ServerTest, ClientResetMidStreamAffectsNoOtherConnection) {
    RunningServer srv(config(2));
    std::mt19937_64 rng(11);
    std::vector<EchoStream> streams(20);
    for (auto& s : streams) {
        s.fd = connect_tcp("127.0.0.1", srv.port(), true);
        s.pipelined = true;
        s.payloads.push_back(random_bytes(rng, 512 * 1024));
    }
    for (int i = 0; i < 4; ++i) {
        UniqueFd victim = connect_blocking(srv.port());
        send_all(victim.get(), random_bytes(rng, 1 << 20));
        close_with_reset(std::move(victim));
    }
    ASSERT_TRUE(drive_echo(streams, 60'000));
    for (auto& s : streams) EXPECT_TRUE(s.sent == s.received);
    // The server is still healthy: a new client is served.
    UniqueFd fd = connect_blocking(srv.port());
    send_all(fd.get(), "still here");
    EXPECT_EQ(recv_exact(fd.get(), 10), "still here");
}

// The server's end of the one connection whose local port is the server's (this process holds both ends).
int server_side_fd(uint16_t port) {
    for (int fd = 3; fd < 1024; ++fd) {
        sockaddr_storage local{}, peer{};
        socklen_t ll = sizeof local, pl = sizeof peer;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 || local.ss_family != AF_INET) continue;
        if (ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port) != port) continue;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) return fd;  // not the listener
    }
    return -1;
}

int nodelay(int fd) {
    int on = -1;
    socklen_t len = sizeof on;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return -1;
    return on;
}

// TCP_NODELAY costs a setsockopt() per connection; a connection that answers once and closes does not
// need it (Nagle holds a segment only while earlier data is unacknowledged), so it is set just before
// a connection's second write.
TEST_P(ServerTest, TcpNodelayIsSetBeforeTheSecondWriteOnly) {
    RunningServer srv(config(1));
    UniqueFd fd = connect_blocking(srv.port());
    send_all(fd.get(), "a");
    ASSERT_EQ(recv_exact(fd.get(), 1), "a");
    int server_fd = server_side_fd(srv.port());
    ASSERT_GE(server_fd, 0);
    EXPECT_EQ(nodelay(server_fd), 0) << "one answer so far: no setsockopt yet";
    send_all(fd.get(), "b");
    ASSERT_EQ(recv_exact(fd.get(), 1), "b");
    EXPECT_NE(nodelay(server_fd), 0) << "the second write goes out with Nagle off";
}

// Backpressure, focused: a client that sends without reading makes the server's unsent output grow; past
// high_water the server stops reading that client, holding at most one read more than the mark; once the
// client reads and the unsent output falls to low_water, reading resumes and every byte comes back in
// order. (Were reading never paused, the server would take all 16 MiB in and buffer it.) Twice on one
// connection: on io_uring the first pause may overshoot by what the kernel had queued for the socket
// (a multishot receive delivers it all in one wait, before the cancel lands; bounded here by fixing the
// socket's receive buffer), and from then on that connection receives one buffer at a time, so its
// second pause holds the readiness backends' bound.
TEST_P(ServerTest, ReadingPausesAboveHighWaterAndResumesBelowLowWater) {
    ServerConfig cfg = config(1);
    cfg.worker.high_water = 256 << 10;
    cfg.worker.low_water = 64 << 10;
    cfg.listen.send_buffer = 32 << 10;  // fixed kernel buffers, so the server's own buffer fills first
    cfg.listen.recv_buffer = 64 << 10;  // the kernel doubles it: at most 128 KiB queued per client
    RunningServer srv(cfg);
    const WorkerStats& st = srv.server().worker(0).stats();
    std::mt19937_64 rng(7);
    std::vector<EchoStream> streams(1);
    EchoStream& s = streams[0];
    s.fd = connect_tcp("127.0.0.1", srv.port(), true);
    const int rcvbuf = 64 << 10;
    ASSERT_EQ(::setsockopt(s.fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    s.pipelined = true;
    for (size_t round = 0; round < 2; ++round) {
        SCOPED_TRACE("pause " + std::to_string(round + 1));
        s.payloads.push_back(random_bytes(rng, 16 << 20));
        s.next_payload = round;
        s.send_offset = 0;
        const std::string& p = s.payloads[round];
        // Send without reading until the socket has stayed full for a second: the server stopped reading.
        while (s.send_offset < p.size()) {
            const ssize_t n =
                ::send(s.fd.get(), p.data() + s.send_offset, p.size() - s.send_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                s.sent.append(p.data() + s.send_offset, static_cast<size_t>(n));
                s.send_offset += static_cast<size_t>(n);
                continue;
            }
            ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
            pollfd writable{s.fd.get(), POLLOUT, 0};
            if (::poll(&writable, 1, 1000) == 0) break;
        }
        ASSERT_LT(s.send_offset, p.size()) << "the server never stopped reading";
        const uint64_t read_at_pause = st.bytes_read.get();
        const uint64_t unsent = read_at_pause - st.bytes_written.get();
        size_t bound = cfg.worker.high_water + cfg.worker.read_buffer;
        if (GetParam() == Backend::io_uring && round == 0) bound += 2 * (2 * size_t{64 << 10});
        EXPECT_GT(unsent, cfg.worker.low_water) << "paused without its output above the marks";
        EXPECT_LE(unsent, bound) << "read on past high_water";
        ASSERT_TRUE(drive_echo(streams, 60'000));
        EXPECT_GT(st.bytes_read.get(), read_at_pause) << "reading never resumed";
        ASSERT_EQ(s.received.size(), s.sent.size());
        EXPECT_TRUE(s.received == s.sent);
    }
    EXPECT_EQ(s.sent.size(), 2 * size_t{16 << 20});
}

// Clients already queued in a handed-in listening socket (socket activation, an upgrade) bring no new
// arrival once the acceptor watches it: its level-triggered registration reports them at the first wait,
// and each is served; so is a burst of clients queueing together afterwards (batches of more than one).
TEST_P(ServerTest, ClientsQueuedBeforeTheServerRanAreServed) {
    UniqueFd listener = listen_tcp(ListenOptions{});
    const uint16_t port = local_port(listener.get());
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 20; ++i) clients.push_back(connect_blocking(port));  // complete in the backlog
    ServerConfig cfg = config(2);
    cfg.listen.host = "127.0.0.1";
    Server server(cfg, make_builtin_protocol("echo"), std::move(listener));
    std::thread runner([&] { server.run(); });
    for (int i = 0; i < 50; ++i) clients.push_back(connect_blocking(port));
    for (size_t i = 0; i < clients.size(); ++i) {
        const std::string msg = "client " + std::to_string(i);
        send_all(clients[i].get(), msg);
        if (!readable_within(clients[i].get(), 5000)) {  // not ASSERT: the server must still be stopped
            ADD_FAILURE() << msg << " was never served";
            break;
        }
        EXPECT_EQ(recv_exact(clients[i].get(), msg.size()), msg);
    }
    clients.clear();
    server.stop();
    runner.join();
    EXPECT_EQ(server.accept_totals().accepted, 70u);
}

// A stop requested before the acceptor's first wait (a SIGTERM just after start-up) still serves the
// clients already queued with their requests: they are taken before the stop is looked at, not reset
// by the closing listening socket.
TEST_P(ServerTest, AStopBeforeTheFirstWaitStillServesTheQueuedClients) {
    UniqueFd listener = listen_tcp(ListenOptions{});
    const uint16_t port = local_port(listener.get());
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 5; ++i) {
        clients.push_back(connect_blocking(port));
        send_all(clients.back().get(), "client " + std::to_string(i));
    }
    ServerConfig cfg = config(2);
    cfg.listen.host = "127.0.0.1";
    Server server(cfg, make_builtin_protocol("echo"), std::move(listener));
    server.stop();
    server.run();  // returns once the workers have drained
    for (size_t i = 0; i < clients.size(); ++i) {
        const std::string msg = "client " + std::to_string(i);
        ASSERT_TRUE(readable_within(clients[i].get(), 5000)) << msg << " was never served";
        EXPECT_EQ(recv_exact(clients[i].get(), msg.size()), msg);
    }
    EXPECT_EQ(server.accept_totals().accepted, 5u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTest, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
