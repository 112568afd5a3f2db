// How an HTTP connection ends when the server decides to end it: the answers it gave arrive whole,
// followed by a clean FIN and never a reset, however much of the client's input is still unread; and a
// graceful stop that finds a connection lingering or half-way through a request ends within its bounds.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <thread>

#include "http_test_client.hpp"
#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using HttpClose = BackendTest;

// A client with a small receive buffer, so that the server's answers wait in its own send queue (where
// a reset destroys them) rather than in ours.
UniqueFd client(uint16_t port) {
    UniqueFd fd = connect_blocking(port);
    int rcvbuf = 32 * 1024;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{20, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// The statuses of the whole responses at the front of `bytes`, and whether anything followed them.
struct Parsed {
    std::vector<int> statuses;
    bool last_says_close = false;
    size_t trailing = 0;  // bytes after the last whole response (a cut answer)
};

Parsed parse(const std::string& bytes) {
    Parsed p;
    size_t pos = 0;
    for (;;) {
        size_t end = bytes.find("\r\n\r\n", pos);
        if (end == std::string::npos) break;
        std::string head = bytes.substr(pos, end + 4 - pos);
        size_t cl = head.find("Content-Length: ");
        if (cl == std::string::npos) break;
        size_t body = std::stoul(head.substr(cl + 16));
        if (bytes.size() < end + 4 + body) break;
        p.statuses.push_back(std::stoi(head.substr(9, 3)));
        p.last_says_close = head.find("Connection: close") != std::string::npos;
        pos = end + 4 + body;
    }
    p.trailing = bytes.size() - pos;
    return p;
}

// Sends `bytes` from its own thread (the server answers while we send), then stops.
class Sender {
public:
    Sender(int fd, std::string bytes)
        : thread_([fd, b = std::move(bytes)] {
              size_t off = 0;
              while (off < b.size()) {
                  ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
                  if (n <= 0) return;  // the server closed: the test looks at what arrived
                  off += static_cast<size_t>(n);
              }
          }) {}
    ~Sender() { thread_.join(); }

private:
    std::thread thread_;
};

std::string get(std::string_view path, std::string_view extra = "") { return http::request("GET", path, extra); }

// Streamed answers, then one saying close, then more pipelined input than one read takes: the server
// stops reading while the large answers stream (the rest of the input waits, unread, in its kernel
// buffer and in the worker), then ends after the closing answer with that input unread. Every answer
// arrives whole, then a FIN, never a reset.
TEST_P(HttpClose, StreamedAnswersThenCloseDeliverEveryAnswerWhole) {
    RunningServer srv(config(1), make_http_protocol());
    UniqueFd fd = client(srv.port());
    std::string pipeline =
        get("/bytes/1048576") + get("/bytes/1048576") + get("/bytes/1048576", "Connection: close\r\n");
    while (pipeline.size() < 96 * 1024) pipeline += get("/bytes/1048576");
    Received got;
    {
        Sender sender(fd.get(), pipeline);
        got = read_until_closed(fd.get());
        ::shutdown(fd.get(), SHUT_RDWR);  // releases the sender if the server stopped reading it
    }
    Parsed p = parse(got.bytes);
    EXPECT_EQ(p.statuses, (std::vector<int>{200, 200, 200}));
    EXPECT_TRUE(p.last_says_close);
    EXPECT_EQ(p.trailing, 0u) << "an answer was cut after " << p.statuses.size() << " whole ones";
    EXPECT_FALSE(got.reset);
}

// "Connection: close" followed by more pipelined bytes than one read takes: the closing answer arrives
// whole, then a FIN.
TEST_P(HttpClose, ConnectionCloseWithMoreInputDeliversTheAnswerWhole) {
    RunningServer srv(config(1), make_http_protocol());
    UniqueFd fd = client(srv.port());
    std::string bytes = get("/bytes/1048576", "Connection: close\r\n");
    while (bytes.size() < 96 * 1024) bytes += get("/");
    Received got;
    {
        Sender sender(fd.get(), bytes);
        got = read_until_closed(fd.get());
        ::shutdown(fd.get(), SHUT_RDWR);
    }
    Parsed p = parse(got.bytes);
    EXPECT_EQ(p.statuses, std::vector<int>{200});
    EXPECT_EQ(p.trailing, 0u) << "the answer was cut at " << got.bytes.size() << " bytes";
    EXPECT_FALSE(got.reset);
}

// Two valid requests, then a byte no request can begin with, then more junk than one read takes: both
// answers whole, the 400 after them, then a FIN.
TEST_P(HttpClose, MalformedRequestAfterValidOnesDeliversAllAnswers) {
    RunningServer srv(config(1), make_http_protocol());
    UniqueFd fd = client(srv.port());
    Received got;
    {
        Sender sender(fd.get(), get("/bytes/1048576") + get("/bytes/1048576") + "\x01" + std::string(96 * 1024, 'j'));
        got = read_until_closed(fd.get());
        ::shutdown(fd.get(), SHUT_RDWR);
    }
    Parsed p = parse(got.bytes);
    EXPECT_EQ(p.statuses, (std::vector<int>{200, 200, 400}));
    EXPECT_EQ(p.trailing, 0u);
    EXPECT_FALSE(got.reset);
}

// A graceful stop while a connection lingers after a 413 (the client read it and keeps its socket open):
// the linger ends on its own clock and the server stops. (This once spun the worker forever.)
TEST_P(HttpClose, GracefulStopDuringALingerEndsWithTheLinger) {
    ServerConfig cfg = config(1);
    cfg.worker.linger_ms = 500;
    RunningServer srv(cfg, make_http_protocol());
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), http::request("POST", "/", "Content-Length: 2000000\r\n") + std::string(100'000, 'b'));
    Received got = read_until_closed(fd.get());  // the 413 and the FIN of the half-close
    EXPECT_TRUE(got.bytes.starts_with("HTTP/1.1 413")) << got.bytes.substr(0, 40);
    srv.stop_within(5000);
    EXPECT_EQ(srv.server().worker(0).stats().closed.get(), 1u);
}

// A graceful stop while a request head is half-way in: the request may still finish, its time-out
// answers 408, the connection lingers and the server stops. (This once read freed memory.)
TEST_P(HttpClose, GracefulStopWithAHalfReceivedHeadEndsAfterItsTimeout) {
    ServerConfig cfg = config(1);
    cfg.worker.request_timeout_ms = 300;
    cfg.worker.linger_ms = 500;
    RunningServer srv(cfg, make_http_protocol());
    UniqueFd fd = client(srv.port());
    const std::string partial = "GET / HTTP/1.1\r\nHost: a\r\n";
    send_all(fd.get(), partial);
    const WorkerStats& stats = srv.server().worker(0).stats();
    ASSERT_TRUE(eventually([&] { return stats.bytes_read.get() >= partial.size(); }));
    srv.server().stop();
    Received got = read_until_closed(fd.get());
    EXPECT_TRUE(got.bytes.starts_with("HTTP/1.1 408")) << got.bytes.substr(0, 40);
    EXPECT_FALSE(got.reset);
    srv.stop_within(5000);
    EXPECT_EQ(stats.request_timeouts.get(), 1u);
}

// The same stop, but the client completes its request: it is answered, then the connection closes.
TEST_P(HttpClose, GracefulStopLetsARequestUnderWayFinish) {
    RunningServer srv(config(1), make_http_protocol());
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), "GET / HTTP/1.1\r\n");
    const WorkerStats& stats = srv.server().worker(0).stats();
    ASSERT_TRUE(eventually([&] { return stats.bytes_read.get() >= 16; }));
    srv.server().stop();
    send_all(fd.get(), "Host: a\r\n\r\n");
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(parse(got.bytes).statuses, std::vector<int>{200});
    EXPECT_FALSE(got.reset);
    srv.stop_within(5000);
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpClose, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
