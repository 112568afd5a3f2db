// The io_uring completion engine (see uring_engine.hpp); the completion side of Connection (its
// receive, send and connect on the ring) is in connection.cpp. Without liburing only the constructor is
// reachable, and it refuses.
#include "uring_engine.hpp"

#include <stdexcept>
#include <string>

#include "connection.hpp"
#include "worker_context.hpp"

#ifdef KQ_HAVE_URING
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>
#endif

namespace kq {

#ifdef KQ_HAVE_URING

namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
constexpr uint16_t kGroup = 0;

// liburing maps and unmaps a ring with raw system calls, which ThreadSanitizer does not see: a ring
// mapped where another thread's ended ring was shows that thread's last writes to its submission queue
// as racing with this thread's first. Making and ending rings under one lock orders the two for TSan;
// the cost is one uncontended lock per worker start and stop.
std::mutex& ring_mapping_lock() {
    static std::mutex m;
    return m;
}

// SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1): completions are posted only when this thread waits, with
// no task work interrupting it. Older kernels refuse them with EINVAL: a plain ring then (plain: as if
// refused, WorkerConfig::uring_plain_ring). The flags of the ring made go to *flags.
int init_ring(io_uring* ring, bool plain = false, unsigned* flags = nullptr) {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = kCqEntries;
    int r = plain ? -EINVAL : io_uring_queue_init_params(kSqEntries, ring, &p);
    if (r != -EINVAL) {
        if (flags != nullptr) *flags = p.flags;
        return r;
    }
    if (flags != nullptr) *flags = IORING_SETUP_CQSIZE;
    p = {};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    return io_uring_queue_init_params(kSqEntries, ring, &p);
}

// io_uring_setup_buf_ring came with liburing 2.4 (Debian 12 has 2.3): its steps, where it is missing.
io_uring_buf_ring* setup_buf_ring(io_uring* ring, unsigned entries, int* err, size_t* bytes) {
    *bytes = entries * sizeof(io_uring_buf);
#ifdef KQ_HAVE_SETUP_BUF_RING
    return io_uring_setup_buf_ring(ring, entries, kGroup, 0, err);
#else
    void* mem = ::mmap(nullptr, *bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return nullptr;
    }
    auto* br = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = kGroup;
    *err = io_uring_register_buf_ring(ring, &reg, 0);
    if (*err == 0) return br;
    ::munmap(mem, *bytes);
    return nullptr;
#endif
}

void free_buf_ring(io_uring* ring, io_uring_buf_ring* br, size_t bytes) {
    io_uring_unregister_buf_ring(ring, kGroup);
#ifdef KQ_HAVE_SETUP_BUF_RING
    (void)bytes;
    (void)br;
#else
    ::munmap(br, bytes);
#endif
}

std::string refusal(const char* what, int err) {
    return std::string("io_uring unavailable: ") + what + ": " + std::strerror(-err) +
           (err == -EPERM || err == -ENOSYS ? " (io_uring_disabled, or a seccomp filter)" : "");
}

}  // namespace

struct UringEngine::Ring {
    io_uring ring{};
    io_uring_buf_ring* br = nullptr;
    size_t br_bytes = 0;
    std::vector<char> bufs;
    unsigned returned = 0;  // buffers given back during this batch
    unsigned mask = 0;
};

namespace {

// A ring and a buffer ring of the kinds the workers will make, made and dropped once per process: a
// kernel or sandbox without them fails here, with one clear line, instead of in a worker thread later.
// On a thread of its own: a thread that made a ring gets task work from the ring's teardown later
// (io_ring_exit_work, TWA_SIGNAL), which fails a blocking call of its with a time-out (SO_RCVTIMEO)
// with EINTR; a thread that has exited gets none.
struct Probe {
    std::string error;   // empty: io_uring works here
    unsigned flags = 0;  // the setup flags of the ring the probe made
};
const Probe& probe() {
    static const Probe result = [] {
        Probe pr;
        std::thread([&pr] {
            std::lock_guard lock(ring_mapping_lock());
            io_uring probe{};
            int r = init_ring(&probe, false, &pr.flags);
            if (r < 0) {
                pr.error = refusal("io_uring_queue_init", r);
                return;
            }
            int err = 0;
            size_t bytes = 0;
            io_uring_buf_ring* br = setup_buf_ring(&probe, 8, &err, &bytes);
            if (br == nullptr) pr.error = refusal("provided buffer ring", err);
            else free_buf_ring(&probe, br, bytes);
            io_uring_queue_exit(&probe);
        }).join();
        return pr;
    }();
    return result;
}
std::string probe_error() { return probe().error; }

}  // namespace

