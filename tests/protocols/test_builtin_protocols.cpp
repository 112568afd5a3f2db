// The built-in protocols served in-process: upper on empty, one-byte and newline-less reads (every
// backend), and the blocking wrapper (--block-ms), which stalls its own worker's connections and no others.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using UpperProtocol = BackendTest;

// A handler that indexes buf[readlen - 1] breaks on a read of 0 (EOF) or -1. Upper uses the span it is
// given: an immediate EOF, a one-byte request and requests without a newline are all served, and the
// server stays healthy (ASan runs this too).
TEST_P(UpperProtocol, UpperSurvivesEmptyAndOneByteReads) {
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

INSTANTIATE_TEST_SUITE_P(Backends, UpperProtocol, ::testing::ValuesIn(built_backends()), backend_label);

// A handler that blocks (--block-ms) stalls every connection of its worker, and only those.
// Every request sleeps 1 s before its answer. Round-robin puts a and c on worker 0, b on worker 1.
// a, c and b send at once: b is answered after its own 1 s sleep, in parallel with a's; c waits for a's
// sleep and then its own, so it is answered last, about 2 s after it sent.
TEST(BlockingHandler, StallsOnlyTheConnectionsOfItsWorker) {
    using clock = std::chrono::steady_clock;
    ServerConfig cfg;
    cfg.workers = 2;
    auto protocol = make_blocking_protocol(make_builtin_protocol("echo"), std::chrono::milliseconds(1000));
    RunningServer srv(cfg, std::move(protocol));
    const Server& s = srv.server();
    auto connect_to = [&](size_t worker, uint64_t expected) {
        UniqueFd fd = connect_blocking(srv.port());
        while (s.worker(worker).stats().accepted.get() < expected) std::this_thread::yield();
        return fd;
    };
    UniqueFd a = connect_to(0, 1), b = connect_to(1, 1), c = connect_to(0, 2);
    auto start = clock::now();
    send_all(a.get(), "a");
    while (s.worker(0).stats().bytes_read.get() < 1) std::this_thread::yield();  // worker 0 is now asleep
    send_all(c.get(), "c");
    send_all(b.get(), "b");
    EXPECT_EQ(recv_exact(b.get(), 1), "b");
    EXPECT_FALSE(readable_within(c.get(), 0)) << "c was answered before b although worker 1 was free";
    EXPECT_EQ(recv_exact(a.get(), 1), "a");
    EXPECT_FALSE(readable_within(c.get(), 0)) << "c must wait for its own sleep after a's";
    EXPECT_EQ(recv_exact(c.get(), 1), "c");
    EXPECT_GE(clock::now() - start, std::chrono::milliseconds(2000)) << "c's answer took two sleeps";
}

// The same 1 s per read, offloaded (--offload-ms): while a's job runs on the pool, its worker still
// reads c, a neighbour on the same worker, and answers it after c's own job, not after a's and c's.
// Ordered, not timed: the worker reading c's byte before a has its answer is what blocking cannot do
// (there the worker is asleep until a's answer is written).
TEST(OffloadingHandler, StallsNoOtherConnectionOfItsWorker) {
    using clock = std::chrono::steady_clock;
    ServerConfig cfg;
    cfg.workers = 1;
    auto protocol = make_offloading_protocol(make_builtin_protocol("echo"), std::chrono::milliseconds(1000), 4);
    RunningServer srv(cfg, std::move(protocol));
    const Server& s = srv.server();
    UniqueFd a = connect_blocking(srv.port()), c = connect_blocking(srv.port());
    send_all(a.get(), "a");
    while (s.worker(0).stats().bytes_read.get() < 1) std::this_thread::yield();  // a's job is under way
    const auto c_sent = clock::now();
    send_all(c.get(), "c");
    while (s.worker(0).stats().bytes_read.get() < 2) std::this_thread::yield();  // the worker read c meanwhile
    EXPECT_FALSE(readable_within(a.get(), 0)) << "the worker read c before a's job ended";
    EXPECT_EQ(recv_exact(a.get(), 1), "a");
    EXPECT_EQ(recv_exact(c.get(), 1), "c");
    const auto c_waited = clock::now() - c_sent;
    EXPECT_GE(c_waited, std::chrono::milliseconds(1000)) << "c waited for its own job";
    // Both jobs ran at once (4 pool threads): c's answer came one sleep after it sent, where blocking
    // takes two (BlockingHandler above). 1.9 s leaves the machine 0.9 s of slack.
    EXPECT_LT(c_waited, std::chrono::milliseconds(1900)) << "c waited for a's job too";
}

// What the client sends while its read is being handled off the worker is not lost, nor answered out
// of order: it waits (paused reading) and is handled after, each read one sleep.
TEST(OffloadingHandler, KeepsAConnectionsReadsInOrder) {
    ServerConfig cfg;
    cfg.workers = 1;
    auto protocol = make_offloading_protocol(make_builtin_protocol("upper"), std::chrono::milliseconds(20), 4);
    RunningServer srv(cfg, std::move(protocol));
    UniqueFd fd = connect_blocking(srv.port());
    std::string sent, expected;
    for (int i = 0; i < 20; ++i) {
        std::string piece = "piece" + std::to_string(i) + ";";
        send_all(fd.get(), piece);
        sent += piece;
    }
    for (char ch : sent) expected += static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
    EXPECT_EQ(recv_exact(fd.get(), expected.size()), expected);
}

}  // namespace
