// A worker's event loop driven by scripted poller events (ScriptedPoller through
// WorkerConfig::poller_factory) over real loopback TCP connections: events a kernel reports only rarely
// or in an unlucky order (a spurious edge, duplicates, an error after a reply, an EOF with input unread,
// events for a connection closed earlier in the same batch), and the same double decorating a real
// backend. Each test waits for the loop to be idle again, then checks what the client received and what
// the worker counted.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kq/protocols.hpp"
#include "kq/worker.hpp"
#include "scripted_poller.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

// One end of a loopback TCP connection for the test, the other (non-blocking, as the acceptor hands
// it over) handed to the worker through its mailbox, and the udata the worker registered it with.
struct Client {
    UniqueFd fd;
    int server_fd = -1;
    void* udata = nullptr;
};

// A started kq::Worker serving echo whose poller is a ScriptedPoller; no time-outs, so nothing happens
// that the test did not script. With `decorate` the ScriptedPoller wraps the real backend, and
// `transform` sees each of its batches. The destructor stops and joins it.
class ScriptedWorker {
public:
    explicit ScriptedWorker(Backend backend = Backend::epoll, bool decorate = false,
                            ScriptedPoller::Transform transform = {}) {
        WorkerConfig cfg;
        cfg.backend = backend;
        cfg.idle_timeout_ms = cfg.request_timeout_ms = 0;
        cfg.poller_factory = [this, decorate, transform](Backend b) {
            auto p = decorate ? std::make_unique<ScriptedPoller>(make_poller(b)) : std::make_unique<ScriptedPoller>(b);
            p->set_transform(transform);
            poller_ = p.get();
            return p;
        };
        worker_ = std::make_unique<Worker>(0, cfg, *protocol_);
        worker_->start();
    }
    ~ScriptedWorker() {
        worker_->request_stop();
        worker_->join();
    }

    ScriptedPoller& poller() { return *poller_; }
    Worker& worker() { return *worker_; }
    const WorkerStats& stats() const { return worker_->stats(); }

    Client connect() {
        Client c;
        c.fd = connect_blocking(port());
        int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) throw std::runtime_error("accept4");
        c.server_fd = fd;
        if (!worker_->link().mailbox->push(fd)) throw std::runtime_error("mailbox full");
        auto reg = poller_->await_registration(fd);
        if (!reg) throw std::runtime_error("the worker never registered the connection");
        c.udata = reg->udata;
        return c;
    }
    // Queues one batch and waits until the loop has handled it and everything it caused.
    void deliver(std::vector<PollEvent> batch) {
        poller_->queue(std::move(batch));
        ASSERT_TRUE(poller_->await_idle()) << "the worker did not go back to waiting";
    }

private:
    uint16_t port() const { return local_port(listener_.get()); }

    UniqueFd listener_ = listen_tcp(ListenOptions{});
    std::unique_ptr<Protocol> protocol_ = make_builtin_protocol("echo");
    ScriptedPoller* poller_ = nullptr;  // owned by the worker's loop
    std::unique_ptr<Worker> worker_;
};

PollEvent readable(const Client& c) { return PollEvent{.udata = c.udata, .readable = true}; }
PollEvent writable(const Client& c) { return PollEvent{.udata = c.udata, .writable = true}; }
PollEvent eof(const Client& c) { return PollEvent{.udata = c.udata, .eof = true}; }
PollEvent error(const Client& c) { return PollEvent{.udata = c.udata, .error = true}; }

// The factory receives the configured backend, and the worker reports the poller it made.
TEST(WorkerLoopScripted, PollerFactoryReplacesTheBackend) {
    ScriptedWorker w(Backend::kqueue);
    EXPECT_EQ(w.worker().backend(), Backend::kqueue);
    Client c = w.connect();
    EXPECT_NE(c.udata, nullptr);
}