UringEngine::UringEngine(const WorkerConfig& cfg)
    : buffers_(std::bit_floor(std::clamp<unsigned>(cfg.uring_buffers, 1, 32768))),
      buffer_size_(std::max<size_t>(cfg.uring_buffer_size, 64)), plain_ring_(cfg.uring_plain_ring) {
    if (std::string why = probe_error(); !why.empty()) throw std::invalid_argument(why);
    // Blocking on purpose: the ring's read of it then waits for a wake instead of failing with EAGAIN.
    wake_fd_.reset(::eventfd(0, EFD_CLOEXEC));
    if (!wake_fd_) throw std::system_error(errno, std::system_category(), "eventfd");
}

UringEngine::~UringEngine() { finish(); }

bool UringEngine::full_featured() {
    const unsigned want = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    return probe().error.empty() && (probe().flags & want) == want;
}

void UringEngine::wake() noexcept {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
}

void UringEngine::start(WorkerContext& w) {
    w_ = &w;
    auto ring = std::make_unique<Ring>();
    unsigned flags = 0;
    std::unique_lock lock(ring_mapping_lock());
    int r = init_ring(&ring->ring, plain_ring_, &flags);
    if (r < 0) throw std::system_error(-r, std::system_category(), "io_uring_queue_init");
    int err = 0;
    ring->br = setup_buf_ring(&ring->ring, buffers_, &err, &ring->br_bytes);
    if (ring->br == nullptr) {
        io_uring_queue_exit(&ring->ring);
        throw std::system_error(-err, std::system_category(), "io_uring provided buffer ring");
    }
    lock.unlock();
    ring->mask = io_uring_buf_ring_mask(buffers_);
    ring->bufs.resize(size_t{buffers_} * buffer_size_);
    for (unsigned i = 0; i < buffers_; ++i)
        io_uring_buf_ring_add(ring->br, ring->bufs.data() + size_t{i} * buffer_size_,
                              static_cast<unsigned>(buffer_size_), static_cast<uint16_t>(i), ring->mask,
                              static_cast<int>(i));
    io_uring_buf_ring_advance(ring->br, static_cast<int>(buffers_));
    ring_ = std::move(ring);
    setup_flags_.store(flags, std::memory_order_release);
    multishot_recv_ = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    stopping_ = false;
    arm_wake();
}

void* UringEngine::sqe(uint64_t user_data) {
    io_uring* ring = &ring_->ring;
    io_uring_sqe* s = io_uring_get_sqe(ring);
    if (s == nullptr) {  // the submission queue is full: hand it to the kernel now
        io_uring_submit(ring);
        s = io_uring_get_sqe(ring);
        if (s == nullptr) throw std::system_error(EBUSY, std::system_category(), "io_uring_get_sqe");
    }
    io_uring_sqe_set_data64(s, user_data);
    return s;
}

namespace {
uint64_t tag(const Connection* c, UringEngine::Op op) { return reinterpret_cast<uintptr_t>(c) | op; }
}  // namespace

void UringEngine::arm_wake() {
    auto* s = static_cast<io_uring_sqe*>(sqe(op_wake));
    io_uring_prep_read(s, wake_fd_.get(), &wake_value_, sizeof wake_value_, 0);
}

// Multishot while the connection has never had reading held back: one armed receive serves every
// request of a client that reads its answers, which is where io_uring saves its work. A multishot
// receive delivers in one wait all the kernel had queued for the socket (up to its receive buffer)
// before a pause's cancel can take effect; so a connection whose reading was held back once (a client
// that does not read, a session that paused) receives one buffer at a time from then on, and its next
// pause comes within a buffer of the mark, as after a read(). Measured: one-shot receives for every
// connection cost about 7% more CPU per keep-alive request (docs/performance.md).
void UringEngine::arm_recv(Connection& c) {
    auto* s = static_cast<io_uring_sqe*>(sqe(tag(&c, op_recv)));
    // A plain ring (no DEFER_TASKRUN) runs a multishot receive whenever input arrives, not only when this
    // thread waits: it would go on receiving for as long as the worker is busy before a pause's cancel
    // is submitted (ServerTest saw 3.8 MB past the mark). There, every receive takes one buffer.
    c.recv_multishot_ = multishot_recv_ && !c.recv_single_ && c.unsent() <= c.w_.cfg_.low_water;
    if (c.recv_multishot_) {
        io_uring_prep_recv_multishot(s, c.fd(), nullptr, 0, 0);
    } else {
        io_uring_prep_recv(s, c.fd(), nullptr, 0, 0);  // len 0: the selected buffer's size
        // The socket was empty a moment ago: wait for input instead of trying a receive that fails.
        if (c.recv_drained_) s->ioprio |= IORING_RECVSEND_POLL_FIRST;
    }
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kGroup;
    c.recv_armed_ = true;
    ++c.ops_;
}

