// Connection lifecycle: every state a connection can be in (idle, mid-request, reading paused by
// backpressure, flushing before a close, lingering) driven through every event that can end it (graceful
// stop, immediate stop, idle, request and linger time-outs, a reset, the peer's EOF). Each case checks
// that the server closes the connection, owes the client nothing it did not deliver, and stops in time.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <string>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

constexpr int kSmallBuffer = 4096;        // the server's send buffer, and its high-water mark
constexpr int kClientBuffer = 64 * 1024;  // small enough to fill, large enough to avoid tiny windows
constexpr size_t kBig = 400'000;          // an answer that cannot fit in both buffers

// A line protocol with every kind of request a session can be in: each line is echoed; "big\n" answers
// kBig bytes; "close\n" closes, leaving whatever followed it unread; a line still arriving is a request
// under way (mid_request), and its time-out answers "timeout\n" and closes.
class LineSession final : public Session {
public:
    size_t on_data(std::span<char> bytes, Conn& reply) override {
        for (char ch : bytes) {
            partial_ += ch;
            if (ch != '\n') continue;
            if (partial_ == "close\n") {
                reply.close();
                return bytes.size();
            }
            reply.send(partial_ == "big\n" ? std::string(kBig, 'x') : partial_);
            partial_.clear();
        }
        return bytes.size();
    }
    bool mid_request() const override { return !partial_.empty(); }
    void on_request_timeout(Conn& reply) override {
        reply.send(std::string_view("timeout\n"));
        reply.close();
    }

private:
    std::string partial_;
};

class LineProtocol final : public Protocol {
public:
    std::string_view name() const override { return "line"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<LineSession>(); }
};

enum class State { idle, mid_request, read_paused, flushing, lingering };
enum class Event { drain, stop_now, idle_timeout, request_timeout, linger_timeout, reset, peer_eof };

const char* name(State s) {
    constexpr const char* names[] = {"Idle", "MidRequest", "ReadPaused", "Flushing", "Lingering"};
    return names[static_cast<int>(s)];
}
const char* name(Event e) {
    constexpr const char* names[] = {"Drain",         "StopNow", "IdleTimeout", "RequestTimeout",
                                     "LingerTimeout", "Reset",   "PeerEof"};
    return names[static_cast<int>(e)];
}

struct Case {
    State state;
    Event event;
    Backend backend;
};

class Lifecycle : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override { KQ_SKIP_IF_UNAVAILABLE(GetParam().backend); }
    ServerConfig config() const {
        Event e = GetParam().event;
        ServerConfig cfg;
        cfg.workers = 1;
        cfg.worker.backend = GetParam().backend;
        cfg.worker.high_water = kSmallBuffer;
        cfg.worker.low_water = 1024;
        cfg.worker.idle_timeout_ms = e == Event::idle_timeout ? 200 : 0;
        cfg.worker.request_timeout_ms = e == Event::request_timeout || e == Event::drain ? 200 : 0;
        cfg.worker.linger_ms = e == Event::linger_timeout ? 200 : 5000;
        cfg.worker.drain_timeout_ms = 5000;
        cfg.listen.send_buffer = kSmallBuffer;  // else loopback autotuning takes megabytes before output waits
        return cfg;
    }
};

UniqueFd small_client(uint16_t port) {
    UniqueFd fd = connect_blocking(port);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &kClientBuffer, sizeof kClientBuffer);
    timeval tv{10, 0};  // a missing FIN fails the test instead of hanging it
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Brings the connection into `state` and returns once the server is known to be in it.
void enter(State state, int fd, const Server& server) {
    auto read_total = [&] { return worker_total(server, &WorkerStats::bytes_read); };
    auto send_and_wait = [&](std::string_view s) {
        uint64_t before = read_total();
        send_all(fd, s.data(), s.size());
        ASSERT_TRUE(eventually([&] { return read_total() >= before + s.size(); }));
    };
    switch (state) {
    case State::idle:
        send_all(fd, "hi\n");
        ASSERT_EQ(recv_exact(fd, 3), "hi\n");
        break;
    case State::mid_request:
        send_and_wait("abc");
        break;
    case State::read_paused:
        send_and_wait("big\n");  // far more output than high water: reading stops
        send_all(fd, "more\n");  // left in the kernel while paused
        break;
    case State::flushing:
        send_and_wait("big\nclose\n");
        break;  // closing, most of the answer unsent
    case State::lingering:
        send_all(fd, "close\nignored");              // input after the close: the server half-closes and lingers
        ASSERT_EQ(read_until_closed(fd).bytes, "");  // its FIN
        break;
    }
}

