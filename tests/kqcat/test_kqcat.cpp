// Integration tests of kqcat: the real binary as a child process, against an in-process kq::Server
// ("upper") or a one-connection server written here, with stdin from a file, a pipe, /dev/null or a pty.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "in_process_server.hpp"
#include "kq/net.hpp"
#include "kq/protocols.hpp"
#include "kq/server.hpp"

#ifndef KQCAT_PATH
#error "KQCAT_PATH must name the kqcat binary (set by tests/CMakeLists.txt)"
#endif

extern char** environ;

namespace {

using kq::UniqueFd;

constexpr int kDeadlineMs = 60'000;  // a hung kqcat fails the test instead of hanging ctest

std::pair<UniqueFd, UniqueFd> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string random_bytes(size_t n) {
    std::mt19937_64 rng(42);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

std::string ascii_upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return s;
}

// An unlinked temporary regular file holding data, positioned at its start.
UniqueFd temp_file(const std::string& data) {
    std::string path = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + std::string("/test_kqcat_XXXXXX");
    UniqueFd fd(::mkostemp(path.data(), O_CLOEXEC));
    if (!fd) throw std::system_error(errno, std::system_category(), "mkostemp " + path);
    ::unlink(path.c_str());
    for (size_t done = 0; done < data.size();) {
        ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
        if (n <= 0) throw std::system_error(errno, std::system_category(), "write " + path);
        done += static_cast<size_t>(n);
    }
    ::lseek(fd.get(), 0, SEEK_SET);
    return fd;
}

struct Outcome {
    int status = -1;  // as waitpid() reports it
    std::string out, err;
    int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// One kqcat child: stdin is the given fd, stdout and stderr are pipes read by finish(). Every pipe end
// is close-on-exec, so the child holds only its own three descriptors (else a stdin pipe's write end
// leaking into the child would keep it from ever seeing EOF).
class Kqcat {
public:
    Kqcat(const std::vector<std::string>& args, int stdin_fd) {
        auto [out_r, out_w] = make_pipe();
        auto [err_r, err_w] = make_pipe();
        out_ = std::move(out_r);
        err_ = std::move(err_r);
        std::vector<std::string> all{KQCAT_PATH};
        all.insert(all.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : all) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
        posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
        posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
        // The test ignores SIGPIPE (it writes into pipes the child may have closed), and a background job
        // of a non-interactive shell inherits an ignored SIGINT; kqcat keeps ignored signals ignored, so
        // give it the dispositions a terminal user's kqcat would have.
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t def;
        sigemptyset(&def);
        for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP}) sigaddset(&def, sig);
        posix_spawnattr_setsigdefault(&attr, &def);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
        int rc = posix_spawn(&pid_, KQCAT_PATH, &fa, &attr, argv.data(), environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw std::system_error(rc, std::system_category(), "posix_spawn " KQCAT_PATH);
    }

    pid_t pid() const { return pid_; }

    // Writes `input` into feed (then closes it, unless keep_feed) while collecting stdout and stderr
    // until both close, then reaps the child. A child still running at the deadline is killed.
    Outcome finish(UniqueFd feed = {}, std::string_view input = {}, bool keep_feed = false) {
        Outcome r;
        if (feed) kq::set_nonblocking(feed.get(), true);
        size_t fed = 0;
        while (out_ || err_) {
            if (feed && fed == input.size() && !keep_feed) feed.reset();  // the child's stdin EOF
            pollfd p[3] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}, {-1, POLLOUT, 0}};
            if (feed && fed < input.size()) p[2].fd = feed.get();
            if (::poll(p, 3, kDeadlineMs) == 0) {
                ::kill(pid_, SIGKILL);
                ADD_FAILURE() << "kqcat did not finish within " << kDeadlineMs << " ms";
                break;
            }
            drain(p[0], out_, r.out);
            drain(p[1], err_, r.err);
            if (p[2].revents != 0) {
                ssize_t n = ::write(feed.get(), input.data() + fed, input.size() - fed);
                if (n > 0) fed += static_cast<size_t>(n);
                if (n < 0 && errno == EPIPE) fed = input.size();  // kqcat stopped reading: it is exiting
            }
        }
        ::waitpid(pid_, &r.status, 0);
        return r;
    }

