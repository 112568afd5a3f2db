// What the acceptor may see of a worker: its mailbox, its close counter and, for --handoff direct, the
// way to register a connection in the worker's poller itself. The acceptor depends on this, never on
// the worker's internals.
#pragma once

#include "kq/counter.hpp"
#include "kq/mailbox.hpp"

namespace kq {

// --handoff direct: the acceptor thread builds the connection and registers its fd in the worker's
// kqueue/epoll (which relies on another thread being able to add to a poller its owner is blocked on).
// The worker takes the connection over when its first event arrives.
class DirectRegistrar {
public:
    // Acceptor thread. Takes ownership of fd; false if it could not be registered (the fd is closed).
    virtual bool register_direct(int fd) noexcept = 0;

protected:
    ~DirectRegistrar() = default;
};

struct WorkerLink {
    Mailbox* mailbox;          // push accepted fds here (acceptor thread only)
    const Counter* closed;     // connections the worker has closed so far (any thread may read)
    DirectRegistrar* direct;   // --handoff direct (acceptor thread only)
};

}  // namespace kq
