// kqueue backend of kq::Poller: kevent() with EV_CLEAR, native on macOS/BSD and on Linux through
// libkqueue (which emulates kqueue on top of epoll, eventfd and a monitoring thread).
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <memory>
#include <span>
#include <system_error>
#include <type_traits>
#include <vector>

#include "backends.hpp"
#include "kq/fd.hpp"

// Cross-thread registration: add() may run on another thread while the owner is blocked in
// kevent(). Native kqueue makes this safe: FreeBSD kern_event.c takes the kqueue lock in
// kqueue_register, and a knote that becomes active wakes the sleeping kqueue_scan through
// kqueue_wakeup, so the new fd is reported by the wait already in progress. libkqueue before
// 2.7 held its queue mutex across epoll_wait(), so an add() or wake() from another thread
// stalled until the owner's wait returned for some other reason; 2.7 drops the mutex around
// the wait on Linux, which is why the build asks pkg-config for libkqueue >= 2.7.

namespace kq::detail {
namespace {

// EVFILT_USER idents live in their own namespace (keyed by filter), so 1 cannot clash with fd 1.
constexpr std::uintptr_t wake_ident = 1;

[[noreturn]] void throw_errno(const char* call) { throw std::system_error(errno, std::system_category(), call); }

// Builds a change by field instead of EV_SET: NetBSD < 10 declares udata as intptr_t, not void*,
// and FreeBSD >= 12 has an ext[] array that value-initialisation zeroes.
struct kevent make_change(std::uintptr_t ident, int filter, unsigned flags, unsigned fflags, void* udata) {
    struct kevent kev {};
    kev.ident = ident;
    kev.filter = static_cast<decltype(kev.filter)>(filter);
    kev.flags = static_cast<decltype(kev.flags)>(flags);
    kev.fflags = static_cast<decltype(kev.fflags)>(fflags);
    if constexpr (std::is_pointer_v<decltype(kev.udata)>) {
        kev.udata = udata;
    } else {
        kev.udata = reinterpret_cast<decltype(kev.udata)>(udata);
    }
    return kev;
}

void* udata_of(const struct kevent& kev) {
    if constexpr (std::is_pointer_v<decltype(kev.udata)>) {
        return kev.udata;
    } else {
        return reinterpret_cast<void*>(kev.udata);
    }
}

// Folds one kevent into the merged event of its fd.
void apply_filter(const struct kevent& kev, PollEvent& ev) {
    if ((kev.flags & EV_ERROR) != 0) {
        // With EV_ERROR, data holds an errno rather than a byte count; only the fact matters here.
        ev.error = true;
        return;
    }
    if (kev.filter == EVFILT_READ) {
        ev.readable = true;
        if ((kev.flags & EV_EOF) != 0) {
            ev.eof = true;
            // EV_EOF with a non-zero fflags is a reset or other socket error (fflags = so_error).
            // libkqueue fetches that value with getsockopt(SO_ERROR), which clears it, so this
            // may be the only place the error is visible: read() can then return 0, not -1.
            if (kev.fflags != 0) {
                ev.error = true;
            }
        }
    } else if (kev.filter == EVFILT_WRITE) {
        ev.writable = true;
        // On the write side EV_EOF means the send direction is gone (peer reset, or shut down
        // here); libkqueue also maps EPOLLHUP and EPOLLERR to it. Either way writing is over.
        if ((kev.flags & EV_EOF) != 0) {
            ev.error = true;
        }
    }
}

class KqueuePoller final : public Poller {
public:
    KqueuePoller();
    ~KqueuePoller() override;

    void add(int fd, void* udata) override;
    void add_readonly(int fd, void* udata) override;
    void add_level(int fd, void* udata) override;
    void remove(int fd) noexcept override;
    int wait(std::span<PollEvent> out, int timeout_ms) override;
    void wake() noexcept override;
    Backend backend() const noexcept override { return Backend::kqueue; }

private:
    void apply(std::span<const struct kevent> changes);
    void drop_stale(int fd) noexcept;
    int merge(int n, std::span<PollEvent> out);