private:
    static void drain(const pollfd& p, UniqueFd& fd, std::string& into) {
        if (p.revents == 0) return;
        char buf[65536];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n > 0) into.append(buf, static_cast<size_t>(n));
        else fd.reset();
    }

    pid_t pid_ = -1;
    UniqueFd out_, err_;
};

// An in-process kqserver speaking "upper" on an ephemeral port; its destructor checks a clean stop.
class UpperServer {
public:
    UpperServer() : srv_(kq::ServerConfig{}, "upper") {}
    std::string port() const { return std::to_string(srv_.port()); }

private:
    kq::test::RunningServer srv_;
};

// A one-connection server for the cases kqserver never produces: accepts one client on its own thread,
// runs `serve` on the blocking socket, then closes it (unless serve moved it away).
class OneShotServer {
public:
    // rcvbuf > 0 shrinks the receive buffer (set before the handshake, so the window is small from the start).
    explicit OneShotServer(std::function<void(UniqueFd&)> serve, int rcvbuf = 0)
        : listener_(listener(rcvbuf)), thread_([this, serve = std::move(serve)] { accept_and_serve(serve); }) {}
    ~OneShotServer() { thread_.join(); }
    std::string port() const { return std::to_string(kq::local_port(listener_.get())); }

private:
    static UniqueFd listener(int rcvbuf) {
        UniqueFd fd = kq::listen_tcp({});
        if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        return fd;
    }
    void accept_and_serve(const std::function<void(UniqueFd&)>& serve) {
        pollfd p{listener_.get(), POLLIN, 0};
        if (::poll(&p, 1, kDeadlineMs) != 1) return;  // kqcat never connected; its own result says why
        UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn) serve(conn);
    }
    UniqueFd listener_;
    std::thread thread_;
};

std::string recv_until_eof(int fd) {
    std::string got;
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
    return got;
}

class IgnoreSigpipe : public ::testing::Environment {
    void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
};
[[maybe_unused]] const auto* const kSigpipeEnv = ::testing::AddGlobalTestEnvironment(new IgnoreSigpipe);

// --- round trips through kqserver: every stdin kind on every backend built ------------------------

enum class Input { file, pipe, dev_null };

std::string input_name(Input i) { return i == Input::file ? "file" : i == Input::pipe ? "pipe" : "dev_null"; }

class KqcatRoundTrip : public ::testing::TestWithParam<std::tuple<kq::Backend, Input>> {
protected:
    std::vector<std::string> args(const UpperServer& srv) const {
        return {"--backend", std::string(kq::backend_name(std::get<0>(GetParam()))), "--timeout", "30", "127.0.0.1",
                srv.port()};
    }
};

// 1 MiB of every byte value goes out and comes back ASCII-uppercased, byte for byte. The server closes
// only after kqcat's half-close, so exit 0 also proves the reply was complete before that EOF.
TEST_P(KqcatRoundTrip, OutputIsTheUppercasedInputAndExitIsZero) {
    UpperServer srv;
    const Input kind = std::get<1>(GetParam());
    const std::string input = kind == Input::dev_null ? "" : random_bytes(1 << 20);
    Outcome r;
    if (kind == Input::pipe) {
        auto [in_r, in_w] = make_pipe();
        Kqcat child(args(srv), in_r.get());
        r = child.finish(std::move(in_w), input);
        // kqcat made its stdin non-blocking; the open file description we share must be restored.
        EXPECT_EQ(::fcntl(in_r.get(), F_GETFL) & O_NONBLOCK, 0) << "stdin left non-blocking";
    } else if (kind == Input::file) {
        UniqueFd file = temp_file(input);
        r = Kqcat(args(srv), file.get()).finish();
    } else {
        UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        r = Kqcat(args(srv), null_fd.get()).finish();
    }
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    EXPECT_EQ(r.err, "");
    ASSERT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == ascii_upper(input)) << "output differs from the uppercased input";
}

INSTANTIATE_TEST_SUITE_P(Stdin, KqcatRoundTrip,
                         ::testing::Combine(::testing::ValuesIn(kq::poller_backends()),
                                            ::testing::Values(Input::file, Input::pipe, Input::dev_null)),
                         [](const auto& p) {
                             return std::string(kq::backend_name(std::get<0>(p.param))) + "_" +
                                    input_name(std::get<1>(p.param));
                         });

