// kqcat: interactive client for kqserver, a str_cli on kqueue/epoll, edge-triggered. Copies stdin to a
// TCP connection and the connection to stdout, half-closes at stdin EOF, and exits when the server closes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <iostream>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "kq/cli_checks.hpp"
#include "kq/fd.hpp"
#include "kq/net.hpp"
#include "kq/poller.hpp"

namespace kq {
namespace {

constexpr size_t kChunk = 64 * 1024;
// Reads of an always-ready stdin per loop pass before the socket gets a turn (a large file must not
// starve the printing of replies).
constexpr int kStdinReadsPerPass = 16;

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;  // a closed connection is an error message, not a SIGPIPE death
#else
constexpr int kSendFlags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif

// The loop polls two fds; two distinct addresses are enough to tell their events apart.
char socket_tag;
char stdin_tag;

[[noreturn]] void throw_errno(const std::string& call) { throw std::system_error(errno, std::system_category(), call); }

// Reopens 0, 1 and 2 on /dev/null if they are closed, so that the socket or the poller can never take
// the number of stdin or stdout (kqcat <&- would otherwise read its own socket).
void ensure_std_fds() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int null_fd = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null_fd < 0) throw_errno("open /dev/null");
        if (null_fd != fd) throw std::runtime_error("cannot reopen standard descriptor " + std::to_string(fd));
    }
}

// Blocking on purpose: when stdout is slower than the server (a full pipe), kqcat waits instead of
// buffering without bound. stdout may share one non-blocking file description with stdin (the same
// terminal), so EAGAIN means "wait in poll()", not failure.
void write_all(int fd, std::span<const char> bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n >= 0) {
            bytes = bytes.subspan(static_cast<size_t>(n));
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, -1);
        } else if (errno != EINTR) {
            throw_errno("write stdout");
        }
    }
}

int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ? errno : err;
}

// Time since bytes last moved, against --timeout (0 = no limit).
class IdleClock {
public:
    explicit IdleClock(int limit_ms) : limit_ms_(limit_ms) { touch(); }
    void touch() noexcept { last_ = std::chrono::steady_clock::now(); }
    // The wait() time-out until expiry: -1 without a limit. Measured, not counted in waits, because a
    // wait also returns early on EINTR (e.g. after Ctrl-Z and fg).
    int remaining_ms() const {
        if (limit_ms_ <= 0) return -1;
        auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last_);
        return static_cast<int>(std::max<long long>(0, limit_ms_ - spent.count()));
    }
    bool expired() const { return remaining_ms() == 0; }

private:
    int limit_ms_;
    std::chrono::steady_clock::time_point last_;
};

// --- stdin flags -----------------------------------------------------------------------------------
// O_NONBLOCK lives in the open file description, which a terminal shares with the shell: a kqcat killed
// by Ctrl-C or stopped by Ctrl-Z must not hand the shell a non-blocking terminal. The handlers put the
// saved flags back (fcntl, signal, raise and sigprocmask are async-signal-safe) and then let the signal
// take its default action.
volatile sig_atomic_t g_saved_flags = -1;  // -1: stdin's flags were not changed

constexpr int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
constexpr int kStopSignals[] = {SIGTSTP, SIGTTIN, SIGTTOU};

void install_handler(int sig, void (*handler)(int)) {
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) return;  // ignored by whoever started us (nohup, background job): keep it
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
}

void put_back_stdin_flags() noexcept {
    if (g_saved_flags >= 0) ::fcntl(STDIN_FILENO, F_SETFL, static_cast<int>(g_saved_flags));
}

extern "C" void on_fatal_signal(int sig) {
    put_back_stdin_flags();
    ::signal(sig, SIG_DFL);
    ::raise(sig);  // pending until the handler returns, then the default action: the exit status says "signal"
}

