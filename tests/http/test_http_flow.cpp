// HTTP output under flow control, in-process on every built backend: large /bytes/N answers stream while the
// connection is not congested, pipelined requests wait (held by the worker, the session paused) until the
// answer before them is out, so the server's memory for a connection stays bounded however much a client
// pipelines; a slow reader is timed by the idle time-out (write progress counts), never by the request
// time-out; a graceful stop lets a streaming answer finish. A probe wraps the HTTP session to see what the
// server holds: the connection's unsent output after every call of the session, and what each call sent.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http_test_client.hpp"
#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using namespace std::chrono_literals;

namespace {

// What the probe saw, written by the worker thread, read by the test.
struct FlowStats {
    std::atomic<size_t> max_unsent{0};           // the connection's unsent output after a session call
    std::atomic<size_t> max_call_output{0};      // bytes sent in one session call
    std::atomic<bool> paused{false};             // reading paused after the last call
    std::atomic<bool> held_while_paused{false};  // on_data left requests with the worker and paused
};

void raise_to(std::atomic<size_t>& a, size_t v) {
    size_t cur = a.load();
    while (v > cur && !a.compare_exchange_weak(cur, v)) {}
}

// The session's Conn, passed through, counting the bytes sent.
class CountingConn final : public Conn {
public:
    explicit CountingConn(Conn& c) : c_(c) {}
    using Conn::send;
    void send(std::span<const char> b) override { sent_ += b.size(), c_.send(b); }
    Reservation reserve() override { return c_.reserve(); }
    void close() override { c_.close(); }
    void count_requests(uint64_t n) override { c_.count_requests(n); }
    size_t unsent() const noexcept override { return c_.unsent(); }
    bool congested() const noexcept override { return c_.congested(); }
    void pause_reading() override { c_.pause_reading(); }
    void resume_reading() override { c_.resume_reading(); }
    bool reading_paused() const noexcept override { return c_.reading_paused(); }
    TimerId after(std::chrono::milliseconds d, std::function<void(Conn&)> fn) override {
        return c_.after(d, std::move(fn));
    }
    TimerId every(std::chrono::milliseconds p, std::function<void(Conn&)> fn) override {
        return c_.every(p, std::move(fn));
    }
    bool cancel(TimerId id) override { return c_.cancel(id); }
    SocketAddress peer() const override { return c_.peer(); }
    SocketAddress local() const override { return c_.local(); }
    int worker() const noexcept override { return c_.worker(); }
    uint64_t id() const noexcept override { return c_.id(); }
    ConnHandle handle() override { return c_.handle(); }
    std::span<char> held_input() noexcept override { return c_.held_input(); }
    void shutdown_write() override { c_.shutdown_write(); }
    void connect(const SocketAddress& to, std::chrono::milliseconds timeout,
                 std::function<std::unique_ptr<Session>(Conn&)> open, std::function<void(int)> failed) override {
        c_.connect(to, timeout, std::move(open), std::move(failed));
    }
    size_t take_sent() { return std::exchange(sent_, 0); }

private:
    Conn& c_;
    size_t sent_ = 0;
};

class ProbeSession final : public Session {
public:
    ProbeSession(Protocol& inner, Conn& conn, FlowStats& stats)
        : conn_(conn), inner_(inner.open(conn_)), stats_(stats) {}
    size_t on_data(std::span<char> bytes, Conn&) override {
        const size_t used = inner_->on_data(bytes, conn_);
        if (used < bytes.size() && conn_.reading_paused()) stats_.held_while_paused = true;
        return observe(), used;
    }
    void on_peer_eof(Conn&) override { inner_->on_peer_eof(conn_), observe(); }
    void on_drained(Conn&) override { inner_->on_drained(conn_), observe(); }
    bool mid_request() const override { return inner_->mid_request(); }
    bool input_may_follow() const override { return inner_->input_may_follow(); }
    void on_request_timeout(Conn&) override { inner_->on_request_timeout(conn_), observe(); }

private:
    // Output grows only inside the session's calls, so its largest size is seen right after one.
    void observe() {
        raise_to(stats_.max_unsent, conn_.unsent());
        raise_to(stats_.max_call_output, conn_.take_sent());
        stats_.paused = conn_.reading_paused();
    }
    CountingConn conn_;  // before inner_: the session goes first
    std::unique_ptr<Session> inner_;
    FlowStats& stats_;
};

class ProbeProtocol final : public Protocol {
public:
    ProbeProtocol(std::unique_ptr<Protocol> inner, std::shared_ptr<FlowStats> stats)
        : inner_(std::move(inner)), stats_(std::move(stats)) {}
    std::string_view name() const override { return "http-probe"; }
    std::unique_ptr<Session> open(Conn& conn) override {
        return std::make_unique<ProbeSession>(*inner_, conn, *stats_);
    }

private:
    std::unique_ptr<Protocol> inner_;
    std::shared_ptr<FlowStats> stats_;
};

// A client with a small receive window (set before connecting): the answers wait on the server's side.
// Every receive gives up after 20 s, so a missing answer fails the test instead of hanging it.
UniqueFd small_window_client(uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(fd);
    int rcvbuf = 32 * 1024;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{20, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

// One answer as it arrived; bodies are checked as they stream by, not kept.
struct Answer {
    int status = 0;
    size_t length = 0;  // Content-Length
    std::string connection;
    size_t body = 0;        // body bytes received
    bool all_x = true;      // every body byte was 'x' (/bytes/N)
    std::string body_head;  // its first bytes
};

// Splits a stream of answers (none to HEAD) into Answers incrementally.
class AnswerStream {
public:
    void feed(std::string_view data) {
        while (!data.empty()) {
            if (body_left_ > 0) {
                const size_t n = std::min(body_left_, data.size());
                Answer& a = answers_.back();
                a.all_x = a.all_x && data.substr(0, n).find_first_not_of('x') == std::string_view::npos;
                if (a.body_head.size() < 64) a.body_head.append(data.substr(0, std::min(n, 64 - a.body_head.size())));
                a.body += n, body_left_ -= n;
                data.remove_prefix(n);
                continue;
            }
            const size_t before = head_.size();
            head_.append(data);
            const size_t end = head_.find("\r\n\r\n");
            if (end == std::string::npos) {
                ASSERT_LT(head_.size(), 8192u) << "no end of a head";
                return;
            }
            answers_.push_back(parse_head(head_.substr(0, end + 4)));
            body_left_ = answers_.back().length;
            data.remove_prefix(end + 4 - before);
            head_.clear();
        }
    }
    // Every answer's head and body whole, none begun.
    bool between_answers() const { return head_.empty() && body_left_ == 0; }
    const std::vector<Answer>& answers() const { return answers_; }

private:
    static Answer parse_head(const std::string& head) {
        Answer a;
        a.status = head.starts_with("HTTP/1.1 ") ? std::stoi(head.substr(9, 3)) : -1;
        const size_t cl = head.find("\r\nContent-Length: ");
        if (cl != std::string::npos) a.length = std::stoul(head.substr(cl + 18));
        const size_t c = head.find("\r\nConnection: ");
        if (c != std::string::npos) a.connection = head.substr(c + 14, head.find("\r\n", c + 14) - c - 14);
        return a;
    }
    std::vector<Answer> answers_;
    std::string head_;
    size_t body_left_ = 0;
};

// Reads answers until `count` are whole, the peer closes, or a receive fails (its time-out included);
// with a pace, each receive takes at most `piece` bytes and is followed by that pause.
void read_answers(int fd, AnswerStream& s, size_t count, size_t piece = 64 * 1024,
                  std::chrono::milliseconds pace = 0ms) {
    std::vector<char> buf(piece);
    while (s.answers().size() < count || !s.between_answers()) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) return;
        s.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
        if (pace > 0ms) std::this_thread::sleep_for(pace);  // a slow reader: pacing, not synchronisation
    }
}

std::string get(std::string_view path) { return http::request("GET", path); }

class HttpFlow : public BackendTest {
protected:
    std::unique_ptr<RunningServer> start(ServerConfig cfg, const HttpOptions& opt = {}) {
        return std::make_unique<RunningServer>(cfg, std::make_unique<ProbeProtocol>(make_http_protocol(opt), stats_));
    }
    std::shared_ptr<FlowStats> stats_ = std::make_shared<FlowStats>();
};

// 100 pipelined GET /bytes/1048576 (100 MiB of answers) in one send, and nothing read until the server has
// stopped for want of room: it holds the later requests unanswered and at most about low water plus a
// piece or two of output; every answer then arrives whole, in order, kept alive. (Its answers to one
// read were built whole: 4 MiB and more, and the last of them said close.)
TEST_P(HttpFlow, PipelinedLargeAnswersKeepTheServersOutputBounded) {
    ServerConfig cfg = config(1);
    auto srv = start(cfg);
    UniqueFd fd = small_window_client(srv->port());
    std::string pipeline;
    for (int i = 0; i < 100; ++i) pipeline += get("/bytes/1048576");
    send_all(fd.get(), pipeline);
    ASSERT_TRUE(eventually([&] { return stats_->paused.load(); }, 10'000)) << "the server never waited for us";
    EXPECT_TRUE(stats_->held_while_paused) << "the pipelined requests were not left with the worker";
    AnswerStream s;
    read_answers(fd.get(), s, 100);
    ASSERT_EQ(s.answers().size(), 100u);
    ASSERT_TRUE(s.between_answers());
    for (size_t i = 0; i < s.answers().size(); ++i) {
        const Answer& a = s.answers()[i];
        ASSERT_EQ(a.status, 200) << "answer " << i;
        ASSERT_EQ(a.length, 1048576u) << "answer " << i;
        ASSERT_EQ(a.body, 1048576u) << "answer " << i;
        ASSERT_TRUE(a.all_x) << "answer " << i;
        ASSERT_EQ(a.connection, "keep-alive") << "answer " << i;
    }
    EXPECT_EQ(srv->total(&WorkerStats::requests), 100u);
    // The worker's own backpressure would stop reading at high water (1 MiB). The session's flow control
    // keeps it lower: it sends a piece (a head with it) or a piece's worth of answers only while the output
    // is at most low water, so the output stays below low water plus two pieces, whatever the kernel takes.
    // (A call may send more than that: what the kernel takes at once is not the server's memory.)
    const size_t bound = cfg.worker.low_water + 2 * 64 * 1024 + 4096;
    EXPECT_LE(stats_->max_unsent.load(), bound);
    std::printf("largest unsent output %zu B, largest output of one call %zu B\n", stats_->max_unsent.load(),
                stats_->max_call_output.load());
    // The connection goes on after all that.
    send_all(fd.get(), get("/bytes/5"));
    read_answers(fd.get(), s, 101);
    ASSERT_EQ(s.answers().size(), 101u);
    EXPECT_EQ(s.answers().back().body_head, "xxxxx");
}

// A reader slower than the request time-out many times over, with pipelined requests waiting behind the
// answer it reads: the waiting requests are not timed while the session waits for output to drain
// (a 408 would land in the middle of a body), and the reader's progress keeps the idle time-out away.
TEST_P(HttpFlow, SlowReaderOfLargeAnswersIsNotCutByTheRequestTimeout) {
    ServerConfig cfg = config(1);
    cfg.worker.request_timeout_ms = 200;
    cfg.worker.idle_timeout_ms = 5'000;
    // A fixed 64 KiB send buffer: an autotuned loopback socket (up to 4 MiB, tcp_wmem) could take both
    // bodies at once on an idle machine, and the session would then never need to wait.
    cfg.listen.send_buffer = 64 * 1024;
    HttpOptions opt;
    opt.max_bytes_route = 2 << 20;
    auto srv = start(cfg, opt);
    UniqueFd fd = small_window_client(srv->port());
    send_all(fd.get(), get("/bytes/2097152") + get("/bytes/2097152") + get("/"));
    ASSERT_TRUE(eventually([&] { return stats_->paused.load(); }, 10'000)) << "the server never waited for us";
    EXPECT_TRUE(stats_->held_while_paused);
    const auto t0 = std::chrono::steady_clock::now();
    AnswerStream s;
    read_answers(fd.get(), s, 3, 16 * 1024, 5ms);  // 4 MiB in 16 KiB every 5 ms: at least 1.3 s
    const int64_t took = ms_since(t0);
    ASSERT_EQ(s.answers().size(), 3u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(s.answers()[i].status, 200);
        EXPECT_EQ(s.answers()[i].body, size_t{2} << 20);
        EXPECT_TRUE(s.answers()[i].all_x);
    }
    EXPECT_EQ(s.answers()[2].body_head, "Hello from kqserver\n");
    EXPECT_GE(took, 5 * cfg.worker.request_timeout_ms) << "the reader was not slow: the test proves nothing";
    EXPECT_EQ(srv->total(&WorkerStats::request_timeouts), 0u);
    EXPECT_EQ(srv->total(&WorkerStats::idle_timeouts), 0u);
}

// A client that asks for a large answer and reads nothing: no write progress, so the idle time-out ends
// it, though requests wait behind the answer (the request time-out does not, as above).
TEST_P(HttpFlow, ReaderThatReadsNothingIsCutByTheIdleTimeout) {
    ServerConfig cfg = config(1);
    cfg.worker.request_timeout_ms = 200;
    cfg.worker.idle_timeout_ms = 600;
    HttpOptions opt;
    opt.max_bytes_route = 64 << 20;  // more than any kernel buffers take
    auto srv = start(cfg, opt);
    UniqueFd fd = small_window_client(srv->port());
    send_all(fd.get(), get("/bytes/67108864") + get("/"));
    ASSERT_TRUE(eventually([&] { return stats_->paused.load(); }, 10'000)) << "the server never waited for us";
    ASSERT_TRUE(eventually([&] { return srv->total(&WorkerStats::idle_timeouts) == 1; }, 10'000));
    EXPECT_EQ(srv->total(&WorkerStats::request_timeouts), 0u);
    AnswerStream s;
    read_answers(fd.get(), s, 2);
    ASSERT_EQ(s.answers().size(), 1u);
    EXPECT_LT(s.answers()[0].body, size_t{64} << 20) << "the whole body arrived: the server was never idle";
}

// A graceful stop while a large answer streams to a slow client: the answer is owed, so it is finished
// (within the drain time-out), then the connection closes with a FIN.
TEST_P(HttpFlow, GracefulStopLetsAStreamingAnswerFinish) {
    ServerConfig cfg = config(1);
    HttpOptions opt;
    opt.max_bytes_route = 16 << 20;
    auto srv = start(cfg, opt);
    UniqueFd fd = small_window_client(srv->port());
    send_all(fd.get(), get("/bytes/16777216"));
    ASSERT_TRUE(eventually([&] { return stats_->paused.load(); }, 10'000)) << "the server never waited for us";
    srv->server().stop();
    Received got = read_until_closed(fd.get());
    fd.reset();  // our FIN ends the server's lingering close at once
    AnswerStream s;
    s.feed(got.bytes);
    ASSERT_EQ(s.answers().size(), 1u);
    EXPECT_EQ(s.answers()[0].body, size_t{16} << 20) << "the answer was cut by the stop";
    EXPECT_TRUE(s.between_answers());
    EXPECT_FALSE(got.reset);
    srv->stop_within(5000);
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpFlow, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