// --- half-close and early close ---------------------------------------------------------------------

// The server answers only once it has seen kqcat's FIN, and then sends more than a socket buffer:
// kqcat must keep reading after shutdown(SHUT_WR) and print every byte before the server's EOF.
TEST(Kqcat, PrintsAllTheServerSendsAfterItsHalfClose) {
    const std::string input = random_bytes(100'000);
    const std::string tail = random_bytes(3 << 20);
    OneShotServer srv([&](UniqueFd& conn) {
        std::string got = recv_until_eof(conn.get());
        std::string reply = "got " + std::to_string(got.size()) + " bytes\n" + tail;
        for (size_t sent = 0; sent < reply.size();) {
            ssize_t n = ::send(conn.get(), reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<size_t>(n);
        }
    });
    auto [in_r, in_w] = make_pipe();
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, in_r.get());
    Outcome r = child.finish(std::move(in_w), input);
    const std::string expected = "got 100000 bytes\n" + tail;
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    ASSERT_EQ(r.out.size(), expected.size());
    EXPECT_TRUE(r.out == expected) << "reply differs";
}

// A server with a tiny receive window that reads in small pieces, so kqcat's sends come up short and
// it must keep each unsent tail (and pause stdin) instead of dropping it; all is echoed back after EOF.
TEST(Kqcat, KeepsUnsentTailsWhenTheSocketIsFull) {
    const std::string input = random_bytes(4 << 20);
    OneShotServer srv(
        [](UniqueFd& conn) {
            std::string got;
            char buf[1024];
            for (ssize_t n; (n = ::recv(conn.get(), buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
            for (size_t sent = 0; sent < got.size();) {
                ssize_t n = ::send(conn.get(), got.data() + sent, got.size() - sent, MSG_NOSIGNAL);
                if (n <= 0) return;
                sent += static_cast<size_t>(n);
            }
        },
        /*rcvbuf=*/4096);
    UniqueFd file = temp_file(input);
    Outcome r = Kqcat({"--timeout", "30", "127.0.0.1", srv.port()}, file.get()).finish();
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    ASSERT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == input) << "bytes lost or reordered";
}

// The server closes as soon as it accepts, while kqcat's stdin (a pipe we keep open) has not ended:
// the FIN comes before kqcat's half-close: "server terminated prematurely".
TEST(Kqcat, ServerClosingBeforeStdinEndsIsAnError) {
    OneShotServer srv([](UniqueFd&) {});
    auto [in_r, in_w] = make_pipe();
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, in_r.get());
    Outcome r = child.finish(std::move(in_w), "", /*keep_feed=*/true);
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_EQ(r.err, "kqcat: server closed the connection before stdin was sent\n");
}

// Same early close while 1 MiB is being sent: the server never reads, so its close resets the
// connection or ends it before the half-close; either way kqcat must fail with a message.
TEST(Kqcat, ServerClosingWhileDataIsInFlightIsAnError) {
    OneShotServer srv([](UniqueFd&) {});
    auto [in_r, in_w] = make_pipe();
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, in_r.get());
    Outcome r = child.finish(std::move(in_w), random_bytes(1 << 20));
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_EQ(r.err.rfind("kqcat: ", 0), 0u) << r.err;
}

// A reset is reported as such (by recv, or by connect if it lands before kqcat's connect check). The
// kqueue backend under libkqueue may consume the socket error, leaving only the premature-close message.
TEST(Kqcat, ServerResetIsAnError) {
    OneShotServer srv([](UniqueFd& conn) { kq::close_with_reset(std::move(conn)); });
    auto [in_r, in_w] = make_pipe();
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, in_r.get());
    Outcome r = child.finish(std::move(in_w), "", /*keep_feed=*/true);
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_EQ(r.err.rfind("kqcat: ", 0), 0u) << r.err;
    if (kq::built_backends().front() == kq::Backend::epoll) {
        EXPECT_NE(r.err.find("Connection reset by peer"), std::string::npos) << r.err;
    }
}

// --- terminal stdin ---------------------------------------------------------------------------------