// Reading is held back (or the output is above low water, or the connection closes): the receive in
// flight ends, and this connection's later receives take one buffer each (arm_recv).
void UringEngine::cancel_recv(Connection& c) {
    c.recv_single_ = true;
    if (!c.recv_armed_ || c.recv_cancelled_) return;
    c.recv_cancelled_ = true;
    io_uring_prep_cancel64(static_cast<io_uring_sqe*>(sqe(op_cancel)), tag(&c, op_recv), 0);
}

void UringEngine::send(Connection& c, const char* data, size_t size) {
    io_uring_prep_send(static_cast<io_uring_sqe*>(sqe(tag(&c, op_send))), c.fd(), data, size, MSG_NOSIGNAL);
    ++c.ops_;
}

void UringEngine::poll_connect(Connection& c) {
    io_uring_prep_poll_add(static_cast<io_uring_sqe*>(sqe(tag(&c, op_poll))), c.fd(), POLLOUT);
    ++c.ops_;
}

// Everything of c's on the ring completes (-ECANCELED, or what it had done): its fd stays open until
// then, so no later fd can take its number while an operation names it.
void UringEngine::cancel_all(Connection& c) {
    io_uring_prep_cancel_fd(static_cast<io_uring_sqe*>(sqe(op_cancel)), c.fd(), IORING_ASYNC_CANCEL_ALL);
}

void UringEngine::keep_until_idle(Connection& c) { zombies_.insert(&c); }

