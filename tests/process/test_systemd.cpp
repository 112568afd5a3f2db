// kqserver under a supervisor, run as a child without systemd as PID 1: readiness notification to a
// test-owned NOTIFY_SOCKET (READY=1 once it serves, STATUS= lines, STOPPING=1 on SIGTERM; a notify socket
// that is gone, full or nonsense never stops it serving), and socket activation (listening sockets at fd
// 3 with LISTEN_FDS/LISTEN_PID, from systemd-socket-activate and from the test itself, in both accept
// modes; a LISTEN_PID of another process is ignored, a socket that is not listening is refused).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#ifndef KQSERVER_PATH
#error "KQSERVER_PATH must name the kqserver binary (set by tests/CMakeLists.txt)"
#endif
#include "deploy_support.hpp"
#include "kq/net.hpp"

using namespace kq;
using namespace kq::test;

namespace {

constexpr const char* kActivate = "/usr/bin/systemd-socket-activate";

// A client with a 10 s receive time-out, so a missing answer fails the test rather than hanging it.
UniqueFd client(uint16_t port) {
    UniqueFd fd = connect_blocking(port);
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

class Notify : public ::testing::TestWithParam<bool> {};  // true: an abstract socket

// READY=1 comes once the port serves and says so in STATUS=; STATUS= is refreshed with the counts while
// serving; STOPPING=1 comes on SIGTERM, before the exit.
TEST_P(Notify, ReadyStatusStopping) {
    NotifySocket notify(GetParam());
    ScopedEnv env("NOTIFY_SOCKET", notify.name());
    ServerProcess p({"--workers", "2"});
    auto ready = notify.wait_for("READY=1", 20'000);
    ASSERT_TRUE(ready) << p.log();
    // The port serves the moment READY=1 is out.
    UniqueFd c = client(p.port());
    ASSERT_TRUE(echoes(c.get()));
    auto at_ready = parse_status(*ready);
    ASSERT_TRUE(at_ready) << *ready;
    EXPECT_EQ(at_ready->phase, "serving");
    EXPECT_EQ(at_ready->requests, 0u);
    ASSERT_TRUE(echoes(c.get()));
    ASSERT_TRUE(echoes(c.get()));
    // A periodic STATUS= that has seen this client: one connection open, three requests answered.
    std::optional<std::string> seen = notify.wait_for("requests 3", 15'000);
    ASSERT_TRUE(seen) << "no STATUS= with the 3 requests; got " << notify.received().size() << " datagrams";
    auto counts = parse_status(*seen);
    ASSERT_TRUE(counts) << *seen;
    EXPECT_EQ(counts->connections, 1u);
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    auto stopping = notify.wait_for("STOPPING=1", 10'000);
    ASSERT_TRUE(stopping) << p.log();
    auto at_stop = parse_status(*stopping);
    ASSERT_TRUE(at_stop) << *stopping;
    EXPECT_EQ(at_stop->phase, "draining");
    c.reset();
    int st = p.wait_exit(30'000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << p.log();
}

INSTANTIATE_TEST_SUITE_P(PathAndAbstract, Notify, ::testing::Bool(),
                         [](const auto& param_info) { return param_info.param ? "abstract" : "path"; });

// The notify socket removed while the server runs: sends fail (logged once), the server goes on.
TEST(NotifyGone, RemovedSocketDoesNotStopServing) {
    NotifySocket notify(false);
    ScopedEnv env("NOTIFY_SOCKET", notify.name());
    ServerProcess p({"--workers", "1"});
    ASSERT_TRUE(notify.wait_for("READY=1", 20'000)) << p.log();
    notify.remove();
    // The next periodic STATUS= finds nothing there.
    ASSERT_TRUE(log_has(p, "NOTIFY_SOCKET: sendto", 15'000)) << p.log();
    UniqueFd c = client(p.port());
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    expect_clean_exit(p);
    EXPECT_EQ(count(p.log(), "NOTIFY_SOCKET: sendto"), 1u) << "the failure is logged once, not per datagram";
}

// A notify socket whose queue is full (nobody reads it): sendto would block; it must not.
TEST(NotifyGone, FullSocketNeverBlocks) {
    NotifySocket notify(false);
    // Fill its queue from here until the kernel refuses more.
    UniqueFd sender(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, notify.name().data(), notify.name().size());
    int sent = 0;
    while (::sendto(sender.get(), "X=1", 3, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 3) ++sent;
    ASSERT_EQ(errno, EAGAIN) << "after " << sent << " datagrams";
    ScopedEnv env("NOTIFY_SOCKET", notify.name());
    ServerProcess p({"--workers", "1"});
    UniqueFd c = client(p.port());
    EXPECT_TRUE(echoes(c.get()));
    EXPECT_TRUE(log_has(p, "NOTIFY_SOCKET: sendto")) << p.log();
    c.reset();
    expect_clean_exit(p, 10'000);
}

// A path that does not exist, and a value that is no socket address at all.
TEST(NotifyGone, NonexistentOrInvalidAddress) {
    for (std::string value : {"/nonexistent-kq-dir/notify", "relative/notify"}) {
        SCOPED_TRACE(value);
        ScopedEnv env("NOTIFY_SOCKET", value);
        ServerProcess p({"--workers", "1"});
        UniqueFd c = client(p.port());
        EXPECT_TRUE(echoes(c.get()));
        EXPECT_TRUE(log_has(p, "NOTIFY_SOCKET")) << p.log();
        c.reset();
        expect_clean_exit(p, 10'000);
    }
}

// A free loopback port, for the tools that must be told one (systemd-socket-activate -l).
uint16_t free_port() {
    UniqueFd probe = listen_tcp({});
    return local_port(probe.get());
}

class Activation : public ::testing::TestWithParam<std::string> {};  // the --accept mode

// systemd-socket-activate holds the port and starts kqserver on the first connection; that client, queued
// before the server existed, is served, and so are the next ones. The second socket, named "metrics",
// becomes the metrics endpoint.
TEST_P(Activation, SystemdSocketActivate) {
    if (::access(kActivate, X_OK) != 0) GTEST_SKIP() << kActivate << " is missing (Debian package systemd)";
    uint16_t port = free_port(), metrics = free_port();
    ChildProcess p(kActivate, {"-l", "127.0.0.1:" + std::to_string(port), "-l", "127.0.0.1:" + std::to_string(metrics),
                               "--fdname=service:metrics", KQSERVER_PATH, "--workers", "2", "--accept", GetParam()});
    ASSERT_TRUE(log_has(p, "Listening on 127.0.0.1:" + std::to_string(metrics))) << p.log();
    UniqueFd first = client(port);
    ASSERT_TRUE(echoes(first.get())) << p.log();
    EXPECT_EQ(port_in(p.wait_line("listening ", 10'000)), port) << "the printed address is the inherited one";
    EXPECT_EQ(port_in(p.wait_line("metrics ", 10'000)), metrics);
    std::vector<UniqueFd> more;
    for (int i = 0; i < 8; ++i) {
        more.push_back(client(port));
        ASSERT_TRUE(echoes(more.back().get(), "client " + std::to_string(i) + "\n"));
    }
    EXPECT_EQ(http_status(metrics, "/health"), 200);
    EXPECT_TRUE(log_has(p, "(socket activation)")) << p.log();
    more.clear();
    first.reset();
    expect_clean_exit(p);
}

// The test hands kqserver a listening socket itself: fd 3, LISTEN_FDS=1, and LISTEN_PID set to the
// server's pid by the shell that execs it (exec keeps the pid).
TEST_P(Activation, TestOwnedListeningSocket) {
    UniqueFd listener = listen_tcp({});
    uint16_t port = local_port(listener.get());
    ScopedEnv fds("LISTEN_FDS", "1");
    ChildProcess p("/bin/sh",
                   {"-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", KQSERVER_PATH, "--workers", "3", "--accept", GetParam()},
                   0, {listener.get()});
    ASSERT_EQ(port_in(p.wait_line("listening ", 20'000)), port) << p.log();
    listener.reset();  // the server's copy alone from here
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 12; ++i) {
        clients.push_back(client(port));
        ASSERT_TRUE(echoes(clients.back().get())) << "client " << i;
    }
    clients.clear();
    expect_clean_exit(p);
    // Its stop closed the only copy of the socket: nothing listens there any more.
    EXPECT_THROW(connect_blocking(port), std::system_error);
}

INSTANTIATE_TEST_SUITE_P(BothModes, Activation, ::testing::Values("acceptor", "reuseport"),
                         [](const auto& param_info) { return param_info.param; });

// LISTEN_PID names another process: the variables are not for this one; it binds its own port.
TEST(ActivationRefused, OtherPidIsIgnored) {
    UniqueFd listener = listen_tcp({});
    ScopedEnv fds("LISTEN_FDS", "1");
    ScopedEnv pid("LISTEN_PID", "1");
    ChildProcess p(KQSERVER_PATH, {"--workers", "1"}, 0, {listener.get()});
    uint16_t port = port_in(p.wait_line("listening ", 20'000));
    ASSERT_NE(port, 0) << p.log();
    EXPECT_NE(port, local_port(listener.get()));
    UniqueFd c = client(port);
    EXPECT_TRUE(echoes(c.get()));
    c.reset();
    expect_clean_exit(p);
}

// What is at fd 3 is not a listening TCP socket, or LISTEN_FDS is nonsense: one clear line, exit 1.
TEST(ActivationRefused, NotAListeningSocket) {
    UniqueFd bound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));  // bound, never listening
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(bound.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
    struct Case {
        int fd;
        std::string count, expected;
    };
    for (const Case& k : std::vector<Case>{{bound.get(), "1", "fd 3 is a socket that is not listening"},
                                           {udp.get(), "1", "fd 3 is not a stream (TCP) socket"},
                                           {pipe_r.get(), "1", "fd 3 is not a socket"},
                                           {bound.get(), "many", "LISTEN_FDS=many: not a count"}}) {
        SCOPED_TRACE(k.expected);
        ScopedEnv fds("LISTEN_FDS", k.count);
        ChildProcess p("/bin/sh", {"-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", KQSERVER_PATH}, 0, {k.fd});
        int st = p.wait_exit(20'000);
        ASSERT_TRUE(WIFEXITED(st)) << p.log();
        EXPECT_EQ(WEXITSTATUS(st), 1);
        std::string log = p.log();
        EXPECT_NE(log.find("kqserver: socket activation: "), std::string::npos) << log;
        EXPECT_NE(log.find(k.expected), std::string::npos) << log;
        EXPECT_EQ(count(log, "\n"), 1u) << "one line: " << log;
    }
}

}  // namespace
