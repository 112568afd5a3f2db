// One client connection, owned by one worker: fd, protocol session, unsent output, state flags.
// Idle connections hold no I/O buffer: output memory exists only while output is pending.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "conn_list.hpp"
#include "kq/fd.hpp"
#include "kq/handler.hpp"

namespace kq {

class WorkerLoop;

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

// Where a connection is in its life. Each state has one way in and says which time-outs apply; the
// worker moves a connection forward only (open -> closing -> lingering -> closed, or straight to closed).
enum class ConnState : uint8_t {
    open,       // the session is given what arrives; idle and request time-outs apply
    closing,    // the session or the server ended it: output is flushed, input is no longer read
    lingering,  // output written, then half-closed: input is read and discarded until EOF or the linger ends
    closed,     // fd closed; the object lives until the end of the batch (stale events)
};

class Connection final : public Reply {
public:
    Connection(WorkerLoop& loop, UniqueFd fd, std::unique_ptr<Session> session)
        : loop_(loop), fd_(std::move(fd)), session_(std::move(session)) {}

    void send(std::span<const char> bytes) override;
    void close() override;
    void count_requests(uint64_t n) override;
    int fd() const noexcept { return fd_.get(); }
    bool is(ConnState s) const noexcept { return state_ == s; }

    WorkerLoop& loop_;
    // --handoff direct: set (release) by the acceptor thread before it registers the fd; the worker
    // reads it (acquire) on every event and adopts the connection on the first. That load/store pair
    // is what orders the acceptor's construction before the worker's use, for TSan as for the reader.
    std::atomic<bool> direct_pending_{false};
    UniqueFd fd_;
    std::unique_ptr<Session> session_;
    OutBuffer out_;
    ConnState state_ = ConnState::open;
    bool peer_eof_ = false;        // read() returned 0
    bool eof_hint_ = false;        // the poller reported EOF: a short read no longer proves drained
    bool read_paused_ = false;     // backpressure: output above high water
    bool read_pending_ = false;    // input may be waiting that no new edge will announce
    bool queued_ = false;          // on the worker's resume list
    bool nodelay_pending_ = false; // TCP_NODELAY is still to be set, before the second write
    bool wrote_ = false;           // a write was attempted (the first one needs no TCP_NODELAY)
    bool output_waited_ = false;   // some output had to wait for the socket: the client is slower than us
    bool answered_ = false;        // the session counted a request during the current on_data()
    int64_t last_active_ms_ = 0;   // last read or write progress (worker's coarse clock)
    int64_t request_began_ms_ = 0; // when the unfinished request began (valid while on the mid-request list)
    int64_t linger_since_ms_ = 0;  // when the lingering close began (valid while lingering)
    ListHook<Connection> lru_;     // the worker's open connections, least recently active first
    ListHook<Connection> mid_;     // the worker's connections with a request under way, oldest first
    ListHook<Connection> linger_;  // the worker's lingering connections, oldest first
};

}  // namespace kq
