// epoll backend of kq::Poller (Linux): EPOLLET registration with data.ptr, eventfd wake-up.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

#include "backends.hpp"
#include "kq/fd.hpp"

namespace kq::detail {
namespace {

[[noreturn]] void throw_errno(const char* call) { throw std::system_error(errno, std::system_category(), call); }

class EpollPoller final : public Poller {
public:
    EpollPoller() : ep_(::epoll_create1(EPOLL_CLOEXEC)), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (!ep_) throw_errno("epoll_create1");
        if (!wake_fd_) throw_errno("eventfd");
        // The wake token is this object's own address: no user pointer can equal it.
        ctl(wake_fd_.get(), EPOLLIN | EPOLLET, this);
    }

    // EPOLLRDHUP lets the worker tell "short read, drained" from "short read, peer finished" without a
    // further read() (nginx's check; netty #7788 is what happens without it).
    void add(int fd, void* udata) override { ctl(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, udata); }
    void add_readonly(int fd, void* udata) override { ctl(fd, EPOLLIN | EPOLLRDHUP | EPOLLET, udata); }
    void add_level(int fd, void* udata) override { ctl(fd, EPOLLIN, udata); }
    void remove(int fd) noexcept override { ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr); }

    int wait(std::span<PollEvent> out, int timeout_ms) override {
        if (out.empty()) return 0;
        if (raw_.size() < out.size()) raw_.resize(out.size());
        int n = ::epoll_wait(ep_.get(), raw_.data(), static_cast<int>(out.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw_errno("epoll_wait");
        }
        for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = translate(raw_[static_cast<size_t>(i)]);
        return n;
    }

    void wake() noexcept override {
        uint64_t one = 1;
        if (::write(wake_fd_.get(), &one, sizeof one) == static_cast<ssize_t>(sizeof one)) return;
        // EAGAIN: the counter is saturated (never in practice: the wait does not read it back). Reset
        // it and write again, so this wake is still a new edge. A concurrent wake()'s read is harmless.
        uint64_t v;
        if (::read(wake_fd_.get(), &v, sizeof v) < 0) return;
        [[maybe_unused]] ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
    }

    Backend backend() const noexcept override { return Backend::epoll; }

private:
    void ctl(int fd, uint32_t events, void* udata) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = udata;
        if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl");
    }

    PollEvent translate(const epoll_event& e) {
        PollEvent pe;
        if (e.data.ptr == this) {
            // The counter is not read back: every write() to an eventfd wakes its waiters, and epoll
            // queues the edge for each one whatever the count (a non-zero count is no "still ready"
            // under EPOLLET), so a read here would be one system call per wake for nothing. The count
            // saturates after 2^64 - 2 wakes; wake() then reads it down (see there).
            pe.wake = true;
            return pe;
        }
        pe.udata = e.data.ptr;
        pe.readable = (e.events & EPOLLIN) != 0;
        pe.writable = (e.events & EPOLLOUT) != 0;
        pe.eof = (e.events & (EPOLLRDHUP | EPOLLHUP)) != 0;
        pe.error = (e.events & (EPOLLERR | EPOLLHUP)) != 0;
        return pe;
    }

    UniqueFd ep_;
    UniqueFd wake_fd_;
    std::vector<epoll_event> raw_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller() { return std::make_unique<EpollPoller>(); }

}  // namespace kq::detail
