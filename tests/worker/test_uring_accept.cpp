// The io_uring new-connection path with --accept reuseport: each worker's multishot accept on its own
// listening socket (no poll, no accept4 per client). What it must keep of the readiness backends' accept
// loop: the connection limit (the multishot is cancelled while it holds, and what the kernel accepted
// meanwhile waits for room), the EMFILE pause (the multishot ends with the error and is armed again only
// after the pause), and a drain that closes the listening socket at once although an accept is armed on
// it; and no fd is leaked on any of these paths (/proc/self/fd counted).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

class UringAccept : public ::testing::Test {
protected:
    void SetUp() override {
        const auto built = built_backends();
        if (std::find(built.begin(), built.end(), Backend::io_uring) == built.end())
            GTEST_SKIP() << "io_uring was not built (no liburing)";
        KQ_SKIP_IF_UNAVAILABLE(Backend::io_uring);
    }
    static ServerConfig config(int workers) {
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker.backend = Backend::io_uring;
        cfg.accept = AcceptMode::reuseport;
        return cfg;
    }
};

size_t open_fds() {
    size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;  // the directory's own fd
}

void set_read_timeout(int fd, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// The index of the first of the open clients to become readable within ms, -1 if none does.
int first_readable(const std::vector<UniqueFd>& c, int ms) {
    std::vector<pollfd> p;
    std::vector<int> index;
    for (size_t i = 0; i < c.size(); ++i) {
        if (!c[i]) continue;
        p.push_back({c[i].get(), POLLIN, 0});
        index.push_back(static_cast<int>(i));
    }
    if (::poll(p.data(), p.size(), ms) <= 0) return -1;
    for (size_t i = 0; i < p.size(); ++i)
        if (p[i].revents != 0) return index[i];
    return -1;
}

// A client served: its byte comes back (within the 10 s read time-out).
bool echoes(int fd, const std::string& b) {
    send_all(fd, b);
    return recv_exact(fd, b.size()) == b;
}

// With --max-connections 1, three clients connected together: whether the multishot took them in one go
// (two then wait, held) or the cancel came first (two wait in the backlog), exactly one is served at a
// time, in turn as each closes; then a fourth client, after the last held one has gone, is served too:
// the multishot accept cancelled at the limit was armed again.
TEST_F(UringAccept, LimitCancelsTheMultishotAndArmsItAgain) {
    ServerConfig cfg = config(1);
    cfg.max_connections = 1;
    RunningServer srv(cfg);
    std::vector<UniqueFd> c;
    for (int i = 0; i < 3; ++i) {
        c.push_back(connect_blocking(srv.port()));
        set_read_timeout(c.back().get(), 10);
        send_all(c.back().get(), std::string(1, static_cast<char>('a' + i)));
    }
    // The one served first is whichever the worker took first.
    const int served = first_readable(c, 10'000);
    ASSERT_GE(served, 0) << "no client served";
    std::vector<int> order{served};
    for (int round = 0; round < 2; ++round) {
        // Only the one served: the other waiting clients get nothing while it is open.
        for (int i = 0; i < 3; ++i) {
            if (std::find(order.begin(), order.end(), i) != order.end()) continue;
            EXPECT_FALSE(readable_within(c[static_cast<size_t>(i)].get(), round == 0 ? 300 : 100))
                << "client " << i << " served beyond --max-connections";
        }
        EXPECT_EQ(srv.accepted(), uint64_t(round + 1));
        ASSERT_EQ(recv_exact(c[static_cast<size_t>(order.back())].get(), 1),
                  std::string(1, static_cast<char>('a' + order.back())));
        c[static_cast<size_t>(order.back())].reset();
        // The next one is served now (first come, first served is not promised across backlog and held).
        const int next = first_readable(c, 10'000);
        ASSERT_GE(next, 0) << "no waiting client was served after a close (round " << round << ")";
        order.push_back(next);
    }
    ASSERT_EQ(recv_exact(c[static_cast<size_t>(order.back())].get(), 1),
              std::string(1, static_cast<char>('a' + order.back())));
    c.clear();
    ASSERT_TRUE(eventually([&] { return srv.total(&WorkerStats::closed) == 3; }, 10'000));
    UniqueFd late = connect_with_read_timeout(srv.port());
    EXPECT_TRUE(echoes(late.get(), "d")) << "the multishot accept was not armed again after the limit";
    late.reset();
    srv.stop();
    EXPECT_EQ(srv.server().accept_totals().accepted, 4u);
    EXPECT_EQ(srv.accepted(), 4u);
    EXPECT_GE(srv.server().accept_totals().limit_pauses, 1u);
}

// Clients queued in the listening socket's backlog (Linux reports its length for a listening socket
// as tcpi_unacked).
uint32_t backlog_length(int listen_fd) {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    if (::getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return UINT32_MAX;
    return ti.tcpi_unacked;
}

// At the limit the multishot accept is cancelled, so later clients wait in the kernel's backlog (as
// accept4's loop leaves them), not accepted and held by the worker: once the one client allowed has had
// its echo (the cancel went in with the wait before that reply), two more clients stay in the backlog,
// and the accept counter does not move until the first closes.
TEST_F(UringAccept, AtTheLimitLaterClientsWaitInTheBacklog) {
    ServerConfig cfg = config(1);
    cfg.max_connections = 1;
    RunningServer srv(cfg);
    ASSERT_EQ(srv.server().listening_fds().size(), 1u);
    const int listener = srv.server().listening_fds()[0];
    UniqueFd a = connect_with_read_timeout(srv.port());
    ASSERT_TRUE(echoes(a.get(), "a"));
    UniqueFd b = connect_with_read_timeout(srv.port());
    UniqueFd c = connect_with_read_timeout(srv.port());
    EXPECT_TRUE(eventually([&] { return backlog_length(listener) == 2; }, 5'000))
        << "backlog " << backlog_length(listener) << ": the multishot accept took clients past the limit";
    EXPECT_EQ(srv.server().accept_totals().accepted, 1u);
    a.reset();
    EXPECT_TRUE(echoes(b.get(), "b"));
    b.reset();
    EXPECT_TRUE(echoes(c.get(), "c"));
    c.reset();
    srv.stop();
    EXPECT_EQ(srv.accepted(), 3u);
}

// Restores RLIMIT_NOFILE however the test ends.
struct NofileGuard {
    rlimit saved{};
    NofileGuard() { ::getrlimit(RLIMIT_NOFILE, &saved); }
    ~NofileGuard() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

// EMFILE: the kernel's accept fails (the client stays in the backlog) and ends the multishot accept. The
// worker pauses kAcceptPauseMs before it arms it again (no spinning: two more pauses take at least a
// pause's length each), counts the pauses, and serves every waiting client once fds are free again.
TEST_F(UringAccept, EmfileEndsTheMultishotPausesAndRecovers) {
    KQ_SKIP_IF_SANITIZED_UNDER_EMFILE();
    NofileGuard guard;
    // The limit the ring's accept sees is taken when the accept is prepared: lowered before the server.
    rlimit low = guard.saved;
    low.rlim_cur = std::min<rlim_t>(guard.saved.rlim_cur, open_fds() + 64);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    RunningServer srv(config(1));
    // Warm up: one client served, so the worker is running with its accept armed.
    {
        UniqueFd warm = connect_with_read_timeout(srv.port());
        ASSERT_TRUE(echoes(warm.get(), "w"));
    }
    ASSERT_TRUE(eventually([&] { return srv.total(&WorkerStats::closed) == 1; }, 10'000));
    // The clients' sockets first, then every other fd taken.
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 3; ++i) clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    std::vector<UniqueFd> filler;
    for (;;) {
        int fd = ::dup(clients[0].get());
        if (fd < 0) break;
        filler.emplace_back(fd);
    }
    ASSERT_EQ(errno, EMFILE);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(srv.port());
    for (auto& c : clients) {
        ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
        set_read_timeout(c.get(), 10);
        send_all(c.get(), "x");
    }
    ASSERT_TRUE(eventually([&] { return srv.server().accept_totals().accept_pauses >= 1; }, 10'000))
        << "the multishot accept never failed with EMFILE";
    const uint64_t p0 = srv.server().accept_totals().accept_pauses;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return srv.server().accept_totals().accept_pauses >= p0 + 2; }, 10'000))
        << "the accept was not armed again after its pause";
    EXPECT_GE(ms_since(t0), 2 * kAcceptPauseMs * 9 / 10) << "armed again before the pause ended: spinning";
    EXPECT_EQ(srv.accepted(), 1u) << "a client was served while no fd was free";
    EXPECT_FALSE(readable_within(clients[0].get(), 0));
    filler.clear();
    for (auto& c : clients) EXPECT_EQ(recv_exact(c.get(), 1), "x") << "a client was not served after EMFILE";
    clients.clear();
    srv.stop();
    EXPECT_EQ(srv.accepted(), 4u);
    EXPECT_EQ(srv.server().accept_totals().accepted, 4u);
    EXPECT_EQ(srv.server().accept_totals().accept_errors, 0u);
}

// A graceful stop while the multishot accept is armed: the listening socket is closed at once (the
// accept on the ring would otherwise keep it, and clients would queue in its backlog), while the worker
// is still draining a client it owes bytes to; and after the stop no fd is left behind.
TEST_F(UringAccept, DrainClosesTheListenerAtOnceWithAnAcceptArmed) {
    const size_t before = open_fds();
    {
        ServerConfig cfg = config(1);
        cfg.worker.drain_timeout_ms = 5'000;
        cfg.worker.high_water = 64 * 1024;
        cfg.worker.low_water = 16 * 1024;
        RunningServer srv(cfg);
        // A client that sends 1 MiB and reads nothing: the worker cannot write the echo back, so it keeps
        // draining (this connection stays open) until the client reads.
        UniqueFd x = connect_tcp("127.0.0.1", srv.port(), true);
        std::mt19937_64 rng(5);
        const std::string payload = random_bytes(rng, 1 << 20);
        size_t off = 0;
        for (int tries = 0; tries < 200 && off < payload.size(); ++tries) {
            ssize_t n = ::send(x.get(), payload.data() + off, payload.size() - off, MSG_NOSIGNAL);
            if (n > 0) off += static_cast<size_t>(n);
            else {
                pollfd p{x.get(), POLLOUT, 0};
                ::poll(&p, 1, 10);  // until there is room, or 10 ms: the server has stopped reading
            }
        }
        ASSERT_GT(off, size_t{256} * 1024);
        ASSERT_TRUE(eventually([&] { return srv.bytes_read() >= 128 * 1024; }, 10'000));
        srv.server().stop();  // graceful: returns at once, the worker drains
        // Probes that connect before the worker has taken the stop are accepted (and ended by the
        // drain): they are counted, not failed.
        uint64_t probes = 0;
        bool refused = eventually(
            [&] {
                try {
                    connect_blocking(srv.port());
                    ++probes;
                    return false;
                } catch (const std::system_error&) {
                    return true;
                }
            },
            3'000);
        EXPECT_TRUE(refused) << "the listening socket outlived the drain's start (an accept still held it)";
        EXPECT_LT(srv.total(&WorkerStats::closed), srv.accepted())
            << "the worker had already finished (x closed): nothing proven";
        // Now let it finish: read the echo back until the end.
        int flags = ::fcntl(x.get(), F_GETFL);
        ::fcntl(x.get(), F_SETFL, flags & ~O_NONBLOCK);
        set_read_timeout(x.get(), 10);
        Received r = read_until_closed(x.get());
        EXPECT_TRUE(r.bytes == payload.substr(0, r.bytes.size()));
        srv.stop_within(10'000);
        EXPECT_LE(srv.accepted(), 1u + probes);
        EXPECT_EQ(srv.total(&WorkerStats::closed), srv.accepted());
    }
    EXPECT_EQ(open_fds(), before) << "fds left open after the server stopped";
}

// A graceful stop and an immediate one while clients keep connecting: whatever the multishot accepts
// had taken when the stop came (fds still in completions, fds held at the limit) is served or closed,
// never leaked: the process has as many fds afterwards as before.
TEST_F(UringAccept, StopWhileClientsArriveLeaksNoFd) {
    for (bool now : {false, true}) {
        const size_t before = open_fds();
        {
            ServerConfig cfg = config(2);
            cfg.max_connections = 20;  // most of the 200 are held or stay in the backlog
            cfg.worker.drain_timeout_ms = 200;
            RunningServer srv(cfg);
            std::vector<UniqueFd> clients;
            for (int i = 0; i < 100; ++i) clients.push_back(connect_tcp("127.0.0.1", srv.port(), true));
            std::atomic<bool> go{false};
            std::thread more([&] {
                std::vector<UniqueFd> mine;
                go.store(true);
                for (int i = 0; i < 100; ++i) {
                    try {
                        mine.push_back(connect_tcp("127.0.0.1", srv.port(), true));
                    } catch (const std::system_error&) {  // refused once the listeners are closed
                        break;
                    }
                }
            });
            while (!go.load()) std::this_thread::yield();
            if (now) srv.server().stop_now();
            srv.stop_within(10'000);
            more.join();
            EXPECT_EQ(srv.accepted(), srv.total(&WorkerStats::closed)) << (now ? "stop_now" : "stop");
            EXPECT_LE(srv.total(&WorkerStats::accepted), srv.server().accept_totals().accepted);
        }
        EXPECT_EQ(open_fds(), before) << (now ? "stop_now" : "stop") << ": fds left open";
    }
}

}  // namespace
