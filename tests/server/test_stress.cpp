// Stress under the sanitizers: 1,000 client connections at once against three in-process servers (echo,
// upper, http; 4 workers each on this 2-core machine), with clients that close, reset, and reset
// mid-request at random and reconnect. Every reply a client waited for is checked byte for byte, and
// the servers must stop cleanly with every connection they accepted closed.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>

#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kRoundsPerSlot = 6;  // sanitizers cost 5-15x: fewer requests, the same 1,000 connections
#else
constexpr int kRoundsPerSlot = 25;
#endif
constexpr int kDeadlineMs = 50'000;

// One request and the exact reply it must get. In `reply`, '\0' marks a byte the client cannot know in
// advance (only the HTTP Date value, whose length is fixed), matched by anything but CR or LF.
struct Exchange {
    std::string request, reply;
};

Exchange echo_exchange(std::mt19937_64& rng) {
    size_t len = rng() % 10 == 0 ? 1 + rng() % (64 * 1024) : 1 + rng() % 2048;
    std::string bytes = random_bytes(rng, len);
    for (char& c : bytes) c = c == '\0' ? '0' : c;  // '\0' is the reply wildcard
    return {bytes, bytes};
}

Exchange upper_exchange(std::mt19937_64& rng) {
    std::string in(1 + rng() % 4096, ' ');
    for (char& c : in) c = static_cast<char>(' ' + rng() % 95);  // printable ASCII, both cases
    std::string out = in;
    for (char& c : out) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
    return {in, out};
}

// 1 to 4 pipelined GET or HEAD /bytes/N requests; the answers as this server writes them.
Exchange http_exchange(std::mt19937_64& rng) {
    Exchange e;
    for (size_t k = 1 + rng() % 4; k > 0; --k) {
        size_t n = rng() % 16384;
        bool head = rng() % 4 == 0;
        e.request +=
            std::string(head ? "HEAD" : "GET") + " /bytes/" + std::to_string(n) + " HTTP/1.1\r\nHost: s\r\n\r\n";
        e.reply += "HTTP/1.1 200 OK\r\nServer: kqserver\r\nDate: " + std::string(29, '\0') +
                   "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(n) +
                   "\r\nConnection: keep-alive\r\n\r\n";
        if (!head) e.reply.append(n, 'x');
    }
    return e;
}

struct Tally {
    uint64_t connections = 0, verified = 0, closes = 0, resets = 0, aborts = 0, failures = 0;
};

// One client thread: `slots` connections to one server kept open at once, each running exchanges one at a
// time; between exchanges a connection may close, reset, or send a request and reset without waiting,
// and is then replaced by a new one until the slot has used its rounds.
class Driver {
public:
    Driver(uint16_t port, size_t slots, std::function<Exchange(std::mt19937_64&)> make, uint64_t seed)
        : port_(port), make_(std::move(make)), rng_(seed), slots_(slots) {
        for (auto& s : slots_) open(s);
    }

    // Runs until every slot has used its rounds; false on the deadline.
    bool run(int deadline_ms) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
        std::vector<pollfd> pfds(slots_.size());
        while (std::chrono::steady_clock::now() < deadline) {
            size_t active = 0;
            for (size_t i = 0; i < slots_.size(); ++i) {
                Slot& s = slots_[i];
                if (s.fd) ++active;
                short want = s.fd ? POLLIN : 0;
                if (s.fd && s.sent < s.x.request.size()) want |= POLLOUT;
                pfds[i] = pollfd{s.fd ? s.fd.get() : -1, want, 0};
            }
            if (active == 0) return true;
            if (::poll(pfds.data(), pfds.size(), 100) < 0) return false;
            for (size_t i = 0; i < slots_.size(); ++i) {
                if (pfds[i].revents) step(slots_[i], pfds[i].revents);
            }
        }
        return false;
    }
    const Tally& tally() const { return tally_; }

