// The kqbench binary as a user runs it: exit codes and one-line errors, the printed summary, --json,
// and kqbench merge combining two runs' files into exactly their combined histogram.
#include <gtest/gtest.h>
#include <sys/wait.h>

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
         {"--threads",      "--connections",  "--duration",  "--requests",   "--warmup",     "--pipeline", "--rate",
          "--timeout",      "--connect-rate", "--reconnect", "--protocol",   "--size",       "--path",     "--header",
          "--request-file", "--reply-size",   "--keys",      "--key-prefix", "--value-size", "--ratio",    "--prefill",
          "memcache",       "resp",           "--json",      "--server-pid", "merge"}) {
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

}  // namespace
