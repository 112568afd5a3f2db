// The suite's child processes (nginx, kqserver) and their scratch directory. Whatever way the test ends,
// no child outlives it: the destructors kill and reap, and the kernel kills a child whose parent died
// (PR_SET_PDEATHSIG). Used from the test's thread only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "kq/fd.hpp"

namespace kq::conformance {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

class ChildProcess {
public:
    // Starts argv[0] (a path) with stdout and stderr on the given fds (-1: /dev/null), stdin on
    // /dev/null and no other fd of the test's.
    ChildProcess(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // Readable (POLLIN) once the child has exited: for poll() alongside other fds.
    int pidfd() const { return pidfd_.get(); }
    // Waits up to timeout_ms for the child to exit: its wait status, or -1 if it is still running.
    int wait_exit(int timeout_ms);
    // Sends sig (if it still runs) and waits up to timeout_ms: the wait status, or -1.
    int stop(int sig, int timeout_ms);

private:
    pid_t pid_ = -1;
    int status_ = -1;  // once reaped
    UniqueFd pidfd_;
};

// "path: ..." with errno's text, as a std::system_error.
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace kq::conformance
