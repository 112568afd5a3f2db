// OS-neutral, edge-triggered readiness poller: one interface, one file per backend (epoll, kqueue).
// The core never sees epoll_event or struct kevent; backends fill PollEvent and merge per fd.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace kq {

// One readiness report for one registered fd (or for a wake-up), merged across filters.
struct PollEvent {
    void* udata = nullptr;  // the pointer given to add(); nullptr for a wake-up
    bool wake = false;      // another thread called wake(); udata is nullptr
    bool readable = false;  // data (or a pending connection) can be read
    bool writable = false;  // send buffer space became available
    bool eof = false;       // peer finished sending (EV_EOF on READ / EPOLLRDHUP); unread data may remain
    bool error = false;     // socket error or hang-up: writing is no longer possible
};

// epoll and kqueue are readiness backends (a Poller); io_uring is a completion backend: the worker runs
// its connections' I/O on a ring instead (worker/src/uring_engine.hpp), and it has no Poller.
enum class Backend { automatic, epoll, kqueue, io_uring };

std::string_view backend_name(Backend b);
// Parses "auto", "epoll", "kqueue" or "io_uring"; returns false for anything else.
bool parse_backend(std::string_view text, Backend& out);
// The worker backends compiled into this build: the readiness backends, preferred first, then the
// completion backend (io_uring). A worker's automatic is kq::automatic_backend() (kq/worker.hpp): io_uring
// where the kernel runs it as measured, else the first readiness backend; a Poller's is the latter.
std::vector<Backend> built_backends();
// The readiness backends compiled into this build (those make_poller() makes), preferred first.
std::vector<Backend> poller_backends();
// The readiness backend that stands in for b where a Poller is needed (an acceptor, a client): b itself,
// or automatic for the completion backend.
inline Backend poller_backend(Backend b) noexcept { return b == Backend::io_uring ? Backend::automatic : b; }

// What a Mailbox wakes: a Poller, or the completion engine of an io_uring worker.
class Waker {
public:
    // Makes the owner's current or next wait return; safe from any thread.
    virtual void wake() noexcept = 0;

protected:
    ~Waker() = default;
};

// Thread rules: add() and wait() are called by the owning thread, except that add() is also safe
// from another thread while the owner is blocked in wait() (both kernels lock their queue; see
// docs/design.md). wake() is safe from any thread and from a signal handler on the epoll backend.
class Poller : public Waker {
public:
    virtual ~Poller() = default;
    Poller() = default;
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // Registers fd once for READ and WRITE, edge-triggered (EPOLLET / EV_CLEAR), with udata.
    // Throws std::system_error naming the call. Closing the fd removes the registration.
    virtual void add(int fd, void* udata) = 0;
    // Registers fd for READ only, edge-triggered (listening sockets, stdin).
    virtual void add_readonly(int fd, void* udata) = 0;
    // Registers fd for READ only, level-triggered: every wait() reports it while it is readable, not
    // only when something new arrives (the acceptor's listening socket: it takes a few clients per
    // report and leaves the rest to the next wait, instead of an accept that fails with EAGAIN).
    // remove() takes it out for as long as its owner wants no reports.
    virtual void add_level(int fd, void* udata) = 0;
    // Removes fd's registration (needed only when the fd stays open, e.g. a dup'd stdin).
    virtual void remove(int fd) noexcept = 0;
    // Waits up to timeout_ms (-1 = forever) and fills out with at most out.size() events, one per fd
    // plus at most one wake event. Returns the count, 0 on time-out or EINTR. Events not returned stay
    // queued in the kernel for the next call. Throws std::system_error on a real failure.
    virtual int wait(std::span<PollEvent> out, int timeout_ms) = 0;
    // Makes a current or the next wait() return a wake event; many calls before that wait coalesce into one.
    void wake() noexcept override = 0;
    virtual Backend backend() const noexcept = 0;
};

// Creates a poller for the backend; automatic picks the first of poller_backends().
// Throws std::invalid_argument if that backend was not built or is not a readiness backend (io_uring),
// std::system_error if the kernel refuses.
std::unique_ptr<Poller> make_poller(Backend b);

}  // namespace kq
