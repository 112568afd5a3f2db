// The kvstore example protocol (examples/kvstore) served by an in-process kq::Server: what a client sees
// over real sockets, across reads, workers and connections.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kv_protocol.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

// A blocking connection with a 10 s receive time-out: a missing reply fails the test, never hangs it.
class Client : BufferedConn {
public:
    explicit Client(uint16_t port) : BufferedConn(port) {
        timeval tv{10, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        set_nodelay(fd_.get(), true);  // each send() leaves as its own segment
    }
    void send(std::string_view s) { send_all(fd_.get(), s.data(), s.size()); }
    // One reply line with its "\n"; what arrived so far if the server closes or times out first.
    std::string read_line() {
        size_t nl;
        while ((nl = buf_.find('\n')) == std::string::npos && fill()) {}
        size_t n = nl == std::string::npos ? buf_.size() : nl + 1;
        std::string line = buf_.substr(0, n);
        buf_.erase(0, n);
        return line;
    }
    std::string read(size_t n) {
        while (buf_.size() < n && fill()) {}
        std::string out = buf_.substr(0, n);
        buf_.erase(0, out.size());
        return out;
    }
    std::string call(std::string_view command) {
        send(std::string(command) + "\n");
        return read_line();
    }
    std::string rest_until_eof() {
        while (fill()) {}
        return std::exchange(buf_, {});
    }
    int fd() const { return fd_.get(); }
};

struct KvServer {
    explicit KvServer(int workers, kvstore::KvOptions options = {}, WorkerConfig worker = {}) {
        auto protocol = std::make_unique<kvstore::KvProtocol>(options);
        store = &protocol->store();
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker = worker;
        server = std::make_unique<RunningServer>(cfg, std::move(protocol));
    }
    uint16_t port() const { return server->port(); }
    uint64_t bytes_read() { return worker_total(server->server(), &WorkerStats::bytes_read); }
    kvstore::ShardedStore* store = nullptr;  // owned by the server's protocol
    std::unique_ptr<RunningServer> server;
};

TEST(kvstoreServer, SetGetDelOverTheWire) {
    KvServer srv(2);
    Client c(srv.port());
    EXPECT_EQ(c.call("GET colour"), "NOT_FOUND\n");
    EXPECT_EQ(c.call("SET colour dark blue"), "OK\n");
    EXPECT_EQ(c.call("GET colour"), "VALUE dark blue\n");
    EXPECT_EQ(c.call("SET colour red"), "OK\n");
    EXPECT_EQ(c.call("GET colour"), "VALUE red\n");
    EXPECT_EQ(c.call("DEL colour"), "DELETED\n");
    EXPECT_EQ(c.call("DEL colour"), "NOT_FOUND\n");
    EXPECT_EQ(c.call("GET colour"), "NOT_FOUND\n");
}

// A thousand commands in one send: every reply comes back, in order, and none is lost at the read
// boundaries inside the batch (the 24 KiB of commands may arrive in several reads).
TEST(kvstoreServer, PipelinedCommandsAreAnsweredInOrder) {
    KvServer srv(2);
    Client c(srv.port());
    std::string batch, expected;
    for (int i = 0; i < 1000; ++i) {
        std::string k = "key" + std::to_string(i), v = "value-" + std::to_string(i * 7);
        batch += "SET " + k + " " + v + "\r\nGET " + k + "\n";
        expected += "OK\nVALUE " + v + "\n";
        if (i % 10 == 0) {
            batch += "DEL " + k + "\nGET " + k + "\n";
            expected += "DELETED\nNOT_FOUND\n";
        }
    }
    c.send(batch);
    EXPECT_EQ(c.read(expected.size()), expected);
    EXPECT_EQ(srv.store->size(), 900u);
}

// One byte per read: each send waits until a worker has read it (the bytes_read counters), so the
// session must carry a partial command across a hundred on_data() calls, copying it each time out of
// a scratch buffer the next read overwrites.
TEST(kvstoreServer, CommandSplitByteByByte) {
    KvServer srv(1);
    Client c(srv.port());
    std::string input = "SET split a value with spaces\r\nGET split\nDEL split\n";
    uint64_t sent = srv.bytes_read();
    for (char ch : input) {
        c.send(std::string_view(&ch, 1));
        ++sent;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (srv.bytes_read() < sent) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "byte " << sent << " never read";
            std::this_thread::yield();
        }
    }
    std::string expected = "OK\nVALUE a value with spaces\nDELETED\n";
    EXPECT_EQ(c.read(expected.size()), expected);
}

// Round-robin puts two connections on the two workers; the store is shared, so each sees the other's
// writes at once (a reply means the write is done: the next command on any connection sees it).
TEST(kvstoreServer, ClientsOnDifferentWorkersSeeEachOthersWrites) {
    KvServer srv(2);
    Client a(srv.port());
    EXPECT_EQ(a.call("SET from-a 1"), "OK\n");  // a round trip: a is admitted before b connects
    Client b(srv.port());
    EXPECT_EQ(b.call("GET from-a"), "VALUE 1\n");
    ASSERT_EQ(srv.server->server().worker(0).stats().accepted.get(), 1u);
    ASSERT_EQ(srv.server->server().worker(1).stats().accepted.get(), 1u);

    EXPECT_EQ(b.call("SET from-b 2"), "OK\n");
    EXPECT_EQ(a.call("GET from-b"), "VALUE 2\n");
    EXPECT_EQ(a.call("DEL from-b"), "DELETED\n");
    EXPECT_EQ(b.call("GET from-b"), "NOT_FOUND\n");
}

