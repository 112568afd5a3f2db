// One client connection: its fd, protocol session and unsent output, the state machine of its life, and
// its own reads, writes and flushes; it is the Conn its session acts through, and its own deadline.
// What few connections use (held input, user timers, reserved output) lives in Extras, allocated on
// first use and freed when empty, so that an idle connection stays small.
// Thread rules: owned by one worker and used only on that worker's thread, except that with --handoff
// direct the acceptor thread constructs it (without a session) and marks it direct-pending (the atomic
// below) before the worker's first event adopts it. Idle connections hold no I/O buffer: output memory
// exists only while output is pending.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "conn_list.hpp"
#include "deadline_queue.hpp"
#include "kq/fd.hpp"
#include "kq/handler.hpp"
#include "kq/poller.hpp"

namespace kq {

struct WorkerContext;
class UringEngine;

// Bytes accepted for sending but not yet written: a vector plus a read offset, released when empty.
class OutBuffer {
public:
    bool empty() const noexcept { return head_ == data_.size(); }
    size_t size() const noexcept { return data_.size() - head_; }
    std::span<const char> pending() const noexcept { return {data_.data() + head_, size()}; }
    void append(std::span<const char> bytes) { data_.insert(data_.end(), bytes.begin(), bytes.end()); }
    void consume(size_t n) noexcept {
        head_ += n;
        if (empty()) release();
    }
    void release() noexcept {
        std::vector<char>().swap(data_);
        head_ = 0;
    }

private:
    std::vector<char> data_;
    size_t head_ = 0;
};

// Where a connection is in its life. Each state has one way in and says which time-outs apply; a
// connection moves forward only (connecting -> open -> closing -> lingering -> closed, or straight to
// closed).
enum class ConnState : uint8_t {
    connecting,  // outbound (Conn::connect), not connected yet: only the connect time-out applies
    open,        // the session is given what arrives; idle and request time-outs apply
    closing,     // the session or the server ended it: output is flushed, input is no longer read
    lingering,   // output written, then half-closed: input is read and discarded until EOF or the linger ends
    closed,      // fd closed; the object lives until the end of the batch (stale events)
};

class Connection;

// A session's timer (Conn::after, Conn::every) on the worker's deadline queue.
class UserTimer final : public Timer {
public:
    UserTimer(Connection& c, TimerId id, int64_t period_ms, std::function<void(Conn&)> fn)
        : conn_(c), id_(id), period_ms_(period_ms), fn_(std::move(fn)) {}
    void expire(int64_t now_ms) override;

    Connection& conn_;
    TimerId id_;
    int64_t period_ms_;  // 0: one-shot
    std::function<void(Conn&)> fn_;
    bool cancelled_ = false;  // cancelled while it runs
};

class Connection final : public Conn, private Timer {
public:
    // The session comes later (attach_session): it is opened with the connection to talk to.
    Connection(WorkerContext& w, UniqueFd fd) : w_(w), fd_(std::move(fd)) {}
    ~Connection();

    int fd() const noexcept { return fd_.get(); }
    bool is(ConnState s) const noexcept { return state_ == s; }
    // On the worker's resume list (it must leave that list before it is freed).
    bool queued() const noexcept { return queued_; }

    // --handoff direct: set (release) by the acceptor thread before it registers the fd, on a connection
    // built without a session; in that mode the worker reads it (acquire) on each event and adopts the
    // connection on the first, creating its session there. That load/store pair is what orders the
    // acceptor's construction before the worker's use, for TSan as for the reader.
    void mark_direct() noexcept { direct_pending_.store(true, std::memory_order_release); }
    bool direct_pending() const noexcept { return direct_pending_.load(std::memory_order_acquire); }
    void attach_session(std::unique_ptr<Session> session) noexcept {
        direct_pending_.store(false, std::memory_order_relaxed);
        session_ = std::move(session);
    }
    void set_id(uint64_t id) noexcept { id_ = id; }