extern "C" void on_stop_signal(int sig) {
    int saved_errno = errno;
    put_back_stdin_flags();
    ::signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(sig);  // stops here; execution resumes on SIGCONT (fg)
    if (g_saved_flags >= 0) ::fcntl(STDIN_FILENO, F_SETFL, static_cast<int>(g_saved_flags) | O_NONBLOCK);
    install_handler(sig, on_stop_signal);
    errno = saved_errno;
}

// stdin as the loop sees it. Terminals, pipes and sockets are registered with the poller and made
// non-blocking (edge-triggered: read until EAGAIN). Regular files and /dev/null are not: epoll refuses
// them with EPERM, and kqueue reports a regular file as always readable (data = bytes left, no EOF edge;
// a str_cli on kqueue must compare data with its read size). Such a stdin is read whenever the socket
// has room, without the poller; its reads never block.
class StdinSource {
public:
    StdinSource() = default;
    StdinSource(const StdinSource&) = delete;
    StdinSource& operator=(const StdinSource&) = delete;
    ~StdinSource() {
        detach();
        if (saved_flags_ < 0) return;
        ::fcntl(STDIN_FILENO, F_SETFL, saved_flags_);
        g_saved_flags = -1;
    }

    // Registers stdin if a poller can watch it. Throws std::system_error naming the call.
    void attach(Poller& poller, void* udata) {
        struct stat st {};
        if (::fstat(STDIN_FILENO, &st) != 0) throw_errno("fstat stdin");
        if (S_ISREG(st.st_mode)) return;
        try {
            poller.add_readonly(STDIN_FILENO, udata);
        } catch (const std::system_error& e) {
            if (e.code() == std::errc::operation_not_permitted) return;  // /dev/null and other devices
            throw;
        }
        poller_ = &poller;
        make_nonblocking();
    }
    // stdin stays open after EOF, so its registration must be removed by hand.
    void detach() noexcept {
        if (poller_ != nullptr) poller_->remove(STDIN_FILENO);
        poller_ = nullptr;
    }

    // Returns the byte count, 0 at EOF, or -1 once a polled stdin is drained (EAGAIN).
    ssize_t read(std::span<char> buf) {
        for (;;) {
            ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n >= 0) return n;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
            if (errno != EINTR) throw_errno("read stdin");
        }
    }

private:
    void make_nonblocking() {
        int flags = ::fcntl(STDIN_FILENO, F_GETFL);
        if (flags < 0) throw_errno("fcntl F_GETFL stdin");
        if ((flags & O_NONBLOCK) != 0) return;  // already so: nothing of ours to restore
        saved_flags_ = flags;
        g_saved_flags = flags;
        for (int sig : kFatalSignals) install_handler(sig, on_fatal_signal);
        for (int sig : kStopSignals) install_handler(sig, on_stop_signal);
        if (::fcntl(STDIN_FILENO, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("fcntl F_SETFL stdin");
    }

    Poller* poller_ = nullptr;
    int saved_flags_ = -1;
};

// Non-blocking connect, then a wait for its WRITE edge (or error) within the time-out, so a silent host
// fails after --timeout instead of the kernel's minutes. The socket stays registered for the session.
UniqueFd connect_socket(Poller& poller, const std::string& host, uint16_t port, int timeout_ms) {
    UniqueFd fd = connect_tcp(host, port, true);
#ifdef SO_NOSIGPIPE
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    poller.add(fd.get(), &socket_tag);
    const std::string what = "connect " + host + ":" + std::to_string(port);
    IdleClock clock(timeout_ms);
    std::array<PollEvent, 2> events;
    for (bool failed = false;;) {
        // Connected first: a reset right after the handshake is then left for recv() to report.
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) return fd;
        if (int err = socket_error(fd.get()); err != 0) throw std::system_error(err, std::system_category(), what);
        // libkqueue may have consumed SO_ERROR already; then only "not connected" is left to say.
        if (failed) throw std::system_error(ENOTCONN, std::system_category(), what);
        if (clock.expired()) throw std::system_error(ETIMEDOUT, std::system_category(), what);
        int n = poller.wait(events, clock.remaining_ms());
        for (int i = 0; i < n; ++i) failed = failed || events[static_cast<size_t>(i)].error;
    }
}

