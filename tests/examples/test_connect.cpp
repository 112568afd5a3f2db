// Conn::connect over real sockets: a session that dials a target when its client connects and reports
// the outcome to that client as one line ("connected", or "failed ERRNO"); the connected session passes
// what the target sends on to the client. Success, a refusal, a time-out (a listener whose queue is
// full drops the SYN), and the asking connection closing first: then neither callback runs and the new
// connection is closed.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

struct DialCounts {
    std::atomic<int> opened{0}, failed{0};
};

// The connected side: what the target sends goes to the client that asked, through its handle.
class RelaySession final : public Session {
public:
    explicit RelaySession(ConnHandle client) : client_(std::move(client)) {}
    size_t on_data(std::span<char> bytes, Conn&) override {
        client_.send(std::string(bytes.data(), bytes.size()));
        return bytes.size();
    }

private:
    ConnHandle client_;
};

class DialSession final : public Session {
public:
    DialSession(Conn& conn, const SocketAddress& to, std::chrono::milliseconds timeout, DialCounts& counts)
        : conn_(conn) {
        conn.send("dialing\n");
        conn.connect(
            to, timeout,
            [this, &counts](Conn& target) -> std::unique_ptr<Session> {
                counts.opened.fetch_add(1);
                conn_.send("connected\n");
                target.send("hello target\n");
                return std::make_unique<RelaySession>(conn_.handle());
            },
            [this, &counts](int error) {
                counts.failed.fetch_add(1);
                conn_.send("failed " + std::to_string(error) + "\n");
            });
    }
    size_t on_data(std::span<char> bytes, Conn&) override { return bytes.size(); }

private:
    Conn& conn_;
};

class DialProtocol final : public Protocol {
public:
    DialProtocol(SocketAddress to, std::chrono::milliseconds timeout) : to_(to), timeout_(timeout) {}
    std::string_view name() const override { return "dial"; }
    std::unique_ptr<Session> open(Conn& conn) override {
        return std::make_unique<DialSession>(conn, to_, timeout_, counts);
    }
    DialCounts counts;

private:
    SocketAddress to_;
    std::chrono::milliseconds timeout_;
};

struct Dialer {
    Dialer(uint16_t target_port, std::chrono::milliseconds timeout, Backend backend) {
        auto p = std::make_unique<DialProtocol>(SocketAddress::numeric("127.0.0.1", target_port), timeout);
        protocol = p.get();
        ServerConfig cfg;
        cfg.workers = 1;
        cfg.worker.backend = backend;
        server = std::make_unique<RunningServer>(cfg, std::move(p));
    }
    // Outbound connections started and not yet closed, and accepted ones not yet closed.
    uint64_t outbound_open() const {
        return server->total(&WorkerStats::outbound) - server->total(&WorkerStats::outbound_closed);
    }
    uint64_t accepted_open() const { return server->accepted() - server->total(&WorkerStats::closed); }
    DialProtocol* protocol = nullptr;
    std::unique_ptr<RunningServer> server;
};

std::string read_line(int fd) {
    std::string line;
    char c;
    while (::recv(fd, &c, 1, 0) == 1) {
        line += c;
        if (c == '\n') break;
    }
    return line;
}

// On every backend: the readiness ones learn of the connect through a WRITE edge, io_uring through a poll.
using ConnConnect = BackendTest;

TEST_P(ConnConnect, ConnectsAndTheNewSessionServesTheTarget) {
    RunningServer echo(ServerConfig{});
    Dialer dialer(echo.port(), std::chrono::milliseconds(5000), GetParam());
    UniqueFd c = connect_with_read_timeout(dialer.server->port());
    EXPECT_EQ(read_line(c.get()), "dialing\n");
    EXPECT_EQ(read_line(c.get()), "connected\n");
    EXPECT_EQ(read_line(c.get()), "hello target\n");  // sent to the echo server, relayed back
    EXPECT_EQ(dialer.server->total(&WorkerStats::connects), 1u);
    EXPECT_EQ(dialer.protocol->counts.failed.load(), 0);
    c.reset();
    // The relay connection stays open (it has its own life); stopping the server closes it.
    dialer.server->stop();
    EXPECT_EQ(dialer.outbound_open(), 0u);
    EXPECT_EQ(dialer.accepted_open(), 0u);
}

TEST_P(ConnConnect, RefusedReportsECONNREFUSED) {
    RefusingPort refusing;
    Dialer dialer(refusing.port, std::chrono::milliseconds(5000), GetParam());
    UniqueFd c = connect_with_read_timeout(dialer.server->port());
    EXPECT_EQ(read_line(c.get()), "dialing\n");
    EXPECT_EQ(read_line(c.get()), "failed " + std::to_string(ECONNREFUSED) + "\n");
    EXPECT_EQ(dialer.protocol->counts.opened.load(), 0);
    EXPECT_EQ(dialer.server->total(&WorkerStats::connect_failures), 1u);
    EXPECT_TRUE(eventually([&] { return dialer.outbound_open() == 0; }));
}

TEST_P(ConnConnect, NoAnswerReportsETIMEDOUTAfterTheTimeout) {
    UnresponsiveListener silent;
    Dialer dialer(silent.port, std::chrono::milliseconds(300), GetParam());
    auto start = std::chrono::steady_clock::now();
    UniqueFd c = connect_with_read_timeout(dialer.server->port());
    EXPECT_EQ(read_line(c.get()), "dialing\n");
    EXPECT_EQ(read_line(c.get()), "failed " + std::to_string(ETIMEDOUT) + "\n");
    const int64_t waited = ms_since(start);
    EXPECT_GE(waited, 290);  // the worker's clock has millisecond resolution
    EXPECT_LT(waited, 5000);
    EXPECT_EQ(dialer.protocol->counts.opened.load(), 0);
    EXPECT_TRUE(eventually([&] { return dialer.outbound_open() == 0; }));
}

TEST_P(ConnConnect, AskerClosedFirstNeitherCallbackRunsAndTheConnectionIsClosed) {
    UnresponsiveListener silent;  // the connect cannot complete before the asker has gone
    Dialer dialer(silent.port, std::chrono::milliseconds(300), GetParam());
    {
        UniqueFd c = connect_with_read_timeout(dialer.server->port());
        EXPECT_EQ(read_line(c.get()), "dialing\n");  // the connect was started
        ::shutdown(c.get(), SHUT_WR);                // the session's default on_peer_eof closes it
        EXPECT_EQ(recv_until_eof(c.get()), "");      // and it has closed
    }
    EXPECT_TRUE(eventually([&] { return dialer.accepted_open() == 0; }));
    // The pending connect is closed once it would have timed out, and reports to nobody.
    EXPECT_TRUE(eventually([&] { return dialer.outbound_open() == 0; }));
    EXPECT_EQ(dialer.protocol->counts.opened.load(), 0);
    EXPECT_EQ(dialer.protocol->counts.failed.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ConnConnect, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
