// Socket helpers (kq/net.hpp) where the kernel's answers have corners: a blocking connect interrupted by
// a signal, and waiting for a connect that never completes.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "kq/fd.hpp"
#include "kq/net.hpp"

namespace {

std::atomic<int> g_alarms{0};
void count_alarm(int) { g_alarms.fetch_add(1, std::memory_order_relaxed); }

// A handler installed without SA_RESTART (as libFuzzer installs its SIGALRM) makes a blocking connect()
// that had to wait for the handshake return EINTR while the kernel goes on connecting. connect_tcp must
// wait for that outcome, not throw: CI's fuzz_connection once failed exactly so. With a 200 µs timer a
// plain blocking connect on loopback is interrupted in about one call in ten on this machine.
TEST(Net, BlockingConnectSurvivesASignalWithoutRestart) {
    kq::UniqueFd listener = kq::listen_tcp({});
    const uint16_t port = kq::local_port(listener.get());
    constexpr int kConnects = 3000;
    std::atomic<int> accepted{0};
    std::thread acceptor([&] {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);  // the alarms go to the connecting thread
        // Ends when every client arrived, or after 5 s without one (a broken connect_tcp then fails
        // the count below instead of hanging the test).
        while (accepted.load() < kConnects) {
            pollfd p{listener.get(), POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) return;
            for (kq::UniqueFd c; kq::accept_client(listener.get(), c) == kq::AcceptResult::accepted;)
                accepted.fetch_add(1);
        }
    });

    struct sigaction sa {
    }, old{};
    sa.sa_handler = count_alarm;
    sa.sa_flags = 0;  // no SA_RESTART
    ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
    itimerval every{{0, 200}, {0, 200}}, off{};
    ASSERT_EQ(::setitimer(ITIMER_REAL, &every, nullptr), 0);
    int failures = 0;
    for (int i = 0; i < kConnects; ++i) {
        try {
            kq::UniqueFd c = kq::connect_tcp("127.0.0.1", port, /*nonblocking=*/false);
            kq::close_with_reset(std::move(c));  // no TIME_WAIT left behind by 3,000 connects
        } catch (const std::system_error& e) {
            if (++failures <= 3) ADD_FAILURE() << "connect " << i << ": " << e.what();
        }
    }
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old, nullptr);
    acceptor.join();
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(accepted.load(), kConnects) << "every connect reached the listener";
    EXPECT_GT(g_alarms.load(), 0) << "the timer never fired: the test exercised nothing";
}

// A connect that stays in progress (the listener's backlog is full and the server never accepts) ends
// with ETIMEDOUT at the deadline; one that completes gives 0.
TEST(Net, WaitConnectedReportsSuccessAndTimeout) {
    kq::ListenOptions opt;
    opt.backlog = 0;  // Linux queues backlog + 1 clients, then drops SYNs
    kq::UniqueFd listener = kq::listen_tcp(opt);
    const uint16_t port = kq::local_port(listener.get());
    std::vector<kq::UniqueFd> clients;
    int in_progress = -1;
    for (int i = 0; i < 8 && in_progress < 0; ++i) {
        clients.push_back(kq::connect_tcp("127.0.0.1", port, /*nonblocking=*/true));
        int err = kq::wait_connected(clients.back().get(), 200);
        if (err == ETIMEDOUT) {
            in_progress = i;
        } else {
            ASSERT_EQ(err, 0) << "client " << i << " while the backlog had room";
        }
    }
    ASSERT_GE(in_progress, 1) << "no client connected before the backlog filled, or none was left waiting";
}

}  // namespace
