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
    std::unique_ptr<Session> open() override { return std::make_unique<S>(state_); }

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
    void on_data(std::span<char> bytes, Reply& reply) override {
        uint64_t start = s_->seen.fetch_add(bytes.size());
        if (s_->at >= start && s_->at < start + bytes.size()) {
            if (s_->action == TriggerState::Action::corrupt) bytes[s_->at - start] ^= 0x20;
            else std::this_thread::sleep_for(std::chrono::milliseconds(s_->stall_ms));  // the behaviour under test
        }
        reply.send(bytes);
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
    void on_data(std::span<char> bytes, Reply& reply) override {
        held_.append(bytes.data(), bytes.size());
        size_t whole = held_.size() / s_->group * s_->group;
        if (whole == 0) return;
        reply.send(std::string_view(held_).substr(0, whole));
        held_.erase(0, whole);
    }

private:
    std::shared_ptr<GroupState> s_;
    std::string held_;
};

// HTTP/1.1 responder: "/" 200 with Content-Length, "/chunked" 200 chunked in three pieces, "/missing" 404,
// "/close" 200 then closes; 400 without a Host header. Counts the requests it parsed.
struct HttpState {
    std::atomic<uint64_t> requests{0};
};
class MiniHttp final : public Session {
public:
    explicit MiniHttp(std::shared_ptr<HttpState> s) : s_(std::move(s)) {}
    void on_data(std::span<char> bytes, Reply& out) override {
        auto send = [&out](std::string_view text) { out.send(text); };
        buf_.append(bytes.data(), bytes.size());
        for (size_t end; (end = buf_.find("\r\n\r\n")) != std::string::npos; buf_.erase(0, end + 4)) {
            s_->requests.fetch_add(1);
            std::string head = buf_.substr(0, end);
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
                return;
            } else {
                send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            }
        }
    }

private:
    std::shared_ptr<HttpState> s_;
    std::string buf_;
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
