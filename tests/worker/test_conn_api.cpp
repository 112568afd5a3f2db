// The session's side of a connection (kq/handler.hpp, kq/offload.hpp), tested as an attacker would use
// it: through real sockets against a real in-process kq::Server, each case with a small protocol of its
// own. Held input (records split at every byte, half a record that never completes, input past
// max_input), pause_reading/resume_reading (held input offered again, input and EOF that wait, a resume
// while backpressure also holds reading), on_drained (a stream that never lets its output grow), user
// timers (one-shot, repeating, cancelled, firing into a closed connection), ConnHandle (ordered calls
// from other threads, dead handles, a server that stopped, posts racing resets), reserved output and
// kq::offload() (answers in request order, a close that waits, a job that throws, thousands of offloaded
// answers interleaved with inline ones on many connections), and who and where.
// Every wait is bounded and waits for an observable state (eventually(), a reply, an EOF), never a sleep.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kq/handler.hpp"
#include "kq/offload.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using namespace std::chrono_literals;

namespace {

// ---- Scaffolding: a protocol made of a factory, what sessions hand the test, and client sockets.

class TestProtocol final : public Protocol {
public:
    using Open = std::function<std::unique_ptr<Session>(Conn&)>;
    explicit TestProtocol(Open open) : open_(std::move(open)) {}
    std::string_view name() const override { return "conn-api-test"; }
    std::unique_ptr<Session> open(Conn& conn) override { return open_(conn); }

private:
    Open open_;
};

// A protocol whose sessions are S(conn, args...); args are copied (pointers to what the test shares).
template <class S, class... Args>
std::unique_ptr<Protocol> protocol_of(Args... args) {
    return std::make_unique<TestProtocol>([=](Conn& conn) { return std::make_unique<S>(conn, args...); });
}

// Values sessions (worker threads) hand to the test thread, in the order pushed.
template <class T>
class Box {
public:
    void push(T v) {
        {
            std::lock_guard lock(mutex_);
            items_.push_back(std::move(v));
        }
        cv_.notify_all();
    }
    // The i-th value pushed, waiting for it up to timeout_ms.
    std::optional<T> at(size_t i, int timeout_ms = 10'000) {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return items_.size() > i; }))
            return std::nullopt;
        return items_[i];
    }
    size_t size() {
        std::lock_guard lock(mutex_);
        return items_.size();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<T> items_;
};

// Threads sessions start (std::thread in the protocol), joined by the test or at the latest by the
// destructor. Declared before the server: a thread may outlive the server; its handle then says false.
class Threads {
public:
    ~Threads() { join(); }
    void spawn(std::function<void()> fn) {
        std::lock_guard lock(mutex_);
        threads_.emplace_back(std::move(fn));
    }
    void join() {
        std::vector<std::thread> all;
        {
            std::lock_guard lock(mutex_);
            all.swap(threads_);
        }
        for (auto& t : all) t.join();
    }

private:
    std::mutex mutex_;
    std::vector<std::thread> threads_;
};

ServerConfig server_config(int workers = 1, Backend backend = Backend::automatic) {
    ServerConfig cfg;
    cfg.workers = workers;
    cfg.worker.backend = backend;
    // A test that ends with a connection held or paused does not wait the default 10 s for the drain.
    cfg.worker.drain_timeout_ms = 1000;
    return cfg;
}

// A blocking client: no Nagle (a one-byte send is one segment), a receive time-out so that a missing
// answer fails the test instead of hanging it, and optionally a small receive buffer (a slow reader),
// set before connecting so that the window is sized for it from the handshake on.
UniqueFd client(uint16_t port, int rcvbuf = 0, int timeout_s = 10) {
    UniqueFd fd;
    if (rcvbuf > 0) {
        fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd.get() < 0) throw std::runtime_error("socket failed");
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            throw std::runtime_error("connect failed");
    } else {
        fd = connect_blocking(port);
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

// Up to and including the next '\n' (or what came before EOF or the time-out).
std::string recv_line(int fd) {
    std::string line;
    char ch;
    while (::recv(fd, &ch, 1, 0) == 1) {
        line += ch;
        if (ch == '\n') break;
    }
    return line;
}

// Calls on_line(line) (without its '\n') for each whole line at the front of bytes while it returns
// true; returns the bytes of the lines it was called for. A partial line stays unconsumed (held).
template <class Fn>
size_t for_each_line(std::span<char> bytes, Fn on_line) {
    size_t used = 0;
    for (;;) {
        std::string_view rest(bytes.data() + used, bytes.size() - used);
        size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) return used;
        used += nl + 1;
        if (!on_line(rest.substr(0, nl))) return used;
    }
}

std::vector<Backend> backends() { return built_backends(); }

// =====================================================================================================
// 1. Held input: a session that consumes whole fixed-size records only.

constexpr size_t kRecord = 8;  // "r000042\n"
std::string record(size_t i) {
    char b[16];
    std::snprintf(b, sizeof b, "r%06zu\n", i % 1'000'000);
    return b;
}
std::string answer(size_t i) {  // the answer to record(i): "<000042>", also kRecord bytes
    char b[16];
    std::snprintf(b, sizeof b, "<%06zu>", i % 1'000'000);
    return b;
}

// Answers each whole record at the front of what it is offered and returns k * kRecord: the worker holds
// a partial record and offers it again with the bytes that follow. A record that does not start on a
// boundary (the held part lost, doubled or misplaced) is answered "BAD!BAD!". A stream that begins with
// 'S' makes it a sink: it never consumes anything.
class RecordSession final : public Session {
public:
    explicit RecordSession(Conn&) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        if (mode_ == 0) mode_ = bytes[0];
        if (mode_ == 'S') return 0;
        const size_t whole = bytes.size() / kRecord * kRecord;
        std::string out;
        for (size_t i = 0; i < whole; i += kRecord) {
            std::string_view r(bytes.data() + i, kRecord);
            if (r.front() == 'r' && r.back() == '\n') {
                out += '<';
                out += r.substr(1, 6);
                out += '>';
            } else {
                out += "BAD!BAD!";
            }
        }
        if (whole > 0) {
            conn.send(out);
            conn.count_requests(whole / kRecord);
        }
        return whole;
    }

private:
    char mode_ = 0;
};

using HeldInput = BackendTest;

// Every byte arrives in a read of its own (the client waits until the server has read the previous one),
// so the session is offered held input plus one byte at every offset of every record; then pairs of
// records split at every offset. Each record is answered exactly once, in order, and only when whole.
TEST_P(HeldInput, TrickledByteByByteAndSplitAtEveryOffset) {
    RunningServer srv(server_config(1, GetParam()), protocol_of<RecordSession>());
    UniqueFd fd = client(srv.port());
    size_t next = 0;  // the next record's number
    const uint64_t base = srv.bytes_read();
    uint64_t read_so_far = 0;
    auto send_read = [&](std::string_view bytes) {
        send_all(fd.get(), bytes.data(), bytes.size());
        read_so_far += bytes.size();
        return eventually([&] { return srv.bytes_read() == base + read_so_far; });
    };

    for (int r = 0; r < 24; ++r, ++next) {
        const std::string rec = record(next);
        for (size_t k = 0; k < kRecord; ++k) {
            ASSERT_TRUE(send_read(std::string_view(rec).substr(k, 1))) << "record " << next << " byte " << k;
            if (k + 1 < kRecord) {
                ASSERT_FALSE(readable_within(fd.get(), 0)) << "answered a partial record";
            }
        }
        ASSERT_EQ(recv_exact(fd.get(), kRecord), answer(next));
    }
    for (size_t split = 1; split < 2 * kRecord; ++split, next += 2) {
        const std::string two = record(next) + record(next + 1);
        ASSERT_TRUE(send_read(std::string_view(two).substr(0, split)));
        if (split >= kRecord) {
            ASSERT_EQ(recv_exact(fd.get(), kRecord), answer(next));
        }
        ASSERT_TRUE(send_read(std::string_view(two).substr(split)));
        if (split < kRecord) {
            ASSERT_EQ(recv_exact(fd.get(), kRecord), answer(next));
        }
        ASSERT_EQ(recv_exact(fd.get(), kRecord), answer(next + 1)) << "split at " << split;
    }
    // Three and a half records in one read, the other half later.
    const std::string burst = record(next) + record(next + 1) + record(next + 2) + record(next + 3);
    ASSERT_TRUE(send_read(std::string_view(burst).substr(0, 3 * kRecord + 3)));
    ASSERT_EQ(recv_exact(fd.get(), 3 * kRecord), answer(next) + answer(next + 1) + answer(next + 2));
    ASSERT_TRUE(send_read(std::string_view(burst).substr(3 * kRecord + 3)));
    ASSERT_EQ(recv_exact(fd.get(), kRecord), answer(next + 3));
    next += 4;

    ::shutdown(fd.get(), SHUT_WR);
    Received rest = read_until_closed(fd.get());
    EXPECT_EQ(rest.bytes, "") << "an answer nobody asked for";
    EXPECT_FALSE(rest.reset);
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::requests), next);
}

