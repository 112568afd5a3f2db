// kqbench's memcache and resp codecs against the real servers they are for: Debian's memcached 1.6 and
// redis-server 7, each started here on a free loopback port and stopped at the end. Short runs bounded
// by a request count: no errors, GETs hit after --prefill, a value of the wrong length is caught, and a
// server's error replies are counted as failed requests without breaking the stream; and the binary's
// summary and JSON.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "child_process.hpp"
#include "kqbench/engine.hpp"

using namespace kq;
using namespace kq::bench;
using namespace kq::test;

namespace {

// A port the kernel just handed out (bound to 0, then released): free unless someone races for it.
uint16_t free_port() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

bool accepts(uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// The server binary as a child; ready() once it accepts connections (it prints nothing we could wait for
// in both cases, so its port is polled, up to 10 s, giving up at once if it exits).
class Peer {
public:
    Peer(const char* path, std::vector<std::string> args, uint16_t port)
        : port_(port), proc_(std::make_unique<ChildProcess>(path, std::move(args))) {}
    ~Peer() {
        ::kill(proc_->pid(), SIGTERM);
        proc_->wait_exit(10'000);
    }
    bool ready() {
        auto start = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
            if (accepts(port_)) return true;
            if (proc_->wait_exit(0) != -1) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the port, not a wait for it
        }
        return false;
    }
    uint16_t port() const { return port_; }
    std::string log() const { return proc_->log(); }

private:
    uint16_t port_;
    std::unique_ptr<ChildProcess> proc_;
};

constexpr const char* kMemcached = "/usr/bin/memcached";
constexpr const char* kRedis = "/usr/bin/redis-server";

std::unique_ptr<Peer> start_memcached() {
    const uint16_t port = free_port();
    std::vector<std::string> args{"-l", "127.0.0.1", "-p", std::to_string(port), "-U", "0", "-t", "1", "-m", "64"};
    if (::geteuid() == 0) args.insert(args.end(), {"-u", "nobody"});  // it refuses to run as root otherwise
    return std::make_unique<Peer>(kMemcached, std::move(args), port);
}

std::unique_ptr<Peer> start_redis(std::vector<std::string> extra = {}) {
    const uint16_t port = free_port();
    std::vector<std::string> args{"--port", std::to_string(port), "--bind", "127.0.0.1", "--save",
                                  "",       "--appendonly",       "no"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Peer>(kRedis, std::move(args), port);
}

Config kv_run(ProtocolKind p, uint16_t port) {
    Config c;
    c.protocol = p;
    c.port = port;
    c.threads = 2;
    c.connections = 4;
    c.pipeline = 4;
    c.timeout_ns = 5'000'000'000;
    c.keys = 2'000;
    c.requests = 20'000;
    return c;
}

uint64_t errors(const Report& r, ErrorKind k) { return r.stats.errors[index(k)]; }

class KvPeerTest : public ::testing::TestWithParam<ProtocolKind> {
protected:
    void SetUp() override {
        const char* bin = GetParam() == ProtocolKind::memcache ? kMemcached : kRedis;
        if (::access(bin, X_OK) != 0) GTEST_SKIP() << bin << " is not installed (scripts/install-deps.sh)";
        peer_ = GetParam() == ProtocolKind::memcache ? start_memcached() : start_redis();
        ASSERT_TRUE(peer_->ready()) << bin << " did not start:\n" << peer_->log();
    }
    std::unique_ptr<Peer> peer_;
};

// After --prefill every GET hits, and each hit's value was verified byte for byte.
TEST_P(KvPeerTest, PrefilledRunHasNoErrorsAndEveryGetHits) {
    Config c = kv_run(GetParam(), peer_->port());
    c.prefill = true;
    RunResult r = run_bench(c);
    ASSERT_FALSE(r.unreachable) << r.error;
    const Stats& s = r.report.stats;
    EXPECT_EQ(s.error_total(), 0u);
    EXPECT_EQ(s.ok, 20'000u);
    EXPECT_EQ(s.sets + s.hits + s.misses, s.ok);
    EXPECT_EQ(s.misses, 0u);
    // 1:10: ~1,818 sets, sd ~40.
    EXPECT_GT(s.sets, 1'500u);
    EXPECT_GT(s.hits, 17'000u);
}

// Without a prefill, on keys nobody set: the first GETs miss (not an error), later ones hit what the
// run's own SETs stored.
TEST_P(KvPeerTest, FreshKeysMissThenHitAfterSets) {
    Config c = kv_run(GetParam(), peer_->port());
    c.key_prefix = "fresh:";
    c.keys = 500;
    c.set_ratio = c.get_ratio = 1;
    c.requests = 5'000;
    RunResult r = run_bench(c);
    const Stats& s = r.report.stats;
    EXPECT_EQ(s.error_total(), 0u);
    EXPECT_EQ(s.ok, 5'000u);
    EXPECT_GT(s.misses, 0u);
    EXPECT_GT(s.hits, 0u);
    EXPECT_EQ(s.sets + s.hits + s.misses, s.ok);
}

// Values of 32 bytes are stored; a run expecting 33 finds every GET's value wrong.
TEST_P(KvPeerTest, ValueOfAnotherSizeFailsVerification) {
    Config c = kv_run(GetParam(), peer_->port());
    c.keys = 100;
    c.prefill = true;
    c.requests = 100;
    ASSERT_EQ(run_bench(c).report.stats.error_total(), 0u);
    c.value_size = 33;
    c.prefill = false;
    c.set_ratio = 0;
    c.pipeline = 1;
    RunResult r = run_bench(c);
    EXPECT_EQ(r.report.stats.ok, 0u);
    EXPECT_EQ(r.report.stats.failed, 100u);
    EXPECT_EQ(errors(r.report, ErrorKind::verify), 100u);
}

// The binary as a user runs it: the summary's keys line and the JSON's kv object.
TEST_P(KvPeerTest, BinaryPrintsHitsAndWritesThemToJson) {
    const std::string json_path = ::testing::TempDir() + "kqbench_kv_" + std::to_string(::getpid()) + "_" +
                                  std::string(protocol_name(GetParam()));
    const std::string cmd = std::string(KQBENCH_BIN) + " 127.0.0.1:" + std::to_string(peer_->port()) + " -p " +
                            std::string(protocol_name(GetParam())) +
                            " --prefill --keys 500 --ratio 1:4 -n 5000 -c 3 --json " + json_path + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int st = ::pclose(p);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
    EXPECT_NE(out.find("500 keys, 32 B values, set:get 1:4, prefilled"), std::string::npos) << out;
    EXPECT_NE(out.find(" 0 misses (100.0% hits)"), std::string::npos) << out;
    EXPECT_NE(out.find("errors       none"), std::string::npos) << out;
    std::ifstream in(json_path);
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["config"]["protocol"], std::string(protocol_name(GetParam())));
    EXPECT_EQ(j["config"]["ratio"], "1:4");
    const uint64_t sets = j["kv"]["sets"], hits = j["kv"]["hits"], misses = j["kv"]["misses"];
    EXPECT_EQ(sets + hits + misses, 5'000u);
    EXPECT_GT(sets, 700u);  // 1 in 5: 1,000 expected, sd ~28
    EXPECT_EQ(misses, 0u);
    std::remove(json_path.c_str());
}

INSTANTIATE_TEST_SUITE_P(kqbench_kv_peers, KvPeerTest, ::testing::Values(ProtocolKind::memcache, ProtocolKind::resp),
                         [](const auto& p) { return std::string(protocol_name(p.param)); });

// memcached refuses an item over its 1 MiB item size limit with "SERVER_ERROR object too large for
// cache" and skips its data: every such SET fails, and the stream stays in step (no parse error).
TEST(kqbench_kv_peers, MemcachedErrorRepliesAreFailedRequests) {
    if (::access(kMemcached, X_OK) != 0) GTEST_SKIP() << kMemcached << " is not installed";
    auto peer = start_memcached();
    ASSERT_TRUE(peer->ready()) << peer->log();
    Config c = kv_run(ProtocolKind::memcache, peer->port());
    c.threads = c.connections = 1;
    c.value_size = 1 << 20;
    c.set_ratio = 1, c.get_ratio = 0;
    c.requests = 20;
    RunResult r = run_bench(c);
    EXPECT_EQ(r.report.stats.failed, 20u);
    EXPECT_EQ(errors(r.report, ErrorKind::status), 20u);
    EXPECT_EQ(r.report.stats.error_total(), 20u) << "only error replies, no broken stream";
    EXPECT_EQ(r.report.stats.connects, 1u);
}

// Redis over its maxmemory with noeviction answers SET with "-OOM command not allowed ...": failed
// requests, the connection kept.
TEST(kqbench_kv_peers, RedisErrorRepliesAreFailedRequests) {
    if (::access(kRedis, X_OK) != 0) GTEST_SKIP() << kRedis << " is not installed";
    auto peer = start_redis({"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"});
    ASSERT_TRUE(peer->ready()) << peer->log();
    Config c = kv_run(ProtocolKind::resp, peer->port());
    c.threads = c.connections = 1;
    c.pipeline = 1;
    c.value_size = 100'000;
    c.keys = 1'000;
    c.set_ratio = 1, c.get_ratio = 0;
    c.requests = 100;  // 10 MB of values into 1 MB
    RunResult r = run_bench(c);
    EXPECT_GT(errors(r.report, ErrorKind::status), 50u);
    EXPECT_EQ(r.report.stats.error_total(), errors(r.report, ErrorKind::status));
    EXPECT_EQ(r.report.stats.ok + r.report.stats.failed, 100u);
    EXPECT_EQ(r.report.stats.connects, 1u);
}

}  // namespace
