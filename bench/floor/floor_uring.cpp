// Hand-written floor reference: the least an io_uring server can do per request, to measure kqserver and
// nginx against (nothing packaged is this minimal). One thread per core, each with its own SO_REUSEPORT
// listener and ring: multishot accept, multishot receive into a provided buffer ring, sends submitted
// with the next wait. No features.
//   floor_uring [--port N] [--threads N] [--mode http|echo]
#include <liburing.h>
#include <signal.h>
#include <sys/mman.h>

#include "floor_common.hpp"

namespace {

using floor_ref::Options;

constexpr unsigned sq_entries = 1024;
constexpr unsigned cq_entries = 16384;
constexpr unsigned buf_count = 1024;  // a power of two (the buffer ring's mask)
constexpr unsigned buf_size = 4096;
constexpr int buf_group = 0;
constexpr size_t max_unsent = 4 << 20;  // a client that does not read is closed past this much queued output

// user_data: a Conn* (8-byte aligned) with the operation in its low bits.
enum Op : uintptr_t { op_recv = 0, op_send = 1, op_accept = 2 };

struct Conn {
    explicit Conn(int f) : fd(f) {}
    int fd;
    bool recv_armed = false;     // a multishot receive is outstanding (it ends with a CQE without F_MORE)
    bool send_inflight = false;  // one send at a time: replies queue behind it in order
    bool closing = false;        // freed once nothing is outstanding
    std::string partial;         // http: a request whose head has not ended yet
    std::string sending;         // the buffer the in-flight send reads from
    size_t sent = 0;
    std::string queued;  // replies produced while a send is in flight
};

// SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1): completions are processed only when this thread waits,
// with no interrupting task work. Older kernels refuse them with EINVAL: fall back to a plain ring.
int init_ring(io_uring* ring) {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = cq_entries;
    int r = io_uring_queue_init_params(sq_entries, ring, &p);
    if (r != -EINVAL) return r;
    p = {};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = cq_entries;
    return io_uring_queue_init_params(sq_entries, ring, &p);
}

// io_uring_setup_buf_ring came with liburing 2.4; Debian 12 has 2.3, so do its steps where it is missing.
io_uring_buf_ring* setup_buf_ring(io_uring* ring, unsigned entries, int* err) {
#ifdef KQ_HAVE_SETUP_BUF_RING
    return io_uring_setup_buf_ring(ring, entries, buf_group, 0, err);
#else
    size_t size = entries * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return nullptr;
    }
    auto* br = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = buf_group;
    *err = io_uring_register_buf_ring(ring, &reg, 0);
    if (*err == 0) return br;
    ::munmap(mem, size);
    return nullptr;
#endif
}

[[noreturn]] void unavailable(const char* what, int err) {
    std::fprintf(stderr, "floor_uring: io_uring unavailable: %s: %s\n", what, std::strerror(-err));
    std::exit(1);
}

// Before listening: a ring and a buffer ring of the kinds the threads will make (Linux 5.19+), so that a
// kernel or sandbox without them gets one clear line instead of a listener that never answers.
void probe() {
    io_uring ring;
    int r = init_ring(&ring);
    if (r < 0) unavailable("io_uring_queue_init", r);
    int err = 0;
    if (setup_buf_ring(&ring, 8, &err) == nullptr) unavailable("provided buffer ring", err);
    io_uring_queue_exit(&ring);  // the probe's one-page buffer ring stays mapped: it is not worth a path
}

class Loop {
public:
    Loop(int listener, const Options& o) : listener_(listener), opt_(o) {
        int r = init_ring(&ring_);
        if (r < 0) unavailable("io_uring_queue_init", r);
        br_ = setup_buf_ring(&ring_, buf_count, &r);
        if (br_ == nullptr) unavailable("provided buffer ring", r);
        bufs_.resize(size_t{buf_count} * buf_size);
        for (unsigned i = 0; i < buf_count; ++i) add_buffer(i, static_cast<int>(i));
        io_uring_buf_ring_advance(br_, buf_count);
    }

    [[noreturn]] void run() {
        arm_accept();
        for (;;) {
            int r = io_uring_submit_and_wait(&ring_, 1);  // the sends queued below go in with the wait
            if (r < 0 && r != -EINTR) {
                std::fprintf(stderr, "floor_uring: io_uring_submit_and_wait: %s\n", std::strerror(-r));
                std::exit(1);
            }
            unsigned head, seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                handle(cqe);
            }
            io_uring_cq_advance(&ring_, seen);
            io_uring_buf_ring_advance(br_, static_cast<int>(returned_));  // before a re-armed recv needs them
            returned_ = 0;
        }
    }