TEST(kvstoreServer, BadCommandsAreExplainedAndTheConnectionStaysOpen) {
    KvServer srv(2);
    Client c(srv.port());
    EXPECT_EQ(c.call("HELLO there"), "ERROR unknown command\n");
    EXPECT_EQ(c.call(""), "ERROR empty command\n");
    EXPECT_EQ(c.call("SET lonely"), "ERROR usage: SET key value\n");
    EXPECT_EQ(c.call("GET"), "ERROR usage: GET key\n");
    EXPECT_EQ(c.call("GET two keys"), "ERROR usage: GET key\n");
    EXPECT_EQ(c.call("DEL"), "ERROR usage: DEL key\n");
    EXPECT_EQ(c.call(std::string("GET \x01\xff")), "NOT_FOUND\n");  // any bytes but space make a key
    EXPECT_EQ(c.call("SET ok yes"), "OK\n");
    EXPECT_EQ(c.call("GET ok"), "VALUE yes\n");
}

// 64 KiB + 1 bytes without a newline: the command before it is answered, then the error, then the
// server closes (after every byte was read, so the close is a FIN, not a reset that could eat the
// error line). Another connection on the same single worker goes on as if nothing happened.
TEST(kvstoreServer, TooLongLineClosesOnlyThatConnection) {
    KvServer srv(1);
    Client bystander(srv.port());
    EXPECT_EQ(bystander.call("SET before 1"), "OK\n");

    Client c(srv.port());
    c.send("SET k v\n" + std::string(64 * 1024 + 1, 'x'));
    EXPECT_EQ(c.rest_until_eof(), "OK\nERROR line too long\n");

    EXPECT_EQ(bystander.call("GET before"), "VALUE 1\n");
    EXPECT_EQ(bystander.call("GET k"), "VALUE v\n");
}

// A line of exactly --max-line bytes is a command; one byte more is not.
TEST(kvstoreServer, LineOfExactlyMaxLineIsAccepted) {
    KvServer srv(1, kvstore::KvOptions{.max_line = 1000});
    Client c(srv.port());
    std::string value(1000 - 6, 'v');
    EXPECT_EQ(c.call("SET k " + value), "OK\n");
    EXPECT_EQ(c.call("GET k"), "VALUE " + value + "\n");
    c.send("SET k " + value + "v");
    EXPECT_EQ(c.rest_until_eof(), "ERROR line too long\n");
}

// A command begun and never finished is timed by the worker from its first byte (the session reports
// mid_request()); the client is told and closed, while a complete command before it was answered.
TEST(kvstoreServer, UnfinishedCommandTimesOut) {
    WorkerConfig worker;
    worker.request_timeout_ms = 200;
    KvServer srv(1, {}, worker);
    Client c(srv.port());
    auto start = std::chrono::steady_clock::now();
    c.send("SET k v\nGET k");
    EXPECT_EQ(c.rest_until_eof(), "OK\nERROR timeout\n");
    EXPECT_GE(std::chrono::steady_clock::now() - start,
              std::chrono::milliseconds(150));  // the worker's clock is coarse
}

// Half-closing after an unterminated command still gets its answer, then the server's EOF.
TEST(kvstoreServer, UnterminatedCommandIsAnsweredAtHalfClose) {
    KvServer srv(2);
    Client c(srv.port());
    c.send("SET k v\nGET k");
    ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
    EXPECT_EQ(c.rest_until_eof(), "OK\nVALUE v\n");
}

// Eight clients on four workers write their own keys and one shared key at once, pipelining: the
// per-shard locks keep every write (TSan runs this one), and each client reads its own writes back.
TEST(kvstoreServer, ConcurrentClientsOnAllWorkers) {
    KvServer srv(4);
    constexpr int kClients = 8, kKeys = 300;
    std::vector<std::string> results(kClients), expected(kClients);
    std::vector<std::thread> threads;
    for (int t = 0; t < kClients; ++t) {
        threads.emplace_back([&, t] {
            Client c(srv.port());
            std::string batch;
            for (int i = 0; i < kKeys; ++i) {
                std::string k = "c" + std::to_string(t) + "-" + std::to_string(i);
                batch +=
                    "SET " + k + " " + std::to_string(i) + "\nSET shared " + std::to_string(t) + "\nGET " + k + "\n";
                expected[static_cast<size_t>(t)] += "OK\nOK\nVALUE " + std::to_string(i) + "\n";
            }
            c.send(batch);
            results[static_cast<size_t>(t)] = c.read(expected[static_cast<size_t>(t)].size());
        });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kClients; ++t) EXPECT_EQ(results[static_cast<size_t>(t)], expected[static_cast<size_t>(t)]);
    EXPECT_EQ(srv.store->size(), static_cast<size_t>(kClients * kKeys + 1));
}

}  // namespace