// Big bursts in random pieces from three clients at once (two workers): every piece boundary lands at a
// random offset of a record, reads are as large as the scratch buffer, and backpressure stops reading
// while the answers wait. Every record is answered exactly once, in order, on its own connection.
TEST_P(HeldInput, BurstsInRandomPiecesAnsweredOnceInOrder) {
    constexpr size_t kRecords = 60'000;  // 480 KB each way per client
    constexpr int kClients = 3;
    RunningServer srv(server_config(2, GetParam()), protocol_of<RecordSession>());
    std::vector<UniqueFd> fds;
    std::vector<std::thread> senders;
    for (int c = 0; c < kClients; ++c) fds.push_back(client(srv.port()));
    for (int c = 0; c < kClients; ++c) {
        senders.emplace_back([fd = fds[c].get(), c] {
            std::string all;
            for (size_t i = 0; i < kRecords; ++i) all += record(i + c * kRecords);
            std::mt19937_64 rng(1234 + c);
            std::uniform_int_distribution<size_t> piece(1, 20'000);
            for (size_t off = 0; off < all.size();) {
                size_t n = std::min(piece(rng), all.size() - off);
                send_all(fd, all.data() + off, n);
                off += n;
            }
            ::shutdown(fd, SHUT_WR);
        });
    }
    for (int c = 0; c < kClients; ++c) {
        Received got = read_until_closed(fds[c].get());
        std::string want;
        for (size_t i = 0; i < kRecords; ++i) want += answer(i + c * kRecords);
        EXPECT_EQ(got.bytes.size(), want.size()) << "client " << c;
        EXPECT_TRUE(got.bytes == want) << "client " << c << ": answers lost, doubled or out of order";
        EXPECT_FALSE(got.reset);
    }
    for (auto& t : senders) t.join();
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::requests), kRecords * kClients);
}

// Held input is a request under way: half a record that never completes is closed by the request
// time-out, and so is a slowloris that trickles a byte every 100 ms (the clock runs from the request's
// first byte, not its last). A connection whose records were all consumed holds nothing and is not timed.
TEST_P(HeldInput, HalfARecordIsClosedByTheRequestTimeout) {
    constexpr int kTimeoutMs = 300;
    ServerConfig cfg = server_config(1, GetParam());
    cfg.worker.request_timeout_ms = kTimeoutMs;
    RunningServer srv(cfg, protocol_of<RecordSession>());

    UniqueFd idle = client(srv.port());
    send_all(idle.get(), record(0));
    ASSERT_EQ(recv_exact(idle.get(), kRecord), answer(0));

    UniqueFd half = client(srv.port());
    auto t0 = std::chrono::steady_clock::now();
    send_all(half.get(), std::string("r00"));
    Received got = read_until_closed(half.get());
    EXPECT_GE(ms_since(t0), kTimeoutMs - 50);
    EXPECT_EQ(got.bytes, "");
    EXPECT_FALSE(got.reset);
    half.reset();  // ends the server's lingering close
    EXPECT_TRUE(eventually([&] { return srv.total(&WorkerStats::request_timeouts) == 1; }));

    // A byte every 100 ms: each one is progress, none restarts the request's clock. Seven bytes take
    // 600 ms; the connection must be closed before the client gets to send the last of them.
    UniqueFd slow = client(srv.port());
    const std::string rec = record(1);
    size_t sent = 0;
    bool closed = false;
    while (sent < kRecord - 1 && !closed) {
        send_all(slow.get(), rec.data() + sent, 1);
        ++sent;
        closed = readable_within(slow.get(), 100);
    }
    EXPECT_TRUE(closed) << "a request trickled a byte at a time outlived its time-out (sent " << sent << " bytes)";
    EXPECT_LT(sent, kRecord - 1);
    EXPECT_EQ(read_until_closed(slow.get()).bytes, "");
    slow.reset();
    EXPECT_TRUE(eventually([&] { return srv.total(&WorkerStats::request_timeouts) == 2; }));

    // The idle connection, silent for longer than the request time-out, is still served.
    send_all(idle.get(), record(2));
    EXPECT_EQ(recv_exact(idle.get(), kRecord), answer(2));
    idle.reset();  // else the drain lingers on it until its time-out
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::request_timeouts), 2u);
    EXPECT_EQ(srv.total(&WorkerStats::input_overflows), 0u);
}

// A sink never consumes: it may hold exactly max_input, and the byte after that closes it (held input
// growing), as does a burst past the limit (the first read already over it). Each counts one
// input_overflow; a well-behaved connection on the same worker is served before, between and after.
TEST_P(HeldInput, SinkIsClosedOnceHeldInputExceedsMaxInput) {
    constexpr size_t kMax = 4096;
    ServerConfig cfg = server_config(1, GetParam());
    cfg.worker.max_input = kMax;
    RunningServer srv(cfg, protocol_of<RecordSession>());
    UniqueFd good = client(srv.port());
    size_t next = 0;
    auto round_trip = [&] {
        send_all(good.get(), record(next));
        EXPECT_EQ(recv_exact(good.get(), kRecord), answer(next));
        ++next;
    };
    round_trip();

    UniqueFd sink = client(srv.port());
    const uint64_t before = srv.bytes_read();
    send_all(sink.get(), "S" + std::string(kMax - 1, 's'));
    ASSERT_TRUE(eventually([&] { return srv.bytes_read() == before + kMax; }));
    round_trip();  // one worker: it is done with the sink's bytes
    EXPECT_EQ(srv.total(&WorkerStats::input_overflows), 0u) << "closed while holding exactly max_input";
    EXPECT_FALSE(readable_within(sink.get(), 0));
    send_all(sink.get(), std::string("s"));
    Received got = read_until_closed(sink.get());
    EXPECT_EQ(got.bytes, "");
    EXPECT_FALSE(got.reset);
    sink.reset();  // ends the server's lingering close
    EXPECT_TRUE(eventually([&] { return srv.total(&WorkerStats::input_overflows) == 1; }));
    round_trip();

    UniqueFd burst = client(srv.port());
    send_all(burst.get(), "S" + std::string(5 * kMax, 's'));
    got = read_until_closed(burst.get());
    EXPECT_EQ(got.bytes, "");
    EXPECT_FALSE(got.reset);
    burst.reset();
    EXPECT_TRUE(eventually([&] { return srv.total(&WorkerStats::input_overflows) == 2; }));
    round_trip();
    good.reset();  // else the drain lingers on it until its time-out
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::input_overflows), 2u);
    EXPECT_EQ(srv.total(&WorkerStats::requests), next);
}

