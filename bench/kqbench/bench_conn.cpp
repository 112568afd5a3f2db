// A bench thread's connections: non-blocking connect, requests written and replies read edge-triggered
// (each read drains to EAGAIN, each write keeps only its unsent tail), completions timed and counted,
// and broken connections closed and retried.
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "kqbench/bench_thread.hpp"

namespace kq::bench {
namespace {

constexpr int64_t kMinBackoff = 10'000'000;     // after a failed connect, retry in 10 ms,
constexpr int64_t kMaxBackoff = 1'000'000'000;  // doubling up to 1 s

uint64_t to_us(int64_t ns) { return ns <= 0 ? 0 : static_cast<uint64_t>((ns + 500) / 1000); }

}  // namespace

void BenchThread::start_connect(Conn& c, int64_t now) {
    c.connect_start = now;
    UniqueFd fd(::socket(shared_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return connect_failed(c, errno, now);
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&shared_.addr), shared_.addr_len);
    if (rc != 0 && errno != EINPROGRESS) return connect_failed(c, errno, now);
    try {
        poller_->add(fd.get(), &c);
    } catch (const std::system_error& e) {  // e.g. ENOSPC: fs.epoll.max_user_watches
        return connect_failed(c, e.code().value(), now);
    }
    c.fd = std::move(fd);
    c.state = Conn::State::connecting;
    if (rc == 0) on_connected(c, now);
}

void BenchThread::on_connected(Conn& c, int64_t now) {
    c.state = Conn::State::open;
    c.backoff_ns = 0;
    ++stats_.connects;
    if (!c.ever_open) {
        c.ever_open = true;
        ++stats_.established;
    }
    first_attempt_done(c, true, 0);
    fill(c, now);
}

void BenchThread::connect_failed(Conn& c, int err, int64_t now) {
    // A reset before the connect was seen to complete: a server accepted and reset it, so it is reachable.
    ErrorKind kind = err == ECONNREFUSED ? ErrorKind::connect_refused
                     : err == ETIMEDOUT  ? ErrorKind::connect_timeout
                     : err == ECONNRESET ? ErrorKind::reset
                                         : ErrorKind::connect_error;
    count_error(kind, now);
    release(c);
    c.fd.reset();
    c.state = Conn::State::idle;
    c.backoff_ns = std::clamp(c.backoff_ns * 2, kMinBackoff, kMaxBackoff);
    c.retry_at = now + c.backoff_ns;
    to_idle(c);
    first_attempt_done(c, kind == ErrorKind::reset, err);
}

// When every connection's first attempt has failed and none ever connected, the server is unreachable
// and the run ends at once rather than retrying for the whole duration. ever_connected is stored before
// the count is raised, so whoever raises the count to the total sees every success.
void BenchThread::first_attempt_done(Conn& c, bool connected, int err) {
    if (!c.first_attempt) return;
    c.first_attempt = false;
    ++first_tried_;
    if (connected) shared_.ever_connected.store(true);
    int expected = 0;
    if (!connected) shared_.first_errno.compare_exchange_strong(expected, err);
    int done = shared_.first_attempts.fetch_add(1) + 1;
    if (done == cfg_.connections && !shared_.ever_connected.load()) shared_.abort.store(true);
}

void BenchThread::on_event(Conn& c, const PollEvent& ev) {
    if (c.state == Conn::State::idle) return;  // closed earlier in this batch: a stale event
    if (c.state == Conn::State::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) return connect_failed(c, err, now_ns());
        if (!ev.writable && !ev.error) return;  // still in progress
        on_connected(c, now_ns());
        if (c.state != Conn::State::open) return;
    }
    if (ev.readable || ev.eof || ev.error) read_all(c, ev.eof || ev.error);
    if (c.state == Conn::State::open && ev.writable && c.out_off < c.out.size()) flush(c, now_ns());
}

