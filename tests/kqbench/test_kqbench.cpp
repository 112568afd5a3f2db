// kqbench engine against in-process servers: exact request counts, byte verification, every error kind
// counted, coordinated-omission correction, pipelining, --reconnect, warm-up and the uneven spread of
// connections over threads.
#include <gtest/gtest.h>

#include "kqbench/engine.hpp"
#include "kqbench_servers.hpp"

using namespace kq;
using namespace kq::bench;
using namespace kq::test;

namespace {

Config config_for(uint16_t port) {
    Config c;
    c.port = port;
    c.threads = 2;
    c.connections = 4;
    c.timeout_ns = 5'000'000'000;
    return c;
}

uint64_t errors(const Report& r, ErrorKind k) { return r.stats.errors[index(k)]; }

// --requests N sends exactly N: the server reads N * size bytes, no more (no warm-up, no extra request
// from a connection that raced the end) and no fewer.
TEST(kqbench_engine, RequestsSendsExactlyNAndServerSeesEveryByte) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.connections = 7;  // 7 mod 2 != 0: the odd connection must exist too
    c.requests = 10'007;
    c.pipeline = 4;
    c.size_min = c.size_max = 100;
    RunResult r = run_bench(c);
    srv.stop();
    ASSERT_FALSE(r.unreachable) << r.error;
    EXPECT_EQ(r.report.stats.sent, 10'007u);
    EXPECT_EQ(r.report.stats.ok, 10'007u);
    EXPECT_EQ(r.report.stats.failed, 0u);
    EXPECT_EQ(r.report.stats.latency.count(), 10'007u);
    EXPECT_EQ(r.report.stats.established, 7u);
    EXPECT_EQ(srv.bytes_read(), 10'007u * 100);
    EXPECT_EQ(r.report.stats.bytes_received, 10'007u * 100);
}

// Random sizes: every byte the bench sent reached the server and came back verified.
TEST(kqbench_engine, RandomSizesAreVerifiedAndCounted) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.requests = 3'000;
    c.size_min = 1;
    c.size_max = 70'000;  // larger than a socket buffer write at times: partial writes and reads
    c.pipeline = 3;
    RunResult r = run_bench(c);
    srv.stop();
    EXPECT_EQ(r.report.stats.ok, 3'000u);
    EXPECT_EQ(srv.bytes_read(), r.report.stats.bytes_sent);
    EXPECT_GT(r.report.stats.bytes_sent, 3'000u * 20'000);
}

TEST(kqbench_engine, UpperRepliesAreVerifiedAsUppercase) {
    RunningServer upper(make_builtin_protocol("upper"));
    Config c = config_for(upper.port());
    c.protocol = ProtocolKind::upper;
    c.requests = 2'000;
    EXPECT_EQ(run_bench(c).report.stats.ok, 2'000u);
    // An echo server answers upper requests with lowercase letters: every reply fails verification.
    RunningServer echo(make_builtin_protocol("echo"));
    c.port = echo.port();
    RunResult r = run_bench(c);
    EXPECT_EQ(r.report.stats.ok, 0u);
    EXPECT_EQ(r.report.stats.failed, 2'000u);
    EXPECT_EQ(errors(r.report, ErrorKind::verify), 2'000u);
}

// One flipped byte among 640,000: caught, counted once, and the connection replaced so the rest pass.
TEST(kqbench_engine, VerificationCatchesOneCorruptedByte) {
    auto state = std::make_shared<TriggerState>();
    state->at = 123'457;
    RunningServer srv(make_test_protocol<TriggerEcho>(state));
    Config c = config_for(srv.port());
    c.requests = 10'000;
    RunResult r = run_bench(c);
    EXPECT_EQ(errors(r.report, ErrorKind::verify), 1u);
    EXPECT_EQ(r.report.stats.failed, 1u);
    EXPECT_EQ(r.report.stats.ok, 9'999u);
    EXPECT_EQ(r.report.stats.sent, 10'000u);
    EXPECT_EQ(r.report.stats.connects, 5u);  // four, plus the one that replaced the corrupted stream
}

TEST(kqbench_engine, RefusedConnectionsAreCountedAndEndTheRun) {
    ClosedPort port;
    Config c = config_for(port.port());
    c.connections = 5;
    c.duration_ns = 30'000'000'000;  // the run must end long before this: nothing can ever connect
    auto t0 = std::chrono::steady_clock::now();
    RunResult r = run_bench(c);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    EXPECT_TRUE(r.unreachable);
    EXPECT_NE(r.error.find("refused"), std::string::npos) << r.error;
    EXPECT_GE(errors(r.report, ErrorKind::connect_refused), 5u);
    EXPECT_EQ(r.report.stats.established, 0u);
}

// The server accepts and resets every connection: each reset is counted and its request failed. (A reset
// can also beat the client to the connect's completion; it is counted as a reset then too, and the
// server, which did accept, is not "unreachable".)
TEST(kqbench_engine, ResetConnectionsAreCounted) {
    RawServer srv(RawServer::Mode::reset);
    Config c = config_for(srv.port());
    c.connections = 2;
    c.requests = 50;
    RunResult r = run_bench(c);
    EXPECT_FALSE(r.unreachable);
    EXPECT_EQ(r.report.stats.ok, 0u);
    EXPECT_EQ(r.report.stats.failed, 50u);
    EXPECT_GE(errors(r.report, ErrorKind::reset), 50u);
    EXPECT_GE(srv.accepted(), 50u);
}

// The server never answers: requests time out (counted, never dropped), connections are replaced.
TEST(kqbench_engine, TimeoutsAreCounted) {
    RawServer srv(RawServer::Mode::silent);
    Config c = config_for(srv.port());
    c.connections = 2;
    c.requests = 4;
    c.timeout_ns = 100'000'000;
    RunResult r = run_bench(c);
    EXPECT_EQ(errors(r.report, ErrorKind::timeout), 4u);
    EXPECT_EQ(r.report.stats.failed, 4u);
    EXPECT_EQ(r.report.stats.ok, 0u);
}

// wrk2's coordinated omission, narrated: 200 req/s on one connection; the server freezes 500 ms once.
// During the freeze ~100 requests are due but cannot leave (one in flight). Timed from their intended
// send times they waited up to 500 ms: ~25% of all samples exceed 0, and p99 is near 500 ms. Timed from
// when they actually left, only the one request caught in the freeze is slow: p99 stays small.
TEST(kqbench_engine, OpenLoopCorrectsCoordinatedOmission) {
    auto state = std::make_shared<TriggerState>();
    state->action = TriggerState::Action::stall;
    state->at = 64 * 100 + 10;  // inside the 101st request
    RunningServer srv(make_test_protocol<TriggerEcho>(state));
    Config c = config_for(srv.port());
    c.threads = c.connections = 1;
    c.rate = 200;
    c.duration_ns = 2'000'000'000;
    RunResult r = run_bench(c);
    const Stats& s = r.report.stats;
    EXPECT_EQ(s.failed, 0u);
    EXPECT_GE(s.ok, 380u);
    EXPECT_GE(s.latency.value_at_percentile(99), 400'000u) << "corrected p99 misses the stall";
    EXPECT_LT(s.latency_uncorrected.value_at_percentile(99), 100'000u) << "uncorrected p99 shows the stall";
    EXPECT_GE(s.latency_uncorrected.max(), 450'000u) << "the stalled request itself";
}

// The server answers only in groups of 8 requests: the run completes only if 8 are really in flight.
TEST(kqbench_engine, PipelineKeepsDepthRequestsInFlight) {
    auto state = std::make_shared<GroupState>();
    state->group = 8 * 64;
    RunningServer srv(make_test_protocol<GroupingEcho>(state));
    Config c = config_for(srv.port());
    c.threads = c.connections = 1;
    c.pipeline = 8;
    c.requests = 800;
    c.timeout_ns = 1'000'000'000;
    RunResult r = run_bench(c);
    EXPECT_EQ(r.report.stats.ok, 800u);
    EXPECT_EQ(r.report.stats.failed, 0u);
}

TEST(kqbench_engine, ReconnectOpensOneConnectionPerRequest) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.reconnect = true;
    c.requests = 300;
    RunResult r = run_bench(c);
    srv.stop();
    EXPECT_EQ(r.report.stats.ok, 300u);
    EXPECT_EQ(r.report.stats.connects, 300u);
    EXPECT_EQ(srv.accepted(), 300u);
}

// Warm-up traffic reaches the server but not the figures: exactly N measured after it.
TEST(kqbench_engine, WarmupIsExcludedFromTheFigures) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.requests = 500;
    c.warmup_ns = 200'000'000;
    RunResult r = run_bench(c);
    srv.stop();
    EXPECT_EQ(r.report.stats.sent, 500u);
    EXPECT_EQ(r.report.stats.latency.count(), 500u);
    EXPECT_GT(srv.bytes_read(), 500u * 64);
}

// --connect-rate 40/s for 8 connections: the ramp takes 200 ms and the measured window starts after it.
TEST(kqbench_engine, ConnectRateRampsUpBeforeMeasuring) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.connections = 8;
    c.connect_rate = 40;
    c.requests = 100;
    auto t0 = std::chrono::steady_clock::now();
    RunResult r = run_bench(c);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(190));
    EXPECT_EQ(r.report.stats.established, 8u);
    EXPECT_EQ(r.report.stats.sent, 100u);
}

TEST(kqbench_engine, HttpKeepAliveContentLengthChunkedAndStatus) {
    auto state = std::make_shared<HttpState>();
    RunningServer srv(make_test_protocol<MiniHttp>(state));
    Config c = config_for(srv.port());
    c.protocol = ProtocolKind::http;
    c.requests = 1'000;
    c.pipeline = 2;
    for (const char* path : {"/", "/chunked"}) {
        c.path = path;
        RunResult r = run_bench(c);
        EXPECT_EQ(r.report.stats.ok, 1'000u) << path;
        EXPECT_EQ(r.report.stats.connects, 4u) << path << ": keep-alive";
    }
    c.path = "/missing";
    RunResult r = run_bench(c);
    EXPECT_EQ(r.report.stats.ok, 0u);
    EXPECT_EQ(errors(r.report, ErrorKind::status), 1'000u);
    EXPECT_EQ(r.report.stats.status_codes.at(404), 1'000u);
    // "Connection: close" after every reply: a new connection each time, and nothing counted as lost.
    c.path = "/close";
    c.pipeline = 1;
    r = run_bench(c);
    EXPECT_EQ(r.report.stats.ok, 1'000u);
    EXPECT_EQ(r.report.stats.error_total(), 0u);
    EXPECT_GE(r.report.stats.connects, 1'000u);
}

TEST(kqbench_engine, RawSendsTheFileAndExpectsTheReplySize) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.protocol = ProtocolKind::raw;
    c.request = "PING with some bytes\n";
    c.reply_size = c.request.size();
    c.requests = 1'000;
    RunResult r = run_bench(c);
    srv.stop();
    EXPECT_EQ(r.report.stats.ok, 1'000u);
    EXPECT_EQ(srv.bytes_read(), 1'000u * c.request.size());
}

TEST(kqbench_engine, ServerPidReportsCpuOfTheMeasuredWindow) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.requests = 20'000;
    c.server_pid = static_cast<int>(::getpid());  // the in-process server (and the bench) burn this CPU
    RunResult r = run_bench(c);
    ASSERT_TRUE(r.report.server.has_value());
    EXPECT_EQ(r.report.server->pid, c.server_pid);
    EXPECT_GT(r.report.server->cpu_us, 0u);
}

// The interrupt hook (SIGINT in the binary) ends a 60 s run at the first progress report.
TEST(kqbench_engine, InterruptEndsTheRunWithAReport) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.duration_ns = 60'000'000'000;
    std::atomic<bool> interrupt{false};
    int reports = 0;
    RunHooks hooks;
    hooks.interrupt = &interrupt;
    hooks.on_progress = [&](const ProgressSample& s) {
        ++reports;
        EXPECT_GT(s.requests_per_s, 0);
        interrupt = true;
    };
    RunResult r = run_bench(c, hooks);
    EXPECT_EQ(reports, 1);
    EXPECT_LT(r.report.elapsed_s, 10);
    EXPECT_GT(r.report.stats.ok, 0u);
    EXPECT_EQ(r.report.stats.sent, r.report.stats.ok + r.report.stats.failed);
}

// Steps of 300/s then 600/s for a second each, open loop: the schedule offers exactly their integral
// (give or take a slot per thread), the per-second series shows each step's rate answered and offered,
// and its answers add up to the run's.
TEST(kqbench_engine, RateStagesOfferTheirIntegralSecondBySecond) {
    RunningServer srv(make_builtin_protocol("echo"));
    Config c = config_for(srv.port());
    c.rate_stages = {{300, 300, 1'000'000'000}, {600, 600, 1'000'000'000}};
    c.rate = 600;
    c.rate_text = "300@1s,600@1s";
    RunResult r = run_bench(c);
    srv.stop();
    ASSERT_FALSE(r.unreachable) << r.error;
    const Stats& s = r.report.stats;
    EXPECT_NEAR(static_cast<double>(s.sent + s.unsent), 900, 2);
    EXPECT_EQ(s.failed, 0u);
    const auto& iv = r.report.intervals;
    ASSERT_GE(iv.size(), 2u) << iv.dump();
    EXPECT_NEAR(iv[0]["offered"].get<double>(), 300, 1e-6);
    EXPECT_NEAR(iv[1]["offered"].get<double>(), 600, 1e-6);
    // Answers count in the second they arrive: a few cross a boundary on a loaded machine.
    EXPECT_NEAR(iv[0]["ok"].get<double>(), 300, 30) << iv.dump();
    EXPECT_NEAR(iv[1]["ok"].get<double>(), 600, 30);
    uint64_t ok = 0;
    for (const auto& i : iv) {
        ok += i["ok"].get<uint64_t>();
        EXPECT_LE(i["p50_us"].get<uint64_t>(), i["p99_us"].get<uint64_t>());
    }
    EXPECT_EQ(ok, s.ok);
    EXPECT_EQ(r.report.config["rate"], "300@1s,600@1s");
}

}  // namespace