INSTANTIATE_TEST_SUITE_P(Backends, HeldInput, ::testing::ValuesIn(backends()), backend_label);

// =====================================================================================================
// 2. pause_reading / resume_reading.

constexpr size_t kBig = 1 << 20;

struct PauseShared {
    Box<ConnHandle> handles;  // each session's, pushed by open()
    std::atomic<bool> timer_resumed{false};
    std::atomic<size_t> unsent_at_resume{0};
};

// Lines. "pause": pauses, says "paused", leaves the rest of the read held, and a timer 20 ms later says
// "resumed" and resumes. "hpause": pauses; the test resumes it through a handle. "big": sends kBig bytes,
// pauses, and a timer resumes 20 ms later (while the output is still far above high water). Any other
// line L is answered "got:L". A read delivered while paused is answered with an alarm; so is a resume
// that finds reading not paused. At the peer's EOF: "eof", then close.
class PauseSession final : public Session {
public:
    PauseSession(Conn& conn, PauseShared* s) : s_(s) { s_->handles.push(conn.handle()); }
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        if (conn.reading_paused()) conn.send("DELIVERED WHILE PAUSED\n");
        return for_each_line(bytes, [&](std::string_view line) {
            if (line == "pause") {
                conn.pause_reading();
                conn.send("paused\n");
                conn.after(20ms, [](Conn& c) {
                    c.send(c.reading_paused() ? "resumed\n" : "NOT PAUSED\n");
                    c.resume_reading();
                });
                return false;
            }
            if (line == "hpause") {
                conn.pause_reading();
                conn.send("paused\n");
                return false;
            }
            if (line == "big") {
                conn.send(std::string(kBig, 'x'));
                conn.pause_reading();
                conn.after(20ms, [s = s_](Conn& c) {
                    s->unsent_at_resume = c.unsent();
                    c.resume_reading();
                    s->timer_resumed = true;
                });
                return false;
            }
            conn.send("got:" + std::string(line) + "\n");
            return true;
        });
    }
    void on_peer_eof(Conn& conn) override {
        conn.send("eof\n");
        conn.close();
    }

private:
    PauseShared* s_;
};

using PauseResume = BackendTest;

// The lines after "pause" in the same read are held; when the timer resumes, they are offered again at
// once, though the client sends nothing new; a partial line held with them waits for its end.
TEST_P(PauseResume, HeldInputIsOfferedAgainWhenATimerResumes) {
    PauseShared shared;
    RunningServer srv(server_config(1, GetParam()), protocol_of<PauseSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("pause\nA\nB\n"));
    std::string want = "paused\nresumed\ngot:A\ngot:B\n";
    EXPECT_EQ(recv_exact(fd.get(), want.size()), want);

    send_all(fd.get(), std::string("pause\nC\nD"));  // D unterminated: held after C is answered
    want = "paused\nresumed\ngot:C\n";
    EXPECT_EQ(recv_exact(fd.get(), want.size()), want);
    EXPECT_FALSE(readable_within(fd.get(), 50));
    send_all(fd.get(), std::string("\n"));
    EXPECT_EQ(recv_line(fd.get()), "got:D\n");

    ::shutdown(fd.get(), SHUT_WR);
    Received rest = read_until_closed(fd.get());
    EXPECT_EQ(rest.bytes, "eof\n");
    EXPECT_FALSE(rest.reset);
}

// While paused the worker reads nothing: input and the EOF that follow wait in the kernel (the server's
// bytes_read does not move) and reach the session, in order, only after the resume, which here comes
// from another thread through the connection's handle.
TEST_P(PauseResume, InputAndEofWhilePausedWaitForTheResume) {
    PauseShared shared;
    RunningServer srv(server_config(1, GetParam()), protocol_of<PauseSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("hpause\n"));
    ASSERT_EQ(recv_line(fd.get()), "paused\n");
    std::optional<ConnHandle> handle = shared.handles.at(0);
    ASSERT_TRUE(handle);

    send_all(fd.get(), std::string("C\nD\n"));
    ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
    EXPECT_FALSE(readable_within(fd.get(), 200)) << "input or EOF reached a paused session";
    EXPECT_EQ(srv.bytes_read(), 7u) << "the worker read a paused connection";

    ASSERT_TRUE(handle->post([](Conn& c) {
        c.send(c.reading_paused() ? "resumed\n" : "NOT PAUSED\n");
        c.resume_reading();
    }));
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "resumed\ngot:C\ngot:D\neof\n");
    EXPECT_FALSE(got.reset);
}

// Two reasons to hold reading at once: the session paused, and its output is far above high water (the
// client reads nothing yet). The session's timer resumes while the output is still above high water:
// the held line must still be offered once the output drains, without the client sending anything more.
TEST_P(PauseResume, ResumeDuringBackpressureStillOffersHeldInput) {
    PauseShared shared;
    ServerConfig cfg = server_config(1, GetParam());
    cfg.worker.high_water = 64 * 1024;
    cfg.worker.low_water = 16 * 1024;
    cfg.listen.send_buffer = 4096;  // else loopback autotuning takes megabytes before output waits
    RunningServer srv(cfg, protocol_of<PauseSession>(&shared));
    UniqueFd fd = client(srv.port(), 4096, 5);
    send_all(fd.get(), std::string("big\nsmall\n"));
    ASSERT_TRUE(eventually([&] { return shared.timer_resumed.load(); }));
    ASSERT_GT(shared.unsent_at_resume.load(), cfg.worker.high_water) << "the resume came after the output drained";

    const std::string want = std::string(kBig, 'x') + "got:small\n";
    std::string got = recv_exact(fd.get(), want.size());
    EXPECT_EQ(got.size(), want.size()) << "the held line was never offered again";
    EXPECT_TRUE(got == want);
    ::shutdown(fd.get(), SHUT_WR);
    EXPECT_EQ(read_until_closed(fd.get()).bytes, "eof\n");
}

INSTANTIATE_TEST_SUITE_P(Backends, PauseResume, ::testing::ValuesIn(backends()), backend_label);

// =====================================================================================================
// 3. on_drained: a large answer produced only while the output is not congested.

constexpr size_t kChunk = 16 * 1024;
char pattern_at(size_t offset) { return static_cast<char>(offset % 251); }  // 251: prime, not a divisor of kChunk

struct StreamShared {
    size_t total = 0;
    std::atomic<size_t> max_unsent{0}, drained_calls{0};
    std::atomic<bool> done{false};
};

