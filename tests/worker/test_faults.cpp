// Fault suite, in-process part (cheap enough for TSan): a batch of resets whose freed fd numbers are
// reused by new clients (libuv's test-tcp-close-accept), resets mid-write and mid-read, and a request
// time-out that fires while a connection waits on the worker's resume list, a graceful stop that finds
// input the busy worker has not taken yet. Each test asserts what
// the healthy clients saw and what the worker counted, then ends with a clean stop.
// The scenarios that need a kqserver child process (RSS, EMFILE, SIGTERM) are in test_faults_process.cpp.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

#include "gated_echo.hpp"
#include "http_test_client.hpp"
#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using FaultTest = BackendTest;

// The test's client sockets are moved to fd numbers from here up, so that every socket below it is
// one of the in-process server's: the fd-reuse test can then see which numbers the server got.
constexpr int kClientFdBase = 8192;

UniqueFd move_high(UniqueFd fd) {
    int high = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, kClientFdBase);
    if (high < 0) throw std::system_error(errno, std::system_category(), "fcntl(F_DUPFD_CLOEXEC)");
    return UniqueFd(high);
}

// The socket fds of this process below kClientFdBase: the server's listening socket and connections.
std::set<int> server_socket_fds() {
    std::set<int> out;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) throw std::system_error(errno, std::system_category(), "opendir /proc/self/fd");
    while (dirent* e = ::readdir(dir)) {
        int fd = std::atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == ::dirfd(dir) || fd >= kClientFdBase) continue;
        char target[64] = {};
        std::string link = "/proc/self/fd/" + std::string(e->d_name);
        if (::readlink(link.c_str(), target, sizeof target - 1) > 0 && std::string_view(target).starts_with("socket:"))
            out.insert(fd);
    }
    ::closedir(dir);
    return out;
}

std::set<int> minus(const std::set<int>& a, const std::set<int>& b) {
    std::set<int> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
    return out;
}

// A connected client socket above kClientFdBase that has made one round trip, so the server holds it.
UniqueFd admitted_client(uint16_t port) {
    UniqueFd fd = move_high(connect_blocking(port));
    send_all(fd.get(), "a");
    if (recv_exact(fd.get(), 1) != "a") throw std::runtime_error("no echo");
    return fd;
}