    // The rest: the owning worker's thread only.
    // Joins the worker: its open list, its activity clock and its deadline.
    void start();
    // One poller event for this connection (stale ones, after it closed, are ignored).
    void on_event(const PollEvent& ev);
    // Input, whatever the state: the session's while open; noted while closing; discarded while lingering.
    void read_input();
    // Taken off the resume list: reads what no edge will announce, unless reading is held back.
    void resume();
    // During a graceful stop: ends an open connection that is between requests.
    void end_if_draining();
    // Closes the fd now (which also takes it out of the poller); the object is freed when the batch ends.
    // On io_uring, operations still in flight are cancelled and the fd closes with the object, once none is.
    void close_now();
    // reap(): true when it may be freed now; otherwise (io_uring, operations in flight) its session goes now
    // and the engine frees the rest with its last completion.
    bool reap_now() noexcept;
    // io_uring: on the worker's send list.
    bool send_listed() const noexcept { return send_listed_; }

    // Conn, for the session.
    using Conn::send;
    void send(std::span<const char> bytes) override;
    Reservation reserve() override;
    void close() override;  // open -> closing
    void shutdown_write() override;
    void count_requests(uint64_t n) override;
    size_t unsent() const noexcept override { return out_.size() + inflight_.size(); }
    bool congested() const noexcept override;
    void pause_reading() override;
    void resume_reading() override;
    bool reading_paused() const noexcept override { return user_paused_; }
    TimerId after(std::chrono::milliseconds delay, std::function<void(Conn&)> fn) override;
    TimerId every(std::chrono::milliseconds period, std::function<void(Conn&)> fn) override;
    bool cancel(TimerId id) override;
    SocketAddress peer() const override;
    SocketAddress local() const override;
    int worker() const noexcept override;
    uint64_t id() const noexcept override { return id_; }
    ConnHandle handle() override;
    std::span<char> held_input() noexcept override;
    void connect(const SocketAddress& to, std::chrono::milliseconds timeout,
                 std::function<std::unique_ptr<Session>(Conn&)> open, std::function<void(int)> failed) override;

    // ConnHandle::fill, on the worker: the bytes of reservation r.
    void fill(Reservation r, std::string bytes);
    // ConnHandle::fail, on the worker: closes before reservation r, which is dropped with all that follows it.
    void fail(Reservation r);
    // A user timer expired.
    void fire(UserTimer& t, int64_t now_ms);

    ListHook<Connection> open_hook_;  // the worker's open list (WorkerContext::OpenList)

private:
    // Output waiting behind an unfilled reservation: one entry per reservation, and one per run of
    // sends between them.
    struct Pending {
        uint64_t ticket;  // the reservation's, until filled; 0: bytes ready to go
        std::string bytes;
    };
    // An outbound connection's callbacks, until it is connected or has failed.
    struct Outbound {
        ConnHandle origin;  // the connection that asked: its callbacks run only while it is open
        std::function<std::unique_ptr<Session>(Conn&)> open;
        std::function<void(int)> failed;
        int error = 0;  // the connect failed at once: reported from the resume list
    };
    struct Extras {
        std::string held;                                // input the session left unconsumed
        std::vector<std::unique_ptr<UserTimer>> timers;  // armed, or running
        std::deque<Pending> pending;                     // output queued behind a reservation
        std::unique_ptr<Outbound> outbound;              // while connecting
        std::string stash;  // io_uring: input received while reading was held back, not yet delivered
        bool empty() const noexcept {
            return held.empty() && timers.empty() && pending.empty() && !outbound && stash.empty();
        }
    };
    Extras& extras();
    void release_extras_if_empty() noexcept;
    bool has_held() const noexcept { return ext_ && !ext_->held.empty(); }
    bool reserving() const noexcept { return ext_ && !ext_->pending.empty(); }
    bool reading_held() const noexcept { return read_paused_ || user_paused_; }
    [[gnu::always_inline]] inline bool deliver(std::span<char> fresh);
    void offer_held();
    bool refuse_input(size_t unconsumed);
    [[gnu::always_inline]] inline void emit(std::span<const char> bytes);
    TimerId add_timer(std::chrono::milliseconds delay, int64_t period_ms, std::function<void(Conn&)> fn);
    void queue_resume();
    void finish_connect(int error);
    int64_t connect_deadline() const noexcept;