// On the first input: sends `total` bytes of a position-dependent pattern in kChunk pieces while
// !congested(), goes on in on_drained(), and closes after the last; records the largest unsent() seen.
class StreamSession final : public Session {
public:
    StreamSession(Conn&, StreamShared* s) : s_(s) {}
    ~StreamSession() override {
        s_->max_unsent = max_unsent_;
        s_->drained_calls = drained_;
        s_->done = true;
    }
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        if (!started_) {
            started_ = true;
            pump(conn);
        }
        return bytes.size();
    }
    void on_drained(Conn& conn) override {
        ++drained_;
        pump(conn);
    }

private:
    void pump(Conn& conn) {
        std::string chunk(kChunk, '\0');
        while (sent_ < s_->total && !conn.congested()) {
            const size_t n = std::min(kChunk, s_->total - sent_);
            for (size_t i = 0; i < n; ++i) chunk[i] = pattern_at(sent_ + i);
            conn.send(std::string_view(chunk.data(), n));
            sent_ += n;
            max_unsent_ = std::max(max_unsent_, conn.unsent());
        }
        if (sent_ == s_->total) conn.close();
    }
    StreamShared* s_;
    bool started_ = false;
    size_t sent_ = 0, max_unsent_ = 0, drained_ = 0;
};

using Drained = BackendTest;

// A slow reader (a small receive buffer, reads of 1000 bytes) gets 8 MiB intact and in order, while the
// server never holds more than low_water + one chunk unsent: the session waited for on_drained().
TEST_P(Drained, StreamContinuesInOnDrainedAndNeverOverfillsTheOutput) {
    StreamShared shared;
    shared.total = 8u << 20;
    ServerConfig cfg = server_config(1, GetParam());
    cfg.worker.low_water = 64 * 1024;
    cfg.worker.high_water = 256 * 1024;
    cfg.listen.send_buffer = 16 * 1024;
    RunningServer srv(cfg, protocol_of<StreamSession>(&shared));
    UniqueFd fd = client(srv.port(), 16 * 1024);
    send_all(fd.get(), std::string("go\n"));

    size_t got = 0, first_bad = SIZE_MAX;
    char buf[1000];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) {
            if (first_bad == SIZE_MAX && buf[i] != pattern_at(got + static_cast<size_t>(i)))
                first_bad = got + static_cast<size_t>(i);
        }
        got += static_cast<size_t>(n);
    }
    fd.reset();  // the server lingers until this EOF
    EXPECT_EQ(got, shared.total);
    EXPECT_EQ(first_bad, SIZE_MAX) << "the stream is corrupt from byte " << first_bad;
    ASSERT_TRUE(eventually([&] { return shared.done.load(); }));
    EXPECT_GE(shared.drained_calls.load(), 1u) << "the output was never congested: the test proved nothing";
    EXPECT_GT(shared.max_unsent.load(), cfg.worker.low_water);
    EXPECT_LE(shared.max_unsent.load(), cfg.worker.low_water + kChunk);
}

INSTANTIATE_TEST_SUITE_P(Backends, Drained, ::testing::ValuesIn(backends()), backend_label);

// =====================================================================================================
// 4. Timers.

// What a session's timers see after it is gone: a timer that runs then counts here (and, under ASan,
// touches freed memory).
struct Probe {
    std::atomic<bool> destroyed{false};
};

struct TimerShared {
    std::atomic<int> late_fires{0}, destroyed{0};
    std::atomic<TimerId> victim{0};
};

// Lines: "basic" (after, every, cancel: reports what it saw), "closer" (a timer that closes), "armed"
// (timers due later, on a connection the client resets), "many D" (a repeating timer and a one-shot
// after D ms that answers and closes), "sentinel" (answers "done" after 100 ms), "victim"/"thief" (one
// connection tries to cancel another's timer).
class TimerSession final : public Session {
public:
    TimerSession(Conn&, TimerShared* s) : s_(s) {}
    ~TimerSession() override {
        probe_->destroyed = true;
        ++s_->destroyed;
    }
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        return for_each_line(bytes, [&](std::string_view line) {
            if (line == "basic") basic(conn);
            if (line == "closer") {
                conn.after(10ms, [](Conn& c) {
                    c.send("bye\n");
                    c.close();
                    c.send("after close\n");  // dropped
                });
            }
            if (line == "armed") {
                arm_late_watchers(conn, 50ms);
                conn.send("armed\n");
            }
            if (line.starts_with("many ")) {
                arm_late_watchers(conn, 1000ms);  // outlive the connection: cancelled when it closes
                const int delay = std::stoi(std::string(line.substr(5)));
                conn.after(std::chrono::milliseconds(delay), [this](Conn& c) {
                    c.send(ticks_ > 0 ? "fired\n" : "fired without ticks\n");
                    c.close();
                });
                conn.send("armed\n");
            }
            if (line == "sentinel") conn.after(100ms, [](Conn& c) { c.send("done\n"); });
            if (line == "victim") {
                s_->victim = conn.after(300ms, [](Conn& c) { c.send("victim fired\n"); });
                conn.send("armed\n");
            }
            if (line == "thief") conn.send(conn.cancel(s_->victim.load()) ? "thief=1\n" : "thief=0\n");
            return true;
        });
    }

private:
    // One-shot at 10 ms (fires), one-shot at 30 ms cancelled at once (never fires), a 5 ms repeating timer
    // that cancels itself from its own fifth call and then sets a one-shot 40 ms later (eight periods:
    // a repeating timer still armed would have fired again first) to report.
    void basic(Conn& conn) {
        once_ = conn.after(10ms, [this](Conn&) { ++once_fired_; });
        pending_ = conn.after(30ms, [this](Conn&) { ++cancelled_fired_; });
        cancel_pending_ = conn.cancel(pending_);
        tick_ = conn.every(5ms, [this](Conn& c) {
            if (++ticks_ != 5) return;
            cancel_self_ = c.cancel(tick_);
            c.after(40ms, [this](Conn& c2) { report(c2); });
        });
    }
    void report(Conn& conn) {
        std::set<TimerId> ids{once_, pending_, tick_};
        std::string r = "once=" + std::to_string(once_fired_) + " cancelled=" + std::to_string(cancelled_fired_) +
                        " ticks=" + std::to_string(ticks_) + " cancel_pending=" + std::to_string(cancel_pending_) +
                        " cancel_self=" + std::to_string(cancel_self_) +
                        " cancel_fired=" + std::to_string(conn.cancel(once_)) +
                        " cancel_twice=" + std::to_string(conn.cancel(pending_) || conn.cancel(tick_)) +
                        " cancel_unknown=" + std::to_string(conn.cancel(0) || conn.cancel(once_ + 1'000'000)) +
                        " ids=" + std::to_string(ids.size() == 3 && !ids.contains(0)) + "\n";
        conn.send(r);
    }
    // A repeating timer and a one-shot, both touching the session, due after `late`.
    void arm_late_watchers(Conn& conn, std::chrono::milliseconds late) {
        conn.every(2ms, [this, probe = probe_, s = s_](Conn&) {
            if (probe->destroyed) ++s->late_fires;
            else ++ticks_;
        });
        conn.after(late, [this, probe = probe_, s = s_](Conn& c) {
            if (probe->destroyed) ++s->late_fires;
            else c.send("late " + std::to_string(ticks_) + "\n");
        });
    }

    TimerShared* s_;
    std::shared_ptr<Probe> probe_ = std::make_shared<Probe>();
    TimerId once_ = 0, pending_ = 0, tick_ = 0;
    int once_fired_ = 0, cancelled_fired_ = 0, ticks_ = 0;
    bool cancel_pending_ = false, cancel_self_ = false;
};

