// kqresp's protocol in an in-process server under many clients at once: 1,000 connections each mid-way
// through a request, most of them then closed or reset before finishing it. A request cut short must
// never run, so afterwards every counter holds exactly the increments whose replies were read.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "resp_client.hpp"
#include "resp_protocol.hpp"
#include "test_util.hpp"

using namespace kq::test;
using resp::test::RespClient;

namespace {

enum class Fate { finish, close, reset };

// One client thread's round: `conns` connections each send part of a request, then each finishes it
// (and checks the reply), closes, or resets. counts: the increments this thread saw answered, per key.
void client_round(uint16_t port, int thread, int conns, std::mt19937& rng, std::map<std::string, int>& counts,
                  int& failures) {
    struct Pending {
        std::unique_ptr<RespClient> client;
        std::string request, key;
        size_t sent = 0;
        Fate fate = Fate::finish;
    };
    std::vector<Pending> pending(static_cast<size_t>(conns));
    for (size_t i = 0; i < pending.size(); ++i) {
        Pending& p = pending[i];
        p.client = std::make_unique<RespClient>(port);
        p.key = "t" + std::to_string(thread) + ":c" + std::to_string(rng() % 5);
        switch (rng() % 4) {
        case 0:
            p.request = "INCR " + p.key + "\r\n";
            break;  // inline
        case 1:
            p.request = "*2\r\n$4\r\nINCR\r\n$" + std::to_string(p.key.size()) + "\r\n" + p.key + "\r\n";
            break;
        case 2:
            p.request = resp::test::command({"INCRBY", p.key, "1"});
            break;
        default:  // a large argument, so that the server holds a big partial request
            p.request = resp::test::command({"ECHO", std::string(200'000, 'e')});
            p.key.clear();
        }
        p.sent = 1 + rng() % (p.request.size() - 1);  // a strict prefix: never the whole request
        p.client->send(std::string_view(p.request).substr(0, p.sent));
        const unsigned r = rng() % 3;
        p.fate = r == 0 ? Fate::finish : r == 1 ? Fate::close : Fate::reset;
    }
    for (Pending& p : pending) {
        if (p.fate == Fate::finish) {
            p.client->send(std::string_view(p.request).substr(p.sent));
            auto reply = p.client->reply();
            const bool ok = reply && (p.key.empty() ? reply->starts_with("$200000\r\n") : reply->starts_with(":"));
            if (!ok) ++failures;
            else if (!p.key.empty()) ++counts[p.key];
        } else if (p.fate == Fate::reset) {
            linger l{1, 0};  // close() then sends RST instead of FIN
            ::setsockopt(p.client->fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        p.client.reset();
    }
}

TEST(RespStress, ThousandConnectionsClosedAndResetMidRequest) {
    kq::ServerConfig cfg;
    cfg.workers = 2;
    auto protocol = std::make_unique<resp::RespProtocol>();
    cfg.worker.max_input = resp::max_input_for(resp::Limits{});
    RunningServer server(cfg, std::move(protocol));
    constexpr int kThreads = 8, kConnsPerThread = 125, kRounds = 3;  // 1,000 connections open at once
    std::vector<std::map<std::string, int>> counts(kThreads);
    std::vector<int> failures(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(1234 + t));
            for (int round = 0; round < kRounds; ++round)
                client_round(server.port(), t, kConnsPerThread, rng, counts[t], failures[t]);
        });
    }
    for (auto& th : threads) th.join();

    RespClient check(server.port());
    EXPECT_EQ(check.call({"PING"}), "+PONG\r\n");
    size_t keys = 0;
    for (int t = 0; t < kThreads; ++t) {
        EXPECT_EQ(failures[t], 0) << "thread " << t;
        for (const auto& [key, n] : counts[t]) {
            EXPECT_EQ(check.call({"GET", key}),
                      "$" + std::to_string(std::to_string(n).size()) + "\r\n" + std::to_string(n) + "\r\n")
                << key;
            ++keys;
        }
    }
    // No increment cut short ran: no key exists beyond those whose increments were answered.
    EXPECT_EQ(check.call({"DBSIZE"}), ":" + std::to_string(keys) + "\r\n");
    EXPECT_EQ(check.call({"SET", "after", "all"}), "+OK\r\n");
    EXPECT_EQ(check.call({"GET", "after"}), "$3\r\nall\r\n");
}

}  // namespace