// Reads until EAGAIN, or until a short read when the event reported no EOF (then the socket is drained:
// nginx's EPOLLRDHUP shortcut), feeding every byte to the codec; the pipeline is topped up again once
// the whole batch of events has been read (fill_ready).
void BenchThread::read_all(Conn& c, bool eof_hint) {
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf_.data(), buf_.size(), 0);
        int64_t now = now_ns();
        if (n > 0) {
            if (measuring(now)) stats_.bytes_received += static_cast<uint64_t>(n);
            done_.clear();
            Fatal f = c.codec->feed(std::span<const char>(buf_.data(), static_cast<size_t>(n)), done_);
            for (Outcome o : done_) {
                if (c.inflight.empty()) break;  // --reconnect closed it after its reply
                complete(c, o, now);
            }
            if (f != Fatal::none && c.state == Conn::State::open) {
                fail_conn(c, f == Fatal::verify ? ErrorKind::verify : ErrorKind::parse, now);
            }
            if (c.state != Conn::State::open) return;
            if (c.codec->peer_closing() && c.inflight.empty()) return close_conn(c, now, now);
            if (static_cast<size_t>(n) < buf_.size() && !eof_hint) break;
            continue;
        }
        if (n == 0) return on_eof(c, now);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return fail_conn(c, ErrorKind::reset, now);
    }
    to_ready(c);
}

// The server closed. A reply framed by the close finishes here; requests still outstanding are lost.
void BenchThread::on_eof(Conn& c, int64_t now) {
    done_.clear();
    if (c.codec->feed_eof(done_)) {
        for (Outcome o : done_) complete(c, o, now);
    }
    if (c.state != Conn::State::open) return;
    if (!c.inflight.empty()) return fail_conn(c, ErrorKind::closed, now);
    close_conn(c, now, now);  // an idle connection closed by the server (e.g. "Connection: close")
}

void BenchThread::complete(Conn& c, Outcome o, int64_t now) {
    InFlight f = c.inflight.front();
    c.inflight.pop_front();
    --inflight_;
    uint64_t us = to_us(now - f.intended_ns);
    if (o.ok()) {  // the progress line shows the warm-up too
        if (shared_.progress) interval_.record(us);
        ok_progress_.add();
    }
    if (f.measured) {
        stats_.last_done_ns = now;
        rotate_interval(now);
        ++(o.ok() ? second_.ok : second_.failed);
        if (o.ok()) {
            ++stats_.ok;
            stats_.latency.record(us);
            second_.latency.record(us);
            if (cfg_.rate > 0) stats_.latency_uncorrected.record(to_us(now - f.start_ns));
            stats_.sets += o.kv == KvResult::stored ? 1 : 0;
            stats_.hits += o.kv == KvResult::hit ? 1 : 0;
            stats_.misses += o.kv == KvResult::miss ? 1 : 0;
        } else {
            ++stats_.failed;
            if (o.status != 0) ++stats_.status_codes[o.status];  // memcache/resp error replies have none
            count_error(ErrorKind::status, now);
        }
    }
    if (cfg_.reconnect && c.inflight.empty()) close_conn(c, now, now);
}

// Keeps the pipeline full: closed loop while sending is allowed, open loop from the connection's
// backlog of due slots. With --reconnect a connection carries one request (pipeline 1 is enforced by
// the command line) and its latency runs from the connect.
void BenchThread::fill(Conn& c, int64_t now) {
    if (c.state != Conn::State::open || !released_) return;
    if (c.codec->peer_closing()) return flush(c, now);  // what is in flight may still be answered
    const size_t depth = cfg_.reconnect ? 1 : static_cast<size_t>(cfg_.pipeline);
    const int64_t start = cfg_.reconnect ? c.connect_start : now;
    if (cfg_.rate > 0) {
        while (!c.backlog.empty() && c.inflight.size() < depth && now < stop_at_) {
            int64_t intended = c.backlog.front();
            c.backlog.pop_front();
            if (intended >= shared_.measure_start) --backlog_measured_;
            send_one(c, intended, start);
        }
    } else {
        while (c.inflight.size() < depth && now < stop_at_) {
            if (c.reserved) {
                c.reserved = false;
                --reserved_;
            } else if (!may_send_closed(now)) {
                break;
            } else if (requests_mode_ && start >= shared_.measure_start) {
                --quota_left_;
            }
            send_one(c, start, start);
        }
    }
    flush(c, now);
}

