// The kqbench binary as a user runs it: exit codes and one-line errors, the printed summary, --json,
// and kqbench merge combining two runs' files into exactly their combined histogram; two segments of
// one load started together with --start-at.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <time.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kqbench/histogram.hpp"
#include "kqbench_servers.hpp"

using namespace kq;
using namespace kq::test;

namespace {

struct Ran {
    int status = -1;
    std::string output;  // stdout and stderr together
};

Ran run_kqbench(const std::string& args) {
    Ran r;
    std::string cmd = std::string(KQBENCH_BIN) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
    int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

std::string temp_path(const std::string& name) {
    return ::testing::TempDir() + "kqbench_" + std::to_string(::getpid()) + "_" + name;
}

nlohmann::json load(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
}

TEST(kqbench_cli, BadFlagsExitTwoWithOneLine) {
    for (const char* args : {"127.0.0.1:1 --bogus",
                             "127.0.0.1:1 -d 10x",
                             "127.0.0.1:1 -c 0",
                             "nohostport",
                             "127.0.0.1:1 -d 1s -n 5",
                             "127.0.0.1:1 --reconnect --pipeline 4",
                             "127.0.0.1:1 -p http --size 10",
                             "127.0.0.1:1 -p raw",
                             "127.0.0.1:1 --size 0",
                             "127.0.0.1:1 --server-pid 999999999",
                             "127.0.0.1:1 --keys 5",
                             "127.0.0.1:1 -p http --prefill",
                             "127.0.0.1:1 -p memcache --ratio 1-10",
                             "127.0.0.1:1 -p resp --ratio 0:0",
                             "127.0.0.1:1 -p resp --ratio 1:-1",
                             "127.0.0.1:1 -p memcache --key-prefix 'a b'",
                             "127.0.0.1:1 -p memcache --value-size 0",
                             "127.0.0.1:1 -p resp --keys 0",
                             "127.0.0.1:1 -p redis",
                             "127.0.0.1:1 --segment 0/0",
                             "127.0.0.1:1 --segment 3/2",
                             "127.0.0.1:1 --segment a/b",
                             "127.0.0.1:1 --segment 1/",
                             "127.0.0.1:1 --segment -1/2",
                             "127.0.0.1:1 --segment 1/99999999999999999999",
                             "127.0.0.1:1 -c 3 --segment 1/4",
                             "127.0.0.1:1 -n 2 --segment 1/3",
                             "127.0.0.1:1 --rate 1000@0s",
                             "127.0.0.1:1 --rate -5",
                             "127.0.0.1:1 --rate -5@1s",
                             "127.0.0.1:1 --rate 1e99",
                             "127.0.0.1:1 --rate 1000@99999999999999999999s",
                             "127.0.0.1:1 --rate 1000@5s,,2000@5s",
                             "127.0.0.1:1 --rate 1000@5s,",
                             "127.0.0.1:1 --rate 1000@5s,2000",
                             "127.0.0.1:1 --rate 0@5s",
                             "127.0.0.1:1 --rate 1000@5s -d 5s",
                             "127.0.0.1:1 --rate 1000@5s -n 100",
                             "127.0.0.1:1 --start-at 1",
                             "127.0.0.1:1 --start-at +0",
                             "127.0.0.1:1 --start-at tomorrow",
                             "127.0.0.1:1 --start-at -5",
                             "127.0.0.1:1 --start-at +999999",
                             ""}) {
        Ran r = run_kqbench(args);
        EXPECT_EQ(r.status, 2) << args << ": " << r.output;
        EXPECT_EQ(lines(r.output), 1u) << args << ": " << r.output;
        EXPECT_EQ(r.output.rfind("kqbench: ", 0), 0u) << r.output;
    }
}

TEST(kqbench_cli, HelpExplainsEveryFlag) {
    Ran r = run_kqbench("--help");
    EXPECT_EQ(r.status, 0);
    for (const char* flag :
         {"--threads",    "--connections", "--duration",     "--requests",   "--warmup",   "--pipeline",
          "--rate",       "--timeout",     "--connect-rate", "--reconnect",  "--protocol", "--size",
          "--path",       "--header",      "--request-file", "--reply-size", "--keys",     "--key-prefix",
          "--value-size", "--ratio",       "--prefill",      "memcache",     "resp",       "--json",
          "--server-pid", "merge",         "--segment",      "--start-at",   "RATE@D"}) {
        EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
    }
}

TEST(kqbench_cli, UnreachableServerExitsOneWithOneLine) {
    ClosedPort port;
    Ran r = run_kqbench("127.0.0.1:" + std::to_string(port.port()) + " -d 30s");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_EQ(lines(r.output), 1u) << r.output;
    EXPECT_NE(r.output.find("connection refused"), std::string::npos) << r.output;
}

TEST(kqbench_cli, SummaryJsonAndMergeAreExact) {
    RunningServer srv(make_builtin_protocol("echo"));
    std::string target = "127.0.0.1:" + std::to_string(srv.port());
    std::string a = temp_path("a.json"), b = temp_path("b.json"), m = temp_path("m.json");
    Ran ra = run_kqbench(target + " -n 3000 -c 3 --json " + a);
    Ran rb = run_kqbench(target + " -n 2000 -c 2 --pipeline 4 --size 10-100 --json " + b);
    ASSERT_EQ(ra.status, 0) << ra.output;
    ASSERT_EQ(rb.status, 0) << rb.output;
    for (const char* part : {"requests", "3,000 ok", "p99.99", "errors       none", "percentile"}) {
        EXPECT_NE(ra.output.find(part), std::string::npos) << part << "\n" << ra.output;
    }
    nlohmann::json ja = load(a), jb = load(b);
    EXPECT_EQ(ja["requests"]["sent"], 3000);
    EXPECT_EQ(ja["bytes"]["received"], 3000 * 64);
    EXPECT_EQ(ja["latency_us"]["histogram"]["total"], 3000);

    Ran rm = run_kqbench("merge " + a + " " + b + " --json " + m);
    ASSERT_EQ(rm.status, 0) << rm.output;
    EXPECT_NE(rm.output.find("2 runs merged"), std::string::npos) << rm.output;
    nlohmann::json jm = load(m);
    Histogram combined = Histogram::from_json(ja["latency_us"]["histogram"]);
    combined.merge(Histogram::from_json(jb["latency_us"]["histogram"]));
    EXPECT_EQ(jm["latency_us"]["histogram"], combined.to_json());
    EXPECT_EQ(jm["latency_us"]["p99"], combined.value_at_percentile(99));
    EXPECT_EQ(jm["requests"]["ok"], 5000);
    EXPECT_EQ(jm["runs"], 2);
    EXPECT_EQ(jm["connections"]["requested"], 5);

    EXPECT_EQ(run_kqbench("merge " + a + " /nonexistent.json").status, 2);
    std::ofstream(m) << "{\"not\": \"a report\"}";
    EXPECT_EQ(run_kqbench("merge " + a + " " + m).status, 1);
    for (const auto& f : {a, b, m}) std::remove(f.c_str());
}

double epoch_now() {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Two generators, segments 1/2 and 2/2 of one open-loop load, started as two processes with the same
// --start-at: each parks with its connections made and sends its first request at that time, not
// before (a generator that ignored it would send about a second early, once connected) and not long
// after. The late bound is loose: on this 2-core machine shared with other builds the release is
// usually 0.2-5 ms late, and once in a few dozen runs a preempted process took 95 ms. Merged, they are
// the whole load: every connection, every request, and a start skew that is the two first sends' distance.
TEST(kqbench_cli, SegmentsStartTogetherAndMergeIntoTheWholeLoad) {
    constexpr double kToleranceS = 0.150;
    RunningServer srv(make_builtin_protocol("echo"));
    const std::string target = "127.0.0.1:" + std::to_string(srv.port());
    const std::string a = temp_path("seg1.json"), b = temp_path("seg2.json"), m = temp_path("segm.json");
    char at_text[32];
    const double at = epoch_now() + 1.0;
    std::snprintf(at_text, sizeof at_text, "%.3f", at);
    const std::string common = target + " -c 5 -t 1 --rate 1000@300ms,2000@300ms --start-at " + at_text;
    FILE* pa = ::popen((std::string(KQBENCH_BIN) + " " + common + " --segment 1/2 --json " + a + " 2>&1").c_str(), "r");
    FILE* pb = ::popen((std::string(KQBENCH_BIN) + " " + common + " --segment 2/2 --json " + b + " 2>&1").c_str(), "r");
    ASSERT_TRUE(pa && pb);
    auto finish = [](FILE* p) {
        Ran r;
        char buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
        int st = ::pclose(p);
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return r;
    };
    Ran ra = finish(pa), rb = finish(pb);
    ASSERT_EQ(ra.status, 0) << ra.output;
    ASSERT_EQ(rb.status, 0) << rb.output;
    EXPECT_NE(ra.output.find("start skew vs --start-at"), std::string::npos) << ra.output;
    nlohmann::json ja = load(a), jb = load(b);
    const double first_a = ja["start"]["first_send"], first_b = jb["start"]["first_send"];
    for (const auto* j : {&ja, &jb}) {
        const double first = (*j)["start"]["first_send"], released = (*j)["start"]["released"];
        EXPECT_GE(first, at - 0.001) << "sent before --start-at";
        EXPECT_LE(first, at + kToleranceS) << "first send " << (first - at) * 1e3 << " ms after --start-at (released "
                                           << (released - at) * 1e3 << " ms after)";
    }
    EXPECT_EQ(ja["connections"]["requested"], 3);  // 5 over 2: the first segment takes the odd one
    EXPECT_EQ(jb["connections"]["requested"], 2);
    EXPECT_EQ(ja["segment"]["index"], 1);
    EXPECT_EQ(ja["config"], jb["config"]);  // the whole load's settings: mergeable

    Ran rm = run_kqbench("merge " + a + " " + b + " --json " + m);
    ASSERT_EQ(rm.status, 0) << rm.output;
    nlohmann::json jm = load(m);
    EXPECT_EQ(jm["connections"]["requested"], 5);
    const uint64_t sent = jm["requests"]["sent"].get<uint64_t>() + jm["requests"]["unsent"].get<uint64_t>();
    EXPECT_NEAR(static_cast<double>(sent), 900, 2) << "300 + 600 offered, one slot either way per generator";
    EXPECT_NEAR(jm["start"]["spread_ms"].get<double>(), std::abs(first_a - first_b) * 1e3, 1e-3);
    EXPECT_EQ(jm["merge"]["p99_us_per_run"].size(), 2u);
    EXPECT_NE(rm.output.find("first sends of the 2 runs"), std::string::npos) << rm.output;
    EXPECT_NE(rm.output.find("averaging the 2 runs' p99s would claim"), std::string::npos) << rm.output;
    // Per-second figures of the 0.6 s window, merged: every answer is in one.
    uint64_t ok = 0;
    for (const auto& iv : jm["intervals"]) ok += iv["ok"].get<uint64_t>();
    EXPECT_EQ(ok, jm["requests"]["ok"].get<uint64_t>());
    for (const auto& f : {a, b, m}) std::remove(f.c_str());
}

}  // namespace
