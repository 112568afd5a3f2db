// Real, unmodified HTTP clients against an in-process server: curl, ab, wrk, h2load and headless
// Chromium run as child processes, and each test reads what they report. A missing tool fails the test
// with the Debian package to install (scripts/install-deps.sh installs them all).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using namespace std::chrono_literals;

namespace {

// The full path of an executable on PATH, or "" if there is none.
std::string find_tool(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (size_t begin = 0; begin <= dirs.size();) {
        size_t end = dirs.find(':', begin);
        if (end == std::string::npos) end = dirs.size();
        std::string candidate = dirs.substr(begin, end - begin) + "/" + name;
        if (end > begin && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        begin = end + 1;
    }
    return {};
}

#define REQUIRE_TOOL(var, name, package)                                                      \
    std::string var = find_tool(name);                                                        \
    ASSERT_FALSE(var.empty()) << (name) << " is not installed: apt-get install " << (package) \
                              << " (scripts/install-deps.sh installs every test tool)"

struct RunResult {
    int exit_code = -1;  // -1: killed by a signal (or by us at the time limit)
    bool timed_out = false;
    std::string out, err;
};

// Moves what the pipes hold into the sinks, waiting up to wait_ms for something; false if nothing came.
// A pipe at EOF is closed and set to -1 (which poll() ignores).
bool pump_pipes(int (&fds)[2], std::string* (&sinks)[2], int wait_ms) {
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (::poll(p, 2, wait_ms) <= 0) return false;
    for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0 || p[i].revents == 0) continue;
        char buf[65536];
        ssize_t n = ::read(fds[i], buf, sizeof buf);
        if (n > 0) {
            sinks[i]->append(buf, static_cast<size_t>(n));
        } else {
            ::close(fds[i]);
            fds[i] = -1;
        }
    }
    return true;
}

bool leader_exited(pid_t pid, int flags) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT | flags) == 0 && info.si_pid == pid;
}

// Runs argv in its own process group with stdin from /dev/null, collecting stdout and stderr. At the
// time limit the whole group is killed; when the leader exits, helpers it leaves behind (Chromium's
// zygote) are killed too, while the unreaped leader still holds the group id.
RunResult run(const std::vector<std::string>& argv, std::chrono::seconds limit) {
    RunResult r;
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return r;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setpgid(0, 0);
        int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, 0);
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        _exit(127);
    }
    ::setpgid(pid, pid);  // also here: whichever runs first, the group exists before we may kill it
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    int fds[2] = {out_pipe[0], err_pipe[0]};
    std::string* sinks[2] = {&r.out, &r.err};
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (fds[0] >= 0 || fds[1] >= 0) {
        pump_pipes(fds, sinks, 100);
        if (leader_exited(pid, WNOHANG)) break;
        if (std::chrono::steady_clock::now() > deadline) {
            r.timed_out = true;
            ::kill(-pid, SIGKILL);
            break;
        }
    }
    leader_exited(pid, 0);  // waits for the exit but leaves the zombie, so the group id stays ours
    for (int i = 0; i < 1000 && (fds[0] >= 0 || fds[1] >= 0) && pump_pipes(fds, sinks, 0); ++i) {}
    ::kill(-pid, SIGKILL);  // stragglers of the group, if any
    int status = 0;
    ::waitpid(pid, &status, 0);
    for (int fd : fds) {
        if (fd >= 0) ::close(fd);
    }
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    return r;
}

std::string describe(const RunResult& r) {
    return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") + "\n--- stdout\n" + r.out +
           "\n--- stderr\n" + r.err.substr(0, 4000);
}

// The number right after `label` (spaces skipped), or -1.
long long number_after(const std::string& text, const std::string& label) {
    size_t at = text.find(label);
    if (at == std::string::npos) return -1;
    at = text.find_first_not_of(' ', at + label.size());
    size_t end = text.find_first_not_of("0123456789", at);
    if (at == std::string::npos || end == at) return -1;
    return std::stoll(text.substr(at, end - at));
}

