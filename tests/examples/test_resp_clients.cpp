// kqresp as a child process driven by the real Redis tools: redis-cli (arguments, stdin, --pipe mass
// insertion) and redis-benchmark (plain and pipelined). Where a real redis-server is installed, the
// same redis-cli session runs against it too and the outputs must match. A tool that is not installed
// skips its test with the reason.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "resp_client.hpp"

using namespace kq::test;
using resp::test::RespClient;

namespace {

const char* const kRedisCli = "/usr/bin/redis-cli";
const char* const kRedisBenchmark = "/usr/bin/redis-benchmark";
const char* const kRedisServer = "/usr/bin/redis-server";

bool installed(const char* path) { return ::access(path, X_OK) == 0; }

// Runs a shell command line; its stdout and stderr together, and its exit status in status.
std::string shell(const std::string& line, int& status) {
    std::string out;
    FILE* p = ::popen((line + " 2>&1").c_str(), "r");
    if (p == nullptr) return "<popen failed>";
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    status = ::pclose(p);
    return out;
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// A port nobody listens on now (the kernel's choice for a socket bound to port 0, released again).
uint16_t free_port() {
    kq::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

// kqresp on 127.0.0.1 with a port of its choosing, two workers.
class KqResp {
public:
    KqResp() : child_(KQRESP_PATH, {"--port", "0", "--workers", "2"}) {
        auto addr = child_.wait_line("listening ", 20'000);
        if (!addr) throw std::runtime_error("kqresp did not start: " + child_.log());
        port_ = static_cast<uint16_t>(std::stoi(addr->substr(addr->rfind(':') + 1)));
    }
    uint16_t port() const { return port_; }
    // SIGTERM, then the exit status must say it stopped cleanly.
    int stop() {
        ::kill(child_.pid(), SIGTERM);
        return child_.wait_exit(20'000);
    }

private:
    ChildProcess child_;
    uint16_t port_ = 0;
};

// The real Redis on a free port, without persistence, once it answers PING.
class RealRedis {
public:
    RealRedis()
        : port_(free_port()), child_(kRedisServer, {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save",
                                                    "", "--appendonly", "no", "--daemonize", "no"}) {
        ready_ = eventually(
            [this] {
                try {
                    RespClient c(port_);
                    return c.call({"PING"}) == "+PONG\r\n";
                } catch (const std::exception&) {
                    return false;
                }
            },
            20'000);
    }
    uint16_t port() const { return port_; }
    bool ready() const { return ready_; }

private:
    uint16_t port_;
    ChildProcess child_;
    bool ready_ = false;
};

// One redis-cli call per request, its arguments on the command line; everything it printed.
std::string cli_session(uint16_t port, const std::vector<std::vector<std::string>>& requests) {
    std::string all;
    for (const auto& args : requests) {
        std::string line = std::string(kRedisCli) + " -p " + std::to_string(port);
        for (const auto& a : args) line += " " + quote(a);
        int status = 0;
        all += ">" + line.substr(line.find(" -p ") + 4 + std::to_string(port).size()) + "\n" + shell(line, status);
        all += "status " + std::to_string(status) + "\n";
    }
    return all;
}

const std::vector<std::vector<std::string>> kCliRequests = {
    {"FLUSHALL"},
    {"PING"},
    {"PING", "hello world"},
    {"SET", "k", "v"},
    {"GET", "k"},
    {"GET", "missing"},
    {"SET", "k", "v2", "GET"},
    {"TTL", "k"},  // no time-dependent TTL here: two servers, two moments (the unit tests use a clock)
    {"EXPIRE", "k", "1000"},
    {"TTL", "missing"},
    {"INCR", "counter"},
    {"INCRBY", "counter", "41"},
    {"INCR", "k"},
    {"RPUSH", "list", "a", "b", "c"},
    {"LRANGE", "list", "0", "-1"},
    {"LPOP", "list", "2"},
    {"GET", "list"},
    {"MSET", "x", "1", "y", "2"},
    {"MGET", "x", "y", "z"},
    {"DEL", "x", "y", "z"},
    {"EXISTS", "k", "x"},
    {"DBSIZE"},
    {"foo", "bar"},
    {"SET", "k"},
    {"SELECT", "0"},
    {"ECHO", "line1\nline2"},
};

TEST(RespClients, RedisCliArgumentsGetWhatRedisGives) {
    if (!installed(kRedisCli)) GTEST_SKIP() << kRedisCli << " is not installed (apt-get install redis-tools)";
    KqResp server;
    const std::string ours = cli_session(server.port(), kCliRequests);
    // Independent of the real server: a few answers as redis-cli prints them.
    EXPECT_NE(ours.find("> 'GET' 'k'\nv\nstatus 0\n"), std::string::npos) << ours;
    EXPECT_NE(ours.find("> 'LRANGE' 'list' '0' '-1'\na\nb\nc\n"), std::string::npos) << ours;
    EXPECT_NE(ours.find("ERR unknown command 'foo', with args beginning with: 'bar' "), std::string::npos) << ours;
    if (!installed(kRedisServer)) GTEST_SKIP() << kRedisServer << " is not installed: outputs not compared";
    RealRedis redis;
    ASSERT_TRUE(redis.ready());
    EXPECT_EQ(ours, cli_session(redis.port(), kCliRequests));
    EXPECT_EQ(server.stop(), 0);
}

TEST(RespClients, RedisCliReadingCommandsFromStdin) {
    if (!installed(kRedisCli)) GTEST_SKIP() << kRedisCli << " is not installed (apt-get install redis-tools)";
    KqResp server;
    const std::string script =
        "FLUSHALL\nSET greeting \"hello world\"\nGET greeting\nRPUSH l 1 2 3\nLLEN l\nLRANGE l 1 -1\n"
        "INCR greeting\nEXPIRE greeting 100\nEXISTS greeting\nDEL greeting l\nDBSIZE\n";
    auto run = [&](uint16_t port) {
        int status = 0;
        std::string out =
            shell("printf '%s' " + quote(script) + " | " + kRedisCli + " -p " + std::to_string(port), status);
        return out + "status " + std::to_string(status) + "\n";
    };
    const std::string ours = run(server.port());
    EXPECT_EQ(ours,
              "OK\nOK\nhello world\n3\n3\n2\n3\nERR value is not an integer or out of range\n\n1\n1\n2\n0\n"
              "status 0\n");
    if (!installed(kRedisServer)) GTEST_SKIP() << kRedisServer << " is not installed: outputs not compared";
    RealRedis redis;
    ASSERT_TRUE(redis.ready());
    EXPECT_EQ(ours, run(redis.port()));
}

TEST(RespClients, RedisCliPipeMassInsertion) {
    if (!installed(kRedisCli)) GTEST_SKIP() << kRedisCli << " is not installed (apt-get install redis-tools)";
    KqResp server;
    char path[] = "/tmp/kqresp_pipe_XXXXXX";
    kq::UniqueFd fd(::mkstemp(path));
    ASSERT_TRUE(fd);
    {
        std::ofstream out(path, std::ios::binary);
        for (int i = 0; i < 10'000; ++i)
            out << resp::test::command({"SET", "key:" + std::to_string(i), "value " + std::to_string(i)});
    }
    int status = 0;
    const std::string out =
        shell(std::string(kRedisCli) + " -p " + std::to_string(server.port()) + " --pipe < " + path, status);
    ::unlink(path);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("errors: 0, replies: 10000"), std::string::npos) << out;
    RespClient c(server.port());
    EXPECT_EQ(c.call({"DBSIZE"}), ":10000\r\n");
    EXPECT_EQ(c.call({"GET", "key:9999"}), "$10\r\nvalue 9999\r\n");
    EXPECT_EQ(server.stop(), 0);
}

// Every test redis-benchmark ran, with its rate: from lines "NAME: 12345.67 requests per second, ...".
std::map<std::string, double> benchmark_rates(const std::string& output) {
    std::map<std::string, double> rates;
    std::regex line(R"(^([A-Z_]+(?: \(10 keys\))?): ([0-9.]+) requests per second)");
    std::string text = output;
    for (char& c : text)
        if (c == '\r') c = '\n';
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        while (!l.empty() && l[0] == ' ') l.erase(0, 1);
        std::smatch m;
        if (std::regex_search(l, m, line)) rates[m[1]] = std::stod(m[2]);
    }
    return rates;
}

void run_benchmark(const std::string& extra) {
    if (!installed(kRedisBenchmark))
        GTEST_SKIP() << kRedisBenchmark << " is not installed (apt-get install redis-tools)";
    KqResp server;
    int status = 0;
    const std::string out =
        shell("timeout 300 " + std::string(kRedisBenchmark) + " -p " + std::to_string(server.port()) +
                  " -t ping,set,get,incr,lpush,lpop,mset -n 20000 -q " + extra,
              status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(out.find("rror"), std::string::npos) << out;  // "Error from server", "ERR"
    const auto rates = benchmark_rates(out);
    for (const char* name : {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "LPOP", "MSET (10 keys)"}) {
        ASSERT_TRUE(rates.count(name)) << name << " missing from:\n" << out;
        EXPECT_GT(rates.at(name), 0.0) << name;
    }
    // The counter redis-benchmark's INCR test hits holds exactly the number of increments it made.
    RespClient c(server.port());
    EXPECT_EQ(c.call({"GET", "counter:__rand_int__"}), "$5\r\n20000\r\n");
    EXPECT_EQ(server.stop(), 0);
}

// The binary's own contract: a bad flag is one line on stderr and exit status 2, the server never starts.
TEST(RespClients, BadFlagExitsTwoWithOneLine) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{"--bogus"}, {"--port", "70000"}, {"--max-request", "10"}, {"--workers", "x"}}) {
        ChildProcess child(KQRESP_PATH, args);
        const int status = child.wait_exit(20'000);
        ASSERT_TRUE(WIFEXITED(status)) << args[0];
        EXPECT_EQ(WEXITSTATUS(status), 2) << args[0];
        const std::string log = child.log();
        EXPECT_TRUE(log.starts_with("kqresp: ")) << log;
        EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
        EXPECT_FALSE(child.wait_line("listening ", 100)) << args[0];
    }
}

TEST(RespClients, RedisBenchmarkCompletes) { run_benchmark(""); }
TEST(RespClients, RedisBenchmarkPipelinedCompletes) { run_benchmark("-P 16"); }

}  // namespace