// What a client that reads everything is owed after `state` and `event`; npos = a prefix of the big
// answer at most (the connection was cut on purpose).
std::string owed(State state, Event event) {
    bool cut = event == Event::stop_now || event == Event::idle_timeout;
    switch (state) {
    case State::idle:
    case State::lingering:
        return "";
    case State::mid_request:
        if (cut) return "";
        return event == Event::request_timeout || event == Event::drain ? "timeout\n" : "";
    case State::read_paused:
        if (cut) return std::string(1, '\0');
        // A graceful stop answers what was read: "more" was still in the kernel.
        return std::string(kBig, 'x') + (event == Event::drain ? "" : "more\n");
    case State::flushing:
        return cut ? std::string(1, '\0') : std::string(kBig, 'x');
    }
    return "";
}

TEST_P(Lifecycle, ClosesAndDeliversWhatIsOwed) {
    const auto [state, event, backend] = GetParam();
    RunningServer srv(config(), std::make_unique<LineProtocol>());
    UniqueFd fd = small_client(srv.port());
    enter(state, fd.get(), srv.server());
    if (HasFatalFailure()) return;

    Received got;
    switch (event) {
    case Event::drain:
        srv.server().stop();
        break;
    case Event::stop_now:
        srv.server().stop_now();
        break;
    case Event::reset:
        close_with_reset(std::move(fd));
        break;
    case Event::peer_eof:
        ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
        break;
    case Event::idle_timeout:  // the server's own timer acts; the client stays silent
        ASSERT_TRUE(eventually([&] { return worker_total(srv.server(), &WorkerStats::closed) == 1; }));
        break;
    case Event::request_timeout:
        if (state == State::mid_request) {
            ASSERT_TRUE(eventually([&] { return worker_total(srv.server(), &WorkerStats::request_timeouts) == 1; }));
        }
        break;
    case Event::linger_timeout:  // the client never closes: the linger's end must
        if (state == State::lingering) {
            ASSERT_TRUE(eventually([&] { return worker_total(srv.server(), &WorkerStats::closed) == 1; }));
        }
        break;
    }
    if (fd.get() >= 0) {
        // A client that asked nothing more half-closes, so that a keep-alive connection ends too.
        if (event != Event::drain && event != Event::stop_now) ::shutdown(fd.get(), SHUT_WR);
        got = read_until_closed(fd.get());
        fd.reset();
    }
    std::string want = owed(state, event);
    if (event == Event::reset) {
        // nothing to receive; the server must still notice and close
    } else if (want == std::string(1, '\0')) {
        EXPECT_LE(got.bytes.size(), kBig);
        EXPECT_EQ(got.bytes.find_first_not_of('x'), std::string::npos);
    } else {
        // A graceful stop reaches the worker when it next wakes; if the client's reading let it flush
        // below low water and resume first, "more" was read before the drain began and is answered too.
        const bool read_before_drain =
            state == State::read_paused && event == Event::drain && got.bytes == want + "more\n";
        if (!read_before_drain) {
            EXPECT_EQ(got.bytes.size(), want.size());
            EXPECT_TRUE(got.bytes == want) << "got " << got.bytes.substr(0, 40);
        }
        EXPECT_FALSE(got.reset) << "the server reset a connection that was owed " << want.size() << " bytes";
    }
    const Server& s = srv.server();
    ASSERT_TRUE(eventually([&] { return worker_total(s, &WorkerStats::closed) == 1; }))
        << "the connection was never closed";
    srv.stop_within(8000);
    EXPECT_EQ(worker_total(s, &WorkerStats::accepted), 1u);
    EXPECT_EQ(worker_total(s, &WorkerStats::closed), 1u);
    if (event == Event::idle_timeout) {
        EXPECT_EQ(worker_total(s, &WorkerStats::idle_timeouts), 1u);
    }
}

std::vector<Case> all_cases() {
    std::vector<Case> out;
    for (Backend b : built_backends()) {
        for (int s = 0; s <= static_cast<int>(State::lingering); ++s) {
            for (int e = 0; e <= static_cast<int>(Event::peer_eof); ++e)
                out.push_back({static_cast<State>(s), static_cast<Event>(e), b});
        }
    }
    return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    return std::string(name(info.param.state)) + "_" + name(info.param.event) + "_" +
           std::string(backend_name(info.param.backend));
}

INSTANTIATE_TEST_SUITE_P(StatesByEvents, Lifecycle, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