// after() fires once; every() repeats until cancelled from inside its own callback, and stops exactly
// there; cancel() of a pending timer returns true and it never fires; cancel() of a fired one-shot, of an
// already cancelled timer, of 0 and of an unknown id returns false; ids are distinct and never 0.
TEST(Timers, AfterEveryAndCancel) {
    TimerShared shared;
    RunningServer srv(server_config(1), protocol_of<TimerSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("basic\n"));
    EXPECT_EQ(recv_line(fd.get()),
              "once=1 cancelled=0 ticks=5 cancel_pending=1 cancel_self=1 cancel_fired=0 cancel_twice=0 "
              "cancel_unknown=0 ids=1\n");
    EXPECT_FALSE(readable_within(fd.get(), 50));  // and nothing more: no timer went on
}

// A connection cannot cancel another connection's timer, even on the same worker with its id in hand.
TEST(Timers, CancelOfAnotherConnectionsTimerIsRefused) {
    TimerShared shared;
    RunningServer srv(server_config(1), protocol_of<TimerSession>(&shared));
    UniqueFd victim = client(srv.port());
    send_all(victim.get(), std::string("victim\n"));
    ASSERT_EQ(recv_line(victim.get()), "armed\n");
    UniqueFd thief = client(srv.port());
    send_all(thief.get(), std::string("thief\n"));
    EXPECT_EQ(recv_line(thief.get()), "thief=0\n");
    EXPECT_EQ(recv_line(victim.get()), "victim fired\n");
}

// A timer's callback closes the connection: what it sent first arrives, what it sent after is dropped,
// and the client sees the close.
TEST(Timers, CallbackThatClosesTheConnection) {
    TimerShared shared;
    RunningServer srv(server_config(1), protocol_of<TimerSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("closer\n"));
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "bye\n");
    EXPECT_FALSE(got.reset);
    fd.reset();
    EXPECT_TRUE(eventually([&] { return shared.destroyed.load() == 1; }));
}

// The client resets a connection whose timers are due 2 ms and 50 ms later: neither ever fires (they
// touch the session: ASan would see a use after free). A sentinel on the same worker, due 100 ms after
// the close, proves their deadlines passed.
TEST(Timers, TimersOfAResetConnectionNeverFire) {
    TimerShared shared;
    RunningServer srv(server_config(1), protocol_of<TimerSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("armed\n"));
    ASSERT_EQ(recv_line(fd.get()), "armed\n");
    close_with_reset(std::move(fd));
    ASSERT_TRUE(eventually([&] { return shared.destroyed.load() == 1; }));
    UniqueFd sentinel = client(srv.port());
    send_all(sentinel.get(), std::string("sentinel\n"));
    EXPECT_EQ(recv_line(sentinel.get()), "done\n");
    EXPECT_EQ(shared.late_fires.load(), 0);
}

// 120 connections on two workers, each with a 2 ms repeating timer, a one-shot due in 1 s and one due in
// 5..34 ms that answers and closes; every other client resets as soon as its timers are armed. The
// others get exactly one answer and the close; no timer runs for a session that is gone.
TEST(Timers, ManyConnectionsEachWithTimers) {
    constexpr int kConns = 120;
    TimerShared shared;
    RunningServer srv(server_config(2), protocol_of<TimerSession>(&shared));
    std::vector<UniqueFd> fds;
    for (int i = 0; i < kConns; ++i) {
        fds.push_back(client(srv.port()));
        send_all(fds.back().get(), "many " + std::to_string(5 + i % 30) + "\n");
    }
    for (int i = 0; i < kConns; i += 2) {
        ASSERT_EQ(recv_line(fds[i + 1].get()), "armed\n");
        close_with_reset(std::move(fds[i + 1]));
    }
    for (int i = 0; i < kConns; i += 2) {
        Received got = read_until_closed(fds[i].get());
        EXPECT_EQ(got.bytes, "armed\nfired\n") << "connection " << i;
        fds[i].reset();
    }
    EXPECT_TRUE(eventually([&] { return shared.destroyed.load() == kConns; }));
    EXPECT_EQ(shared.late_fires.load(), 0);
}

// =====================================================================================================
// 5. ConnHandle.

constexpr uint64_t kMagic = 0x5e55'10f1'ce00'0001;

struct HandleShared {
    Box<ConnHandle> handles;  // each session's, pushed by open()
    Threads threads;
    std::atomic<int> refused{0};
    std::atomic<uint64_t> posted{0}, ran{0}, bad{0};
};

// Lines: "order" starts a thread that sends, posts, and posts lambdas capturing the session, 3000 lines
// numbered in order, then closes through the handle; "flood" starts a thread that posts lambdas
// capturing `this` until the handle refuses (the connection closed), counting what it posted and what
// ran. input_may_follow() is false: a close ends the connection at once (no linger).
class HandleSession final : public Session {
public:
    HandleSession(Conn& conn, HandleShared* s) : s_(s) { s_->handles.push(conn.handle()); }
    ~HandleSession() override { magic_ = 0; }
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        return for_each_line(bytes, [&](std::string_view line) {
            if (line == "order") order(conn);
            if (line == "flood") flood(conn);
            return true;
        });
    }
    bool input_may_follow() const override { return false; }

    static constexpr int kOrdered = 3000;
    static constexpr int kMaxPosts = 20'000;

private:
    void order(Conn& conn) {
        s_->threads.spawn([h = conn.handle(), s = s_, self = this] {
            for (int i = 0; i < kOrdered; ++i) {
                std::string line = std::to_string(i) + "\n";
                bool ok = false;
                switch (i % 3) {
                case 0:
                    ok = h.send(line);
                    break;
                case 1:
                    ok = h.post([line](Conn& c) { c.send(line); });
                    break;
                default:  // the session's `this`, used on the worker only
                    ok = h.post([self, line](Conn& c) {
                        if (self->magic_ != kMagic) c.send("BAD SESSION\n");
                        c.send(line);
                    });
                    break;
                }
                if (!ok) ++s->refused;
            }
            if (!h.close()) ++s->refused;
        });
    }
    void flood(Conn& conn) {
        s_->threads.spawn([h = conn.handle(), s = s_, self = this] {
            for (int i = 0; i < kMaxPosts; ++i) {
                bool ok = h.post([self, s](Conn& c) {
                    if (self->magic_ != kMagic) ++s->bad;
                    if (self->runs_++ == 0) c.send("r");
                    ++s->ran;
                });
                if (!ok) return;
                ++s->posted;
                if (i % 16 == 0) std::this_thread::yield();
            }
        });
    }

    HandleShared* s_;
    uint64_t magic_ = kMagic;
    uint64_t runs_ = 0;
};

// From another thread: sends, posted calls and posted calls that use the session arrive on the worker
// in the order the thread made them, then its close ends the connection after them.
TEST(Handles, CallsFromAnotherThreadArriveInOrder) {
    HandleShared shared;
    RunningServer srv(server_config(2), protocol_of<HandleSession>(&shared));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("order\n"));
    Received got = read_until_closed(fd.get());
    std::string want;
    for (int i = 0; i < HandleSession::kOrdered; ++i) want += std::to_string(i) + "\n";
    EXPECT_EQ(got.bytes.size(), want.size());
    EXPECT_TRUE(got.bytes == want) << "calls lost, doubled or reordered";
    EXPECT_FALSE(got.reset);
    shared.threads.join();
    EXPECT_EQ(shared.refused.load(), 0);
}