// Edge-triggered pollers may report readiness that a read then does not find (epoll does after some
// wake-ups): the read's EAGAIN must leave the connection open and served.
TEST(WorkerLoopScripted, SpuriousReadableLeavesTheConnectionAlone) {
    ScriptedWorker w;
    Client c = w.connect();
    w.deliver({readable(c)});
    EXPECT_EQ(w.stats().closed.get(), 0u);
    EXPECT_EQ(w.stats().bytes_read.get(), 0u);
    EXPECT_FALSE(readable_within(c.fd.get(), 0)) << "the client got bytes or an EOF it did not ask for";
    send_all(c.fd.get(), "ping");
    w.deliver({readable(c)});
    EXPECT_EQ(recv_exact(c.fd.get(), 4), "ping");
    EXPECT_EQ(w.stats().bytes_read.get(), 4u);
}

// A writable edge with no output owed writes nothing and closes nothing.
TEST(WorkerLoopScripted, SpuriousWritableWritesNothing) {
    ScriptedWorker w;
    Client c = w.connect();
    w.deliver({writable(c), writable(c)});
    EXPECT_EQ(w.stats().bytes_written.get(), 0u);
    EXPECT_EQ(w.stats().closed.get(), 0u);
    EXPECT_FALSE(readable_within(c.fd.get(), 0));
}

// The same readiness reported twice in one batch (kqueue's READ and WRITE filters, unmerged) reads the
// input once: the echo comes back once, not twice.
TEST(WorkerLoopScripted, DuplicateReadableInOneBatchEchoesOnce) {
    ScriptedWorker w;
    Client c = w.connect();
    send_all(c.fd.get(), "hello");
    w.deliver({readable(c), readable(c), PollEvent{.udata = c.udata, .readable = true, .writable = true}});
    EXPECT_EQ(recv_exact(c.fd.get(), 5), "hello");
    EXPECT_FALSE(readable_within(c.fd.get(), 0)) << "the input was answered more than once";
    EXPECT_EQ(w.stats().bytes_read.get(), 5u);
    EXPECT_EQ(w.stats().bytes_written.get(), 5u);
}

// An error after the reply went out closes the connection: the client has its reply, then a FIN.
TEST(WorkerLoopScripted, ErrorAfterAReplyClosesAfterTheReply) {
    ScriptedWorker w;
    Client c = w.connect();
    send_all(c.fd.get(), "ping");
    w.deliver({readable(c)});
    EXPECT_EQ(recv_exact(c.fd.get(), 4), "ping");
    w.deliver({error(c)});
    EXPECT_EQ(w.stats().closed.get(), 1u);
    Received r = read_until_closed(c.fd.get());
    EXPECT_EQ(r.bytes, "");
    EXPECT_FALSE(r.reset) << "closed with nothing unread: a FIN, not a reset";
}

// An EOF reported without a readable flag, with the client's last bytes still unread: they are read
// and answered before the connection ends.
TEST(WorkerLoopScripted, EofWithUnreadInputAnswersItBeforeClosing) {
    ScriptedWorker w;
    Client c = w.connect();
    send_all(c.fd.get(), "abc");
    ASSERT_EQ(::shutdown(c.fd.get(), SHUT_WR), 0);
    w.deliver({eof(c)});
    Received r = read_until_closed(c.fd.get());
    EXPECT_EQ(r.bytes, "abc");
    EXPECT_FALSE(r.reset);
    EXPECT_EQ(w.stats().bytes_read.get(), 3u);
    EXPECT_EQ(w.stats().closed.get(), 1u);
}

