// The multi-connection echo driver of test_util.hpp.
#include "test_util.hpp"

#include <chrono>

namespace kq::test {
namespace {

// The bytes the stream may send now: everything queued if pipelined, else the current payload once the
// previous ones have all come back.
std::string_view sendable(EchoStream& s) {
    while (s.next_payload < s.payloads.size()) {
        const std::string& p = s.payloads[s.next_payload];
        if (s.send_offset < p.size()) {
            if (!s.pipelined && s.received.size() < s.sent.size()) return {};
            return std::string_view(p).substr(s.send_offset);
        }
        ++s.next_payload;
        s.send_offset = 0;
    }
    return {};
}

bool done(const EchoStream& s) { return s.next_payload >= s.payloads.size() && s.received.size() >= s.sent.size(); }

void pump(EchoStream& s, short revents) {
    if (revents & POLLOUT) {
        std::string_view chunk = sendable(s);
        if (!chunk.empty()) {
            ssize_t n = ::send(s.fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
            if (n > 0) {
                s.sent.append(chunk.data(), static_cast<size_t>(n));
                s.send_offset += static_cast<size_t>(n);
            }
        }
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        ssize_t n = ::recv(s.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) s.received.append(buf, static_cast<size_t>(n));
    }
}

}  // namespace

bool drive_echo(std::vector<EchoStream>& streams, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<pollfd> pfds(streams.size());
    while (std::chrono::steady_clock::now() < deadline) {
        size_t active = 0;
        for (size_t i = 0; i < streams.size(); ++i) {
            EchoStream& s = streams[i];
            bool finished = done(s);
            active += finished ? 0 : 1;
            short want = finished ? 0 : POLLIN;
            if (!finished && !sendable(s).empty()) want |= POLLOUT;
            pfds[i] = pollfd{s.fd.get(), want, 0};
        }
        if (active == 0) return true;
        if (::poll(pfds.data(), pfds.size(), 100) < 0) return false;
        for (size_t i = 0; i < streams.size(); ++i) {
            if (pfds[i].revents) pump(streams[i], pfds[i].revents);
        }
    }
    return false;
}

}  // namespace kq::test
