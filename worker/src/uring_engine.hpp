// The completion backend (--backend io_uring): one ring per worker, a completion-model engine beside the
// readiness pollers rather than a Poller. Connections arm a multishot receive into the worker's provided
// buffer ring (each completion's bytes go to the session through Connection::deliver, and the buffer
// goes straight back); sends are collected during a loop iteration and prepared just before the next
// wait, which submits them (one io_uring_enter per busy iteration). user_data is the Connection* with
// the operation in its low bits; a connection is freed only once none of its operations is in flight.
// Thread rules: constructed on the owner thread (it checks the kernel gives us a ring, and makes the
// wake eventfd); wake() from any thread; everything else on the worker's thread, between start() and
// finish() (IORING_SETUP_SINGLE_ISSUER binds the ring to the thread that makes it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "kq/fd.hpp"
#include "kq/poller.hpp"
#include "kq/worker_config.hpp"

namespace kq {

class Connection;
struct WorkerContext;

class UringEngine final : public Waker {
public:
    // The operation of a completion, in the low bits of its user_data (a Connection is 8-byte aligned).
    enum Op : uint64_t { op_recv = 0, op_send = 1, op_poll = 2, op_cancel = 3, op_wake = 4, op_accept = 5 };
    static constexpr uint64_t kOpMask = 7;

    // Owner thread. Throws std::invalid_argument with a one-line reason when this build has no io_uring
    // or the kernel refuses one (io_uring_disabled, seccomp, a kernel without provided buffer rings).
    explicit UringEngine(const WorkerConfig& cfg);
    // Whether this machine gives a ring the setup the engine was measured with (io_uring allowed,
    // provided buffer rings, SINGLE_ISSUER and DEFER_TASKRUN: Linux 6.1): what Backend::automatic
    // needs before it picks io_uring. Probed once per process; false without liburing.
    static bool full_featured();
    ~UringEngine();
    UringEngine(const UringEngine&) = delete;
    UringEngine& operator=(const UringEngine&) = delete;

    // Any thread: the current or next wait returns (an eventfd the ring keeps a read armed on).
    void wake() noexcept override;

    // Worker thread: makes the ring and the buffer ring. Throws std::system_error.
    void start(WorkerContext& w);
    // Worker thread, at the end of run(): cancels what is in flight, waits (bounded) for those
    // completions, frees the connections that waited for them, and closes the ring.
    void finish() noexcept;

    // What one wait brought besides the connections' completions (which dispatch() hands to them).
    struct Batch {
        unsigned completions = 0;
        bool woken = false;  // the wake eventfd fired
    };
    // Prepares a send for each connection on the send list, submits, and waits up to timeout_ms (-1:
    // until a completion, 0: not at all). Returns the number of completions ready.
    unsigned wait(int timeout_ms);
    // Hands every ready completion to its connection (or notes a wake, or collects an accept's
    // result in accepted()), returns buffers.
    Batch dispatch();

    // The connection's operations (Connection calls these).
    void arm_recv(Connection& c);
    void cancel_recv(Connection& c);
    void send(Connection& c, const char* data, size_t size);
    void poll_connect(Connection& c);
    void cancel_all(Connection& c);
    // reap(): c is closed and was taken off every list; it is freed once its last operation completes.
    void keep_until_idle(Connection& c);
    // --accept reuseport: a multishot accept on the listening socket (armed once at a time; submitted
    // with the next wait). Each of its completions is a new fd (or -errno), collected in accepted().
    void arm_accept(int listen_fd);
    // While accepting is held back (the limit, an EMFILE pause): cancels the multishot accept, with
    // the next wait. What the kernel accepted before the cancel still comes in accepted().
    void hold_accept();
    // Before the listening socket closes: cancels the multishot accept now (it holds the socket, and
    // its backlog, alive).
    void cancel_accept() noexcept;
    // Whether a multishot accept is on the ring (armed, or cancelled and not yet ended).
    bool accept_armed() const noexcept { return accept_armed_; }
    // The results of the accepts completed by the last dispatch(), in order: fds the caller now owns,
    // or -errno (the multishot accept ended). The caller clears it.
    std::vector<int>& accepted() noexcept { return accepted_; }
    size_t buffer_size() const noexcept { return buffer_size_; }
    // Whether completions may still reach a connection in this iteration: dispatch() is handing them
    // out, or (a plain ring) the kernel has posted more since the wait. A graceful stop ends no
    // connection then: one of them may carry input the client sent before the stop.
    bool completions_pending() const noexcept;
    // Any thread: the IORING_SETUP_* flags of the last ring start() made (0 before the first), so that a
    // test can tell the plain-ring fallback from the ring with SINGLE_ISSUER|DEFER_TASKRUN.
    unsigned setup_flags() const noexcept { return setup_flags_.load(std::memory_order_acquire); }

private:
    struct Ring;
    void* sqe(uint64_t user_data);
    void arm_wake();
    void complete(void* cqe, Batch& b);

    WorkerContext* w_ = nullptr;
    UniqueFd wake_fd_;
    uint64_t wake_value_ = 0;  // the armed eventfd read's target
    unsigned buffers_;
    size_t buffer_size_;
    bool plain_ring_;
    bool multishot_recv_ = false;  // the ring has DEFER_TASKRUN: receives may be multishot (arm_recv)
    std::atomic<unsigned> setup_flags_{0};
    std::unique_ptr<Ring> ring_;
    unsigned ready_ = 0;  // completions the last wait reported: what dispatch() hands out
    bool dispatching_ = false;
    bool accept_armed_ = false;
    bool accept_cancelled_ = false;
    std::vector<int> accepted_;
    bool stopping_ = false;
    std::unordered_set<Connection*> zombies_;  // closed, reaped, waiting for their last completions
};

}  // namespace kq
