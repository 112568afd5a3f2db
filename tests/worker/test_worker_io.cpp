// A worker's reads and writes on real connections, on every backend: with many idle connections it
// sleeps instead of spinning, and output a client does not read yet is kept, tail included, until it can
// be written.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using WorkerIo = BackendTest;

// A level-triggered EVFILT_WRITE for every client would report an idle writable socket ready on every
// call and the loop would spin. WRITE is edge-triggered, so a worker with 100 idle connections sleeps:
// its thread CPU time over one second stays near zero.
TEST_P(WorkerIo, IdleConnectionsDoNotBusyLoop) {
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

// write() may send less than asked. A client that sends 16 MiB before reading a byte forces partial
// writes and a paused reader on the server; every byte must still come back in order.
TEST_P(WorkerIo, PartialWritesKeepTheTail) {
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

INSTANTIATE_TEST_SUITE_P(Backends, WorkerIo, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