// The number right before `label` ("22535 requests in"), or -1.
long long number_before(const std::string& text, const std::string& label) {
    size_t at = text.find(label);
    if (at == std::string::npos || at == 0) return -1;
    size_t begin = text.find_last_not_of("0123456789", at - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    if (begin == at) return -1;
    return std::stoll(text.substr(begin, at - begin));
}

uint64_t accepted(RunningServer& srv) { return worker_total(srv.server(), &WorkerStats::accepted); }

class HttpClients : public ::testing::Test {
protected:
    RunningServer srv_{ServerConfig{}, "http"};
    std::string url(std::string_view path = "/") {
        return "http://127.0.0.1:" + std::to_string(srv_.port()) + std::string(path);
    }
};

// The bound the Chromium test relies on: a child that outlives its limit is killed with its group,
// including a grandchild that holds the output pipes open.
TEST(ChildProcess, IsKilledAtItsTimeLimit) {
    auto begin = std::chrono::steady_clock::now();
    RunResult r = run({"/bin/sh", "-c", "sleep 30 & echo started; sleep 30"}, 1s);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_EQ(r.out, "started\n");
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

// Two URLs in one curl command: the second goes over the first one's connection.
TEST_F(HttpClients, CurlReusesTheConnection) {
    REQUIRE_TOOL(curl, "curl", "curl");
    RunResult r = run({curl, "-sv", url("/"), url("/bytes/5")}, 30s);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out, "Hello from kqserver\nxxxxx");
    EXPECT_NE(r.err.find("Re-using existing connection"), std::string::npos) << describe(r);
    EXPECT_NE(r.err.find("< Connection: keep-alive"), std::string::npos) << describe(r);
    EXPECT_EQ(accepted(srv_), 1u);
}

// curl's upload with Expect: 100-continue. The route answers 200 (GET): curl waits for the 100, gets it
// at once and sends its body, then reads the 200 on the same connection. A route that does not answer 200
// (POST: 405): the final answer comes instead of the 100 and curl sends no byte of its body. (Before,
// neither came and curl sent the body after waiting a second for the 100.)
TEST_F(HttpClients, CurlExpectContinueGets100OrTheFinalAnswerAtOnce) {
    REQUIRE_TOOL(curl, "curl", "curl");
    const std::string body(4096, 'b');
    RunResult ok = run({curl, "-sv", "-X", "GET", "-H", "Expect: 100-continue", "--data-binary", body, "-w",
                        "\nuploaded=%{size_upload}", url("/")},
                       30s);
    ASSERT_EQ(ok.exit_code, 0) << describe(ok);
    EXPECT_NE(ok.err.find("< HTTP/1.1 100 Continue"), std::string::npos) << describe(ok);
    EXPECT_EQ(ok.out, "Hello from kqserver\n\nuploaded=4096") << describe(ok);

    RunResult refused = run({curl, "-sv", "-H", "Expect: 100-continue", "--data-binary", body, "-w",
                             "\nstatus=%{http_code} uploaded=%{size_upload}", url("/")},
                            30s);
    ASSERT_EQ(refused.exit_code, 0) << describe(refused);
    EXPECT_EQ(refused.err.find("100 Continue"), std::string::npos) << describe(refused);
    EXPECT_EQ(refused.out, "405 Method Not Allowed\n\nstatus=405 uploaded=0") << describe(refused);
}

// ab speaks HTTP/1.0 and, without -k, opens a new connection for each request.
TEST_F(HttpClients, AbHttp10WithoutKeepAlive) {
    REQUIRE_TOOL(ab, "ab", "apache2-utils");
    RunResult r = run({ab, "-n", "2000", "-c", "20", url("/")}, 60s);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(number_after(r.out, "Complete requests:"), 2000) << describe(r);
    EXPECT_EQ(number_after(r.out, "Failed requests:"), 0) << describe(r);
    EXPECT_EQ(r.out.find("Non-2xx responses"), std::string::npos) << describe(r);
    // One connection per request (ab opens up to -c spare ones as the run ends).
    EXPECT_GE(accepted(srv_), 2000u);
    EXPECT_LE(accepted(srv_), 2020u);
}

// ab -k asks for HTTP/1.0 keep-alive; every request must be answered on a kept connection.
TEST_F(HttpClients, AbKeepAlive) {
    REQUIRE_TOOL(ab, "ab", "apache2-utils");
    RunResult r = run({ab, "-k", "-n", "2000", "-c", "20", url("/")}, 60s);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(number_after(r.out, "Complete requests:"), 2000) << describe(r);
    EXPECT_EQ(number_after(r.out, "Failed requests:"), 0) << describe(r);
    EXPECT_EQ(number_after(r.out, "Keep-Alive requests:"), 2000) << describe(r);
    EXPECT_EQ(r.out.find("Non-2xx responses"), std::string::npos) << describe(r);
    EXPECT_EQ(accepted(srv_), 20u);
}

TEST_F(HttpClients, WrkKeepAliveLoad) {
    REQUIRE_TOOL(wrk, "wrk", "wrk");
    RunResult r = run({wrk, "-t1", "-c10", "-d1s", url("/")}, 60s);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_GT(number_before(r.out, " requests in "), 0) << describe(r);
    EXPECT_EQ(r.out.find("Non-2xx"), std::string::npos) << describe(r);
    EXPECT_EQ(r.out.find("Socket errors"), std::string::npos) << describe(r);
    EXPECT_GE(accepted(srv_), 10u);
    EXPECT_LE(accepted(srv_), 11u);  // wrk makes one extra connection to try the address first
}

TEST_F(HttpClients, H2loadHttp11) {
    REQUIRE_TOOL(h2load, "h2load", "nghttp2-client");
    RunResult r = run({h2load, "--h1", "-n", "2000", "-c", "10", url("/")}, 60s);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.out.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("status codes: 2000 2xx"), std::string::npos) << describe(r);
    EXPECT_EQ(accepted(srv_), 10u);
}

// A browser loads / once: headless Chromium prints the DOM it built from the text/plain answer.
TEST_F(HttpClients, HeadlessChromiumLoadsTheRootPage) {
    REQUIRE_TOOL(chromium, "chromium", "chromium");
    char profile[] = "/tmp/kq-chromium-XXXXXX";
    ASSERT_NE(::mkdtemp(profile), nullptr);
    RunResult r = run({chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                       "--disable-background-networking", "--disable-component-update", "--disable-sync",
                       std::string("--user-data-dir=") + profile, "--dump-dom", url("/")},
                      60s);
    std::filesystem::remove_all(profile);
    ASSERT_FALSE(r.timed_out) << describe(r);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.out.find("<pre"), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("Hello from kqserver"), std::string::npos) << describe(r);
}

}  // namespace
