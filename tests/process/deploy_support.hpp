// What the deployment tests share: a test-owned NOTIFY_SOCKET (systemd's readiness datagrams), an
// environment variable set for the children of one test, and one-request HTTP probes of /health, /ready.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include "child_process.hpp"
#include "http_test_client.hpp"
#include "kq/fd.hpp"
#include "test_util.hpp"

namespace kq::test {

// Sets name=value for the children this test starts; restores the absence on destruction.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
    ~ScopedEnv() { ::unsetenv(name_); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
};

// A datagram socket standing in for systemd's notify socket: a path in a fresh temporary directory, or
// an abstract name ("@..." in NOTIFY_SOCKET).
class NotifySocket {
public:
    explicit NotifySocket(bool abstract) {
        fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd_) throw std::system_error(errno, std::system_category(), "socket");
        static std::atomic<int> serial{0};
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (abstract) {
            name_ = "@kq-test-notify-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
            std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
        } else {
            char dir[] = "/tmp/kq_notify_XXXXXX";
            if (::mkdtemp(dir) == nullptr) throw std::system_error(errno, std::system_category(), "mkdtemp");
            dir_ = dir;
            name_ = dir_ + "/notify";
            std::memcpy(addr.sun_path, name_.data(), name_.size());
        }
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
        if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
            throw std::system_error(errno, std::system_category(), "bind " + name_);
    }
    ~NotifySocket() { remove(); }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    // The NOTIFY_SOCKET value.
    const std::string& name() const { return name_; }
    int fd() const { return fd_.get(); }

    // Waits up to timeout_ms for a datagram containing what; returns it. Every datagram read on the way
    // is kept in received().
    std::optional<std::string> wait_for(std::string_view what, int timeout_ms) {
        auto start = std::chrono::steady_clock::now();
        for (size_t seen = 0;;) {
            for (; seen < received_.size(); ++seen) {
                if (received_[seen].find(what) != std::string::npos) return received_[seen];
            }
            int left = timeout_ms - static_cast<int>(ms_since(start));
            if (left <= 0 || !fd_) return std::nullopt;
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, left) <= 0) continue;
            char buf[4096];
            ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
            if (n > 0) received_.emplace_back(buf, static_cast<size_t>(n));
        }
    }
    const std::vector<std::string>& received() const { return received_; }

    // Gone: closed, and its path removed, so the server's next datagram has nowhere to go.
    void remove() {
        fd_.reset();
        if (!dir_.empty()) {
            ::unlink(name_.c_str());
            ::rmdir(dir_.c_str());
            dir_.clear();
        }
    }

private:
    UniqueFd fd_;
    std::string name_, dir_;
    std::vector<std::string> received_;
};

// The counts in a "STATUS=serving: connections N, requests M" line, or nullopt if it is not one.
struct StatusCounts {
    std::string phase;
    uint64_t connections = 0, requests = 0;
};
inline std::optional<StatusCounts> parse_status(const std::string& datagram) {
    static const std::regex re(R"((^|\n)STATUS=(serving|draining): connections (\d+), requests (\d+)(\n|$))");
    std::smatch m;
    if (!std::regex_search(datagram, m, re)) return std::nullopt;
    return StatusCounts{m[2], std::stoull(m[3]), std::stoull(m[4])};
}

// The status code of GET path on the metrics endpoint (0 if no answer, or nothing listens there).
inline int http_status(uint16_t port, const std::string& path) {
    try {
        http::Client c(port);
        return c.get(path).status;
    } catch (const std::system_error&) {
        return 0;
    }
}

// One echo round trip on an existing connection: true if the bytes came back.
inline bool echoes(int fd, const std::string& bytes = "ping\n") {
    send_all(fd, bytes);
    return recv_exact(fd, bytes.size()) == bytes;
}

// Waits until text occurs in the child's log; false after timeout_ms.
inline bool log_has(ChildProcess& p, std::string_view text, int timeout_ms = 10'000) {
    auto start = std::chrono::steady_clock::now();
    while (p.log().find(text) == std::string::npos) {
        if (ms_since(start) > timeout_ms) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// The port in a "listening HOST:PORT" line's rest, or 0.
inline uint16_t port_in(const std::optional<std::string>& address) {
    size_t colon = address ? address->rfind(':') : std::string::npos;
    return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(address->substr(colon + 1)));
}

}  // namespace kq::test
