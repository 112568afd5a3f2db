// What only the completion backend (--backend io_uring) has: a provided buffer ring that runs out, a
// multishot receive that ends and must be armed again, completions still in flight when a graceful stop
// ends the connections, fd numbers reused while the completions of the connections that had them are
// still being handed out, the plain-ring fallback, and the refusal of --handoff direct. The worker-level suites run on io_uring as
// on the readiness backends (built_backends()); these are its own.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>

#include "gated_echo.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

// The running kernel is major.minor or newer (SINGLE_ISSUER and DEFER_TASKRUN came with 6.1).
bool kernel_at_least(int major, int minor) {
    utsname u{};
    int ma = 0, mi = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
    return ma > major || (ma == major && mi >= minor);
}

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

// The test's client sockets are moved to fd numbers from here up, so that the numbers below are the
// server's (and the kernel hands the server the lowest free one: a freed number is taken again at once).
constexpr int kClientFdBase = 8192;

UniqueFd move_high(UniqueFd fd) {
    int high = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, kClientFdBase);
    if (high < 0) throw std::system_error(errno, std::system_category(), "fcntl(F_DUPFD_CLOEXEC)");
    timeval tv{10, 0};  // a missing reply fails the test instead of hanging it
    ::setsockopt(high, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return UniqueFd(high);
}

uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    return ntohs(a.sin_port);
}

// The server's connected sockets (this process's sockets below kClientFdBase), by their peer's port: the
// client's local port names the fd number the server holds it on.
std::map<uint16_t, int> server_fds_by_client_port() {
    std::map<uint16_t, int> out;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) throw std::system_error(errno, std::system_category(), "opendir /proc/self/fd");
    while (dirent* e = ::readdir(dir)) {
        const int fd = std::atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == ::dirfd(dir) || fd >= kClientFdBase) continue;
        sockaddr_in a{};
        socklen_t len = sizeof a;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && a.sin_family == AF_INET)
            out[ntohs(a.sin_port)] = fd;
    }
    ::closedir(dir);
    return out;
}

