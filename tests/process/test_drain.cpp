// Health and drain on the kqserver binary, run as a child: GET /health is 200 while it serves; GET
// /ready is 200 until the first SIGTERM and 503 at once after it; with --drain-delay the server goes on
// serving and accepting for the delay (STOPPING=1 already sent), then drains and exits 0; a second
// SIGTERM during the delay stops it at once. Times are measured, never slept through.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#ifndef KQSERVER_PATH
#error "KQSERVER_PATH must name the kqserver binary (set by tests/CMakeLists.txt)"
#endif
#include "deploy_support.hpp"

using namespace kq;
using namespace kq::test;
using Clock = std::chrono::steady_clock;

namespace {

// Polls GET /ready until it answers want; the milliseconds that took, or -1 after timeout_ms.
int64_t ready_turns(uint16_t metrics, int want, int timeout_ms) {
    auto start = Clock::now();
    while (http_status(metrics, "/ready") != want) {
        if (ms_since(start) > timeout_ms) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return ms_since(start);
}

TEST(Health, HealthAndReadyWhileServing) {
    ServerProcess p({"--workers", "1", "--metrics-port", "0"});
    uint16_t m = p.metrics_port();
    EXPECT_EQ(http_status(m, "/health"), 200);
    EXPECT_EQ(http_status(m, "/ready"), 200);
    EXPECT_EQ(http_status(m, "/ready?probe=k8s"), 200);
    EXPECT_EQ(http_status(m, "/healthz"), 404);
    http::Client c(m);
    c.send(http::request("HEAD", "/ready"));
    EXPECT_EQ(c.read(true).status, 200);
    expect_clean_exit(p);
}

// Without --drain-delay (the default 0) the first SIGTERM still turns /ready before the drain ends: a
// client held mid-request keeps the drain going, /ready is 503 (and /health 200) meanwhile, and the
// client still gets its answer.
TEST(Health, ReadyTurnsWithoutDelayToo) {
    ServerProcess p({"--protocol", "http", "--workers", "1", "--metrics-port", "0", "--drain-timeout", "20"});
    uint16_t m = p.metrics_port();
    http::Client mid(p.port());
    mid.send("GET / HTTP/1.1\r\nHo");
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    EXPECT_GE(ready_turns(m, 503, 10'000), 0) << p.log();
    EXPECT_EQ(http_status(m, "/health"), 200);
    EXPECT_EQ(p.wait_exit(0), -1) << "the drain did not wait for the client mid-request";
    mid.send("st: t\r\n\r\n");
    EXPECT_EQ(mid.read().status, 200);
    int st = p.wait_exit(10'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
}

// --drain-delay 3: after SIGTERM, /ready is 503 within a fraction of the delay and STOPPING=1 is out,
// while a new client is still accepted and served and a client held mid-request (HTTP, half a request
// line) gets its answer; the exit comes after the delay and within delay + drain.
TEST(Drain, DelayKeepsServingWithReadyDown) {
    constexpr int kDelayMs = 3'000;  // room for the checks on a loaded machine (sanitizers)
    NotifySocket notify(false);
    ScopedEnv env("NOTIFY_SOCKET", notify.name());
    ServerProcess p(
        {"--protocol", "http", "--workers", "2", "--metrics-port", "0", "--drain-delay", "3", "--drain-timeout", "5"});
    uint16_t m = p.metrics_port();
    ASSERT_TRUE(notify.wait_for("READY=1", 10'000));
    http::Client mid(p.port());
    mid.send("GET / HTTP/1.1\r\nHo");  // mid-request when the signal comes
    auto sigterm = Clock::now();
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int64_t turned = ready_turns(m, 503, kDelayMs);
    ASSERT_GE(turned, 0) << "/ready never turned 503 during the delay\n" << p.log();
    EXPECT_TRUE(notify.wait_for("STOPPING=1", kDelayMs)) << "STOPPING=1 not sent at the start of the delay";
    // A new client, accepted and served during the delay.
    {
        http::Client late(p.port());
        EXPECT_EQ(late.get("/").status, 200);
    }
    int64_t served_at = ms_since(sigterm);
    ASSERT_LT(served_at, kDelayMs) << "the checks above took past the delay; the test proves nothing";
    EXPECT_EQ(http_status(m, "/health"), 200) << "still serving, so still healthy";
    mid.send("st: t\r\n\r\n");
    EXPECT_EQ(mid.read().status, 200) << "the client held mid-request is answered";
    int st = p.wait_exit(kDelayMs + 10'000);
    int64_t exited_at = ms_since(sigterm);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
    EXPECT_GE(exited_at, kDelayMs - 50) << "it stopped before the delay was over";
    EXPECT_TRUE(log_has(p, "drain delay over")) << p.log();
}

// A client still connected (idle, keep-alive) when the delay ends: the drain closes it and the server
// exits well within delay + --drain-timeout.
TEST(Drain, IdleClientAfterDelayIsDrained) {
    ServerProcess p({"--protocol", "http", "--workers", "1", "--metrics-port", "0", "--drain-delay", "0.5",
                     "--drain-timeout", "3"});
    http::Client idle(p.port());
    EXPECT_EQ(idle.get("/").status, 200);
    auto sigterm = Clock::now();
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int st = p.wait_exit(10'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
    EXPECT_LT(ms_since(sigterm), 500 + 3'000 + 2'000);
    EXPECT_TRUE(idle.closed_by_server());
}

// SIGTERM twice: the second, during a long delay, stops the server at once.
TEST(Drain, SecondSigtermDuringDelayStopsAtOnce) {
    ServerProcess p({"--workers", "1", "--metrics-port", "0", "--drain-delay", "60"});
    uint16_t m = p.metrics_port();
    UniqueFd held = connect_blocking(p.port());
    ASSERT_TRUE(echoes(held.get()));
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    ASSERT_GE(ready_turns(m, 503, 10'000), 0) << p.log();  // the first one has been taken
    auto second = Clock::now();
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int st = p.wait_exit(10'000);
    ASSERT_NE(st, -1) << "still running 10 s after the second SIGTERM (the delay is 60 s)";
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
    EXPECT_LT(ms_since(second), 5'000);
    EXPECT_TRUE(log_has(p, "stopping now")) << p.log();
}

TEST(Drain, BadDrainDelayIsRefused) {
    for (std::string bad : {"-1", "abc", "3601", "nan"}) {
        ChildProcess p(KQSERVER_PATH, {"--drain-delay", bad});
        int st = p.wait_exit(10'000);
        ASSERT_TRUE(WIFEXITED(st)) << bad;
        EXPECT_EQ(WEXITSTATUS(st), 2) << bad;
        std::string log = p.log();
        EXPECT_NE(log.find("--drain-delay"), std::string::npos) << log;
        EXPECT_EQ(count(log, "\n"), 1u) << log;
    }
}

// The first-request grace: a client the server accepted just before the stop, whose request is still
// on its way, is answered (then closed), not failed; one that never asks holds the stop up only for the
// grace (1 s), far less than the drain time-out.
uint64_t accepted(uint16_t metrics) {
    http::Client c(metrics);
    std::string body = c.get("/metrics").body;
    std::string key = "kqserver_worker_connections_accepted_total{worker=\"0\"} ";
    size_t at = body.find(key);
    return at == std::string::npos ? 0 : std::stoull(body.substr(at + key.size()));
}

void wait_accepted(ServerProcess& p, uint64_t n) {
    auto start = Clock::now();
    while (accepted(p.metrics_port()) < n) {
        ASSERT_LT(ms_since(start), 10'000) << "the worker never took the connection\n" << p.log();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

TEST(Drain, AClientAcceptedJustBeforeTheStopIsAnswered) {
    ServerProcess p({"--workers", "1", "--metrics-port", "0", "--drain-timeout", "20"});
    UniqueFd c = connect_with_read_timeout(p.port());
    wait_accepted(p, 1);
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    ASSERT_TRUE(log_has(p, "no longer accepting")) << p.log();
    EXPECT_TRUE(echoes(c.get())) << "a client that connected before the stop was failed";
    EXPECT_EQ(recv_until_eof(c.get()), "");  // and closed once answered
    int st = p.wait_exit(10'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
}

TEST(Drain, AClientThatNeverAsksHoldsTheStopOnlyForTheGrace) {
    ServerProcess p({"--workers", "1", "--metrics-port", "0", "--drain-timeout", "20"});
    UniqueFd c = connect_with_read_timeout(p.port());
    wait_accepted(p, 1);
    auto start = Clock::now();
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int st = p.wait_exit(15'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
    EXPECT_LT(ms_since(start), 10'000) << "the silent client held the stop for the drain time-out";
    EXPECT_EQ(recv_until_eof(c.get()), "");
}

}  // namespace
