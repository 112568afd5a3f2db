// Limits and shutdown: idle time-out, the request (slowloris) time-out, --max-connections, and the
// graceful drain on stop. Each asserts what the healthy clients saw, not only that the server lived.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>

#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using namespace std::chrono_literals;

namespace {

// An idle connection is closed after the time-out; one that keeps talking is not.
TEST(Limits, IdleConnectionsAreClosedActiveOnesAreNot) {
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.worker.idle_timeout_ms = 1500;  // long beside the 100 ms pacing, so a loaded machine cannot flake it
    RunningServer srv(cfg);
    UniqueFd idle = connect_blocking(srv.port());
    UniqueFd busy = connect_blocking(srv.port());
    send_all(idle.get(), "x");
    ASSERT_EQ(recv_exact(idle.get(), 1), "x");
    for (int i = 0; i < 25; ++i) {  // 25 x 100 ms = 2.5 s of traffic, longer than the idle time-out
        send_all(busy.get(), "y");
        ASSERT_EQ(recv_exact(busy.get(), 1), "y") << "an active connection was closed";
        std::this_thread::sleep_for(100ms);  // pacing of the traffic, not synchronisation
    }
    EXPECT_EQ(recv_until_eof(idle.get()), "");                          // the idle one got EOF ...
    EXPECT_EQ(srv.server().worker(0).stats().idle_timeouts.get(), 1u);  // ... and only it timed out
}

// Slowloris: a request head trickling in a byte at a time is cut off with 408 once the request time-out
// (counted from its first byte) passes, while a healthy client on the same worker is served throughout.
TEST(Limits, SlowRequestGets408AndHealthyClientIsServed) {
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.worker.request_timeout_ms = 400;
    RunningServer srv(cfg, make_http_protocol());
    UniqueFd slow = connect_blocking(srv.port());
    UniqueFd healthy = connect_blocking(srv.port());
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    std::string got;
    for (size_t i = 0; i < 40 && !readable_within(slow.get(), 0); ++i) {
        send_all(slow.get(), std::string(1, i < head.size() ? head[i] : 'a'));
        send_all(healthy.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        char buf[4096];
        ASSERT_GT(::recv(healthy.get(), buf, sizeof buf, 0), 0) << "healthy client not served";
        std::this_thread::sleep_for(50ms);  // one byte every 50 ms: pacing, not synchronisation
    }
    got = recv_until_eof(slow.get());
    EXPECT_TRUE(got.starts_with("HTTP/1.1 408")) << got;
    EXPECT_EQ(srv.server().worker(0).stats().request_timeouts.get(), 1u);
}

// Empty lines before a request belong to it (RFC 9112 §2.2): a client that trickles bare CRLFs after a
// complete request is held to the request time-out from the first of them, where each byte used to reset
// the idle time-out and no request ever began.
TEST(Limits, TrickledEmptyLinesBetweenRequestsGet408) {
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.worker.request_timeout_ms = 400;
    RunningServer srv(cfg, make_http_protocol());
    UniqueFd c = connect_blocking(srv.port());
    send_all(c.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string first;
    while (!first.ends_with("Hello from kqserver\n")) {
        char buf[4096];
        const ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        ASSERT_GT(n, 0) << "no answer to the first request";
        first.append(buf, static_cast<size_t>(n));
    }
    size_t sent = 0;
    for (; sent < 60 && !readable_within(c.get(), 0); ++sent) {
        send_all(c.get(), "\r\n");
        std::this_thread::sleep_for(50ms);  // one empty line every 50 ms: pacing, not synchronisation
    }
    ASSERT_LT(sent, 60u) << "3 s of empty lines and the connection is still open";
    const std::string got = recv_until_eof(c.get());
    EXPECT_TRUE(got.starts_with("HTTP/1.1 408")) << got;
    EXPECT_EQ(srv.server().worker(0).stats().request_timeouts.get(), 1u);
}

// A pipelining client whose every read ends in the middle of its next request: each request is timed from
// the read that began it, not from the first request's, so 1.5 s of requests answered in 100 ms each pass a
// 400 ms request time-out. (Each went on the first request's clock and got 408 after 400 ms.)
TEST(Limits, PipelinedRequestsEachGetTheirOwnTimeout) {
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.worker.request_timeout_ms = 400;
    RunningServer srv(cfg, make_http_protocol());
    UniqueFd c = connect_blocking(srv.port());
    const std::string request = "GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n";
    const size_t cut = 10;  // each send ends a request and begins the next
    send_all(c.get(), request.substr(0, cut));
    std::string stream;
    const auto answers = [&] {
        size_t n = 0;
        for (size_t at = stream.find("HTTP/1.1 200 "); at != std::string::npos;
             at = stream.find("HTTP/1.1 200 ", at + 1))
            ++n;
        return n;
    };
    for (size_t i = 1; i <= 15; ++i) {
        std::this_thread::sleep_for(100ms);  // pacing, not synchronisation
        send_all(c.get(), request.substr(cut) + request.substr(0, cut));
        while (answers() < i) {
            ASSERT_TRUE(readable_within(c.get(), 5000)) << "no answer " << i;
            char buf[4096];
            const ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            ASSERT_GT(n, 0) << "closed after " << answers() << " answers: " << stream;
            stream.append(buf, static_cast<size_t>(n));
            ASSERT_EQ(stream.find("HTTP/1.1 408"), std::string::npos) << "408 after " << answers() << " answers";
        }
    }
    EXPECT_EQ(srv.server().worker(0).stats().request_timeouts.get(), 0u);
}

// At --max-connections the acceptor leaves new clients in the kernel backlog: the fourth client is not
// served while three are open, and is served as soon as one of them closes.
TEST(Limits, MaxConnectionsQueuesNewClientsUntilOneCloses) {
    ServerConfig cfg;
    cfg.workers = 2;
    cfg.max_connections = 3;
    RunningServer srv(cfg);
    expect_limit_queues_next_client(srv, 3);
}

// Graceful stop: a client that has sent 2 MiB and not yet read any reply still gets every byte back,
// then EOF; after the stop the port refuses new clients, and the server's run() returns.
TEST(Limits, GracefulStopFlushesWhatWasReceived) {
    ServerConfig cfg;
    cfg.workers = 2;
    cfg.worker.high_water = 64 << 20;  // let the server take all 2 MiB in while owing the reply
    RunningServer srv(cfg);
    std::mt19937_64 rng(5);
    std::string payload = random_bytes(rng, 2 << 20);
    UniqueFd fd = connect_blocking(srv.port());
    send_all(fd.get(), payload);
    const auto& w0 = srv.server().worker(0).stats();
    const auto& w1 = srv.server().worker(1).stats();
    while (w0.bytes_read.get() + w1.bytes_read.get() < payload.size()) std::this_thread::yield();
    std::string received;
    uint16_t port = srv.port();
    std::thread stopper([&] { srv.stop(); });  // returns only when the drain has finished
    received += recv_until_eof(fd.get());
    stopper.join();
    EXPECT_EQ(received.size(), payload.size());
    EXPECT_TRUE(received == payload);
    EXPECT_THROW(connect_blocking(port), std::system_error);
}

// stop_now() cuts a drain short: a client that never reads cannot hold the server up.
TEST(Limits, StopNowEndsADrainThatCannotFinish) {
    ServerConfig cfg;
    cfg.workers = 1;
    cfg.worker.drain_timeout_ms = 60'000;
    RunningServer srv(cfg);
    UniqueFd stuck = connect_tcp("127.0.0.1", srv.port(), true);
    std::string big(8 << 20, 'z');
    size_t off = 0;
    for (int i = 0; i < 1000; ++i) {  // fill both directions until the server stops reading us
        ssize_t n = ::send(stuck.get(), big.data() + off, big.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    std::thread stopper([&] { srv.stop(); });
    srv.server().stop_now();
    stopper.join();  // would wait 60 s without stop_now()
    SUCCEED();
}

}  // namespace
