// Socket helpers: resolve and listen, connect, socket options, printing the bound address.
#include "kq/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace kq {
namespace {

[[noreturn]] void throw_errno(const std::string& call) { throw std::system_error(errno, std::system_category(), call); }

using AddrList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

AddrList resolve(const std::string& host, uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("cannot resolve '" + host + "': " + ::gai_strerror(rc));
    return AddrList(res, &::freeaddrinfo);
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_errno(std::string("setsockopt ") + what);
}

}  // namespace

UniqueFd listen_tcp(const ListenOptions& opt) {
    auto addrs = resolve(opt.host, opt.port, true);
    int last_errno = 0;
    std::string last_call = "socket";
    for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) {
            last_errno = errno;
            continue;
        }
        set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
        if (opt.reuse_port) set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
        if (opt.send_buffer > 0) set_int_option(fd.get(), SOL_SOCKET, SO_SNDBUF, opt.send_buffer, "SO_SNDBUF");
        if (opt.recv_buffer > 0) set_int_option(fd.get(), SOL_SOCKET, SO_RCVBUF, opt.recv_buffer, "SO_RCVBUF");
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
            last_errno = errno;
            last_call = "bind " + opt.host + ":" + std::to_string(opt.port);
            continue;
        }
        if (::listen(fd.get(), opt.backlog) != 0) throw_errno("listen");
#ifdef TCP_DEFER_ACCEPT
        if (opt.defer_accept_s > 0)
            set_int_option(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, opt.defer_accept_s, "TCP_DEFER_ACCEPT");
#endif
        return fd;
    }
    errno = last_errno;
    throw_errno(last_call);
}

UniqueFd connect_tcp(const std::string& host, uint16_t port, bool nonblocking) {
    auto addrs = resolve(host, port, false);
    int last_errno = ECONNREFUSED;
    for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
        int type = a->ai_socktype | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
        UniqueFd fd(::socket(a->ai_family, type, a->ai_protocol));
        if (!fd) {
            last_errno = errno;
            continue;
        }
        if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) return fd;
        // A signal handler without SA_RESTART (libFuzzer's SIGALRM, say) interrupts a blocking connect
        // that had to wait; the handshake goes on in the kernel, so wait for its outcome.
        if (errno == EINTR && !nonblocking && (errno = wait_connected(fd.get(), -1)) == 0) return fd;
        last_errno = errno;
    }
    errno = last_errno;
    throw_errno("connect " + host + ":" + std::to_string(port));
}

int wait_connected(int fd, int timeout_ms) noexcept {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        int wait_ms = -1;
        if (timeout_ms >= 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0) return ETIMEDOUT;
            wait_ms = static_cast<int>(left);
        }
        pollfd p{fd, POLLOUT, 0};
        int n = ::poll(&p, 1, wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) continue;  // the deadline check above ends it
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
        return err;
    }
}

uint16_t local_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno("getsockname");
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

std::string local_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno("getsockname");
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
        std::string out = "[";  // built by appends: gcc 12 -O3 gives a false -Wrestrict on operator+ chains
        out += host;
        out += "]:";
        out += std::to_string(local_port(fd));
        return out;
    }
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(local_port(fd));
}

void set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) throw_errno("fcntl F_GETFL");
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (::fcntl(fd, F_SETFL, flags) != 0) throw_errno("fcntl F_SETFL");
}

void set_nodelay(int fd, bool on) { set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY"); }

void close_with_reset(UniqueFd fd) {
    linger lg{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    fd.reset();
}

AcceptResult accept_client(int listen_fd, UniqueFd& fd) noexcept {
    int raw = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (raw >= 0) {
        fd.reset(raw);
        return AcceptResult::accepted;
    }
    return accept_error(errno);
}

AcceptResult accept_error(int err) noexcept {
    switch (err) {
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
        return AcceptResult::drained;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    // Linux passes pending network errors of the new socket to accept(); accept(2) says to retry them
    // like EAGAIN. Treated as failures they would leave the rest of an edge-triggered backlog unserved.
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
#ifdef ENONET
    case ENONET:
#endif
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return AcceptResult::retry;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return AcceptResult::out_of_fds;
    default:
        return AcceptResult::failed;
    }
}

void AcceptPauseLog::paused(int err) {
    if (uint64_t n = limit_.occurred())
        spdlog::warn("{}: {}; pausing accepts for {} ms (pauses since the last such line: {})", who_,
                     std::strerror(err), kAcceptPauseMs, n);
}

void AcceptPauseLog::flush() noexcept {
    try {
        if (uint64_t n = limit_.take_held_back())
            spdlog::warn("{}: pauses since the last such line: {} (accepting has stopped)", who_, n);
    } catch (...) {  // a log line is not worth terminating for (spdlog reports its own errors)
    }
}

}  // namespace kq
