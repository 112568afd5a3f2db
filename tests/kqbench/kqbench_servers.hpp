// Misbehaving and instrumented servers for the kqbench tests: test Protocols for the in-process server
// (one byte corrupted or one 500 ms stall, replies held back until a group is complete, a tiny HTTP/1.1
// responder), and a raw-socket server that resets or ignores every connection it accepts.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "in_process_server.hpp"
#include "kq/handler.hpp"
#include "kq/net.hpp"
#include "kq/protocols.hpp"
#include "kq/server.hpp"

namespace kq::test {

// A Protocol whose sessions are S, constructed with a shared State (counters shared by all connections).
template <class S, class State>
class TestProtocol final : public Protocol {
public:
    explicit TestProtocol(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::string_view name() const override { return "test"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<S>(state_); }

private:
    std::shared_ptr<State> state_;
};

template <class S, class State>
std::unique_ptr<Protocol> make_test_protocol(std::shared_ptr<State> state) {
    return std::make_unique<TestProtocol<S, State>>(std::move(state));
}

// Echo that acts once, on the byte at position `at` of everything the server receives (over all
// connections; fetch_add gives each call a disjoint range, so exactly one call sees that byte): it
// flips one bit of it, or blocks its worker for stall_ms, as a GC pause or a blocking call would.
struct TriggerState {
    enum class Action { corrupt, stall };
    Action action = Action::corrupt;
    uint64_t at = 0;
    int stall_ms = 500;
    std::atomic<uint64_t> seen{0};
};
class TriggerEcho final : public Session {
public:
    explicit TriggerEcho(std::shared_ptr<TriggerState> s) : s_(std::move(s)) {}
    size_t on_data(std::span<char> bytes, Conn& reply) override {
        uint64_t start = s_->seen.fetch_add(bytes.size());
        if (s_->at >= start && s_->at < start + bytes.size()) {
            if (s_->action == TriggerState::Action::corrupt) bytes[s_->at - start] ^= 0x20;
            else std::this_thread::sleep_for(std::chrono::milliseconds(s_->stall_ms));  // the behaviour under test
        }
        reply.send(bytes);
        return bytes.size();
    }

private:
    std::shared_ptr<TriggerState> s_;
};

// Echo that answers only once `group` bytes have arrived, then all of them: a client that keeps fewer
// requests than a group in flight is never answered.
struct GroupState {
    size_t group = 0;
};
class GroupingEcho final : public Session {
public:
    explicit GroupingEcho(std::shared_ptr<GroupState> s) : s_(std::move(s)) {}
    size_t on_data(std::span<char> bytes, Conn& reply) override {
        size_t whole = bytes.size() / s_->group * s_->group;
        reply.send(bytes.first(whole));
        return whole;  // the worker holds the rest
    }

private:
    std::shared_ptr<GroupState> s_;
};

// HTTP/1.1 responder: "/" 200 with Content-Length, "/chunked" 200 chunked in three pieces, "/missing" 404,
// "/close" 200 then closes; 400 without a Host header. Counts the requests it parsed.
struct HttpState {
    std::atomic<uint64_t> requests{0};
};
class MiniHttp final : public Session {
public:
    explicit MiniHttp(std::shared_ptr<HttpState> s) : s_(std::move(s)) {}
    size_t on_data(std::span<char> bytes, Conn& out) override {
        auto send = [&out](std::string_view text) { out.send(text); };
        const std::string_view in(bytes.data(), bytes.size());
        size_t used = 0;
        for (size_t end; (end = in.find("\r\n\r\n", used)) != std::string::npos; used = end + 4) {
            s_->requests.fetch_add(1);
            std::string head(in.substr(used, end - used));
            std::string path = head.substr(4, head.find(' ', 4) - 4);
            if (head.find("\r\nHost: ") == std::string::npos) {
                send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            } else if (path == "/chunked") {
                send(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n,\r\n6\r\n "
                    "world\r\n0\r\n\r\n");
            } else if (path == "/missing") {
                send("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
            } else if (path == "/close") {
                send("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
                out.close();
                return bytes.size();
            } else {
                send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            }
        }
        return used;  // an unfinished head is held by the worker
    }

private:
    std::shared_ptr<HttpState> s_;
};

// Accepts on its own thread and either resets every connection at once (SO_LINGER 0) or keeps it open
// and never answers. The destructor wakes the thread through a pipe and joins it.
class RawServer {
public:
    enum class Mode { reset, silent };
    explicit RawServer(Mode mode) : mode_(mode), listen_(listen_tcp(ListenOptions{})) {
        int p[2];
        if (::pipe(p) != 0) throw std::runtime_error("pipe");
        stop_read_.reset(p[0]);
        stop_write_.reset(p[1]);
        thread_ = std::thread([this] { loop(); });
    }
    ~RawServer() {
        [[maybe_unused]] ssize_t w = ::write(stop_write_.get(), "x", 1);
        thread_.join();
    }
    uint16_t port() const { return local_port(listen_.get()); }
    uint64_t accepted() const { return accepted_.load(); }

private:
    void loop() {
        for (;;) {
            pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) continue;
            if (fds[1].revents != 0) return;
            for (int fd; (fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
                accepted_.fetch_add(1);
                if (mode_ == Mode::reset) close_with_reset(UniqueFd(fd));
                else held_.emplace_back(fd);
            }
        }
    }
    Mode mode_;
    UniqueFd listen_, stop_read_, stop_write_;
    std::vector<UniqueFd> held_;
    std::atomic<uint64_t> accepted_{0};
    std::thread thread_;
};

// A TCP port with nothing listening on it: bound (so no one else takes it) but never listen()ed, so a
// connect to it is refused.
class ClosedPort {
public:
    ClosedPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    }
    uint16_t port() const { return local_port(fd_.get()); }

private:
    UniqueFd fd_;
};

}  // namespace kq::test
