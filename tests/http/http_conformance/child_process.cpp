// fork/exec with a death signal, pidfd waits with a deadline, and a self-removing temporary directory.
#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

extern char** environ;

namespace kq::conformance {

void throw_errno(const std::string& what) { throw std::system_error(errno, std::system_category(), what); }

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kq_conformance_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw_errno("mkdtemp " + templ);
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: a destructor must not throw
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw_errno("fork");
    if (pid_ == 0) {  // only async-signal-safe calls from here to exec
        // Killed if the test dies first (a crash, ctest's time-out): no server is left behind.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(126);
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        ::dup2(null, 0);
        ::dup2(stdout_fd >= 0 ? stdout_fd : null, 1);
        ::dup2(stderr_fd >= 0 ? stderr_fd : null, 2);
        ::syscall(SYS_close_range, 3u, ~0u, 0u);  // the test's sockets and files stay the test's
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(args[0], args.data(), environ);
        ::_exit(127);
    }
    pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    if (!pidfd_) {
        int err = errno;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        errno = err;
        throw_errno("pidfd_open");
    }
}

ChildProcess::~ChildProcess() {
    if (status_ < 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

int ChildProcess::wait_exit(int timeout_ms) {
    if (status_ >= 0) return status_;
    pollfd p{pidfd_.get(), POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r != 1) return -1;
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) status_ = st;
    return status_;
}

int ChildProcess::stop(int sig, int timeout_ms) {
    if (status_ < 0) ::kill(pid_, sig);
    return wait_exit(timeout_ms);
}

}  // namespace kq::conformance