private:
    struct Slot {
        UniqueFd fd;
        Exchange x;
        size_t sent = 0, matched = 0;
        int rounds = kRoundsPerSlot;
    };

    void open(Slot& s) {
        s.fd = connect_tcp("127.0.0.1", port_, true);
        ++tally_.connections;
        next(s);
    }

    // Between exchanges: usually the next request; sometimes a close, a reset, or an abandoned request.
    void next(Slot& s) {
        s.sent = s.matched = 0;
        s.x = {};
        if (s.rounds-- <= 0) return s.fd.reset();
        switch (rng_() % 16) {
        case 0:
            ++tally_.closes;
            s.fd.reset();
            return open(s);
        case 1:
            ++tally_.resets;
            close_with_reset(std::move(s.fd));
            return open(s);
        case 2: {
            ++tally_.aborts;  // a request in flight, then gone: the server must cope, nobody checks a reply
            Exchange x = make_(rng_);
            (void)::send(s.fd.get(), x.request.data(), x.request.size(), MSG_NOSIGNAL);
            close_with_reset(std::move(s.fd));
            return open(s);
        }
        default:
            s.x = make_(rng_);
        }
    }

    void step(Slot& s, short revents) {
        if ((revents & POLLOUT) && s.sent < s.x.request.size()) {
            ssize_t n = ::send(s.fd.get(), s.x.request.data() + s.sent, s.x.request.size() - s.sent, MSG_NOSIGNAL);
            if (n > 0) s.sent += static_cast<size_t>(n);
        }
        if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
        char buf[65536];
        ssize_t n = ::recv(s.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0 || !matches(s, std::string_view(buf, static_cast<size_t>(n)))) {
            ++tally_.failures;  // the server closed, reset, or answered wrongly: this slot ends here
            s.rounds = 0;
            return next(s);
        }
        if (s.matched == s.x.reply.size() && s.sent == s.x.request.size()) {
            ++tally_.verified;
            next(s);
        }
    }

    bool matches(Slot& s, std::string_view got) {
        if (got.size() > s.x.reply.size() - s.matched) return false;  // more than was asked for
        for (char c : got) {
            char want = s.x.reply[s.matched++];
            if (want == '\0' ? (c == '\r' || c == '\n') : c != want) return false;
        }
        return true;
    }

    uint16_t port_;
    std::function<Exchange(std::mt19937_64&)> make_;
    std::mt19937_64 rng_;
    std::vector<Slot> slots_;
    Tally tally_;
};

TEST(Stress, ThousandConnectionsMixedProtocolsRandomClosesAndResets) {
    auto config = [](Dispatch d) {
        ServerConfig cfg;
        cfg.workers = 4;
        cfg.dispatch = d;
        return cfg;
    };
    RunningServer echo(config(Dispatch::round_robin), "echo");
    RunningServer upper(config(Dispatch::least_connections), "upper");
    RunningServer http(config(Dispatch::round_robin), make_http_protocol());
    std::vector<RunningServer*> servers{&echo, &upper, &http};
    auto start = std::chrono::steady_clock::now();
    // All 1,000 connect before any traffic: the slots open in the constructors, on this thread.
    std::vector<std::unique_ptr<Driver>> drivers;
    drivers.push_back(std::make_unique<Driver>(echo.port(), 400, echo_exchange, 1));
    drivers.push_back(std::make_unique<Driver>(upper.port(), 300, upper_exchange, 2));
    drivers.push_back(std::make_unique<Driver>(http.port(), 300, http_exchange, 3));
    std::vector<int> finished(drivers.size(), 0);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < drivers.size(); ++i)
        threads.emplace_back([&, i] { finished[i] = drivers[i]->run(kDeadlineMs); });
    for (auto& t : threads) t.join();

    Tally all;
    for (size_t i = 0; i < drivers.size(); ++i) {
        const Tally& t = drivers[i]->tally();
        EXPECT_TRUE(finished[i]) << "driver " << i << " missed the deadline";
        EXPECT_EQ(t.failures, 0u) << "driver " << i << ": a reply was wrong, or the server dropped a connection";
        EXPECT_GT(t.verified, 0u);
        all.connections += t.connections, all.verified += t.verified, all.closes += t.closes;
        all.resets += t.resets, all.aborts += t.aborts, all.failures += t.failures;
    }
    // Every connection a client opened reaches a worker, and each is closed once the client has gone.
    for (size_t i = 0; i < servers.size(); ++i) {
        const Server& srv = servers[i]->server();
        uint64_t opened = drivers[i]->tally().connections;
        auto accepted = [&] { return worker_total(srv, &WorkerStats::accepted); };
        auto closed = [&] { return worker_total(srv, &WorkerStats::closed); };
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while ((accepted() < opened || closed() < accepted()) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        EXPECT_EQ(accepted(), opened) << srv.protocol().name();
        EXPECT_EQ(closed(), accepted()) << srv.protocol().name();
    }
    for (auto* s : servers) s->stop();  // joins: a worker that cannot stop hangs the test here
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "stress: %llu connections (1000 at once), %llu verified exchanges, %llu closes, %llu resets, "
        "%llu abandoned requests, %lld ms\n",
        static_cast<unsigned long long>(all.connections), static_cast<unsigned long long>(all.verified),
        static_cast<unsigned long long>(all.closes), static_cast<unsigned long long>(all.resets),
        static_cast<unsigned long long>(all.aborts), static_cast<long long>(ms));
}

}  // namespace
