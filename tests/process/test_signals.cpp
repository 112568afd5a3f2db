// What each signal does to the kqserver binary, run as a child: SIGTERM, SIGINT and SIGQUIT stop it
// gracefully (a second one at once), SIGHUP is logged and ignored, SIGUSR1 logs the summary so far
// (SIGUSR2, the upgrade: test_upgrade.cpp). None of them may leave the server unable to stop, or kill it without its summary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#ifndef KQSERVER_PATH
#error "KQSERVER_PATH must name the kqserver binary (set by tests/CMakeLists.txt)"
#endif
#include "child_process.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kSummary = "worker 0: connections";

// Waits until text occurs at least n times in the child's log; false after timeout_ms, or at once if
// the child has exited.
bool log_has(ChildProcess& p, std::string_view text, size_t n = 1, int timeout_ms = 10'000) {
    auto start = Clock::now();
    while (count(p.log(), text) < n) {
        if (ms_since(start) > timeout_ms || p.wait_exit(0) != -1) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// One echo round trip on an existing connection: true if the bytes came back.
bool echoes(int fd) {
    const std::string ping = "ping\n";
    send_all(fd, ping);
    return recv_exact(fd, ping.size()) == ping;
}

std::string name_of(int sig) {
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGHUP:
        return "SIGHUP";
    case SIGUSR2:
        return "SIGUSR2";
    default:
        return std::to_string(sig);
    }
}

std::string signal_label(const ::testing::TestParamInfo<int>& param) { return name_of(param.param); }
std::string pair_label(const ::testing::TestParamInfo<std::pair<int, int>>& param) {
    return name_of(param.param.first) + "_then_" + name_of(param.param.second);
}

// The value of a one-series metric (e.g. worker 0's read bytes) from kqserver's metrics endpoint.
double metric(uint16_t metrics_port, const std::string& series) {
    UniqueFd fd = connect_blocking(metrics_port);
    send_all(fd.get(), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string text = recv_until_eof(fd.get());
    size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

// A client that has sent the echo server kBytes and reads none of the echo yet: once the server has
// read them all (its metrics say so), most of the answer waits in the server's memory, beyond what the
// socket buffers hold. A graceful stop must deliver it whole before closing; an immediate one cuts it.
class UnreadEcho {
public:
    static constexpr size_t kBytes = 16 << 20;
    static inline const std::vector<std::string> kServerArgs = {
        "--protocol",      "echo", "--workers",      "1", "--high-water", std::to_string(64 << 20),
        "--drain-timeout", "30",   "--metrics-port", "0", "--log-level",  "info"};

    explicit UnreadEcho(ServerProcess& server) : fd_(connect_blocking(server.port())) {
        std::mt19937_64 rng(5);
        sent_ = random_bytes(rng, kBytes);
        send_all(fd_.get(), sent_);
        const std::string series = "kqserver_worker_read_bytes_total{worker=\"0\"}";
        for (auto start = Clock::now(); metric(server.metrics_port(), series) < static_cast<double>(kBytes);) {
            if (ms_since(start) > 10'000) throw std::runtime_error("the server did not read everything sent");
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    // Reads until the server closes: true if everything sent came back, in order.
    bool all_echoed() { return recv_until_eof(fd_.get()) == sent_; }

private:
    UniqueFd fd_;
    std::string sent_;
};

// SIGUSR1 logs the per-worker summary and changes nothing else: the server goes on serving, and a
// later SIGTERM still drains and exits 0 with the summary. Twice, since the first must not use up
// anything the second needs.
TEST(Signals, Usr1LogsTheSummaryAndLeavesGracefulStopWorking) {
    ServerProcess p({"--workers", "1", "--drain-timeout", "5", "--log-level", "info"});
    UniqueFd kept = connect_blocking(p.port());
    ASSERT_TRUE(echoes(kept.get()));
    for (size_t i = 1; i <= 2; ++i) {
        ASSERT_EQ(::kill(p.pid(), SIGUSR1), 0);
        ASSERT_TRUE(log_has(p, kSummary, i)) << "no summary after SIGUSR1 #" << i << ":\n" << p.log();
        EXPECT_EQ(p.wait_exit(0), -1) << "SIGUSR1 stopped the server";
        EXPECT_TRUE(echoes(kept.get()));
        UniqueFd fresh = connect_blocking(p.port());
        EXPECT_TRUE(echoes(fresh.get())) << "not accepting after SIGUSR1";
    }
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    EXPECT_TRUE(readable_within(kept.get(), 10'000) && recv_until_eof(kept.get()).empty())
        << "the drain did not close the idle connection";
    int st = p.wait_exit(10'000);
    ASSERT_NE(st, -1) << "SIGTERM after SIGUSR1 did not stop the server:\n" << p.log();
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_EQ(WEXITSTATUS(st), 0);
    std::string log = p.log();
    EXPECT_NE(log.find("SIGTERM: no longer accepting"), std::string::npos) << log;
    EXPECT_EQ(count(log, kSummary), 3u) << "two on SIGUSR1 and one at exit:\n" << log;
}

// Threads the protocol starts before the server runs (--offload-ms's pool) must not take the stop
// signals: a pool thread with them unblocked would receive SIGTERM and its default action kill the
// process, with no drain and no summary.
TEST(Signals, ThreadsStartedBeforeTheServerDoNotTakeTheStopSignal) {
    ServerProcess p({"--workers", "1", "--offload-ms", "0", "--offload-threads", "32", "--log-level", "info"});
    UniqueFd kept = connect_blocking(p.port());
    ASSERT_TRUE(echoes(kept.get()));
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int st = p.wait_exit(10'000);
    ASSERT_NE(st, -1) << "SIGTERM did not stop the server:\n" << p.log();
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_EQ(WEXITSTATUS(st), 0);
    EXPECT_NE(p.log().find("SIGTERM: no longer accepting"), std::string::npos) << p.log();
}

// SIGHUP (no configuration to reload) is logged and changes nothing: the server
// keeps its connections and goes on accepting, and stops cleanly on SIGTERM afterwards.
class IgnoredSignal : public ::testing::TestWithParam<int> {};

TEST_P(IgnoredSignal, IsLoggedAndTheServerKeepsServing) {
    const int sig = GetParam();
    ServerProcess p({"--workers", "1", "--drain-timeout", "5", "--log-level", "info"});
    UniqueFd kept = connect_blocking(p.port());
    ASSERT_TRUE(echoes(kept.get()));
    ASSERT_EQ(::kill(p.pid(), sig), 0);
    ASSERT_TRUE(log_has(p, name_of(sig))) << name_of(sig) << " was not logged:\n" << p.log();
    EXPECT_EQ(p.wait_exit(0), -1) << name_of(sig) << " stopped the server";
    EXPECT_TRUE(echoes(kept.get())) << "an open connection lost";
    UniqueFd fresh = connect_blocking(p.port());
    EXPECT_TRUE(echoes(fresh.get())) << "not accepting after " << name_of(sig);
    expect_clean_exit(p, 10'000);
    EXPECT_EQ(p.log().find("no longer accepting"), p.log().rfind("no longer accepting")) << "one stop only";
}

INSTANTIATE_TEST_SUITE_P(Signals, IgnoredSignal, ::testing::Values(SIGHUP), signal_label);

// SIGTERM, SIGINT and SIGQUIT each stop the server gracefully: it stops accepting, keeps sending what
// it owes a client that reads slowly (so it is still running a while after the signal), closes once
// that is written, logs the summary and exits 0.
class StopSignal : public ::testing::TestWithParam<int> {};

TEST_P(StopSignal, DrainsWhatIsOwedAndExitsZero) {
    const int sig = GetParam();
    ServerProcess p(UnreadEcho::kServerArgs);
    UnreadEcho client(p);
    ASSERT_EQ(::kill(p.pid(), sig), 0);
    ASSERT_TRUE(log_has(p, name_of(sig) + ": no longer accepting")) << p.log();
    EXPECT_EQ(p.wait_exit(300), -1) << "stopped without waiting for the unsent answers";
    EXPECT_TRUE(client.all_echoed()) << "the drain did not deliver everything owed";
    int st = p.wait_exit(10'000);
    ASSERT_NE(st, -1) << "still running after the drain:\n" << p.log();
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_EQ(WEXITSTATUS(st), 0);
    EXPECT_NE(p.log().find(kSummary), std::string::npos) << p.log();
}

INSTANTIATE_TEST_SUITE_P(Signals, StopSignal, ::testing::Values(SIGTERM, SIGINT, SIGQUIT), signal_label);

// A second stop signal, of any of the three kinds, ends a drain that is waiting on a client at once.
class SecondStopSignal : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(SecondStopSignal, EndsTheDrainAtOnce) {
    const auto [first, second] = GetParam();
    ServerProcess p(UnreadEcho::kServerArgs);
    UnreadEcho client(p);
    ASSERT_EQ(::kill(p.pid(), first), 0);
    ASSERT_TRUE(log_has(p, name_of(first) + ": no longer accepting")) << p.log();
    EXPECT_EQ(p.wait_exit(300), -1) << "the first signal did not drain";
    auto sent = Clock::now();
    ASSERT_EQ(::kill(p.pid(), second), 0);
    int st = p.wait_exit(5'000);
    ASSERT_NE(st, -1) << "the second signal did not stop the server at once:\n" << p.log();
    std::printf("%s then %s: exited %lld ms after the second\n", name_of(first).c_str(), name_of(second).c_str(),
                static_cast<long long>(ms_since(sent)));
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_EQ(WEXITSTATUS(st), 0);
    EXPECT_NE(p.log().find(name_of(second) + ": stopping now"), std::string::npos) << p.log();
    EXPECT_NE(p.log().find(kSummary), std::string::npos) << p.log();
    EXPECT_FALSE(client.all_echoed()) << "everything owed was delivered anyway";
}

INSTANTIATE_TEST_SUITE_P(Signals, SecondStopSignal,
                         ::testing::Values(std::pair{SIGTERM, SIGTERM}, std::pair{SIGTERM, SIGQUIT},
                                           std::pair{SIGQUIT, SIGINT}),
                         pair_label);

}  // namespace
