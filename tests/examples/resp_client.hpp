// A blocking RESP client for the kqresp tests: sends requests, reads one whole reply at a time (any
// RESP2 type, nested), with a receive time-out so that a missing reply fails a test instead of hanging it.
// Hand-written: hiredis (libhiredis-dev) would do, but it is no dependency of this project, and a test
// needs only whole replies as bytes.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace resp::test {

inline std::string command(const std::vector<std::string>& args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
}

class RespClient : kq::test::BufferedConn {
public:
    explicit RespClient(uint16_t port) : BufferedConn(port) {
        timeval tv{10, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    void send(std::string_view s) { kq::test::send_all(fd_.get(), s.data(), s.size()); }
    // One whole reply, as its raw bytes; nullopt if the connection ends or times out first.
    std::optional<std::string> reply() {
        size_t end = 0;
        while (!complete(0, end)) {
            if (!fill()) return std::nullopt;
        }
        std::string r = buf_.substr(0, end);
        buf_.erase(0, end);
        return r;
    }
    std::string call(const std::vector<std::string>& args) {
        send(command(args));
        return reply().value_or("<no reply>");
    }
    int fd() const { return fd_.get(); }

private:
    // True if a whole reply starts at pos in buf_; end is set past it.
    bool complete(size_t pos, size_t& end) const {
        const size_t crlf = buf_.find("\r\n", pos);
        if (crlf == std::string::npos || pos >= buf_.size()) return false;
        const char type = buf_[pos];
        const long long n = type == '$' || type == '*' ? std::stoll(buf_.substr(pos + 1, crlf - pos - 1)) : 0;
        end = crlf + 2;
        if (type == '$' && n >= 0) {
            end += static_cast<size_t>(n) + 2;
            return buf_.size() >= end;
        }
        for (long long i = 0; type == '*' && i < n; ++i)
            if (!complete(end, end)) return false;
        return true;
    }
};

}  // namespace resp::test
