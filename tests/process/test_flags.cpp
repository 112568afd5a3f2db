// Flag values the binaries must refuse, and edge values they must take. A refused value ends the
// program with one line on stderr that names the flag, and exit status 2, before anything starts; the
// classes covered: negative numbers into unsigned types, numbers too big for their type, durations
// below the 1 ms (kqbench: 1 ns) resolution that would round to 0 = "never", NaN and infinity, and
// values whose conversion (to ms, to int64 ns) or schedule would overflow.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#if !defined(KQSERVER_PATH) || !defined(KQBENCH_PATH) || !defined(KQCAT_PATH)
#error "KQSERVER_PATH, KQBENCH_PATH and KQCAT_PATH must name the binaries (set by tests/CMakeLists.txt)"
#endif
#include "child_process.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

struct BadValue {
    const char* program;            // KQSERVER_PATH, ...
    std::vector<std::string> args;  // the flag and its value
    std::string flag;               // what the error line must name
};

// kqbench and kqcat get a target whose port refuses connections: a flag that is wrongly accepted then
// ends in exit status 1 ("connection refused"), not 2.
std::vector<std::string> full_args(const BadValue& b) {
    std::vector<std::string> args = b.args;
    if (std::string_view(b.program) == KQBENCH_PATH) args.push_back("127.0.0.1:1");
    if (std::string_view(b.program) == KQCAT_PATH && b.flag != "PORT") args.insert(args.end(), {"127.0.0.1", "1"});
    return args;
}

const std::vector<BadValue>& bad_values() {
    static const std::vector<BadValue> table = {
        // kqserver: counts and sizes (unsigned or int), with "-1", a value above the type, hex
        {KQSERVER_PATH, {"--max-connections", "-1"}, "--max-connections"},
        {KQSERVER_PATH, {"--max-connections", "99999999999999999999"}, "--max-connections"},
        {KQSERVER_PATH, {"--max-connections", "18446744073709551615"}, "--max-connections"},
        {KQSERVER_PATH, {"--max-header", "-1"}, "--max-header"},
        {KQSERVER_PATH, {"--max-body", "-1"}, "--max-body"},
        {KQSERVER_PATH, {"--max-body", "99999999999999999999"}, "--max-body"},
        {KQSERVER_PATH, {"--high-water", "-1"}, "--high-water"},
        {KQSERVER_PATH, {"--low-water", "-1"}, "--low-water"},
        {KQSERVER_PATH, {"--workers", "-1"}, "--workers"},
        {KQSERVER_PATH, {"--batch", "-1"}, "--batch"},
        {KQSERVER_PATH, {"--backlog", "-1"}, "--backlog"},
        {KQSERVER_PATH, {"--block-ms", "-1"}, "--block-ms"},
        {KQSERVER_PATH, {"--offload-ms", "-1"}, "--offload-ms"},
        {KQSERVER_PATH, {"--offload-threads", "0"}, "--offload-threads"},
        {KQSERVER_PATH, {"--offload-ms", "5", "--block-ms", "5"}, "--offload-ms"},
        {KQSERVER_PATH, {"--port", "-1"}, "--port"},
        {KQSERVER_PATH, {"--port", "65536"}, "--port"},
        {KQSERVER_PATH, {"--metrics-port", "-1"}, "--metrics-port"},
        {KQSERVER_PATH, {"--defer-accept", "-1"}, "--defer-accept"},
        {KQSERVER_PATH, {"--defer-accept", "0x10"}, "--defer-accept"},
        // kqserver: durations in seconds, kept in int milliseconds
        {KQSERVER_PATH, {"--request-timeout", "0.0001"}, "--request-timeout"},
        {KQSERVER_PATH, {"--idle-timeout", "0.0009"}, "--idle-timeout"},
        {KQSERVER_PATH, {"--drain-timeout", "0.0004"}, "--drain-timeout"},
        {KQSERVER_PATH, {"--linger", "0.0001"}, "--linger"},
        {KQSERVER_PATH, {"--idle-timeout", "nan"}, "--idle-timeout"},
        {KQSERVER_PATH, {"--header-timeout", "-nan"}, "--request-timeout"},  // the old name: the same flag
        {KQSERVER_PATH, {"--drain-timeout", "inf"}, "--drain-timeout"},
        {KQSERVER_PATH, {"--linger", "-1"}, "--linger"},
        {KQSERVER_PATH, {"--idle-timeout", "86400.001"}, "--idle-timeout"},
        // a completion backend cannot take registrations from the acceptor's thread
        {KQSERVER_PATH, {"--backend", "io_uring", "--handoff", "direct"}, "--handoff"},
        // kqbench: counts, durations (int64 ns), rates
        {KQBENCH_PATH, {"-n", "-1"}, "--requests"},
        {KQBENCH_PATH, {"-n", "99999999999999999999"}, "--requests"},
        {KQBENCH_PATH, {"-c", "-1"}, "--connections"},
        {KQBENCH_PATH, {"-t", "-1"}, "--threads"},
        {KQBENCH_PATH, {"--pipeline", "-1"}, "--pipeline"},
        {KQBENCH_PATH, {"--interval", "0.0000000001"}, "--interval"},
        {KQBENCH_PATH, {"--warmup", "0.0001us"}, "--warmup"},
        {KQBENCH_PATH, {"--duration", "100000h"}, "--duration"},
        {KQBENCH_PATH, {"--warmup", "2000000h"}, "--warmup"},
        {KQBENCH_PATH, {"--rate", "nan"}, "--rate"},
        {KQBENCH_PATH, {"--rate", "-1"}, "--rate"},
        {KQBENCH_PATH, {"--rate", "1e-300"}, "--rate"},
        {KQBENCH_PATH, {"--connect-rate", "nan"}, "--connect-rate"},
        {KQBENCH_PATH, {"--connect-rate", "1e-300"}, "--connect-rate"},
        // kqcat: its one duration and its port
        {KQCAT_PATH, {"--timeout", "-1"}, "--timeout"},
        {KQCAT_PATH, {"--timeout", "nan"}, "--timeout"},
        {KQCAT_PATH, {"--timeout", "inf"}, "--timeout"},
        {KQCAT_PATH, {"--timeout", "0.0001"}, "--timeout"},
        {KQCAT_PATH, {"127.0.0.1", "-1"}, "PORT"},
    };
    return table;
}

