// The alternative accept models, on every backend: --handoff direct (the acceptor registers the fd in
// the worker's poller itself) and --accept reuseport (each worker accepts on its own SO_REUSEPORT
// socket). Each must serve, limit, drain and stop exactly as the default queue hand-off does.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>
#include <tuple>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

enum class Mode { direct, reuseport };

class AcceptModes : public ::testing::TestWithParam<std::tuple<Backend, Mode>> {
protected:
    void SetUp() override {
        KQ_SKIP_IF_UNAVAILABLE(std::get<0>(GetParam()));
        // Refused at start-up by design (AcceptModes.DirectHandoffIsRefusedOnIoUring): only the worker's
        // thread may submit to its ring, and direct hand-off registers from the acceptor's thread.
        if (std::get<0>(GetParam()) == Backend::io_uring && mode() == Mode::direct)
            GTEST_SKIP() << "--handoff direct cannot work with io_uring (refused at start-up)";
    }
    Mode mode() const { return std::get<1>(GetParam()); }
    ServerConfig config(int workers) const {
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker.backend = std::get<0>(GetParam());
        if (mode() == Mode::direct) cfg.handoff = Handoff::direct;
        else cfg.accept = AcceptMode::reuseport;
        return cfg;
    }
};

std::string mode_label(const ::testing::TestParamInfo<AcceptModes::ParamType>& info) {
    return std::string(backend_name(std::get<0>(info.param))) +
           (std::get<1>(info.param) == Mode::direct ? "_direct" : "_reuseport");
}

// 200 connections, 1..3 payloads of up to 64 KiB each, every byte compared; every worker gets clients,
// and the accept counters agree with the workers'.
TEST_P(AcceptModes, TwoHundredEchoStreamsAreByteExactAndSpread) {
    RunningServer srv(config(2));
    std::vector<EchoStream> streams = random_echo_streams(srv.port(), 200, 64 * 1024, 3, 2, 6);
    ASSERT_TRUE(drive_echo(streams, 60'000)) << "some streams did not finish";
    uint64_t sent = 0;
    for (auto& s : streams) {
        ASSERT_TRUE(s.sent == s.received);
        sent += s.sent.size();
    }
    streams.clear();  // close every client before the stop
    srv.stop();
    const Server& s = srv.server();
    EXPECT_EQ(worker_total(s, &WorkerStats::accepted), 200u);
    EXPECT_EQ(worker_total(s, &WorkerStats::closed), 200u);
    EXPECT_EQ(worker_total(s, &WorkerStats::bytes_written), sent);
    EXPECT_EQ(s.accept_totals().accepted, 200u);
    for (size_t i = 0; i < s.worker_count(); ++i) {
        uint64_t got = s.worker(i).stats().accepted.get();
        if (mode() == Mode::direct) {
            EXPECT_EQ(got, 100u) << "round-robin, worker " << i;
        } else {
            // The kernel hashes each client's address and port to one socket: uneven, never empty
            // (all 200 on one of two sockets has probability 2^-199).
            EXPECT_GT(got, 0u) << "worker " << i;
        }
    }
}

// The limit holds in both modes: with one worker and --max-connections 2 the third client waits in the
// backlog and is served as soon as one of the first two closes.
TEST_P(AcceptModes, MaxConnectionsQueuesTheThirdClient) {
    ServerConfig cfg = config(1);
    cfg.max_connections = 2;
    RunningServer srv(cfg);
    expect_limit_queues_next_client(srv, 2);
}

// Graceful stop: a client owed 1 MiB gets all of it and then EOF; afterwards the port refuses clients.
TEST_P(AcceptModes, GracefulStopFlushesAndThenRefuses) {
    ServerConfig cfg = config(2);
    cfg.worker.high_water = 16 << 20;
    RunningServer srv(cfg);
    std::mt19937_64 rng(9);
    std::string payload = random_bytes(rng, 1 << 20);
    UniqueFd fd = connect_blocking(srv.port());
    send_all(fd.get(), payload);
    while (worker_total(srv.server(), &WorkerStats::bytes_read) < payload.size()) std::this_thread::yield();
    srv.stop();  // returns once drained: the reply is in the kernel buffers or already read
    std::string back = recv_until_eof(fd.get());
    EXPECT_TRUE(back == payload) << back.size() << " of " << payload.size() << " bytes";
    EXPECT_THROW(connect_blocking(srv.port()), std::system_error);  // ECONNREFUSED: no listener is left
}

// An immediate stop while clients are still arriving: every client sees its connection end (EOF or
// reset), and under ASan nothing leaks, including connections the acceptor registered (direct) whose
// first event the worker had not taken yet.
TEST_P(AcceptModes, StopNowWhileClientsArriveEndsEveryConnection) {
    RunningServer srv(config(2));
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 200; ++i) clients.push_back(connect_tcp("127.0.0.1", srv.port(), false));
    srv.server().stop_now();
    srv.stop();
    for (auto& c : clients) {
        char b;
        EXPECT_LE(::recv(c.get(), &b, 1, 0), 0) << "a connection outlived the server";
    }
    EXPECT_EQ(worker_total(srv.server(), &WorkerStats::accepted), worker_total(srv.server(), &WorkerStats::closed));
}

// A worker serves events of directly registered connections only when built for it (it adopts them on
// their first event, WorkerConfig::direct_handoff): one built for the queue refuses the registration and
// closes the fd, instead of serving a connection it never adopted.
TEST(DirectHandoff, AWorkerNotBuiltForItRefusesTheRegistration) {
    auto protocol = make_builtin_protocol("echo");
    Worker worker(0, WorkerConfig{}, *protocol);
    worker.start();
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd peer(sv[1]);
    EXPECT_FALSE(worker.link().direct->register_direct(UniqueFd(sv[0])));
    char b;
    EXPECT_EQ(::recv(peer.get(), &b, 1, MSG_DONTWAIT), 0) << "the refused fd was not closed";
    worker.request_stop();
    worker.join();
    EXPECT_EQ(worker.stats().accepted.get(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, AcceptModes,
                         ::testing::Combine(::testing::ValuesIn(built_backends()),
                                            ::testing::Values(Mode::direct, Mode::reuseport)),
                         mode_label);

}  // namespace