// A handle is alive while its connection is open; once the client has gone, alive() is false and every
// call returns false (and a copy of it, and the default handle, say the same).
TEST(Handles, DeadAfterTheClientDisconnects) {
    HandleShared shared;
    RunningServer srv(server_config(1), protocol_of<HandleSession>(&shared));
    UniqueFd fd = client(srv.port());
    std::optional<ConnHandle> h = shared.handles.at(0);
    ASSERT_TRUE(h);
    EXPECT_TRUE(static_cast<bool>(*h));
    EXPECT_TRUE(h->alive());
    EXPECT_TRUE(h->send("hello\n"));
    EXPECT_EQ(recv_line(fd.get()), "hello\n");

    fd.reset();  // FIN: the session's default on_peer_eof closes
    EXPECT_TRUE(eventually([&] { return !h->alive(); }));
    ConnHandle copy = *h;
    for (const ConnHandle* x : {&*h, &copy}) {
        EXPECT_FALSE(x->alive());
        EXPECT_FALSE(x->send("late\n"));
        EXPECT_FALSE(x->close());
        EXPECT_FALSE(x->fill(Reservation{1}, "late"));
        EXPECT_FALSE(x->post([](Conn& c) { c.send("late\n"); }));
    }
    ConnHandle none;
    EXPECT_FALSE(static_cast<bool>(none));
    EXPECT_FALSE(none.alive());
    EXPECT_FALSE(none.send("x"));
    EXPECT_FALSE(none.post([](Conn&) {}));
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::handle_dropped), 0u);
}

// A thread keeps sending through a handle while the server stops, and after the server is destroyed:
// calls return false once it has stopped, nothing crashes, nothing races (TSan).
TEST(Handles, UsedWhileAndAfterTheServerStops) {
    HandleShared shared;
    auto srv = std::make_unique<RunningServer>(server_config(1), protocol_of<HandleSession>(&shared));
    UniqueFd fd = client(srv->port());
    std::optional<ConnHandle> h = shared.handles.at(0);
    ASSERT_TRUE(h);
    ASSERT_TRUE(h->send("first\n"));
    ASSERT_EQ(recv_line(fd.get()), "first\n");

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> refused{0};
    std::thread sender([&, h = *h] {
        while (!stop.load()) {
            if (!h.send("s")) ++refused;
            std::this_thread::yield();
        }
    });
    srv->stop();  // graceful: the idle connection is closed at once
    EXPECT_FALSE(h->alive());
    EXPECT_FALSE(h->send("x"));
    EXPECT_FALSE(h->post([](Conn&) {}));
    const uint64_t refused_before = refused.load();
    srv.reset();  // the workers and their loops are gone; the handle keeps only its port
    EXPECT_TRUE(eventually([&] { return refused.load() > refused_before; }));
    EXPECT_FALSE(h->alive());
    EXPECT_FALSE(h->send("x"));
    EXPECT_FALSE(h->close());
    EXPECT_FALSE(h->fill(Reservation{1}, "x"));
    EXPECT_FALSE(h->post([](Conn&) {}));
    stop = true;
    sender.join();
}

// Calls that raced with the close: the worker is held inside a posted call (the test's gate) while the
// thread queues a close and then kQueued sends, all accepted (the connection is still open as far as
// anyone can know). The close runs first; every send behind it is dropped and counted, exactly.
TEST(Handles, CallsQueuedBehindTheCloseAreDroppedAndCounted) {
    constexpr int kQueued = 25;
    HandleShared shared;
    RunningServer srv(server_config(1), protocol_of<HandleSession>(&shared));
    UniqueFd fd = client(srv.port());
    std::optional<ConnHandle> h = shared.handles.at(0);
    ASSERT_TRUE(h);
    std::atomic<bool> holding{false}, open{false};
    ASSERT_TRUE(h->post([&](Conn&) {
        holding = true;
        eventually([&] { return open.load(); }, 30'000);  // blocks the worker: the test's tool, never a protocol's
    }));
    ASSERT_TRUE(eventually([&] { return holding.load(); }));
    EXPECT_TRUE(h->close());
    for (int i = 0; i < kQueued; ++i) EXPECT_TRUE(h->send("late\n"));
    EXPECT_TRUE(h->post([](Conn& c) { c.send("late\n"); }));
    EXPECT_TRUE(h->alive());
    open = true;

    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "");
    EXPECT_TRUE(eventually([&] { return srv.total(&WorkerStats::handle_dropped) == kQueued + 1; }));
    EXPECT_FALSE(h->alive());
    EXPECT_FALSE(h->send("x"));
    srv.stop();
    EXPECT_EQ(srv.total(&WorkerStats::handle_dropped), kQueued + 1u);
}

// The hammer: connection after connection (four at a time, two workers) starts a thread that posts
// lambdas capturing the session's `this` as fast as it can, and its client resets as soon as the first
// one has run. No lambda runs for a session that is gone (ASan), nothing races (TSan), and every call
// the handle accepted either ran or was counted as dropped.
TEST(Handles, PostsRacingResetsRunOnlyWhileTheSessionExists) {
    constexpr int kRounds = 10, kParallel = 4;
    HandleShared shared;
    RunningServer srv(server_config(2), protocol_of<HandleSession>(&shared));
    for (int round = 0; round < kRounds; ++round) {
        std::vector<UniqueFd> fds;
        for (int i = 0; i < kParallel; ++i) {
            fds.push_back(client(srv.port()));
            send_all(fds.back().get(), std::string("flood\n"));
        }
        for (auto& fd : fds) {
            ASSERT_EQ(recv_exact(fd.get(), 1), "r");
            close_with_reset(std::move(fd));
        }
    }
    shared.threads.join();  // each ends when its handle refuses (or after kMaxPosts)
    EXPECT_TRUE(eventually([&] {
        return shared.ran.load() + srv.total(&WorkerStats::handle_dropped) == shared.posted.load();
    })) << "posted "
        << shared.posted.load() << ", ran " << shared.ran.load() << ", dropped "
        << srv.total(&WorkerStats::handle_dropped);
    EXPECT_EQ(shared.bad.load(), 0u);
    srv.stop();
    EXPECT_EQ(shared.ran.load() + srv.total(&WorkerStats::handle_dropped), shared.posted.load());
}

// =====================================================================================================
// 6. Reservations and kq::offload().

// Jobs that finish in reverse order, whatever the scheduler does: job k of n waits until the n-1-k jobs
// after it have finished (bounded), so the first request's job is the slowest.
struct ReverseChain {
    std::mutex mutex;
    std::condition_variable cv;
    int finished = 0;
    std::vector<int> order;
    void run(int k, int n) {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, 10s, [&] { return finished == n - 1 - k; });
        ++finished;
        order.push_back(k);
        cv.notify_all();
    }
};

struct ReserveShared {
    struct Place {
        ConnHandle handle;
        Reservation place;
    };
    Box<Place> places;
    std::atomic<int> lines{0};
    std::atomic<bool> thrown{false};
    ReverseChain chain;
};

