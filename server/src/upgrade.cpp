// The zero-downtime upgrade's old side: start the new process with the listening sockets, wait for its
// READY=1 (upgrade.hpp).
#include "upgrade.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <chrono>
#include <cstring>
#include <string_view>
#include <system_error>

#include "systemd.hpp"

extern char** environ;

namespace kq {
namespace {

constexpr int kFirstFd = 3;  // socket activation's SD_LISTEN_FDS_START

bool replaced_variable(std::string_view entry) {
    for (std::string_view name : {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET="}) {
        if (entry.starts_with(name)) return true;
    }
    return entry.starts_with(std::string(kUpgradeReadyFdEnv) + "=");
}

// The decimal digits of v written at out (async-signal-safe); returns the end.
char* put_decimal(char* out, long v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0) *out++ = digits[--n];
    *out = '\0';
    return out;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
    return "ended";
}

}  // namespace

Upgrade::Upgrade(const UpgradeSpec& spec, std::function<void(const Result&)> done) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        throw std::system_error(errno, std::system_category(), "socketpair");
    ready_fd_ = UniqueFd(pair[0]);
    UniqueFd child_end(pair[1]);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
    cancel_r_ = UniqueFd(pipe_fds[0]);
    cancel_w_ = UniqueFd(pipe_fds[1]);

    // Everything the child needs, built here: between fork and exec only async-signal-safe calls.
    std::vector<int> pass = spec.service_fds;
    std::string names;
    for (size_t i = 0; i < spec.service_fds.size(); ++i) names += i == 0 ? "service" : ":service";
    if (spec.metrics_fd >= 0) {
        pass.push_back(spec.metrics_fd);
        names += ":metrics";
    }
    const int listen_count = static_cast<int>(pass.size());
    pass.push_back(child_end.get());  // after the listening sockets: not one of LISTEN_FDS
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        if (!replaced_variable(*e)) env.emplace_back(*e);
    }
    env.push_back("LISTEN_FDS=" + std::to_string(listen_count));
    env.push_back("LISTEN_FDNAMES=" + names);
    env.push_back(std::string(kUpgradeReadyFdEnv) + "=" + std::to_string(kFirstFd + listen_count));
    if (!spec.notify_socket.empty()) env.push_back("NOTIFY_SOCKET=" + spec.notify_socket);
    char listen_pid[32] = "LISTEN_PID=";  // the digits are the child's own, written after fork
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(listen_pid);
    envp.push_back(nullptr);
    std::vector<std::string> args = spec.argv;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int high = kFirstFd + static_cast<int>(pass.size());  // above every target fd
    const char* exe = spec.exe.c_str();

    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::system_category(), "fork");
    if (pid_ == 0) {
        // Copies out of the way first (a source may sit on a target), then down to 3, 4, ...: dup2
        // leaves the targets without close-on-exec; the copies are closed.
        int copies[1100];
        if (pass.size() > sizeof copies / sizeof copies[0]) ::_exit(126);
        for (size_t i = 0; i < pass.size(); ++i) {
            copies[i] = ::fcntl(pass[i], F_DUPFD_CLOEXEC, high);
            if (copies[i] < 0) ::_exit(126);
        }
        for (size_t i = 0; i < pass.size(); ++i) {
            if (::dup2(copies[i], kFirstFd + static_cast<int>(i)) < 0) ::_exit(126);
            ::close(copies[i]);
        }
        put_decimal(listen_pid + std::strlen(listen_pid), static_cast<long>(::getpid()));
        ::execve(exe, argv.data(), envp.data());
        ::_exit(127);
    }
    child_end.reset();  // EOF on ours once the child (and its exec'd program) lets go of its end
    thread_ = std::thread([this, timeout = spec.timeout_ms, done = std::move(done)] { wait(timeout, done); });
}

Upgrade::~Upgrade() {
    char byte = 0;
    [[maybe_unused]] ssize_t n = ::write(cancel_w_.get(), &byte, 1);
    if (thread_.joinable()) thread_.join();
    if (!ready_ && !reaped_) kill_and_reap();
}

void Upgrade::abandon() noexcept {
    if (!finished() && pid_ > 0) ::kill(pid_, SIGTERM);
}

std::string Upgrade::kill_and_reap() {
    ::kill(pid_, SIGKILL);  // a zombie until reaped: its pid is not reused meanwhile
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
    reaped_ = true;
    return describe_status(status);
}

void Upgrade::wait(int timeout_ms, std::function<void(const Result&)> done) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
    Result r;
    r.pid = pid_;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            r.error = fmt::format("not ready within {:g} s: {}", timeout_ms / 1000.0, kill_and_reap());
            break;
        }
        pollfd p[2] = {{ready_fd_.get(), POLLIN, 0}, {cancel_r_.get(), POLLIN, 0}};
        int n = ::poll(p, 2, static_cast<int>(left));
        if (n < 0 && errno != EINTR) {
            r.error = std::string("poll: ") + std::strerror(errno) + ": " + kill_and_reap();
            break;
        }
        if (n <= 0) continue;
        if (p[1].revents != 0) return;  // destroyed first: no done()
        char buf[256];
        ssize_t got = ::recv(ready_fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (got > 0 && std::string_view(buf, static_cast<size_t>(got)).find("READY=1") != std::string_view::npos) {
            ready_ = r.ready = true;
            break;
        }
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
            // The new process let go of its end without READY=1: it exited, or it never can be ready
            // (killing a process that has exited leaves its status as it was).
            r.error = kill_and_reap();
            break;
        }
    }
    done(r);
    finished_.store(true, std::memory_order_release);  // after done(): until then, still under way
}

}  // namespace kq