    UniqueFd kq_;
    std::vector<struct kevent> events_;
};

KqueuePoller::KqueuePoller() {
    kq_.reset(::kqueue());
    if (!kq_) throw_errno("kqueue");
    // EV_CLEAR resets the user event once it is returned, so NOTE_TRIGGERs that arrive before
    // the next wait() collapse into one event instead of staying latched forever.
    const struct kevent change = make_change(wake_ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0, nullptr);
    if (::kevent(kq_.get(), &change, 1, nullptr, 0, nullptr) < 0) throw_errno("kevent");  // kq_ closes it
}

// libkqueue has no kernel object to drop: its monitoring thread notices the close() of the
// kqueue fd and then frees the emulated queue, so close() (kq_'s) is the release on every platform.
KqueuePoller::~KqueuePoller() = default;

// With nevents == 0, kevent() applies the changes and returns without scanning, so no ready
// event is consumed here. A failing change stops processing of the ones after it.
void KqueuePoller::apply(std::span<const struct kevent> changes) {
    if (::kevent(kq_.get(), changes.data(), static_cast<int>(changes.size()), nullptr, 0, nullptr) < 0) {
        throw_errno("kevent");
    }
}

// libkqueue is never told about close(): the kernel drops the epoll registration with the file,
// but the emulated knote for (fd, filter) survives, and a later EV_ADD for the same fd number is
// taken as a modification of that knote and registers nothing with epoll, so the new socket
// would never report. Deleting first makes the EV_ADD a fresh registration. Native kqueue
// drops knotes on close(), so there this is skipped (it would cost two system calls per add).
void KqueuePoller::drop_stale(int fd) noexcept {
#ifdef EVFILT_LIBKQUEUE
    remove(fd);
#else
    (void)fd;
#endif
}

// WRITE goes first for libkqueue: it keeps one epoll registration per fd, and when a second
// filter joins it rebuilds the mask from EPOLLIN/EPOLLOUT plus the joining filter's own flags.
// Adding READ last keeps READ's EPOLLRDHUP; adding it first loses it, and then EV_EOF is only
// reported once no unread data remains. Native kqueue does not care about the order.
void KqueuePoller::add(int fd, void* udata) {
    drop_stale(fd);
    const auto ident = static_cast<std::uintptr_t>(fd);
    const struct kevent changes[2] = {
        make_change(ident, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, udata),
        make_change(ident, EVFILT_READ, EV_ADD | EV_CLEAR, 0, udata),
    };
    apply(changes);
}

void KqueuePoller::add_readonly(int fd, void* udata) {
    drop_stale(fd);
    const struct kevent change = make_change(static_cast<std::uintptr_t>(fd), EVFILT_READ, EV_ADD | EV_CLEAR, 0, udata);
    apply(std::span(&change, 1));
}

void KqueuePoller::add_level(int fd, void* udata) {
    drop_stale(fd);
    const struct kevent change = make_change(static_cast<std::uintptr_t>(fd), EVFILT_READ, EV_ADD, 0, udata);
    apply(std::span(&change, 1));
}

// Two calls, not one: an error on the first change (ENOENT after add_readonly, or for an fd
// that was never added) would make kevent() skip the second.
void KqueuePoller::remove(int fd) noexcept {
    const auto ident = static_cast<std::uintptr_t>(fd);
    for (const int filter : {EVFILT_READ, EVFILT_WRITE}) {
        const struct kevent change = make_change(ident, filter, EV_DELETE, 0, nullptr);
        (void)::kevent(kq_.get(), &change, 1, nullptr, 0, nullptr);
    }
}

// libkqueue caveat (upstream issue #89, open in 2.7): it calls epoll_wait() for as many epoll
// events as kevent() has slots, and an fd with both filters turns one epoll event into two
// kevents. When the slots run out, the rest of that epoll batch is dropped, and with EV_CLEAR
// those edges never come back. So on Linux a full batch can lose readiness; native kqueue keeps
// every unreturned knote queued. A caller that can see more ready fds than out.size() / 2 in
// one wait should use the epoll backend on Linux.
int KqueuePoller::wait(std::span<PollEvent> out, int timeout_ms) {
    if (out.empty()) {
        return 0;
    }
    const auto capacity = std::min<std::size_t>(out.size(), INT_MAX);
    if (events_.size() < capacity) {
        events_.resize(capacity);
    }
    struct timespec ts {};
    struct timespec* tsp = nullptr;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1'000'000L;
        tsp = &ts;
    }
    const int n = ::kevent(kq_.get(), nullptr, 0, events_.data(), static_cast<int>(capacity), tsp);
    if (n < 0) {
        if (errno == EINTR) {
            return 0;
        }
        throw_errno("kevent");
    }
    return merge(n, out);
}

// READ and WRITE readiness of one fd arrive as separate kevents, in no promised order and not
// necessarily adjacent; sorting by ident brings them together in O(n log n). The result never
// has more entries than kevents, so it fits in out, which was the size of the kevent() request.
int KqueuePoller::merge(int n, std::span<PollEvent> out) {
    const auto first = events_.begin();
    const auto last = first + n;
    const auto fds_end =
        std::partition(first, last, [](const struct kevent& kev) { return kev.filter != EVFILT_USER; });
    std::sort(first, fds_end, [](const struct kevent& a, const struct kevent& b) { return a.ident < b.ident; });
    int count = 0;
    for (auto it = first; it != fds_end; ++it) {
        if (it == first || it->ident != (it - 1)->ident) {
            out[static_cast<std::size_t>(count++)] = PollEvent{.udata = udata_of(*it)};
        }
        apply_filter(*it, out[static_cast<std::size_t>(count - 1)]);
    }
    // Only one user event is registered and EV_CLEAR coalesces it, so at most one is seen.
    if (fds_end != last) {
        out[static_cast<std::size_t>(count++)] = PollEvent{.wake = true};
    }
    return count;
}

// Not async-signal-safe under libkqueue (kevent() takes mutexes there); native kevent() is a
// plain system call. Failure is ignored: the only causes are a closed kq_ or ENOMEM.
void KqueuePoller::wake() noexcept {
    const struct kevent change = make_change(wake_ident, EVFILT_USER, 0, NOTE_TRIGGER, nullptr);
    (void)::kevent(kq_.get(), &change, 1, nullptr, 0, nullptr);
}

}  // namespace

std::unique_ptr<Poller> make_kqueue_poller() { return std::make_unique<KqueuePoller>(); }

}  // namespace kq::detail
