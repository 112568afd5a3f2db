// A program of this build run as a child process, for the tests that need its exit status, its own fd
// limit or its signals: stdout through a pipe read line by line, stderr (the log) into an unlinked
// temporary file read back at any time, an optional RLIMIT_NOFILE set between fork and exec, and optional
// fds passed to it at 3, 4, ... (as socket activation hands listening sockets to a service).
// ServerProcess is kqserver so started, once it has printed its "listening HOST:PORT" line.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kq/fd.hpp"
#include "test_util.hpp"

extern char** environ;

namespace kq::test {

class ChildProcess {
public:
    // Starts path with args (argv[0] is path). The destructor kills a child that is still running.
    ChildProcess(std::string path, std::vector<std::string> args, rlim_t nofile = 0, std::vector<int> pass_fds = {}) {
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
        UniqueFd out_w(out[1]);
        out_ = UniqueFd(out[0]);
        char log_path[] = "/tmp/kq_child_log_XXXXXX";
        log_ = UniqueFd(::mkostemp(log_path, O_CLOEXEC));
        if (!log_) throw std::system_error(errno, std::system_category(), "mkostemp");
        ::unlink(log_path);
        args.insert(args.begin(), path);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::system_error(errno, std::system_category(), "fork");
        if (pid_ == 0) {  // only async-signal-safe calls from here to exec
            rlimit rl{nofile, nofile};
            if (nofile != 0 && ::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(126);
            int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // dup2 clears the flag on fd 0
            if (null_fd < 0) ::_exit(126);
            ::dup2(null_fd, 0);
            ::dup2(out_w.get(), 1);
            ::dup2(log_.get(), 2);
            // Out of the way first (a passed fd may itself be 3 or 4; the copies close on exec), then
            // down to 3, 4, ... (dup2 leaves those without close-on-exec).
            constexpr int kHigh = 200;
            for (size_t i = 0; i < pass_fds.size(); ++i) {
                if (::dup3(pass_fds[i], kHigh + static_cast<int>(i), O_CLOEXEC) < 0) ::_exit(126);
            }
            for (size_t i = 0; i < pass_fds.size(); ++i) {
                if (::dup2(kHigh + static_cast<int>(i), 3 + static_cast<int>(i)) < 0) ::_exit(126);
            }
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::execve(path.c_str(), argv.data(), environ);
            ::_exit(127);
        }
    }
    ~ChildProcess() {
        if (pid_ > 0 && status_ < 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }

    // Everything the child has written to stderr so far.
    std::string log() const {
        std::string s;
        char buf[65536];
        for (off_t off = 0;;) {
            ssize_t n = ::pread(log_.get(), buf, sizeof buf, off);
            if (n <= 0) return s;
            s.append(buf, static_cast<size_t>(n));
            off += n;
        }
    }

    // Waits up to timeout_ms for a line of stdout that starts with prefix; returns the rest of that line,
    // or nullopt after the time-out or the child's EOF. Lines before it are consumed.
    std::optional<std::string> wait_line(std::string_view prefix, int timeout_ms) {
        auto start = std::chrono::steady_clock::now();
        for (;;) {
            for (size_t nl; (nl = out_buf_.find('\n')) != std::string::npos;) {
                std::string line = out_buf_.substr(0, nl);
                out_buf_.erase(0, nl + 1);
                if (line.starts_with(prefix)) return line.substr(prefix.size());
            }
            int left = timeout_ms - static_cast<int>(ms_since(start));
            if (left <= 0 || !out_) return std::nullopt;
            pollfd p{out_.get(), POLLIN, 0};
            if (::poll(&p, 1, std::min(left, 100)) <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(out_.get(), buf, sizeof buf);
            if (n <= 0) out_.reset();
            else out_buf_.append(buf, static_cast<size_t>(n));
        }
    }

    // Waits up to timeout_ms for the child to exit; its waitpid status, or -1 if it is still running.
    int wait_exit(int timeout_ms) {
        auto start = std::chrono::steady_clock::now();
        while (status_ < 0) {
            int st = 0;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) status_ = st;
            else if (ms_since(start) > timeout_ms) return -1;
            else std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return status_;
    }

    // User + system CPU time of the whole process (every thread) so far, from /proc/PID/stat.
    int64_t cpu_ms() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // the name may hold spaces
        std::string f;
        int64_t utime = 0, stime = 0;
        for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15 (1-based): utime, stime
            if (i == 14) utime = std::stoll(f);
            if (i == 15) stime = std::stoll(f);
        }
        return (utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK);
    }

    // A "Vm...:" line of /proc/PID/status in KiB (VmRSS now, VmHWM the peak).
    size_t status_kib(std::string_view field) const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with(field)) return std::stoul(line.substr(field.size() + 1));
        }
        return 0;
    }

private:
    pid_t pid_ = -1;
    int status_ = -1;
    UniqueFd out_, log_;
    std::string out_buf_;
};

#ifdef KQSERVER_PATH
// kqserver as a child, started: port() is known when the constructor returns (it throws otherwise).
class ServerProcess : public ChildProcess {
public:
    explicit ServerProcess(std::vector<std::string> args, rlim_t nofile = 0)
        : ChildProcess(KQSERVER_PATH, std::move(args), nofile), port_(port_of(wait_line("listening ", 20'000))) {}

    uint16_t port() const { return port_; }
    // With --metrics-port: the endpoint's port, from the "metrics HOST:PORT" line printed after "listening".
    uint16_t metrics_port() {
        if (metrics_port_ == 0) metrics_port_ = port_of(wait_line("metrics ", 20'000));
        return metrics_port_;
    }

private:
    uint16_t port_of(const std::optional<std::string>& address) const {
        size_t colon = address ? address->rfind(':') : std::string::npos;
        if (colon == std::string::npos) throw std::runtime_error("kqserver did not print its address:\n" + log());
        return static_cast<uint16_t>(std::stoi(address->substr(colon + 1)));
    }

    uint16_t port_ = 0, metrics_port_ = 0;
};
#endif

// SIGTERM, then an exit with status 0 within timeout_ms.
inline void expect_clean_exit(ChildProcess& p, int timeout_ms = 30'000) {
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    int st = p.wait_exit(timeout_ms);
    ASSERT_NE(st, -1) << "the child did not exit after SIGTERM";
    ASSERT_TRUE(WIFEXITED(st)) << "the child died of signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    EXPECT_EQ(WEXITSTATUS(st), 0) << p.log();
}

// A directory of its own under /tmp for a test's files, removed with everything in it.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/kq_test_XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::system_error(errno, std::system_category(), "mkdtemp");
        path_ = tmpl;
    }
    ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // Writes text to the file name in the directory; its path.
    std::string write(const std::string& name, const std::string& text) const {
        const std::string p = path_ + "/" + name;
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// How often what occurs in text.
inline size_t count(const std::string& text, std::string_view what) {
    size_t n = 0;
    for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
}

// The number after `label` in the last line of the log that has it ("accept pauses 12"), or -1.
inline int64_t summary_value(const std::string& log, std::string_view label) {
    size_t pos = log.rfind(label);
    if (pos == std::string::npos) return -1;
    return std::stoll(log.substr(pos + label.size()));
}

}  // namespace kq::test