// Many short connections on one worker, in rounds. Each round, while the worker is held (the gate), the
// previous round's clients end: a third send 16 KiB and reset (receive completions with data, then the
// reset, in one batch: the fd closes in the middle of the batch), a third ask the server to close
// ("...!": the close cancels the armed receive, and the fd closes only when that completion comes), a
// third just reset. The gate opens and the new round's clients connect at once: the acceptor thread
// accepts them while the worker hands out that batch, on the lowest free numbers, the ones being freed.
// Every new client then makes a round trip with bytes of its own, and every server-closed client reads
// exactly its own bytes and the end. A completion, or a send, that reached the connection now holding a
// number (or a freed Connection: ASan) would show as a wrong reply. The reuse itself is asserted: the
// server's fd numbers (found through getpeername on them) are those of the clients that just ended.
TEST_F(Uring, FdNumbersReusedWhileTheirOldConnectionsCompletionsAreHandedOutCarryNoStrayBytes) {
    constexpr size_t kRounds = 12, kClients = 48;
    Gate gate;
    RunningServer srv(config(1, 512, 4096), std::make_unique<GatedEchoProtocol>(gate, true));
    const WorkerStats& stats = srv.server().worker(0).stats();
    std::mt19937_64 rng(1616);
    struct Client {
        UniqueFd fd;
        std::string id;
        int server_fd = -1;
    };
    uint64_t next_id = 0;
    // Connects (the kernel completes it: queued for the acceptor); bytes of its own come later.
    auto connect_client = [&](UniqueFd& fd) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(srv.port());
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    };
    // One round trip with bytes no other client sends (its id first): exact, or the test fails.
    auto round_trip = [&](Client& c) {
        std::string msg = c.id + ":" + random_bytes(rng, 1 + rng() % 2048);
        std::replace(msg.begin(), msg.end(), '!', '?');  // '!' would end it on any read: the server's close
        send_all(c.fd.get(), msg);
        return recv_exact(c.fd.get(), msg.size()) == msg;
    };
    // Sockets made before the race, so that no client socket takes a number during it.
    auto fresh_clients = [&] {
        std::vector<Client> out(kClients);
        for (auto& c : out) {
            c.fd = move_high(UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)));
            c.id = "client-" + std::to_string(next_id++);
        }
        return out;
    };
    // Which server fd holds each client (all have made a round trip, so the server holds them all).
    auto find_server_fds = [&](std::vector<Client>& cs) {
        const std::map<uint16_t, int> by_port = server_fds_by_client_port();
        for (auto& c : cs) {
            auto it = by_port.find(local_port(c.fd.get()));
            c.server_fd = it == by_port.end() ? -1 : it->second;
        }
    };

    UniqueFd gate_client = move_high(connect_blocking(srv.port()));
    send_all(gate_client.get(), "g");
    ASSERT_EQ(recv_exact(gate_client.get(), 1), "g");
    std::vector<Client> old = fresh_clients();
    for (auto& c : old) {
        ASSERT_TRUE(connect_client(c.fd)) << std::strerror(errno);
        ASSERT_TRUE(round_trip(c));
    }
    find_server_fds(old);

    size_t reused = 0, server_closed = 0;
    const uint64_t big_before = waits_with_more_than(stats, kClients / 2);
    for (size_t round = 0; round < kRounds; ++round) {
        std::set<int> old_fds;
        for (auto& c : old) {
            ASSERT_GE(c.server_fd, 0) << "round " << round << ": the server does not hold " << c.id;
            old_fds.insert(c.server_fd);
        }
        std::vector<Client> fresh = fresh_clients();
        gate.open = false;
        gate.holding = false;
        gate.armed = true;
        send_all(gate_client.get(), &kGateByte, 1);
        ASSERT_TRUE(eventually([&] { return gate.holding.load(); }));
        std::vector<std::pair<Client*, std::string>> closing;  // the clients the server closes, and what they sent
        for (size_t i = 0; i < old.size(); ++i) {
            Client& c = old[i];
            if (i % 3 == 0) {
                std::string bytes = random_bytes(rng, 16 * 1024);
                std::replace(bytes.begin(), bytes.end(), '!', '?');
                send_all(c.fd.get(), bytes);
                close_with_reset(std::move(c.fd));
            } else if (i % 3 == 1) {
                closing.emplace_back(&c, c.id + " bye!");
                send_all(c.fd.get(), closing.back().second);
            } else {
                close_with_reset(std::move(c.fd));
            }
        }
        gate.open = true;
        for (size_t i = 0; i < kClients / 2; ++i)  // races that batch
            ASSERT_TRUE(connect_client(fresh[i].fd)) << std::strerror(errno);
        ASSERT_EQ(recv_exact(gate_client.get(), 1), std::string(1, kGateByte)) << "round " << round;
        for (auto& [c, sent] : closing) {
            Received r = read_until_closed(c->fd.get());
            EXPECT_EQ(r.bytes, sent) << "round " << round << ": " << c->id << " did not get its own bytes back";
            c->fd.reset();  // the EOF that ends the server's lingering close, if it lingers
            ++server_closed;
        }
        // Once every old fd is closed (the server-closed ones after their cancelled receives), the second
        // half: they take the lowest free numbers, the old ones the first half left.
        const uint64_t admitted = 1 + (round + 1) * kClients + kClients / 2;
        ASSERT_TRUE(eventually([&] { return stats.accepted.get() == admitted; })) << stats.accepted.get();
        ASSERT_TRUE(eventually([&] { return server_fds_by_client_port().size() == 1 + kClients / 2; }))
            << "round " << round << ": the server still holds " << server_fds_by_client_port().size() << " sockets";
        for (size_t i = kClients / 2; i < kClients; ++i)
            ASSERT_TRUE(connect_client(fresh[i].fd)) << std::strerror(errno);
        for (auto& c : fresh) ASSERT_TRUE(round_trip(c)) << "round " << round << ": " << c.id << " got stray bytes";
        find_server_fds(fresh);
        size_t reused_now = 0;
        for (auto& c : fresh) reused_now += old_fds.count(c.server_fd);
        EXPECT_GE(reused_now, kClients / 4) << "round " << round << ": the freed fd numbers were not taken again";
        reused += reused_now;
        for (auto& c : fresh) ASSERT_TRUE(round_trip(c)) << "round " << round << ": " << c.id << " (second)";
        old = std::move(fresh);
    }
    const uint64_t big_batches = waits_with_more_than(stats, kClients / 2) - big_before;
    std::printf(
        "fd reuse: %zu of %zu new connections on numbers of the connections that ended in the round "
        "before; %llu waits with more than %zu completions; %zu closed by the server\n",
        reused, kRounds * kClients, static_cast<unsigned long long>(big_batches), kClients / 2, server_closed);
    // The kernel hands out the lowest free number, and the old clients' were the only ones freed.
    EXPECT_GE(reused, kRounds * kClients / 3) << "the new connections did not take the freed fd numbers";
    // The endings piled up behind the gate come as one batch: the next wait's (a plain ring posts them as
    // they come, but the dispatch running then takes only what its wait reported).
    EXPECT_GE(big_batches, kRounds / 2) << "the endings did not arrive as large batches";
    for (auto& c : old) close_with_reset(std::move(c.fd));
    gate_client.reset();
    srv.stop();
    EXPECT_EQ(stats.accepted.get(), 1 + (kRounds + 1) * kClients);
    EXPECT_EQ(stats.closed.get(), stats.accepted.get());
}