struct Pty {
    UniqueFd master, slave;
    Pty() {
        int m = -1, s = -1;
        if (::openpty(&m, &s, nullptr, nullptr, nullptr) != 0)
            throw std::system_error(errno, std::system_category(), "openpty");
        master.reset(m);
        slave.reset(s);
        ::fcntl(m, F_SETFD, FD_CLOEXEC);
        ::fcntl(s, F_SETFD, FD_CLOEXEC);
    }
};

// A line typed on a terminal, then Ctrl-D: the line is sent, EOF half-closes, exit 0, and the terminal
// (whose file description the shell would share) is blocking again.
TEST(Kqcat, TerminalLineThenCtrlD) {
    UpperServer srv;
    Pty pty;
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, pty.slave.get());
    ASSERT_EQ(::write(pty.master.get(), "hello kqcat\n\x04", 13), 13);
    Outcome r = child.finish();
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    EXPECT_EQ(r.out, "HELLO KQCAT\n");
    EXPECT_EQ(::fcntl(pty.slave.get(), F_GETFL) & O_NONBLOCK, 0) << "terminal left non-blocking";
}

// Ctrl-C (SIGINT) kills kqcat mid-session; its handler must first give the terminal its flags back.
// The server seeing "ping" proves kqcat had already made stdin non-blocking (it does so before reading).
TEST(Kqcat, CtrlCRestoresTheTerminalFlags) {
    std::promise<void> pinged;
    OneShotServer srv([&](UniqueFd& conn) {
        char buf[16];
        if (::recv(conn.get(), buf, sizeof buf, 0) > 0) pinged.set_value();
        recv_until_eof(conn.get());
    });
    Pty pty;
    Kqcat child({"--timeout", "30", "127.0.0.1", srv.port()}, pty.slave.get());
    ASSERT_EQ(::write(pty.master.get(), "ping\n", 5), 5);
    ASSERT_EQ(pinged.get_future().wait_for(std::chrono::milliseconds(kDeadlineMs)), std::future_status::ready);
    EXPECT_NE(::fcntl(pty.slave.get(), F_GETFL) & O_NONBLOCK, 0);
    ::kill(child.pid(), SIGINT);
    Outcome r = child.finish();
    EXPECT_TRUE(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGINT);
    EXPECT_EQ(::fcntl(pty.slave.get(), F_GETFL) & O_NONBLOCK, 0) << "terminal left non-blocking";
}

// --- connection and flag errors ---------------------------------------------------------------------

TEST(Kqcat, UnreachablePortExitsOne) {
    std::string port = std::to_string(kq::local_port(kq::listen_tcp({}).get()));  // free once closed
    UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    Outcome r = Kqcat({"127.0.0.1", port}, null_fd.get()).finish();
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_EQ(r.err, "kqcat: connect 127.0.0.1:" + port + ": Connection refused\n");
}

// --timeout also bounds a connection where nothing moves: the server holds it open and says nothing.
TEST(Kqcat, IdleTimeoutExitsOne) {
    OneShotServer srv([](UniqueFd& conn) { recv_until_eof(conn.get()); });
    auto [in_r, in_w] = make_pipe();
    Kqcat child({"--timeout", "0.2", "127.0.0.1", srv.port()}, in_r.get());
    Outcome r = child.finish(std::move(in_w), "", /*keep_feed=*/true);
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_EQ(r.err, "kqcat: no data moved for 200 ms (--timeout)\n");
}

TEST(Kqcat, BadFlagsExitTwoWithOneLine) {
    UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    for (std::vector<std::string> args : {std::vector<std::string>{"--no-such-flag", "127.0.0.1", "1"},
                                          {"--backend", "select", "127.0.0.1", "1"},
                                          {"--timeout", "-1", "127.0.0.1", "1"},
                                          {"127.0.0.1", "70000"},
                                          {"127.0.0.1"}}) {
        Outcome r = Kqcat(args, null_fd.get()).finish();
        EXPECT_EQ(r.exit_code(), 2) << args[0];
        EXPECT_EQ(r.err.rfind("kqcat: ", 0), 0u) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
}

TEST(Kqcat, HelpNamesEveryFlag) {
    UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    Outcome r = Kqcat({"--help"}, null_fd.get()).finish();
    EXPECT_EQ(r.exit_code(), 0);
    for (const char* word : {"--backend", "--timeout", "HOST", "PORT", "Exit status"}) {
        EXPECT_NE(r.out.find(word), std::string::npos) << word;
    }
}

}  // namespace