// libuv's test-tcp-close-accept, on this server: 64 clients with data in flight reset at once while the
// only worker is held (by the gate), so its next wait returns all their events in one batch; it closes
// each one inside that batch, and their fd numbers are free again while the batch's later events, and
// the Connection objects that hold those numbers, are still in use. New clients connect at the moment
// the gate opens: the acceptor thread accepts them concurrently and gets the freed numbers; the worker
// admits them on its next loop, just after freeing the old Connections (so malloc may hand the new ones
// the same addresses that the old events carried). A stale event that reached a new connection would
// show as a wrong or missing echo (or an ASan report); a second group connecting after every reset was
// handled makes the reuse of numbers certain: the kernel hands out the lowest free fd.
TEST_P(FaultTest, NewClientsOnFdNumbersFreedInTheSameBatchAreServedExactly) {
    constexpr size_t kSurvivors = 16, kVictims = 64, kNewEach = 32;
    Gate gate;
    RunningServer srv(config(1), std::make_unique<GatedEchoProtocol>(gate));
    const WorkerStats& stats = srv.server().worker(0).stats();
    std::vector<UniqueFd> survivors, victims, fresh;
    for (size_t i = 0; i < kSurvivors; ++i) survivors.push_back(admitted_client(srv.port()));
    UniqueFd gate_client = admitted_client(srv.port());
    const std::set<int> before = server_socket_fds();
    for (size_t i = 0; i < kVictims; ++i) victims.push_back(admitted_client(srv.port()));
    const std::set<int> victim_fds = minus(server_socket_fds(), before);
    ASSERT_EQ(victim_fds.size(), kVictims);
    for (size_t i = 0; i < 2 * kNewEach; ++i) {  // created now: no client fd is allocated during the race
        UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(s);
        fresh.push_back(move_high(std::move(s)));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(srv.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto connect_fresh = [&](size_t from, size_t to) {
        for (size_t i = from; i < to; ++i)
            ASSERT_EQ(::connect(fresh[i].get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << errno;
    };

    gate.armed = true;
    send_all(gate_client.get(), &kGateByte, 1);
    ASSERT_TRUE(eventually([&] { return gate.holding.load(); }));
    std::mt19937_64 rng(99);
    for (auto& v : victims) send_all(v.get(), random_bytes(rng, 16 * 1024));  // input waiting beside the reset
    const uint64_t big_batches = waits_with_more_than(stats, kVictims / 2);
    for (auto& v : victims) close_with_reset(std::move(v));
    gate.open = true;
    connect_fresh(0, kNewEach);  // races the batch that closes the victims
    ASSERT_TRUE(eventually([&] { return stats.closed.get() >= kVictims; })) << stats.closed.get();
    // On io_uring a closed connection's fd is closed with its last completion, which can come later (a
    // plain ring under TSan): every victim's number is free once the server holds only the sockets it
    // held before them and the first group's.
    ASSERT_TRUE(eventually([&] { return server_socket_fds().size() == before.size() + kNewEach; }))
        << server_socket_fds().size() << " server sockets, expected " << before.size() + kNewEach;
    connect_fresh(kNewEach, 2 * kNewEach);  // lands on numbers the batch freed
    EXPECT_GT(waits_with_more_than(stats, kVictims / 2), big_batches) << "the resets did not arrive as one batch";
    EXPECT_EQ(recv_exact(gate_client.get(), 1), std::string(1, kGateByte));

    std::vector<EchoStream> streams;
    for (auto* group : {&survivors, &fresh}) {
        for (auto& fd : *group) {
            EchoStream& s = streams.emplace_back();
            set_nonblocking(fd.get(), true);
            s.fd = std::move(fd);
            s.pipelined = streams.size() % 2 == 0;
            for (int k = 0; k < 3; ++k) s.payloads.push_back(random_bytes(rng, 1 + rng() % (64 * 1024)));
        }
    }
    ASSERT_TRUE(drive_echo(streams, 60'000)) << "a survivor or new client was not served";
    for (auto& s : streams) ASSERT_TRUE(s.sent == s.received);
    const std::set<int> reused = [&] {
        std::set<int> now = minus(server_socket_fds(), before), out;
        std::set_intersection(now.begin(), now.end(), victim_fds.begin(), victim_fds.end(),
                              std::inserter(out, out.end()));
        return out;
    }();
    std::printf("fd reuse: %zu of %zu new connections on numbers freed by the %zu resets\n", reused.size(),
                2 * kNewEach, kVictims);
    // The second group alone takes kNewEach of the lowest free numbers: the victims' (give or take a hole).
    EXPECT_GE(reused.size(), kNewEach / 2) << "new connections did not reuse the freed fd numbers";
    EXPECT_EQ(stats.closed.get(), kVictims);  // the victims, and nobody else
    EXPECT_LE(stats.errors.get(), kVictims);
    srv.stop();
    EXPECT_EQ(stats.accepted.get(), kSurvivors + 1 + kVictims + 2 * kNewEach);
    EXPECT_EQ(stats.closed.get(), stats.accepted.get());
}

HttpOptions big_routes() {
    HttpOptions o;
    o.max_bytes_route = 64 << 20;
    o.max_body = uint64_t{1} << 40;
    return o;
}

// n healthy round trips on one keep-alive connection, each body checked byte for byte.
void expect_healthy(http::Client& c, int n) {
    for (int i = 0; i < n; ++i) {
        size_t len = 1000 + 997 * static_cast<size_t>(i);
        http::Response r = c.get("/bytes/" + std::to_string(len));
        ASSERT_EQ(r.status, 200);
        ASSERT_EQ(r.body, std::string(len, 'x'));
    }
}

// The server is in the middle of a 32 MiB reply when the client resets: that connection is closed and
// counted as one error, and a healthy client on the same worker keeps getting exact answers.
TEST_P(FaultTest, ResetMidWriteClosesOnlyThatConnection) {
    constexpr size_t kReply = 32 << 20;
    RunningServer srv(config(1), make_http_protocol(big_routes()));
    const WorkerStats& stats = srv.server().worker(0).stats();
    http::Client healthy(srv.port());
    expect_healthy(healthy, 5);
    UniqueFd victim = connect_blocking(srv.port());
    int small = 64 * 1024;  // no receive-buffer autotuning: most of the reply must wait in the server
    ASSERT_EQ(::setsockopt(victim.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    send_all(victim.get(), http::request("GET", "/bytes/" + std::to_string(kReply)));
    std::string first = recv_exact(victim.get(), 256 * 1024);  // the reply is under way ...
    ASSERT_TRUE(first.starts_with("HTTP/1.1 200 OK"));
    ASSERT_TRUE(eventually([&] { return stats.bytes_written.get() > 256 * 1024; }));
    ASSERT_LT(stats.bytes_written.get(), kReply) << "... and not yet finished: the server owes the tail";
    close_with_reset(std::move(victim));
    ASSERT_TRUE(eventually([&] { return stats.closed.get() == 1; }));
    expect_healthy(healthy, 20);
    EXPECT_EQ(stats.errors.get(), 1u);             // the failed write (EPIPE/ECONNRESET), once
    EXPECT_EQ(stats.closed.get(), 1u);             // only the victim
    EXPECT_LT(stats.bytes_written.get(), kReply);  // the tail was dropped, not written somewhere
    srv.stop();
    EXPECT_EQ(stats.closed.get(), 2u);
}

// The client resets while the server holds a partial request: one mid-head, one mid-body. Each is one
// error and one close; no time-out fires for them; a healthy client on the same worker is unaffected.
TEST_P(FaultTest, ResetMidReadClosesOnlyThatConnection) {
    ServerConfig cfg = config(1);
    cfg.worker.request_timeout_ms = 60'000;
    RunningServer srv(cfg, make_http_protocol(big_routes()));
    const WorkerStats& stats = srv.server().worker(0).stats();
    http::Client healthy(srv.port());
    expect_healthy(healthy, 5);
    const std::string partial_head = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(2000, 'a');
    const std::string partial_body =
        http::request("POST", "/", "Content-Length: 10000000\r\n") + std::string(300'000, 'b');
    uint64_t expected_errors = 0;
    for (const std::string& partial : {partial_head, partial_body}) {
        uint64_t read_before = stats.bytes_read.get();
        UniqueFd victim = connect_blocking(srv.port());
        send_all(victim.get(), partial);
        ASSERT_TRUE(eventually([&] { return stats.bytes_read.get() >= read_before + partial.size(); }));
        close_with_reset(std::move(victim));
        ++expected_errors;
        ASSERT_TRUE(eventually([&] { return stats.closed.get() == expected_errors; }));
        expect_healthy(healthy, 10);
#ifdef KQ_LIBKQUEUE
        // libkqueue reads SO_ERROR itself to report the reset (docs/design.md), which clears it: the
        // worker's read() then returns 0, and the reset is closed as an EOF, not counted as an error.
        if (GetParam() == Backend::kqueue) continue;
#endif
        EXPECT_EQ(stats.errors.get(), expected_errors);  // ECONNRESET on read, once
    }
    EXPECT_EQ(stats.request_timeouts.get(), 0u);
    srv.stop();
    EXPECT_EQ(stats.closed.get(), 3u);
}

// A client uploads a huge body as fast as it can, so every read pass uses up the worker's read budget
// and the connection waits on the resume list (input no edge will announce again); its request time-out
// fires meanwhile. The 408 must go out, the connection must close, and the worker must not touch the
// freed connection through the resume list afterwards (ASan checks that); a healthy client is served.
// It found a heap-use-after-free under ASan: run_scheduled read a Connection that expire_timeouts had
// closed and reap() freed while it was still on scheduled_ (reap now takes it off the list first).
TEST_P(FaultTest, RequestTimeoutDuringAFastUploadAnswers408AndClosesCleanly) {
    ServerConfig cfg = config(1);
    cfg.worker.request_timeout_ms = 300;
    RunningServer srv(cfg, make_http_protocol(big_routes()));
    const WorkerStats& stats = srv.server().worker(0).stats();
    UniqueFd uploader = connect_blocking(srv.port());
    send_all(uploader.get(), http::request("POST", "/", "Content-Length: 1000000000000\r\n"));
    std::thread pusher([fd = uploader.get()] {
        std::string chunk(1 << 20, 'u');
        while (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) {}
    });
    std::string reply = recv_until_eof(uploader.get());
    ::shutdown(uploader.get(), SHUT_RDWR);  // ends the pusher if the server has not reset it yet
    pusher.join();
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 408 Request Timeout")) << reply.substr(0, 100);
    EXPECT_GT(stats.bytes_read.get(), 4u << 20) << "the upload never kept the worker's read budget busy";
    EXPECT_EQ(stats.request_timeouts.get(), 1u);
    http::Client healthy(srv.port());
    expect_healthy(healthy, 5);
    srv.stop();
    EXPECT_EQ(stats.closed.get(), 2u);
}

// Lingering close: a client whose upload is over --max-body gets its 413 at once, and the server then
// reads and discards the rest instead of closing on unread input: the client's sends all succeed, and
// after its half-close it reads the whole 413 and EOF. (Closing at once resets the connection, and the
// client's next send fails with ECONNRESET/EPIPE before it ever looks at the answer.)
TEST_P(FaultTest, OverLimitUploadGets413AndMayFinishSending) {
    HttpOptions opt;
    opt.max_body = 64 * 1024;
    RunningServer srv(config(1), make_http_protocol(opt));  // with linger_ms = 0 the sends below fail
    UniqueFd fd = connect_blocking(srv.port());
    const size_t body = 8 << 20;
    send_all(fd.get(), http::request("POST", "/", "Content-Length: " + std::to_string(body) + "\r\n"));
    std::string chunk(64 * 1024, 'u');
    for (size_t sent = 0; sent < body; sent += chunk.size()) send_all(fd.get(), chunk);  // throws on a reset
    ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
    std::string answer = recv_until_eof(fd.get());
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer.substr(0, 80);
    const WorkerStats& stats = srv.server().worker(0).stats();
    ASSERT_TRUE(eventually([&] { return stats.closed.get() == 1; }));
    EXPECT_GE(stats.bytes_read.get(), body);  // the whole upload was read (and discarded)
    EXPECT_EQ(stats.errors.get(), 0u);
}

// The linger is bounded: a client that keeps sending after its 413 is cut off once linger_ms has passed.
TEST_P(FaultTest, LingeringCloseEndsAfterTheLingerTime) {
    HttpOptions opt;
    opt.max_body = 1024;
    ServerConfig cfg = config(1);
    cfg.worker.linger_ms = 300;
    RunningServer srv(cfg, make_http_protocol(opt));
    UniqueFd fd = connect_blocking(srv.port());
    auto start = std::chrono::steady_clock::now();
    send_all(fd.get(), http::request("POST", "/", "Content-Length: 100000000000\r\n"));
    std::string chunk(16 * 1024, 'u');
    bool cut_off = false;
    while (!cut_off && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
        cut_off = ::send(fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0;
    }
    ASSERT_TRUE(cut_off) << "still accepted input 20 s after the 413";
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));  // the worker clock is coarse
    ASSERT_TRUE(eventually([&] { return srv.server().worker(0).stats().closed.get() == 1; }));
}

// A graceful stop answers every byte that had reached the server when it began, even while the worker
// was too busy to take it: 20 clients each have 16 KiB in the server's socket buffers (acknowledged,
// their send queues empty) while the only worker is held in a handler (the gate); then the stop, then
// the gate opens. The readiness backends read each socket dry before ending its connection; io_uring
// must not end one while its input is still in the socket (its receive runs at the next wait) or in
// completions not yet handed out (a plain ring posts them while the worker is held): each client
// gets all 16 KiB back, then the end.
TEST_P(FaultTest, GracefulStopAnswersInputThatArrivedWhileTheWorkerWasBusy) {
    constexpr size_t kClients = 20, kBytes = 16 * 1024;
    Gate gate;
    ServerConfig cfg = config(1);
    cfg.worker.uring_buffer_size = 1024;  // io_uring: each client's input is 16 receive completions
    cfg.worker.drain_timeout_ms = 10'000;
    RunningServer srv(cfg, std::make_unique<GatedEchoProtocol>(gate));
    std::vector<UniqueFd> clients;
    for (size_t i = 0; i < kClients; ++i) clients.push_back(admitted_client(srv.port()));
    UniqueFd gate_client = admitted_client(srv.port());
    gate.armed = true;
    send_all(gate_client.get(), &kGateByte, 1);
    ASSERT_TRUE(eventually([&] { return gate.holding.load(); }));
    std::mt19937_64 rng(1212);
    std::vector<std::string> sent;
    for (auto& c : clients) {
        sent.push_back(random_bytes(rng, kBytes));
        send_all(c.get(), sent.back());
    }
    // In the server's receive queues: nothing left unsent or unacknowledged on the client side.
    ASSERT_TRUE(eventually([&] {
        return std::all_of(clients.begin(), clients.end(),
                           [](const UniqueFd& c) { return unacknowledged(c.get()) == 0; });
    }));
    srv.server().stop();  // graceful: the worker, still held, sees it at its next loop
    gate.open = true;
    EXPECT_EQ(recv_exact(gate_client.get(), 1), std::string(1, kGateByte));
    for (size_t i = 0; i < kClients; ++i) {
        Received r = read_until_closed(clients[i].get());
        EXPECT_FALSE(r.reset) << "client " << i;
        EXPECT_EQ(r.bytes.size(), kBytes) << "client " << i << ": input that arrived before the stop was not answered";
        EXPECT_TRUE(r.bytes == sent[i]) << "client " << i;
        clients[i].reset();  // the server's lingering close ends with it
    }
    gate_client.reset();
    srv.stop_within(10'000);
    EXPECT_EQ(srv.total(&WorkerStats::closed), kClients + 1);
}

// A graceful stop answers input that reached the server while backpressure held its reading back: a
// client sends without reading until the server, owing it more than high water, has stopped reading with
// input unread in its socket; then the stop. Every byte the server's kernel had acknowledged before the
// stop comes back, in order, before the end. Ending the connection as soon as its output was written
// (the readiness backends did) dropped that input in the lingering close: the client got back only what
// the server had read when it paused (on epoll, 373,760 of the 570,156 bytes that had arrived).
TEST_P(FaultTest, GracefulStopAnswersInputThatBackpressureHeldBack) {
    ServerConfig cfg = config(1);
    cfg.worker.high_water = 64 << 10;
    cfg.worker.low_water = 16 << 10;
    cfg.worker.drain_timeout_ms = 10'000;
    cfg.listen.send_buffer = 64 << 10;  // fixed kernel buffers, so that the server's own fills soon
    RunningServer srv(cfg);
    UniqueFd idle = admitted_client(srv.port());  // between requests: the drain ends it at once
    const std::set<int> before = server_socket_fds();
    UniqueFd client = admitted_client(srv.port());
    std::set<int> added;
    ASSERT_TRUE(eventually([&] { return (added = minus(server_socket_fds(), before)).size() == 1; }));
    const int server_side = *added.begin();
    // Small client buffers: the answers soon fill them, and the client's sends stop soon after the
    // server stops reading.
    const int small = 64 << 10;
    ASSERT_EQ(::setsockopt(client.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ASSERT_EQ(::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    std::mt19937_64 rng(1313);
    const std::string pool = random_bytes(rng, 16 << 20);
    size_t sent = 0;  // pool[0, sent), after admitted_client's round trip (which the client read)
    const WorkerStats& st = srv.server().worker(0).stats();
    // Send what the socket takes until the server holds reading back: it owes more than high water (its
    // answers are all it writes), and input it has not read waits in its socket.
    ASSERT_TRUE(eventually([&] {
        while (sent < pool.size()) {
            ssize_t n = ::send(client.get(), pool.data() + sent, pool.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0) break;
            sent += static_cast<size_t>(n);
        }
        int unread = 0;
        const uint64_t written = st.bytes_written.get();
        return st.bytes_read.get() - written > cfg.worker.high_water && ::ioctl(server_side, FIONREAD, &unread) == 0 &&
               unread > 0;
    }));
    const int queued = unacknowledged(client.get());
    ASSERT_GE(queued, 0);
    const size_t arrived = sent - static_cast<size_t>(queued);  // acknowledged by the server's kernel
    srv.server().stop();
    // The drain has begun once it has ended the idle client: one pass looks at every connection. Only
    // then does the client read, so that the drain finds its reading still held back.
    Received idle_end = read_until_closed(idle.get());
    EXPECT_TRUE(idle_end.bytes.empty() && !idle_end.reset);
    idle.reset();  // the server's lingering close ends with it
    Received r = read_until_closed(client.get());
    EXPECT_FALSE(r.reset);
    EXPECT_GE(r.bytes.size(), arrived) << "input that had arrived before the stop was not answered";
    EXPECT_LE(r.bytes.size(), sent);
    EXPECT_TRUE(pool.compare(0, r.bytes.size(), r.bytes) == 0) << "the answer is not the input, in order";
    client.reset();
    srv.stop_within(10'000);
    EXPECT_EQ(st.closed.get(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, FaultTest, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
