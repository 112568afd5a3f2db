// Hand-written floor reference: the least an epoll server can do per request, to measure kqserver and
// nginx against (nothing packaged is this minimal). One thread per core, each with its own SO_REUSEPORT
// listener and epoll; level-triggered, one read and one write per request, no features.
//   floor_epoll [--port N] [--threads N] [--mode http|echo] [--syscalls rw|rs]
#include <signal.h>
#include <sys/epoll.h>

#include "floor_common.hpp"

namespace {

using floor_ref::Options;

struct Conn {
    int fd;
    std::string partial;  // http: the bytes of a request whose head has not ended yet
    std::string out;      // the unsent tail of a reply; while it is not empty the connection is not read
};

class Loop {
public:
    Loop(int listener, const Options& o) : listener_(listener), opt_(o), buf_(64 * 1024) {
        ep_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) floor_ref::die("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;  // the listener: connections carry their Conn*
        if (::epoll_ctl(ep_, EPOLL_CTL_ADD, listener_, &ev) != 0) floor_ref::die("epoll_ctl");
    }

    [[noreturn]] void run() {
        std::vector<epoll_event> events(256);
        for (;;) {
            int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), -1);
            if (n < 0 && errno != EINTR) floor_ref::die("epoll_wait");
            // Level-triggered and one event per fd per wait: a Conn closed below has no later event in
            // this batch, so it can be freed at once.
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<Conn*>(events[i].data.ptr);
                if (c == nullptr) {
                    accept_all();
                } else if (!c->out.empty()) {
                    if (!flush(c)) close_conn(c);
                } else {
                    if (!read_and_answer(c)) close_conn(c);
                }
            }
        }
    }

private:
    ssize_t sys_read(int fd, void* p, size_t n) { return opt_.use_recv ? ::recv(fd, p, n, 0) : ::read(fd, p, n); }
    ssize_t sys_write(int fd, const void* p, size_t n) {
        return opt_.use_recv ? ::send(fd, p, n, MSG_NOSIGNAL) : ::write(fd, p, n);
    }

    void accept_all() {
        for (;;) {
            int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            // EAGAIN ends the backlog. On EMFILE a level-triggered listener reports again at once: a floor
            // spins there rather than carry a back-off timer.
            if (fd < 0) return;
            floor_ref::set_nodelay(fd);
            auto* c = new Conn{fd, {}, {}};
            if (!watch(c, EPOLL_CTL_ADD, EPOLLIN)) close_conn(c);
        }
    }

    bool watch(Conn* c, int op, uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = c;
        return ::epoll_ctl(ep_, op, c->fd, &ev) == 0;
    }

    // One read (level-triggered: what it leaves is reported again), then the answer written at once.
    bool read_and_answer(Conn* c) {
        ssize_t n = sys_read(c->fd, buf_.data(), buf_.size());
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        if (n == 0) return false;  // EOF: every complete request was answered when it arrived
        std::string_view in(buf_.data(), static_cast<size_t>(n));
        if (!opt_.http) return send_reply(c, in);
        reply_.clear();
        if (!floor_ref::frame_http(c->partial, in, reply_)) return false;
        return reply_.empty() || send_reply(c, reply_);
    }

    // Writes a reply; an unsent tail is kept and the connection then waits for EPOLLOUT only, not
    // reading more until it is flushed (a client that does not read cannot grow the server's memory).
    bool send_reply(Conn* c, std::string_view reply) {
        ssize_t n = sys_write(c->fd, reply.data(), reply.size());
        if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
        size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
        if (sent == reply.size()) return true;
        c->out.assign(reply.substr(sent));
        return watch(c, EPOLL_CTL_MOD, EPOLLOUT);
    }

    bool flush(Conn* c) {
        ssize_t n = sys_write(c->fd, c->out.data(), c->out.size());
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        c->out.erase(0, static_cast<size_t>(n));
        return !c->out.empty() || watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }

    void close_conn(Conn* c) {
        ::close(c->fd);  // also removes it from the epoll set
        delete c;
    }

    int listener_;
    int ep_;
    Options opt_;
    std::vector<char> buf_;
    std::string reply_;
};

}  // namespace

int main(int argc, char** argv) {
    Options opt = floor_ref::parse_options(argc, argv, true);
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<int> listeners = floor_ref::open_listeners(opt.port, opt.threads);
    std::vector<std::thread> threads;
    for (int fd : listeners) threads.emplace_back([fd, &opt] { Loop(fd, opt).run(); });
    for (auto& t : threads) t.join();
}