// Lines: "r" reserves a place and hands it to the test; "s X" sends "X\n" inline; "close" closes;
// "job K N" offloads job K of N (ReverseChain) answering "job K\n"; "slow" offloads a job that waits
// until the "throw" job has thrown and answers "slow\n"; "throw" offloads a job that waits until four
// lines were handled, then throws; "fast" offloads one that answers "fast\n" at once.
class ReserveSession final : public Session {
public:
    ReserveSession(Conn&, ReserveShared* s, OffloadPool* pool) : s_(s), pool_(pool) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        return for_each_line(bytes, [&](std::string_view line) {
            handle(std::string(line), conn);
            ++s_->lines;
            return true;
        });
    }

private:
    void handle(const std::string& line, Conn& conn) {
        ReserveShared* s = s_;
        if (line == "r") {
            s->places.push({conn.handle(), conn.reserve()});
        } else if (line.starts_with("s ")) {
            conn.send(line.substr(2) + "\n");
        } else if (line == "close") {
            conn.close();
        } else if (line.starts_with("job ")) {
            int k = 0, n = 0;
            std::sscanf(line.c_str(), "job %d %d", &k, &n);
            offload(conn, *pool_, [s, k, n] {
                s->chain.run(k, n);
                return "job " + std::to_string(k) + "\n";
            });
        } else if (line == "slow") {
            offload(conn, *pool_, [s] {
                eventually([s] { return s->thrown.load(); }, 10'000);
                return std::string("slow\n");
            });
        } else if (line == "throw") {
            offload(conn, *pool_, [s]() -> std::string {
                eventually([s] { return s->lines.load() >= 4; }, 10'000);
                s->thrown = true;
                throw std::runtime_error("the job failed");
            });
        } else if (line == "fast") {
            offload(conn, *pool_, [] { return std::string("fast\n"); });
        }
    }
    ReserveShared* s_;
    OffloadPool* pool_;
};

// Pipelined requests, each offloaded; the jobs finish last-first (the first request's is the slowest),
// and inline sends between them wait behind the reservations before them: answers in request order.
TEST(Reservations, OffloadedAnswersKeepRequestOrder) {
    constexpr int kJobs = 6;
    ReserveShared shared;
    OffloadPool pool(kJobs);  // one thread per job: each waits for the later ones
    RunningServer srv(server_config(1), protocol_of<ReserveSession>(&shared, &pool));
    UniqueFd fd = client(srv.port());
    std::string requests, want;
    for (int k = 0; k < kJobs; ++k) {
        requests += "job " + std::to_string(k) + " " + std::to_string(kJobs) + "\n";
        want += "job " + std::to_string(k) + "\n";
        if (k % 2 == 1) {
            requests += "s inline" + std::to_string(k) + "\n";
            want += "inline" + std::to_string(k) + "\n";
        }
    }
    send_all(fd.get(), requests);
    EXPECT_EQ(recv_exact(fd.get(), want.size()), want);
    {
        std::lock_guard lock(shared.chain.mutex);
        EXPECT_EQ(shared.chain.order, (std::vector<int>{5, 4, 3, 2, 1, 0})) << "the jobs did not finish last-first";
    }
    ::shutdown(fd.get(), SHUT_WR);
    EXPECT_EQ(read_until_closed(fd.get()).bytes, "");
}

// Places filled by the test thread in reverse order: nothing is written until the first one is filled,
// then everything, in order, the inline sends where they were made. A second fill of the same place and a
// fill of a made-up place are ignored; a send after the last fill goes out at once.
TEST(Reservations, InlineSendsWaitBehindAReservationFilledFromAnotherThread) {
    ReserveShared shared;
    OffloadPool pool(1);
    RunningServer srv(server_config(1), protocol_of<ReserveSession>(&shared, &pool));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("s before\nr\nr\ns A\nr\ns B\n"));
    std::vector<ReserveShared::Place> p;
    for (size_t i = 0; i < 3; ++i) {
        auto place = shared.places.at(i);
        ASSERT_TRUE(place);
        p.push_back(*place);
    }
    EXPECT_EQ(recv_line(fd.get()), "before\n");
    EXPECT_TRUE(p[2].handle.fill(p[2].place, "2\n"));
    EXPECT_TRUE(p[1].handle.fill(p[1].place, "1\n"));
    EXPECT_TRUE(p[1].handle.fill(Reservation{p[2].place.ticket + 1000}, "made up\n"));
    EXPECT_FALSE(readable_within(fd.get(), 100)) << "output overtook an unfilled reservation";
    EXPECT_TRUE(p[0].handle.fill(p[0].place, "0\n"));
    const std::string want = "0\n1\nA\n2\nB\n";
    EXPECT_EQ(recv_exact(fd.get(), want.size()), want);
    EXPECT_TRUE(p[0].handle.fill(p[0].place, "again\n"));  // queued, then ignored: already filled
    send_all(fd.get(), std::string("s C\n"));
    EXPECT_EQ(recv_line(fd.get()), "C\n");
    ::shutdown(fd.get(), SHUT_WR);
    EXPECT_EQ(read_until_closed(fd.get()).bytes, "");
}

// close() with a reservation pending: the connection stays open (no EOF) until the place is filled, then
// writes the place and the send queued behind it, and closes; a send after the close is dropped.
TEST(Reservations, CloseWaitsForThePendingFillThenClosesAfterIt) {
    ReserveShared shared;
    OffloadPool pool(1);
    RunningServer srv(server_config(1), protocol_of<ReserveSession>(&shared, &pool));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("r\ns after\nclose\ns dropped\n"));
    auto place = shared.places.at(0);
    ASSERT_TRUE(place);
    ASSERT_TRUE(eventually([&] { return shared.lines.load() == 4; }));
    EXPECT_FALSE(readable_within(fd.get(), 100)) << "closed, or wrote, before the reservation was filled";
    EXPECT_TRUE(place->handle.alive());
    EXPECT_TRUE(place->handle.fill(place->place, "R\n"));
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "R\nafter\n");
    EXPECT_FALSE(got.reset);
}

// A job that throws closes the connection after the output before it, and nothing after it goes out:
// not the answer of a later request that finished first, not a later inline send. A pipelining client
// that got them would take the next answer for the one that failed.
TEST(Reservations, ThrowingJobClosesAfterTheEarlierOutputOnly) {
    ReserveShared shared;
    OffloadPool pool(3);
    RunningServer srv(server_config(1), protocol_of<ReserveSession>(&shared, &pool));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("slow\nthrow\nfast\ns tail\n"));
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "slow\n");
    EXPECT_FALSE(got.reset);

    // Failing first: nothing at all goes out.
    ReserveShared second;
    OffloadPool pool2(2);
    RunningServer srv2(server_config(1), protocol_of<ReserveSession>(&second, &pool2));
    UniqueFd fd2 = client(srv2.port());
    send_all(fd2.get(), std::string("throw\nfast\ns tail\ns more\n"));
    got = read_until_closed(fd2.get());
    EXPECT_EQ(got.bytes, "");
    EXPECT_FALSE(got.reset);
}

