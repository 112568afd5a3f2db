// One regression test per bug in the seed programs that applies here (see docs/design.md).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <chrono>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using SeedBugs = BackendTest;

// Seed 000 tests `event.flags & EVFILT_READ`: a filter is not a flag (EVFILT_READ is -1, so the test is
// always true). Here the backend translates filters; an idle connected socket must be reported
// writable and not readable, and becomes readable only when data arrives.
TEST_P(SeedBugs, FilterIsNotAFlag) {
    auto poller = make_poller(GetParam());
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    UniqueFd a(sv[0]), b(sv[1]);
    int token = 0;
    poller->add(a.get(), &token);
    std::array<PollEvent, 4> ev;
    ASSERT_EQ(poller->wait(ev, 1000), 1);
    EXPECT_TRUE(ev[0].writable);
    EXPECT_FALSE(ev[0].readable);
    send_all(b.get(), "z");
    ASSERT_EQ(poller->wait(ev, 1000), 1);
    EXPECT_TRUE(ev[0].readable);
}

// Seed 001 writes buf[readlen - 1] = '\0' without checking readlen: a read of 0 (EOF) or -1 indexes
// buf[-1]. Here: an immediate EOF, a one-byte request and requests without a newline are all served,
// and the server stays healthy (ASan runs this too).
TEST_P(SeedBugs, UpperSurvivesEmptyAndOneByteReads) {
    RunningServer srv(config(1), "upper");
    {
        UniqueFd fd = connect_blocking(srv.port());
        ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
        EXPECT_EQ(recv_until_eof(fd.get()), "");  // EOF answered with a clean close
    }
    UniqueFd fd = connect_blocking(srv.port());
    send_all(fd.get(), "a");
    EXPECT_EQ(recv_exact(fd.get(), 1), "A");
    send_all(fd.get(), "no newline");
    EXPECT_EQ(recv_exact(fd.get(), 10), "NO NEWLINE");
}

// Seed 001 registers a level-triggered EVFILT_WRITE for every client: an idle writable socket then
// reports ready on every call and the loop spins. Here WRITE is edge-triggered, so a worker with 100
// idle connections sleeps: its thread CPU time over one second stays near zero.
TEST_P(SeedBugs, IdleConnectionsDoNotBusyLoop) {
    RunningServer srv(config(1));
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 100; ++i) {
        fds.push_back(connect_blocking(srv.port()));
        send_all(fds.back().get(), "ping");
        ASSERT_EQ(recv_exact(fds.back().get(), 4), "ping");
    }
    const Worker& w = srv.server().worker(0);
    uint64_t waits_before = w.stats().waits.get();
    int64_t cpu_before = w.cpu_time_us();
    ASSERT_GE(cpu_before, 0);
    // The one-second window is what is measured, not a synchronisation.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    int64_t cpu_used = w.cpu_time_us() - cpu_before;
    EXPECT_LT(cpu_used, 20'000) << "worker used " << cpu_used << " µs of CPU while idle";
    EXPECT_LE(w.stats().waits.get() - waits_before, 2u) << "the worker kept waking up";
}

// Seed 003 assumes write() sends everything. A client that sends 16 MiB before reading a byte forces
// partial writes and a paused reader on the server; every byte must still come back in order.
TEST_P(SeedBugs, PartialWritesKeepTheTail) {
    RunningServer srv(config(1));
    std::mt19937_64 rng(3);
    std::vector<EchoStream> streams(1);
    streams[0].fd = connect_tcp("127.0.0.1", srv.port(), true);
    streams[0].pipelined = true;
    streams[0].payloads.push_back(random_bytes(rng, 16 << 20));
    // Fill the pipe one way first: send without reading until the socket refuses more.
    auto& s = streams[0];
    const std::string& p = s.payloads[0];
    for (;;) {
        ssize_t n = ::send(s.fd.get(), p.data() + s.send_offset, p.size() - s.send_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        s.sent.append(p.data() + s.send_offset, static_cast<size_t>(n));
        s.send_offset += static_cast<size_t>(n);
    }
    ASSERT_LT(s.send_offset, p.size()) << "the server never pushed back";
    ASSERT_TRUE(drive_echo(streams, 60'000));
    EXPECT_EQ(s.received.size(), p.size());
    EXPECT_TRUE(s.received == p);
}

INSTANTIATE_TEST_SUITE_P(Backends, SeedBugs, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