// Every run at once, then each waited for: a refused value exits at once, before anything starts, so
// 5 s is plenty; one that was taken keeps a server running or a benchmark going.
TEST(Flags, BadValuesExitTwoWithOneLineNamingTheFlag) {
    std::vector<std::unique_ptr<ChildProcess>> runs;
    for (const BadValue& b : bad_values()) runs.push_back(std::make_unique<ChildProcess>(b.program, full_args(b)));
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < runs.size(); ++i) {
        const BadValue& b = bad_values()[i];
        std::string shown = std::string(b.program).substr(std::string(b.program).rfind('/') + 1);
        for (const auto& a : b.args) shown += " " + a;
        int st = runs[i]->wait_exit(static_cast<int>(std::max<int64_t>(0, 5'000 - ms_since(start))));
        if (st == -1) {
            ADD_FAILURE() << shown << ": still running after 5 s (the value was taken)";
            continue;
        }
        std::string err = runs[i]->log();
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << shown << ": status " << st << ", stderr: " << err;
        EXPECT_EQ(count(err, "\n"), 1u) << shown << ": " << err;
        EXPECT_NE(err.find(b.flag), std::string::npos)
            << shown << ": the message does not name " << b.flag << ": " << err;
    }
}

// The smallest and largest values the rules allow start kqserver, which then stops cleanly.
TEST(Flags, KqserverTakesEdgeValues) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"--header-timeout", "0.001", "--idle-timeout", "0", "--drain-timeout", "86400", "--linger", "0",
              "--max-connections", "0", "--max-body", "0", "--low-water", "0", "--defer-accept", "0"},
             {"--header-timeout", "0", "--idle-timeout", "0.001", "--drain-timeout", "0.001", "--linger", "3600",
              "--max-connections", "1073741824", "--workers", "1", "--port", "0", "--metrics-port", "0"},
             {"--defer-accept", "auto", "--max-connections", "1", "--high-water", "4294967296", "--low-water",
              "4294967296", "--batch", "1", "--backlog", "1"}}) {
        args.insert(args.end(), {"--log-level", "warn"});
        ServerProcess p(args);
        UniqueFd client = connect_blocking(p.port());
        send_all(client.get(), "x");
        EXPECT_EQ(recv_exact(client.get(), 1), "x") << args[1];
        client.reset();
        expect_clean_exit(p, 10'000);
    }
}

// kqbench and kqcat take the smallest durations and rates the rules allow, against a real server.
TEST(Flags, KqbenchAndKqcatTakeEdgeValues) {
    ServerConfig cfg;
    RunningServer srv(cfg, "echo");
    const std::string port = std::to_string(srv.port()), target = "127.0.0.1:" + port;
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {target, "-n", "1", "-c", "1", "-t", "1", "--warmup", "0", "--interval", "1ms", "--timeout", "2s"},
             {target, "-d", "0.001", "-c", "1", "--rate", "1", "--connect-rate", "1000", "--timeout", "0.000000001"}}) {
        ChildProcess p(KQBENCH_PATH, args);
        int st = p.wait_exit(20'000);
        EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << args[1] << ": " << st << " " << p.log();
    }
    for (const char* timeout : {"0", "2147483"}) {
        ChildProcess p(KQCAT_PATH, {"--timeout", timeout, "127.0.0.1", port});
        int st = p.wait_exit(20'000);
        EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << timeout << ": " << st << " " << p.log();
    }
    // 1 ms may really run out on a busy machine (exit 1, "no data moved"); it must not be refused.
    ChildProcess p(KQCAT_PATH, {"--timeout", "0.001", "127.0.0.1", port});
    int st = p.wait_exit(20'000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 2) << st << " " << p.log();
}

// --version: one line, "<name> <version>", on stdout, exit 0 (help2man reads it for the man pages).
TEST(Flags, VersionPrintsTheNameAndTheProjectsVersion) {
    for (const char* path : {KQSERVER_PATH, KQBENCH_PATH, KQCAT_PATH}) {
        std::string name = path;
        name = name.substr(name.find_last_of('/') + 1);
        ChildProcess p(path, {"--version"});
        std::optional<std::string> line = p.wait_line(name + " ", 10'000);
        ASSERT_TRUE(line.has_value()) << name << ": " << p.log();
        EXPECT_EQ(*line, KQ_VERSION) << name;  // what follows "<name> "
        int st = p.wait_exit(10'000);
        EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << name << ": " << st << " " << p.log();
        EXPECT_EQ(p.log(), "") << name;
    }
}

}  // namespace
