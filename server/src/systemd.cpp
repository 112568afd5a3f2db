// systemd's readiness notification and socket activation, inline (why: systemd.hpp).
#include "systemd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace kq {
namespace {

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;
#else
constexpr int kSendFlags = MSG_DONTWAIT;  // SIGPIPE is ignored by the Server anyway
#endif

// The first fd socket activation passes (SD_LISTEN_FDS_START).
constexpr int kFirstListenFd = 3;
// A bound on what a supervisor may hand in: an upgrade passes a reuseport server's socket per worker
// and the metrics socket; more would be a supervisor's mistake.
constexpr int kMaxListenFds = 1024;

void set_fd_flags(int fd, bool nonblocking) {
    int fl = ::fcntl(fd, F_GETFD);
    if (fl < 0 || ::fcntl(fd, F_SETFD, fl | FD_CLOEXEC) != 0)
        throw std::system_error(errno, std::system_category(), "fcntl(F_SETFD)");
    int st = ::fcntl(fd, F_GETFL);
    if (st < 0 || ::fcntl(fd, F_SETFL, nonblocking ? st | O_NONBLOCK : st) != 0)
        throw std::system_error(errno, std::system_category(), "fcntl(F_SETFL)");
}

bool parse_int(const char* text, long& out) {
    if (text == nullptr) return false;
    const char* end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, out);
    return ec == std::errc{} && p == end && p != text;
}

// Why fd is no listening stream socket, or "".
std::string not_listening(int fd) {
    int type = 0, accepting = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return std::string("not a socket (") + std::strerror(errno) + ")";
    if (type != SOCK_STREAM) return "not a stream (TCP) socket";
    len = sizeof accepting;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0)
        return std::string("getsockopt(SO_ACCEPTCONN): ") + std::strerror(errno);
    if (accepting == 0) return "a socket that is not listening";
    return "";
}

}  // namespace

Notifier::Notifier() {
    const char* env = std::getenv("NOTIFY_SOCKET");
    std::string path = env != nullptr ? env : "";
    ::unsetenv("NOTIFY_SOCKET");
    if (path.empty()) return;
    path_ = path;
    // A path, or "@name" for an abstract socket (Linux): its sockaddr_un name begins with a NUL byte.
    // Other forms (vsock:..., systemd 254) are not ours to reach: warn and go on without notifying.
    if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof(sockaddr_un::sun_path)) {
        spdlog::warn("NOTIFY_SOCKET={}: not a unix socket path or @abstract name; not notifying", path);
        return;
    }
    if (path[0] == '@') path[0] = '\0';
    address_ = std::move(path);
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM, 0));
    try {
        if (!fd_) throw std::system_error(errno, std::system_category(), "socket");
        set_fd_flags(fd_.get(), true);
    } catch (const std::system_error& e) {
        spdlog::warn("NOTIFY_SOCKET: {}; not notifying", e.what());
        fd_.reset();
    }
}

void Notifier::send(std::string_view state) noexcept {
    if (!fd_) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    if (::sendto(fd_.get(), state.data(), state.size(), kSendFlags, reinterpret_cast<sockaddr*>(&addr), len) >= 0)
        return;
    int err = errno;
    std::lock_guard lock(mu_);
    if (std::exchange(warned_, true)) return;
    spdlog::warn("NOTIFY_SOCKET: sendto: {}; this and later notifications may be lost (the server goes on)",
                 std::strerror(err));
}

UniqueFd take_upgrade_ready_fd() {
    const char* text = std::getenv(kUpgradeReadyFdEnv);
    std::string copy = text != nullptr ? text : "";
    ::unsetenv(kUpgradeReadyFdEnv);
    long fd = -1;
    if (copy.empty()) return {};
    int type = 0;
    socklen_t len = sizeof type;
    if (!parse_int(copy.c_str(), fd) || fd < kFirstListenFd || fd > INT32_MAX ||
        ::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
        spdlog::warn("{}={}: not the upgrade's readiness socket; the old process will not learn this one is ready",
                     kUpgradeReadyFdEnv, copy);
        return {};
    }
    UniqueFd out(static_cast<int>(fd));
    set_fd_flags(out.get(), false);
    return out;
}

InheritedSockets take_listen_fds() {
    const char* pid_text = std::getenv("LISTEN_PID");
    const char* fds_text = std::getenv("LISTEN_FDS");
    const char* names_text = std::getenv("LISTEN_FDNAMES");
    std::string names = names_text != nullptr ? names_text : "";
    std::string fds_copy = fds_text != nullptr ? fds_text : "";
    long pid = 0, n = 0;
    bool ours = parse_int(pid_text, pid) && pid == static_cast<long>(::getpid());
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!ours) return {};
    if (!parse_int(fds_copy.c_str(), n) || n < 1 || n > kMaxListenFds)
        throw std::runtime_error("LISTEN_FDS=" + fds_copy + ": not a count of sockets from 1 to " +
                                 std::to_string(kMaxListenFds));
    InheritedSockets out;
    for (int fd = kFirstListenFd; fd < kFirstListenFd + n; ++fd) {
        out.fds.emplace_back(fd);  // owned from here, so a throw below closes them all
        if (std::string why = not_listening(fd); !why.empty())
            throw std::runtime_error("LISTEN_FDS: fd " + std::to_string(fd) + " is " + why);
        set_fd_flags(fd, true);
    }
    for (size_t start = 0; out.names.size() < out.fds.size();) {
        size_t colon = names.find(':', start);
        out.names.push_back(start <= names.size() ? names.substr(start, colon - start) : "");
        start = colon == std::string::npos ? names.size() + 1 : colon + 1;
    }
    return out;
}

}  // namespace kq
