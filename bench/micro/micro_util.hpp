// Helpers shared by the kq_micro benchmarks: socketpairs as real fds to register, one registration
// per poller backend built into this binary, and the registration hooks main() calls.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <benchmark/benchmark.h>

#include "kq/fd.hpp"
#include "kq/poller.hpp"

namespace kq::micro {

struct SocketPair {
    UniqueFd mine;  // the end a benchmark registers with a poller
    UniqueFd peer;  // the end it writes to, to make `mine` readable
};

// A non-blocking, close-on-exec AF_UNIX stream pair. Throws std::system_error naming socketpair.
inline SocketPair make_socketpair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::system_error(errno, std::system_category(), "socketpair");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Registers fn(state, backend) once per readiness backend built (these measure pollers and the mailbox
// on them; io_uring has no Poller), as "<name>/<backend>"; configure(bench) adds the arguments, units
// and counters that every backend's copy shares.
template <class Fn, class Configure>
void register_per_backend(const std::string& name, Fn fn, Configure configure) {
    for (Backend b : poller_backends()) {
        std::string full = name + "/" + std::string(backend_name(b));
        configure(benchmark::RegisterBenchmark(full.c_str(), fn, b));
    }
}

// Each benchmark file registers its benchmarks at run time (the backend list is only known then);
// main() calls these in this order, which is the order of the report.
void register_handoff_benchmarks();
void register_handoff_thread_benchmarks();
void register_poller_wait_benchmarks();
void register_histogram_benchmarks();
void register_http_benchmarks();

}  // namespace kq::micro
