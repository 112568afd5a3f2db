// What only the completion backend (--backend io_uring) has: a provided buffer ring that runs out, a
// multishot receive that ends and must be armed again, completions still in flight when a graceful stop
// ends the connections, and the refusal of --handoff direct. The worker-level suites run on io_uring as
// on the readiness backends (built_backends()); these are its own.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <random>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

class Uring : public ::testing::Test {
protected:
    void SetUp() override {
        const auto built = built_backends();
        if (std::find(built.begin(), built.end(), Backend::io_uring) == built.end())
            GTEST_SKIP() << "io_uring was not built (no liburing)";
        KQ_SKIP_IF_UNAVAILABLE(Backend::io_uring);
    }
    static ServerConfig config(int workers, unsigned buffers, size_t buffer_size) {
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker.backend = Backend::io_uring;
        cfg.worker.uring_buffers = buffers;
        cfg.worker.uring_buffer_size = buffer_size;
        return cfg;
    }
};

// Sixteen buffers of 1 KiB for 100 connections sending up to 64 KiB at once: the receives keep running
// out (ENOBUFS ends each multishot receive), are armed again, and no byte is lost or reordered; then
// the worker serves a second round as well, its buffers all back.
TEST_F(Uring, BufferRingExhaustionLosesNoByteAndRecovers) {
    RunningServer srv(config(1, 16, 1024));
    for (uint64_t round = 0; round < 2; ++round) {
        std::vector<EchoStream> streams = random_echo_streams(srv.port(), 100, 64 * 1024, 3, 2, 40 + round);
        ASSERT_TRUE(drive_echo(streams, 60'000)) << "round " << round << ": some streams did not finish";
        for (auto& s : streams) ASSERT_TRUE(s.sent == s.received) << "round " << round;
    }
    srv.stop();
    EXPECT_EQ(srv.accepted(), 200u);
    EXPECT_EQ(srv.total(&WorkerStats::closed), 200u);
    EXPECT_EQ(srv.bytes_read(), srv.bytes_written());
}

// One buffer: every receive completion ends the multishot receive (the next segment finds no buffer),
// so a 4 MiB stream only arrives whole if each ending is followed by a new receive, in order.
TEST_F(Uring, MultishotReceiveThatEndsIsArmedAgain) {
    RunningServer srv(config(1, 1, 1024));
    std::mt19937_64 rng(7);
    std::vector<EchoStream> streams(1);
    streams[0].fd = connect_tcp("127.0.0.1", srv.port(), true);
    streams[0].pipelined = true;
    streams[0].payloads.push_back(random_bytes(rng, 4 << 20));
    ASSERT_TRUE(drive_echo(streams, 60'000));
    EXPECT_TRUE(streams[0].sent == streams[0].received);
    EXPECT_EQ(streams[0].received.size(), size_t{4} << 20);
}

// A graceful stop while sends and receives are on the ring: 50 clients have each sent 1 MiB without
// reading, so the worker has paused their receives and has sends in flight. The stop ends them (the
// drain deadline cuts what is still owed); every client sees a prefix of its own bytes, then the end,
// and the worker frees every connection only after its completions (ASan checks the rest).
TEST_F(Uring, GracefulStopWithCompletionsInFlight) {
    ServerConfig cfg = config(2, 64, 4096);
    cfg.worker.drain_timeout_ms = 500;
    cfg.worker.high_water = 64 * 1024;
    cfg.worker.low_water = 16 * 1024;
    auto srv = std::make_unique<RunningServer>(cfg);
    std::mt19937_64 rng(11);
    const std::string payload = random_bytes(rng, 1 << 20);
    std::vector<UniqueFd> clients;
    std::vector<size_t> sent;
    for (int i = 0; i < 50; ++i) {
        clients.push_back(connect_tcp("127.0.0.1", srv->port(), true));
        size_t off = 0;
        for (int tries = 0; tries < 200 && off < payload.size(); ++tries) {
            ssize_t n =
                ::send(clients.back().get(), payload.data() + off, payload.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) off += static_cast<size_t>(n);
            else std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        sent.push_back(off);
    }
    ASSERT_TRUE(eventually([&] { return srv->accepted() == 50; }, 10'000));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the sends are in flight by now
    srv->stop_within(10'000);
    for (size_t i = 0; i < clients.size(); ++i) {
        int fd = clients[i].get();
        int flags = ::fcntl(fd, F_GETFL);
        ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        Received r = read_until_closed(fd);
        ASSERT_LE(r.bytes.size(), sent[i]);
        EXPECT_TRUE(r.bytes == payload.substr(0, r.bytes.size())) << "client " << i << ": not a prefix";
    }
    EXPECT_EQ(srv->accepted(), 50u);
    EXPECT_EQ(srv->total(&WorkerStats::closed), 50u);
}

// --handoff direct registers connections from the acceptor's thread; a ring accepts submissions from its
// worker's thread only. The combination is refused when the server is built, with the reason.
TEST_F(Uring, DirectHandoffIsRefused) {
    ServerConfig cfg = config(1, 8, 1024);
    cfg.handoff = Handoff::direct;
    try {
        Server s(cfg, make_builtin_protocol("echo"));
        FAIL() << "io_uring with --handoff direct was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("--handoff direct"), std::string::npos) << e.what();
    }
}

}  // namespace