// The copy loop of one connection: stdin to the socket (keeping unsent tails), the socket to stdout,
// shutdown(SHUT_WR) at stdin EOF, done when the server closes after that.
class CatSession {
public:
    CatSession(Poller& poller, UniqueFd sock, StdinSource& in, int timeout_ms)
        : poller_(poller), sock_(std::move(sock)), in_(in), idle_(timeout_ms), timeout_ms_(timeout_ms), in_buf_(kChunk),
          out_buf_(kChunk) {}

    // Returns on a clean close; throws std::system_error or std::runtime_error with the message otherwise.
    void run() {
        // Edges consumed while connecting are not repeated: a greeting or close that came then is read here.
        drain_socket(false);
        pump_stdin();
        std::array<PollEvent, 4> events;
        while (!done_) {
            int n = poller_.wait(events, busy_ ? 0 : idle_.remaining_ms());
            for (int i = 0; i < n && !done_; ++i) on_event(events[static_cast<size_t>(i)]);
            if (done_) return;
            pump_stdin();
            if (idle_.expired()) {
                throw std::runtime_error("no data moved for " + std::to_string(timeout_ms_) + " ms (--timeout)");
            }
        }
    }

private:
    void on_event(const PollEvent& ev) {
        if (ev.udata == &stdin_tag) {
            stdin_ready_ = true;
            return;
        }
        if (ev.writable && has_tail()) flush_tail();
        if (ev.readable || ev.eof || ev.error) drain_socket(ev.error);
    }

    bool has_tail() const noexcept { return tail_head_ < tail_.size(); }

    // Reads stdin only while nothing is left unsent: a full socket pauses stdin until its WRITE edge.
    void pump_stdin() {
        busy_ = false;
        for (int reads = 0; !stdin_eof_ && stdin_ready_ && !has_tail(); ++reads) {
            if (reads == kStdinReadsPerPass) {
                busy_ = true;  // more is ready: poll the socket without sleeping, then come back
                return;
            }
            ssize_t n = in_.read(in_buf_);
            if (n > 0) {
                idle_.touch();
                send_or_keep(std::span<const char>(in_buf_.data(), static_cast<size_t>(n)));
            } else if (n == 0) {
                half_close();
            } else {
                stdin_ready_ = false;  // drained: the next edge says when there is more
            }
        }
    }

    void send_or_keep(std::span<const char> bytes) {
        size_t done = send_some(bytes);
        tail_.assign(bytes.begin() + static_cast<std::ptrdiff_t>(done), bytes.end());
        tail_head_ = 0;
    }

    void flush_tail() {
        tail_head_ += send_some(std::span<const char>(tail_).subspan(tail_head_));
        if (!has_tail()) tail_.clear();
    }

    // Sends until done or EAGAIN (the kernel then arms the next WRITE edge); returns the bytes sent.
    size_t send_some(std::span<const char> bytes) {
        size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::send(sock_.get(), bytes.data() + done, bytes.size() - done, kSendFlags);
            if (n >= 0) {
                done += static_cast<size_t>(n);
                idle_.touch();
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            } else if (errno == EPIPE) {
                premature_close();
            } else if (errno != EINTR) {
                throw_errno("send");
            }
        }
        return done;
    }

    // Edge-triggered: read until EAGAIN or EOF, or no new edge will come.
    void drain_socket(bool error_hint) {
        for (;;) {
            ssize_t n = ::recv(sock_.get(), out_buf_.data(), out_buf_.size(), 0);
            if (n > 0) {
                idle_.touch();
                write_all(STDOUT_FILENO, std::span<const char>(out_buf_.data(), static_cast<size_t>(n)));
            } else if (n == 0) {
                if (!stdin_eof_) premature_close();
                done_ = true;  // the server closed after our half-close, and all it sent is printed
                return;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                // An error edge with nothing to read: fetch the error, or a hang-up would be missed.
                if (int err = error_hint ? socket_error(sock_.get()) : 0; err != 0) {
                    throw std::system_error(err, std::system_category(), "recv");
                }
                return;
            } else if (errno != EINTR) {
                throw_errno("recv");
            }
        }
    }

    [[noreturn]] void premature_close() {
        throw std::runtime_error("server closed the connection before stdin was sent");
    }

    void half_close() {
        stdin_eof_ = true;
        in_.detach();
        if (::shutdown(sock_.get(), SHUT_WR) != 0) throw_errno("shutdown");
    }

    Poller& poller_;
    UniqueFd sock_;  // registered for READ and WRITE since connect_socket()
    StdinSource& in_;
    IdleClock idle_;
    int timeout_ms_;
    std::vector<char> in_buf_;
    std::vector<char> out_buf_;
    std::vector<char> tail_;  // unsent bytes of the last stdin read; at most one chunk
    size_t tail_head_ = 0;
    bool stdin_ready_ = true;  // polled stdin: no EAGAIN since its last edge; unpolled: always
    bool stdin_eof_ = false;
    bool busy_ = false;
    bool done_ = false;
};