// A connection closed with two operations on the ring: clients send 8 MiB and never read, so the echo's
// send is stuck in flight, while reading goes on (high water far above) with a receive armed; the idle
// time-out then closes each one (close_now). Both operations complete cancelled, in one later batch: the
// Connection and its fd must outlive the first and go with the second. New clients, on the fd numbers
// just freed, are then served exactly, and each old client saw a prefix of its own bytes.
TEST_F(Uring, IdleTimeoutWithASendAndAReceiveInFlightFreesTheConnectionWithItsLastCompletion) {
    constexpr size_t kStuck = 8, kFresh = 8, kBytes = 8 << 20;
    ServerConfig cfg = config(1, 64, 4096);
    cfg.worker.high_water = 64 << 20;  // reading never pauses: the receive stays armed
    cfg.worker.low_water = 32 << 20;
    cfg.worker.idle_timeout_ms = 1000;
    RunningServer srv(cfg);
    const WorkerStats& stats = srv.server().worker(0).stats();
    std::mt19937_64 rng(4242);
    std::vector<UniqueFd> stuck;
    std::vector<std::string> sent;
    std::set<int> stuck_fds;
    for (size_t i = 0; i < kStuck; ++i) {
        UniqueFd fd = connect_blocking(srv.port());
        // The echo stalls once this and the server's send buffer are full: its send waits in flight. (Not
        // below loopback's 64 KiB MSS: a window that never reaches one segment stalls the close's data too.)
        int small = 128 << 10;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        stuck.push_back(move_high(std::move(fd)));
        // Its number on the server, while it is surely there (the idle time-out is short under a sanitizer).
        int server_fd = -1;
        ASSERT_TRUE(eventually([&] {
            auto by_port = server_fds_by_client_port();
            auto it = by_port.find(local_port(stuck.back().get()));
            if (it != by_port.end()) server_fd = it->second;
            return server_fd >= 0;
        })) << "the server never held stuck client "
            << i;
        stuck_fds.insert(server_fd);
        sent.push_back(random_bytes(rng, kBytes));
        send_all(stuck.back().get(), sent.back());  // the server reads it all (high water is far above)
    }
    ASSERT_TRUE(eventually([&] { return stats.idle_timeouts.get() == kStuck; }, 20'000)) << stats.idle_timeouts.get();
    ASSERT_TRUE(eventually([&] { return server_fds_by_client_port().empty(); }, 20'000))
        << "the server still holds " << server_fds_by_client_port().size() << " closed connections' fds";
    std::vector<std::pair<UniqueFd, std::string>> fresh;
    size_t reused = 0;
    for (size_t i = 0; i < kFresh; ++i) {
        UniqueFd fd = move_high(connect_blocking(srv.port()));
        std::string msg = "fresh-" + std::to_string(i) + ":" + random_bytes(rng, 1 + rng() % 4096);
        send_all(fd.get(), msg);
        ASSERT_EQ(recv_exact(fd.get(), msg.size()), msg) << "fresh client " << i << " got stray bytes";
        // Its number now, just after its round trip (the idle time-out would end it after a second).
        auto by_port = server_fds_by_client_port();
        auto it = by_port.find(local_port(fd.get()));
        if (it != by_port.end()) reused += stuck_fds.count(it->second);
        fresh.emplace_back(std::move(fd), std::move(msg));
    }
    EXPECT_GE(reused, kFresh / 2) << "the new connections did not take the freed fd numbers";
    for (size_t i = 0; i < kStuck; ++i) {
        Received r = read_until_closed(stuck[i].get());
        EXPECT_LE(r.bytes.size(), sent[i].size());
        EXPECT_TRUE(r.bytes == sent[i].substr(0, r.bytes.size())) << "stuck client " << i << ": not a prefix";
    }
    std::printf(
        "idle close with a send and a receive in flight: %zu closed, %zu of %zu new connections on "
        "their fd numbers\n",
        kStuck, reused, kFresh);
    fresh.clear();
    srv.stop();
    EXPECT_EQ(stats.accepted.get(), kStuck + kFresh);
    EXPECT_EQ(stats.closed.get(), kStuck + kFresh);
}

// WorkerConfig::uring_plain_ring makes the ring as on a kernel that refuses SINGLE_ISSUER and
// DEFER_TASKRUN: the fallback of init_ring, which this kernel would never take. The worker reports the
// flags it got, and serves as before (the suites run again on it: the uring_plain_ring: tests).
TEST_F(Uring, PlainRingFallbackIsTakenWhenAskedForAndServes) {
#ifndef IORING_SETUP_DEFER_TASKRUN
    GTEST_SKIP() << "the kernel headers have no IORING_SETUP_DEFER_TASKRUN";
#else
    constexpr unsigned kBoth = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    for (bool plain : {true, false}) {
        ServerConfig cfg = config(2, 64, 1024);
        cfg.worker.uring_plain_ring = plain;
        RunningServer srv(cfg);
        std::vector<EchoStream> streams = random_echo_streams(srv.port(), 20, 64 * 1024, 3, 2, plain ? 5 : 6);
        ASSERT_TRUE(drive_echo(streams, 60'000)) << "plain " << plain;
        for (auto& s : streams) ASSERT_TRUE(s.sent == s.received) << "plain " << plain;
        for (size_t i = 0; i < srv.server().worker_count(); ++i) {
            const unsigned flags = srv.server().worker(i).uring_setup_flags();
            EXPECT_NE(flags, 0u) << "worker " << i << " reports no ring";
            if (plain || uring_plain_ring_forced()) {
                EXPECT_EQ(flags & kBoth, 0u) << "worker " << i << ": asked for the plain ring, got " << flags;
            } else if (kernel_at_least(6, 1)) {
                EXPECT_EQ(flags & kBoth, kBoth) << "worker " << i << ": the kernel has them, the ring lacks them";
            }
        }
        streams.clear();  // the clients close first: the stop need not linger for them
        srv.stop();
        EXPECT_EQ(srv.accepted(), 20u);
        EXPECT_EQ(srv.total(&WorkerStats::closed), 20u);
    }
#endif
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

// Backend::automatic (the default) picks io_uring on a kernel that gives a ring SINGLE_ISSUER and
// DEFER_TASKRUN (6.1), the setup it was measured with, and every worker then serves on its ring.
TEST_F(Uring, AutoPicksIoUringWhereTheKernelHasDeferTaskrunAndServesOnIt) {
    const Backend want = kernel_at_least(6, 1) ? Backend::io_uring : poller_backends().front();
    ServerConfig cfg;
    cfg.workers = 2;  // the backend left at its default
    ASSERT_EQ(cfg.worker.backend, Backend::automatic);
    EXPECT_EQ(automatic_backend(cfg.worker), want);
    RunningServer srv(cfg);
    EXPECT_EQ(srv.server().backend(), want);
    std::vector<EchoStream> streams = random_echo_streams(srv.port(), 20, 64 * 1024, 3, 2, 7);
    ASSERT_TRUE(drive_echo(streams, 60'000));
    for (auto& s : streams) ASSERT_TRUE(s.sent == s.received);
    for (size_t i = 0; i < srv.server().worker_count(); ++i) {
        EXPECT_EQ(srv.server().worker(i).backend(), want) << "worker " << i;
        if (want == Backend::io_uring) {
            EXPECT_NE(srv.server().worker(i).uring_setup_flags(), 0u) << "worker " << i;
        }
    }
    streams.clear();
    srv.stop();
    EXPECT_EQ(srv.accepted(), 20u);
}

// What needs a Poller keeps automatic on the readiness backend: --handoff direct (the acceptor
// registers connections in the worker's poller) and a poller_factory; such a server serves as before.
TEST_F(Uring, AutoStaysOnAPollerForDirectHandoffAndAPollerFactory) {
    const Backend readiness = poller_backends().front();
    WorkerConfig with_factory;
    with_factory.poller_factory = [](Backend b) { return make_poller(b); };
    EXPECT_EQ(automatic_backend(with_factory), readiness);
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.handoff = Handoff::direct;
    RunningServer srv(cfg);  // with io_uring this would be refused (DirectHandoffIsRefused)
    EXPECT_EQ(srv.server().backend(), readiness);
    UniqueFd c = connect_with_read_timeout(srv.port());
    send_all(c.get(), "direct");
    EXPECT_EQ(recv_exact(c.get(), 6), "direct");
}

}  // namespace