    // Timer: fired at or before the earliest deadline of the current state (it moves lazily).
    void expire(int64_t now_ms) override;
    int64_t idle_deadline() const noexcept;
    int64_t request_deadline() const noexcept;
    int64_t linger_deadline() const noexcept;
    int64_t deadline() const noexcept;  // the earliest of the three
    void read_open();
    void discard_input();
    [[gnu::always_inline]] inline void after_data();
    void flush();
    void shut_write_if_flushed();
    bool write_some(std::span<const char> bytes, size_t& done);
    void nodelay_before_second_write(bool written_before);
    int connect_error(bool failed);
    void finish();
    void schedule_read();
    void touch() noexcept;

    WorkerContext& w_;
    std::atomic<bool> direct_pending_{false};
    UniqueFd fd_;
    uint32_t slot_ = UINT32_MAX;  // in the worker's ConnPort, once a handle was asked for
    uint64_t id_ = 0;
    std::unique_ptr<Extras> ext_;
    std::unique_ptr<Session> session_;  // after ext_: destroyed first, while the timers it set still exist
    OutBuffer out_;
    // The completion backend (io_uring, uring_engine.cpp): what the ring has of this connection's.
    friend class UringEngine;
    void ring_read();
    void ring_received(int res, std::span<char> bytes);
    bool ring_wants_recv() const noexcept;
    void ring_emit(std::span<const char> bytes);
    void ring_start_send();
    void ring_sent(int res);
    void ring_polled(int res);
    bool has_stash() const noexcept { return ext_ && !ext_->stash.empty(); }
    // Output written (readiness: flush; completion: a send completed): finish a close, half-close,
    // resume reading below low water, on_drained.
    void after_written();
    // Nothing owed is left to write: readiness backends keep only out_, io_uring also a send in flight.
    bool all_sent() const noexcept { return out_.empty() && inflight_.empty(); }
    OutBuffer inflight_;           // io_uring: the bytes of the send in flight, at a stable address
    uint16_t ops_ = 0;             // io_uring: operations in flight; the object is freed only at 0
    bool recv_armed_ = false;      // io_uring: a receive is armed
    bool recv_cancelled_ = false;  // and its cancel was asked for (reading held back, or closing)
    bool recv_multishot_ = false;  // and it is multishot (see UringEngine::arm_recv)
    bool recv_single_ = false;     // io_uring: reading was held back once: one buffer per receive from now on
    bool recv_drained_ = false;    // io_uring: the last receive left the socket empty (less than a buffer)
    bool send_listed_ = false;     // io_uring: on the worker's send list
    bool ring_sent_once_ = false;  // io_uring: a send was started (TCP_NODELAY before the second)
    bool stash_eof_ = false;       // io_uring: the EOF came after input stashed while reading was held
    bool reaped_ = false;          // io_uring: closed and reaped; its last completion frees it
    ConnState state_ = ConnState::open;
    bool request_timed_ = false;    // open, mid-request: the request time-out runs from request_began_ms_
    bool peer_eof_ = false;         // read() returned 0
    bool eof_hint_ = false;         // the poller reported EOF: a short read no longer proves drained
    bool read_paused_ = false;      // backpressure: output above high water
    bool read_pending_ = false;     // input may be waiting that no new edge will announce
    bool queued_ = false;           // on the worker's resume list
    bool nodelay_pending_ = false;  // TCP_NODELAY is still to be set, before the second write
    bool wrote_ = false;            // a write was attempted (the first one needs no TCP_NODELAY)
    bool output_waited_ = false;    // some output had to wait for the socket: the client is slower than us
    bool answered_ = false;         // the session counted a request during the current on_data()
    bool user_paused_ = false;      // the session paused reading
    bool reoffer_ = false;          // held input is to be offered again (reading resumed)
    bool drain_wanted_ = false;     // output was congested: on_drained() once it is not
    bool write_shut_ = false;       // shutdown_write(): SHUT_WR once the output is written; no more sends
    bool write_shut_done_ = false;  // and SHUT_WR was done
    bool outbound_ = false;         // made by Conn::connect, not accepted: not in WorkerStats::closed
    int64_t last_active_ms_ = 0;    // last read or write progress (worker's coarse clock)
    int64_t request_began_ms_ = 0;  // when the unfinished request began (valid while request_timed_)
    int64_t linger_since_ms_ = 0;   // when the lingering close began (valid while lingering)
    int64_t connect_by_ms_ = 0;     // the connect time-out (valid while connecting)
};

}  // namespace kq