// A connection closed by the first event of a batch still has events later in it: they must find it
// closed (not freed) and do nothing, and the other connection in the batch is served. ASan reports a
// use after free here if the loop freed the connection inside the batch.
TEST(WorkerLoopScripted, EventsForAConnectionClosedEarlierInTheBatchAreIgnored) {
    ScriptedWorker w;
    Client a = w.connect(), b = w.connect();
    send_all(b.fd.get(), "kept");
    uint64_t wakeups = w.stats().wakeups.get();
    w.deliver({error(a), readable(a), writable(a), eof(a), PollEvent{.wake = true}, readable(b), error(a)});
    EXPECT_EQ(w.stats().closed.get(), 1u) << "a closed once, b not at all";
    EXPECT_EQ(w.stats().wakeups.get(), wakeups + 1);
    EXPECT_EQ(recv_exact(b.fd.get(), 4), "kept");
    EXPECT_EQ(w.stats().bytes_written.get(), 4u) << "nothing was answered to a";
    // b is still served after the batch that closed a.
    send_all(b.fd.get(), "more");
    w.deliver({readable(b)});
    EXPECT_EQ(recv_exact(b.fd.get(), 4), "more");
    EXPECT_EQ(w.stats().closed.get(), 1u);
}

// Decorating a real backend (the fuzz target's set-up): the registration reaches the kernel, its events
// drive the connection, and the transform sees them; a duplicate of each connection event at the end of
// its batch changes nothing the client sees.
TEST(WorkerLoopScripted, DecoratedBackendPassesRealEventsThrough) {
    for (Backend backend : poller_backends()) {  // a scripted poller decorates a readiness backend
        SCOPED_TRACE(std::string(backend_name(backend)));
        std::atomic<uint64_t> seen{0};
        auto duplicate = [&seen](std::span<PollEvent> out, int n) {
            size_t m = static_cast<size_t>(n);
            for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
                if (out[i].wake) continue;
                seen.fetch_add(1);
                if (m < out.size()) out[m++] = out[i];
            }
            return static_cast<int>(m);
        };
        ScriptedWorker w(backend, true, duplicate);
        EXPECT_EQ(w.worker().backend(), backend);
        Client c = w.connect();
        timeval tv{10, 0};  // a lost event fails the test instead of hanging it
        ASSERT_EQ(::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        send_all(c.fd.get(), "hello");
        EXPECT_EQ(recv_exact(c.fd.get(), 5), "hello");
        send_all(c.fd.get(), "world");
        EXPECT_EQ(recv_exact(c.fd.get(), 5), "world") << "an echo came back twice or not at all";
        ASSERT_EQ(::shutdown(c.fd.get(), SHUT_WR), 0);
        Received r = read_until_closed(c.fd.get());
        EXPECT_EQ(r.bytes, "");
        EXPECT_FALSE(r.reset);
        EXPECT_EQ(w.poller().registrations().size(), 1u);
        EXPECT_TRUE(eventually([&] { return w.stats().closed.get() == 1; }));
        // The first event, then at least one more for the EOF (the duplicate may have read "world" early,
        // but the EOF came after that answer, so a later wait reported it).
        EXPECT_GE(seen.load(), 2u) << "the transform did not see the kernel's events";
    }
}

// Each connection is registered once, for READ and WRITE, whatever events follow; none is removed by
// hand (closing its fd removes the registration).
TEST(WorkerLoopScripted, EachConnectionIsRegisteredOnceForReadAndWrite) {
    ScriptedWorker w;
    std::vector<Client> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(w.connect());
    for (int round = 0; round < 3; ++round) {
        for (Client& c : clients) send_all(c.fd.get(), "x");
        std::vector<PollEvent> batch;
        for (Client& c : clients) batch.push_back(PollEvent{.udata = c.udata, .readable = true, .writable = true});
        w.deliver(batch);
        for (Client& c : clients) EXPECT_EQ(recv_exact(c.fd.get(), 1), "x");
    }
    w.deliver({error(clients[0])});
    auto regs = w.poller().registrations();
    ASSERT_EQ(regs.size(), clients.size());
    for (size_t i = 0; i < clients.size(); ++i) {
        EXPECT_EQ(regs[i].fd, clients[i].server_fd);
        EXPECT_EQ(regs[i].udata, clients[i].udata);
        EXPECT_FALSE(regs[i].readonly);
    }
    EXPECT_TRUE(w.poller().removals().empty());
}

}  // namespace