// The accepted fds get the flags accept_client() gives them. One multishot accept serves every client
// until it is cancelled or fails: no poll, and no accept4 per client.
void UringEngine::arm_accept(int listen_fd) {
    if (accept_armed_ || stopping_) return;
    accept_armed_ = true;
    accept_cancelled_ = false;
    io_uring_prep_multishot_accept(static_cast<io_uring_sqe*>(sqe(op_accept)), listen_fd, nullptr, nullptr,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void UringEngine::hold_accept() {
    if (!accept_armed_ || accept_cancelled_) return;
    accept_cancelled_ = true;
    io_uring_prep_cancel64(static_cast<io_uring_sqe*>(sqe(op_cancel)), op_accept, 0);
}

void UringEngine::cancel_accept() noexcept {
    if (!accept_armed_ || !ring_) return;
    try {
        hold_accept();
        // Now, and with the task work that ends the request (DEFER_TASKRUN runs it only when this
        // thread asks for events): the request holds the socket's file until then, and the socket
        // closes right after this. Its last completions come with the next dispatch().
        io_uring_submit_and_get_events(&ring_->ring);
    } catch (const std::exception&) {}
}

unsigned UringEngine::wait(int timeout_ms) {
    io_uring* ring = &ring_->ring;
    // The sends of this iteration, in the order their connections asked.
    auto& list = w_->to_send_;
    for (size_t i = 0; i < list.size(); ++i) list[i]->ring_start_send();  // may not append: index anyway
    list.clear();
    int r;
    if (timeout_ms == 0) {
        r = io_uring_submit_and_get_events(ring);
    } else if (timeout_ms < 0) {
        r = io_uring_submit_and_wait(ring, 1);
    } else {
        __kernel_timespec ts{};
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
        io_uring_cqe* cqe = nullptr;
        r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nullptr);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
        throw std::system_error(-r, std::system_category(), "io_uring_submit_and_wait");
    ready_ = io_uring_cq_ready(ring);
    return ready_;
}

UringEngine::Batch UringEngine::dispatch() {
    Batch b;
    io_uring* ring = &ring_->ring;
    unsigned head;
    io_uring_cqe* cqe;
    // The completions the wait reported, no more: a plain ring (no DEFER_TASKRUN) posts them while this
    // runs, and taking those too would let a stream of them hold the loop here, uncounted by the wait.
    dispatching_ = true;
    io_uring_for_each_cqe(ring, head, cqe) {
        if (b.completions == ready_) break;
        ++b.completions;
        complete(cqe, b);
    }
    dispatching_ = false;
    io_uring_cq_advance(ring, b.completions);
    if (ring_->returned > 0) {  // before a re-armed receive needs them (submitted with the next wait)
        io_uring_buf_ring_advance(ring_->br, static_cast<int>(ring_->returned));
        ring_->returned = 0;
    }
    return b;
}

bool UringEngine::completions_pending() const noexcept { return dispatching_ || io_uring_cq_ready(&ring_->ring) > 0; }

void UringEngine::complete(void* raw, Batch& b) {
    auto* cqe = static_cast<io_uring_cqe*>(raw);
    const uint64_t ud = cqe->user_data;
    if (ud == LIBURING_UDATA_TIMEOUT) return;  // a wait's own time-out, on kernels without EXT_ARG
    const auto op = static_cast<Op>(ud & kOpMask);
    switch (op) {
    case op_wake:
        b.woken = true;
        if (!stopping_) arm_wake();
        return;
    case op_accept:
        if (!(cqe->flags & IORING_CQE_F_MORE)) {  // the multishot has ended: the worker arms it again
            accept_armed_ = false;
            accept_cancelled_ = false;
        }
        if (cqe->res == -ECANCELED) return;
        if (stopping_) {  // no worker loop takes it any more
            if (cqe->res >= 0) ::close(cqe->res);
            return;
        }
        accepted_.push_back(cqe->res);
        return;
    case op_cancel:
        return;
    default:
        break;
    }
    auto* c = reinterpret_cast<Connection*>(ud & ~kOpMask);
    const int res = cqe->res;
    if (op == op_recv) {
        const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        if (!more) {
            c->recv_armed_ = false;
            c->recv_cancelled_ = false;
            --c->ops_;
        }
        c->recv_drained_ = res >= 0 && static_cast<size_t>(res) < buffer_size_;
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            const auto bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            char* data = ring_->bufs.data() + size_t{bid} * buffer_size_;
            c->ring_received(res, std::span<char>(data, res > 0 ? static_cast<size_t>(res) : 0));
            // Back to the ring at once: the session has consumed or copied what it keeps.
            io_uring_buf_ring_add(ring_->br, data, static_cast<unsigned>(buffer_size_), bid, ring_->mask,
                                  static_cast<int>(ring_->returned++));
        } else {
            c->ring_received(res, {});
        }
    } else if (op == op_send) {
        --c->ops_;
        c->ring_sent(res);
    } else {
        --c->ops_;
        c->ring_polled(res);
    }
    if (c->ops_ == 0 && c->reaped_) {
        zombies_.erase(c);
        delete c;
    }
}

void UringEngine::finish() noexcept {
    if (!ring_) return;
    stopping_ = true;
    try {
        // Every request still on the ring (the wake read's included) ends; the zombies go with their last.
        io_uring_prep_cancel64(static_cast<io_uring_sqe*>(sqe(op_cancel)), 0, IORING_ASYNC_CANCEL_ANY);
        for (int tries = 0; tries < 100 && (!zombies_.empty() || accept_armed_); ++tries) {
            wait(10);
            dispatch();
        }
    } catch (const std::exception& e) {
        spdlog::error("worker: ending the io_uring: {}", e.what());
    }
    if (!zombies_.empty())
        spdlog::error("worker: {} connections still had io_uring operations at exit", zombies_.size());
    for (int fd : accepted_)
        if (fd >= 0) ::close(fd);
    accepted_.clear();
    {
        std::lock_guard lock(ring_mapping_lock());
        free_buf_ring(&ring_->ring, ring_->br, ring_->br_bytes);
        io_uring_queue_exit(&ring_->ring);  // the kernel cancels the rest: nothing refers to the zombies now
    }
    for (Connection* c : zombies_) delete c;
    zombies_.clear();
    ring_.reset();
}

#else  // no liburing: no engine is ever made, so none of this runs

UringEngine::UringEngine(const WorkerConfig&) : buffers_(0), buffer_size_(0), plain_ring_(false) {
    throw std::invalid_argument("io_uring was not built into this binary (liburing was not found)");
}
UringEngine::~UringEngine() = default;
bool UringEngine::full_featured() { return false; }
void UringEngine::wake() noexcept {}
void UringEngine::start(WorkerContext&) {}
void UringEngine::finish() noexcept {}
unsigned UringEngine::wait(int) { return 0; }
bool UringEngine::completions_pending() const noexcept { return false; }
UringEngine::Batch UringEngine::dispatch() { return {}; }
void UringEngine::arm_recv(Connection&) {}
void UringEngine::cancel_recv(Connection&) {}
void UringEngine::send(Connection&, const char*, size_t) {}
void UringEngine::poll_connect(Connection&) {}
void UringEngine::cancel_all(Connection&) {}
void UringEngine::keep_until_idle(Connection&) {}
void UringEngine::arm_accept(int) {}
void UringEngine::hold_accept() {}
void UringEngine::cancel_accept() noexcept {}

#endif

}  // namespace kq
