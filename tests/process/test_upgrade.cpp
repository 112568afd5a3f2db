// Zero-downtime upgrade on SIGUSR2 (server/src/upgrade.hpp): under kqbench's reconnect load (a new
// connection per request), the running kqserver starts the binary now at its path on the same listening
// sockets, hands over and drains: zero failed connects, zero resets, zero lost requests, in acceptor and
// reuseport mode. And every way it can go wrong: a new binary that exits, one that never gets ready, a
// second SIGUSR2 during an upgrade, a SIGTERM during one.
// The test process is a child subreaper (prctl), so the new process, a grandchild, is reparented to it
// when the old one exits: the test stops it and reaps it.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "deploy_support.hpp"

namespace kq::test {
namespace {

namespace fs = std::filesystem;

// A private directory holding the kqserver binary under test, started from there; replace() puts a new
// file at that path the way an operator (or a package manager) does: written beside it, renamed over.
class BinaryDir {
public:
    BinaryDir() { fs::copy_file(KQSERVER_PATH, exe()); }
    std::string exe() const { return dir_.path() + "/kqserver"; }
    void replace_with_kqserver() { replace_from(KQSERVER_PATH); }
    // A shell script in place of the binary.
    void replace_with_script(const std::string& body) {
        replace_from(dir_.write("script", "#!/bin/sh\n" + body + "\n"));
    }
    // A script in place of the binary that writes its pid to a file, then sleeps: never ready.
    void replace_with_sleeper() { replace_with_script("echo $$ > " + pid_file() + "; exec sleep 60"); }
    // The sleeper's pid, once it has run (-1 before).
    pid_t sleeper_pid() const {
        std::string text;
        std::ifstream(pid_file()) >> text;
        return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
    }

private:
    std::string pid_file() const { return dir_.path() + "/sleeper.pid"; }
    void replace_from(const std::string& source) {
        std::string tmp = dir_.path() + "/kqserver.new";
        fs::copy_file(source, tmp, fs::copy_options::overwrite_existing);
        fs::permissions(tmp, fs::perms::owner_all);
        fs::rename(tmp, exe());
    }
    TempDir dir_;
};

// Kills and reaps a process this test adopted (as subreaper), unless it was reaped already.
class Adopted {
public:
    void set(pid_t pid) { pid_ = pid; }
    pid_t pid() const { return pid_; }
    // SIGTERM, then its exit status within timeout_ms (-1 if it did not exit).
    int stop(int timeout_ms) {
        ::kill(pid_, SIGTERM);
        for (auto start = std::chrono::steady_clock::now(); ms_since(start) < timeout_ms;) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return st;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return -1;
    }
    ~Adopted() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

private:
    pid_t pid_ = -1;
};

class Upgrade : public ::testing::Test {
protected:
    static void SetUpTestSuite() { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
    BinaryDir bin;
};

// The new process's pid from the old one's "upgrade: the new process N is ready" line, or -1.
pid_t ready_pid(const std::string& log) {
    static const std::regex re(R"(upgrade: the new process (\d+) is ready)");
    std::smatch m;
    return std::regex_search(log, m, re) ? static_cast<pid_t>(std::stol(m[1])) : -1;
}

// A request count from the old server's /metrics (kqserver_worker_requests_total over its workers).
uint64_t requests_served(uint16_t metrics_port) {
    try {
        http::Client c(metrics_port);
        std::string body = c.get("/metrics").body;
        static const std::regex re(R"(kqserver_worker_requests_total\{[^}]*\} (\d+))");
        uint64_t sum = 0;
        for (std::sregex_iterator it(body.begin(), body.end(), re), end; it != end; ++it) sum += std::stoull((*it)[1]);
        return sum;
    } catch (const std::exception&) {
        return 0;
    }
}

class UpgradeUnderLoad : public Upgrade, public ::testing::WithParamInterface<const char*> {};

TEST_P(UpgradeUnderLoad, NothingIsLostOrReset) {
    NotifySocket notify(true);
    ScopedEnv env("NOTIFY_SOCKET", notify.name());
    ChildProcess old(bin.exe(), {"--port", "0", "--workers", "2", "--accept", GetParam(), "--metrics-port", "0",
                                 "--drain-timeout", "10"});
    uint16_t port = port_in(old.wait_line("listening ", 20'000));
    uint16_t metrics = port_in(old.wait_line("metrics ", 20'000));
    ASSERT_NE(port, 0) << old.log();
    ASSERT_TRUE(notify.wait_for("READY=1", 10'000));

    // Load: a new connection per request for 4 s, at most 8 at a time.
    char json_path[] = "/tmp/kq_upgrade_json_XXXXXX";
    UniqueFd json_fd(::mkstemp(json_path));
    ChildProcess bench(KQBENCH_PATH, {"127.0.0.1:" + std::to_string(port), "--reconnect", "-c", "8", "-t", "1", "-d",
                                      "4s", "--json", json_path});
    auto start = std::chrono::steady_clock::now();
    while (requests_served(metrics) < 200) {
        ASSERT_LT(ms_since(start), 10'000) << "kqbench's load never reached the server\n" << bench.log();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    bin.replace_with_kqserver();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "upgrade: the new process", 20'000)) << old.log();
    Adopted fresh;
    fresh.set(ready_pid(old.log()));
    ASSERT_GT(fresh.pid(), 0) << old.log();
    int st = old.wait_exit(20'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << old.log();

    // systemd would now follow the new process, which runs the file now at the path, not the old one.
    EXPECT_TRUE(notify.wait_for("MAINPID=" + std::to_string(fresh.pid()), 5'000));
    std::string exe_link = fs::read_symlink("/proc/" + std::to_string(fresh.pid()) + "/exe");
    EXPECT_EQ(exe_link, bin.exe());

    int bst = bench.wait_exit(30'000);
    ASSERT_TRUE(WIFEXITED(bst) && WEXITSTATUS(bst) == 0) << bench.log();
    nlohmann::json r = nlohmann::json::parse(std::ifstream(json_path));
    ::unlink(json_path);
    uint64_t sent = r["requests"]["sent"], ok = r["requests"]["ok"], failed = r["requests"]["failed"];
    EXPECT_GT(ok, 400u);
    EXPECT_EQ(failed, 0u);
    EXPECT_EQ(sent, ok);
    EXPECT_EQ(r["errors"]["total"].get<uint64_t>(), 0u) << r["errors"].dump();
    // The spike: the slowest request (which spans the hand-over) against the median.
    std::printf(
        "upgrade under reconnect load (%s): %llu requests, 0 failed; latency p50 %llu us, p99.9 %llu us, "
        "max %llu us\n",
        GetParam(), static_cast<unsigned long long>(ok), r["latency_us"]["p50"].get<unsigned long long>(),
        r["latency_us"]["p99.9"].get<unsigned long long>(), r["latency_us"]["max"].get<unsigned long long>());

    // The new process serves on the same port and the same metrics port, and stops as any kqserver does.
    UniqueFd c = connect_with_read_timeout(port);
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    EXPECT_EQ(http_status(metrics, "/ready"), 200);
    EXPECT_TRUE(notify.wait_for("STATUS=serving", 5'000));
    int fst = fresh.stop(30'000);
    ASSERT_NE(fst, -1) << "the new process did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(fst) && WEXITSTATUS(fst) == 0) << old.log();
}

INSTANTIATE_TEST_SUITE_P(AcceptModes, UpgradeUnderLoad, ::testing::Values("acceptor", "reuseport"));

TEST_F(Upgrade, ANewBinaryThatExitsLeavesTheOldServing) {
    ChildProcess old(bin.exe(), {"--port", "0", "--workers", "1"});
    uint16_t port = port_in(old.wait_line("listening ", 20'000));
    ASSERT_NE(port, 0) << old.log();
    bin.replace_with_script("exit 3");
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "upgrade failed")) << old.log();
    EXPECT_NE(old.log().find("exited with status 3; still serving"), std::string::npos) << old.log();
    UniqueFd c = connect_with_read_timeout(port);
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    expect_clean_exit(old);
}

TEST_F(Upgrade, ANewBinaryNeverReadyIsKilledAfterTheTimeout) {
    ChildProcess old(bin.exe(), {"--port", "0", "--workers", "1", "--upgrade-timeout", "0.5"});
    uint16_t port = port_in(old.wait_line("listening ", 20'000));
    ASSERT_NE(port, 0) << old.log();
    bin.replace_with_sleeper();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "upgrade failed")) << old.log();
    EXPECT_NE(old.log().find("not ready within 0.5 s: killed by signal 9; still serving"), std::string::npos)
        << old.log();
    ASSERT_GT(bin.sleeper_pid(), 0);
    EXPECT_NE(::kill(bin.sleeper_pid(), 0), 0) << "the never-ready process was not reaped";
    UniqueFd c = connect_with_read_timeout(port);
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    // A second upgrade, once the first failed, works.
    bin.replace_with_kqserver();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "upgrade: the new process", 20'000)) << old.log();
    Adopted fresh;
    fresh.set(ready_pid(old.log()));
    int st = old.wait_exit(20'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << old.log();
    c = connect_with_read_timeout(port);
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    EXPECT_NE(fresh.stop(30'000), -1);
}

TEST_F(Upgrade, ASecondSignalIsIgnoredAndAStopAbandonsIt) {
    ChildProcess old(bin.exe(), {"--port", "0", "--workers", "1", "--upgrade-timeout", "60"});
    uint16_t port = port_in(old.wait_line("listening ", 20'000));
    ASSERT_NE(port, 0) << old.log();
    bin.replace_with_sleeper();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "SIGUSR2: upgrading: started")) << old.log();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "SIGUSR2: ignored: the upgrade to process")) << old.log();
    UniqueFd c = connect_with_read_timeout(port);
    EXPECT_TRUE(echoes(c.get())) << "the old process stopped serving while an upgrade waits";
    c.reset();
    // SIGTERM: the stop wins; the waiting process is told to stop and, never ready, killed at exit.
    expect_clean_exit(old);
    EXPECT_NE(old.log().find("abandoning the upgrade"), std::string::npos) << old.log();
    ASSERT_GT(bin.sleeper_pid(), 0) << "the new process never ran";
    EXPECT_NE(::kill(bin.sleeper_pid(), 0), 0) << "the abandoned process was left running";
}

TEST_F(Upgrade, SigusrTwoDuringAStopIsIgnored) {
    ChildProcess old(bin.exe(), {"--port", "0", "--workers", "1", "--drain-delay", "5"});
    ASSERT_NE(port_in(old.wait_line("listening ", 20'000)), 0) << old.log();
    ASSERT_EQ(::kill(old.pid(), SIGTERM), 0);
    ASSERT_TRUE(log_has(old, "drain delay")) << old.log();
    bin.replace_with_kqserver();
    ASSERT_EQ(::kill(old.pid(), SIGUSR2), 0);
    ASSERT_TRUE(log_has(old, "SIGUSR2: ignored: stopping")) << old.log();
    ASSERT_EQ(::kill(old.pid(), SIGTERM), 0);  // the second: at once
    int st = old.wait_exit(20'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << old.log();
    EXPECT_EQ(old.log().find("upgrading: started"), std::string::npos);
}

}  // namespace
}  // namespace kq::test