void BenchThread::to_ready(Conn& c) {
    if (c.in_ready_list) return;
    c.in_ready_list = true;
    ready_.push_back(&c);
}

// Replies are all read before any request leaves, as wrk does: the server is handed the batch's
// requests back to back rather than one between each of our reads, and each request's clock starts
// just before its own send, so the time spent reading the others is not counted in its latency.
void BenchThread::fill_ready() {
    for (Conn* c : ready_) {
        c->in_ready_list = false;
        fill(*c, now_ns());
    }
    ready_.clear();
}

void BenchThread::send_one(Conn& c, int64_t intended, int64_t start) {
    bool measured = intended >= shared_.measure_start;
    if (measured) ++stats_.sent;
    stats_.first_send_ns = std::min(stats_.first_send_ns, start);
    c.codec->write_request(c.out);
    c.inflight.push_back({start, intended, measured});
    ++inflight_;
}

void BenchThread::flush(Conn& c, int64_t now) {
    while (c.out_off < c.out.size()) {
        ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_off += static_cast<size_t>(n);
            if (measuring(now)) stats_.bytes_sent += static_cast<uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // the WRITE edge resumes it
        return fail_conn(c, ErrorKind::reset, now);
    }
    c.out.clear();
    c.out_off = 0;
}

// The connection is unusable: one error of this kind, every measured request outstanding on it failed.
// Except when the server had announced the close: what it never read goes back to be sent again.
void BenchThread::fail_conn(Conn& c, ErrorKind kind, int64_t now) {
    if ((kind == ErrorKind::reset || kind == ErrorKind::closed) && c.codec->peer_closing()) {
        requeue(c);
        return close_conn(c, now, now);
    }
    count_error(kind, now);
    rotate_interval(now);
    for (const InFlight& f : c.inflight) {
        if (!f.measured) continue;
        ++stats_.failed;
        ++second_.failed;
        stats_.last_done_ns = now;
    }
    inflight_ -= c.inflight.size();
    c.inflight.clear();
    close_conn(c, now, now);
}

// Requests sent after the reply that announced the close, unanswered: as if never sent.
void BenchThread::requeue(Conn& c) {
    for (auto it = c.inflight.rbegin(); it != c.inflight.rend(); ++it) {
        if (it->measured) --stats_.sent;
        if (cfg_.rate > 0 && stopped_) {
            stats_.unsent += it->measured ? 1 : 0;
        } else if (cfg_.rate > 0) {
            c.backlog.push_front(it->intended_ns);
            backlog_measured_ += it->measured ? 1 : 0;
        } else if (requests_mode_ && it->measured) {
            ++quota_left_;
        }
    }
    inflight_ -= c.inflight.size();
    c.inflight.clear();
}

// Connect errors count over the whole run (they decide whether the server is reachable at all); the
// others only inside the measured window, like the requests they belong to.
void BenchThread::count_error(ErrorKind kind, int64_t now) {
    bool connect =
        kind == ErrorKind::connect_refused || kind == ErrorKind::connect_timeout || kind == ErrorKind::connect_error;
    if (!connect && !measuring(now)) return;
    ++stats_.errors[index(kind)];
    errors_progress_.add();
}

void BenchThread::close_conn(Conn& c, int64_t now, int64_t retry_at) {
    (void)now;
    release(c);
    c.fd.reset();
    c.state = Conn::State::idle;
    c.out.clear();
    c.out_off = 0;
    c.codec->reset();
    c.retry_at = retry_at;
    to_idle(c);
}

void BenchThread::to_idle(Conn& c) {
    if (c.in_idle_list) return;
    c.in_idle_list = true;
    idle_.push_back(&c);
}

}  // namespace kq::bench
