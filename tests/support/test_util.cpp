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

std::vector<EchoStream> random_echo_streams(uint16_t port, size_t count, size_t max_size, size_t max_payloads,
                                            size_t pipeline_every, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> size(1, max_size), payloads(1, max_payloads);
    std::vector<EchoStream> streams(count);
    for (size_t i = 0; i < count; ++i) {
        auto& s = streams[i];
        s.fd = connect_tcp("127.0.0.1", port, true);
        s.pipelined = (i % pipeline_every == 0);
        for (size_t k = payloads(rng); k > 0; --k) s.payloads.push_back(random_bytes(rng, size(rng)));
    }
    return streams;
}

void expect_limit_queues_next_client(RunningServer& srv, int limit) {
    std::vector<UniqueFd> first;
    for (int i = 0; i < limit; ++i) {
        first.push_back(connect_blocking(srv.port()));
        send_all(first.back().get(), "a");
        ASSERT_EQ(recv_exact(first.back().get(), 1), "a");
    }
    UniqueFd next = connect_blocking(srv.port());  // the kernel completes the handshake
    send_all(next.get(), "b");
    EXPECT_FALSE(readable_within(next.get(), 300)) << "served beyond --max-connections";
    first[0].reset();
    EXPECT_EQ(recv_exact(next.get(), 1), "b");
    EXPECT_GE(srv.server().accept_totals().limit_pauses, 1u);
}

}  // namespace kq::test