private:
    void add_buffer(unsigned bid, int offset) {
        io_uring_buf_ring_add(br_, bufs_.data() + size_t{bid} * buf_size, buf_size, static_cast<uint16_t>(bid),
                              io_uring_buf_ring_mask(buf_count), offset);
    }

    io_uring_sqe* sqe(void* owner, Op op) {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        if (s == nullptr) {  // the submission queue is full: hand it to the kernel now
            io_uring_submit(&ring_);
            s = io_uring_get_sqe(&ring_);
            if (s == nullptr) floor_ref::die("io_uring_get_sqe");
        }
        io_uring_sqe_set_data64(s, reinterpret_cast<uintptr_t>(owner) | op);
        return s;
    }

    void arm_accept() {
        io_uring_prep_multishot_accept(sqe(nullptr, op_accept), listener_, nullptr, nullptr, SOCK_CLOEXEC);
    }

    void arm_recv(Conn* c) {
        io_uring_sqe* s = sqe(c, op_recv);
        io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = buf_group;
        c->recv_armed = true;
    }

    void handle(io_uring_cqe* cqe) {
        auto op = static_cast<Op>(cqe->user_data & 3);
        auto* c = reinterpret_cast<Conn*>(cqe->user_data & ~uintptr_t{3});
        bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        if (op == op_accept) {
            if (cqe->res >= 0) {
                floor_ref::set_nodelay(cqe->res);
                arm_recv(new Conn(cqe->res));
            }
            if (!more) arm_accept();  // the multishot accept ended (an error such as EMFILE): start another
            return;
        }
        if (op == op_recv) {
            on_recv(c, cqe->res, cqe->flags, more);
        } else {
            on_send(c, cqe->res);
        }
        if (c->closing && !c->recv_armed && !c->send_inflight) {
            ::close(c->fd);
            delete c;
        }
    }

    void on_recv(Conn* c, int res, uint32_t flags, bool more) {
        if (!more) c->recv_armed = false;
        if (res > 0) {
            auto bid = flags >> IORING_CQE_BUFFER_SHIFT;
            std::string_view in(bufs_.data() + size_t{bid} * buf_size, static_cast<size_t>(res));
            if (!c->closing) {
                bool ok = true;
                if (opt_.http) {
                    ok = floor_ref::frame_http(c->partial, in, c->queued);
                } else {
                    c->queued.append(in);
                }
                if (ok && c->queued.size() <= max_unsent) {
                    start_send(c);
                } else {
                    fail(c);
                }
            }
            add_buffer(bid, static_cast<int>(returned_++));
        } else if (res != -ENOBUFS) {
            // EOF (0) or an error: the replies already queued are still sent, then the connection is freed.
            c->closing = true;
        }
        // A multishot receive ends on ENOBUFS (every buffer in use) and sometimes on its own: re-arm it.
        if (!c->recv_armed && !c->closing) arm_recv(c);
    }

    void start_send(Conn* c) {
        if (c->send_inflight || c->queued.empty()) return;
        c->sending.swap(c->queued);
        c->queued.clear();
        c->sent = 0;
        submit_send(c);
    }

    void submit_send(Conn* c) {
        io_uring_prep_send(sqe(c, op_send), c->fd, c->sending.data() + c->sent, c->sending.size() - c->sent,
                           MSG_NOSIGNAL);
        c->send_inflight = true;
    }

    void on_send(Conn* c, int res) {
        c->send_inflight = false;
        if (res < 0) {
            c->queued.clear();
            fail(c);
            return;
        }
        c->sent += static_cast<size_t>(res);
        if (c->sent < c->sending.size()) {
            submit_send(c);  // a partial send: the rest, from where it stopped
        } else {
            start_send(c);
        }
    }

    // Ends a connection that still has a multishot receive armed: shutdown makes that receive complete
    // with EOF, its last CQE, after which the connection is freed.
    void fail(Conn* c) {
        c->closing = true;
        if (c->recv_armed) ::shutdown(c->fd, SHUT_RDWR);
    }

    int listener_;
    Options opt_;
    io_uring ring_{};
    io_uring_buf_ring* br_ = nullptr;
    std::vector<char> bufs_;
    unsigned returned_ = 0;  // buffers given back during this batch of completions
};

}  // namespace

int main(int argc, char** argv) {
    Options opt = floor_ref::parse_options(argc, argv, false);
    ::signal(SIGPIPE, SIG_IGN);
    probe();
    std::vector<int> listeners = floor_ref::open_listeners(opt.port, opt.threads);
    std::vector<std::thread> threads;
    for (int fd : listeners) threads.emplace_back([fd, &opt] { Loop(fd, opt).run(); });
    for (auto& t : threads) t.join();
}