// ConnHandle::fail() on a place behind an unfilled one: nothing goes out until the earlier place is
// filled; then it and the send between them, and the close; the failed place's later fill is ignored.
TEST(Reservations, FailedPlaceClosesAfterTheOutputBeforeIt) {
    ReserveShared shared;
    OffloadPool pool(1);
    RunningServer srv(server_config(1), protocol_of<ReserveSession>(&shared, &pool));
    UniqueFd fd = client(srv.port());
    send_all(fd.get(), std::string("r\ns A\nr\ns B\n"));
    auto first = shared.places.at(0), second = shared.places.at(1);
    ASSERT_TRUE(first && second);
    EXPECT_TRUE(second->handle.fail(second->place));
    EXPECT_FALSE(readable_within(fd.get(), 100)) << "closed before the earlier place was filled";
    EXPECT_TRUE(first->handle.fill(first->place, "0\n"));
    Received got = read_until_closed(fd.get());
    EXPECT_EQ(got.bytes, "0\nA\n");
    EXPECT_FALSE(got.reset);
    second->handle.fill(second->place, "too late\n");  // ignored, or refused once the connection is gone
}

// =====================================================================================================
// 7. Who and where, as open() sees it.

struct InfoShared {
    Box<std::string> seen;
};

// Records, in open(), what the connection says about itself; answers any line with it.
class InfoSession final : public Session {
public:
    InfoSession(Conn& conn, InfoShared*) {
        info_ = "peer=" + conn.peer().to_string() + " local=" + conn.local().to_string() +
                " port=" + std::to_string(conn.local().port()) + " worker=" + std::to_string(conn.worker()) +
                " id=" + std::to_string(conn.id()) + "\n";
    }
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        conn.send(info_);
        return bytes.size();
    }

private:
    std::string info_;
};

// peer() is the client's own address, local() the server's, worker() in range, id() unique across
// connections and workers, with the worker's index in its top 16 bits.
TEST(ConnInfo, OpenSeesPeerLocalWorkerAndUniqueId) {
    constexpr int kWorkers = 2, kConns = 16;
    InfoShared shared;
    RunningServer srv(server_config(kWorkers), protocol_of<InfoSession>(&shared));
    std::set<uint64_t> ids;
    std::set<int> workers;
    for (int i = 0; i < kConns; ++i) {
        UniqueFd fd = client(srv.port());
        send_all(fd.get(), std::string("?\n"));
        const std::string line = recv_line(fd.get());
        char peer[64] = {}, local[64] = {};
        unsigned port = 0;
        int worker = -1;
        unsigned long long id = 0;
        ASSERT_EQ(std::sscanf(line.c_str(), "peer=%63s local=%63s port=%u worker=%d id=%llu", peer, local, &port,
                              &worker, &id),
                  5)
            << line;
        EXPECT_EQ(std::string(peer), local_address(fd.get()));
        EXPECT_EQ(std::string(local), "127.0.0.1:" + std::to_string(srv.port()));
        EXPECT_EQ(port, srv.port());
        EXPECT_GE(worker, 0);
        EXPECT_LT(worker, kWorkers);
        EXPECT_EQ(static_cast<int>(id >> 48), worker);
        EXPECT_NE(id & ((uint64_t{1} << 48) - 1), 0u);
        EXPECT_TRUE(ids.insert(id).second) << "id " << id << " given twice";
        workers.insert(worker);
    }
    EXPECT_EQ(workers.size(), static_cast<size_t>(kWorkers)) << "round robin left a worker out";
}

// ---- Stress: offloaded and inline answers interleaved on many pipelining connections.

// Lines "i TAG" are answered inline ("TAG\n"); "o US TAG" are offloaded to a job that works for US
// microseconds (the simulated work, chosen by the client's seeded generator) and answers "TAG\n".
class MixedSession final : public Session {
public:
    MixedSession(Conn&, OffloadPool* pool) : pool_(pool) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        return for_each_line(bytes, [&](std::string_view line) {
            if (line.starts_with("i ")) {
                conn.send(std::string(line.substr(2)) + "\n");
            } else if (line.starts_with("o ")) {
                std::string rest(line.substr(2));
                size_t space = rest.find(' ');
                int us = std::stoi(rest.substr(0, space));
                std::string tag = rest.substr(space + 1) + "\n";
                offload(conn, *pool_, [us, tag] {
                    std::this_thread::sleep_for(std::chrono::microseconds(us));  // the job's work
                    return tag;
                });
            } else {
                conn.send("BAD\n");
            }
            conn.count_requests();
            return true;
        });
    }

private:
    OffloadPool* pool_;
};

// 8 connections x 1,000 pipelined lines, about half offloaded (jobs of 0-2 ms on 4 threads, so they
// finish out of order), each client checks it gets exactly its own answers in its own order, then EOF.
void expect_mixed_answers_in_order(int workers) {
    constexpr int kClients = 8, kLines = 1000;
    OffloadPool pool(4);
    RunningServer srv(server_config(workers), protocol_of<MixedSession>(&pool));
    std::vector<std::string> requests(kClients), wants(kClients), got(kClients);
    std::vector<char> clean_eof(kClients, 0);  // not vector<bool>: each client thread writes its own element
    for (int c = 0; c < kClients; ++c) {
        std::mt19937_64 rng(1000 + c);
        for (int k = 0; k < kLines; ++k) {
            std::string tag = "c" + std::to_string(c) + "-" + std::to_string(k);
            if (rng() % 2 == 0) requests[c] += "i " + tag + "\n";
            else requests[c] += "o " + std::to_string(rng() % 2001) + " " + tag + "\n";
            wants[c] += tag + "\n";
        }
    }
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            UniqueFd fd = client(srv.port(), 0, 15);
            // Sent in a few pieces from a thread of its own, so that answers flow back while lines arrive.
            std::thread sender([&] {
                std::mt19937_64 rng(2000 + c);
                std::string_view rest(requests[c]);
                while (!rest.empty()) {
                    size_t n = std::min<size_t>(rest.size(), 1 + rng() % 4096);
                    send_all(fd.get(), rest.data(), n);
                    rest.remove_prefix(n);
                }
                ::shutdown(fd.get(), SHUT_WR);
            });
            Received r = read_until_closed(fd.get());
            sender.join();
            got[c] = std::move(r.bytes);
            clean_eof[c] = !r.reset;
        });
    }
    for (auto& t : clients) t.join();
    for (int c = 0; c < kClients; ++c) {
        EXPECT_TRUE(clean_eof[c]) << "client " << c;
        EXPECT_EQ(got[c].size(), wants[c].size()) << "client " << c;
        if (got[c] != wants[c]) {
            size_t i = 0;
            while (i < got[c].size() && i < wants[c].size() && got[c][i] == wants[c][i]) ++i;
            ADD_FAILURE() << "client " << c << " diverges at byte " << i << ": got \""
                          << got[c].substr(i >= 20 ? i - 20 : 0, 60) << "\", want \""
                          << wants[c].substr(i >= 20 ? i - 20 : 0, 60) << "\"";
        }
    }
    EXPECT_EQ(srv.total(&WorkerStats::requests), uint64_t{kClients} * kLines);
    EXPECT_TRUE(eventually([&] { return srv.accepted() == srv.total(&WorkerStats::closed); }));
}

TEST(ReservationsStress, AThousandOffloadedRepliesInterleavedWithInlineOnesArriveInOrderPerConnection) {
    expect_mixed_answers_in_order(1);
}
TEST(ReservationsStress, AThousandOffloadedRepliesInterleavedWithInlineOnesArriveInOrderOnTwoWorkers) {
    expect_mixed_answers_in_order(2);
}

}  // namespace