struct CatOptions {
    std::string host;
    uint16_t port = 0;
    Backend backend = Backend::automatic;
    double timeout_s = 0;
};

// Connects, then runs the session; stdin is read only once connected. Throws with the message.
void run_kqcat(const CatOptions& o, Poller& poller) {
    int timeout_ms = seconds_to_ms(o.timeout_s);
    UniqueFd sock = connect_socket(poller, o.host, o.port, timeout_ms);
    StdinSource in;
    in.attach(poller, &stdin_tag);
    CatSession session(poller, std::move(sock), in, timeout_ms);
    session.run();
}

}  // namespace
}  // namespace kq

namespace {

struct Flags {
    kq::CatOptions cat;
    std::string backend = "auto";
};

void add_flags(CLI::App& app, Flags& f) {
    std::string built = "auto";
    for (auto b : kq::poller_backends()) built += "|" + std::string(kq::backend_name(b));
    app.add_option("--backend", f.backend, "Event backend built into this binary: " + built)
        ->check(CLI::IsMember(std::vector<std::string>{"auto", "epoll", "kqueue"}))
        ->capture_default_str();
    app.add_option("--timeout", f.cat.timeout_s,
                   "Seconds to wait for the connection, and then with no data moving either way, before "
                   "giving up with exit status 1; 0 = no limit (the kernel's connect time-out still applies)")
        ->type_name("SECONDS")
        ->check(kq::seconds_check(INT_MAX / 1000))
        ->capture_default_str();
    app.add_option("HOST", f.cat.host, "Server address (IPv4 or IPv6, numeric or name)")->required();
    app.add_option("PORT", f.cat.port, "Server TCP port")->required()->check(kq::whole_number_check(1, 65535));
    app.footer(
        "stdin is sent to the server; at its EOF (Ctrl-D on a terminal) kqcat half-closes the connection\n"
        "and prints what the server sends until it closes. stdin may be a terminal, a pipe, a regular\n"
        "file or /dev/null.\n"
        "Exit status: 0 when the server closed after receiving all of stdin and everything was printed;\n"
        "1 on a connection error, a reset, a time-out, or a server that closed before stdin was sent;\n"
        "2 on bad flags.");
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"kqcat: interactive client for kqserver: copies stdin to a TCP server and its replies to stdout"};
    Flags f;
    add_flags(app, f);
    kq::add_version_flag(app, "kqcat");
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {  // --help, --version
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "kqcat: " << e.what() << " (see --help)\n";
        return 2;
    }
    kq::parse_backend(f.backend, f.cat.backend);
    try {
        kq::ensure_std_fds();  // before the poller and the socket take descriptor numbers
        kq::run_kqcat(f.cat, *kq::make_poller(f.cat.backend));
    } catch (const std::invalid_argument& e) {  // only make_poller throws it: a backend not built
        std::cerr << "kqcat: --backend " << f.backend << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kqcat: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
