// What the acceptor may see of a worker: its mailbox, its close counter and, for --handoff direct, the
// way to register a connection in the worker's poller itself. The acceptor depends on this, never on
// the worker's internals.
// Thread rules: as marked on each member; the worker implements them.
#pragma once

#include "kq/counter.hpp"
#include "kq/fd.hpp"
#include "kq/mailbox.hpp"

namespace kq {

// --handoff direct: the acceptor thread registers the fd in the worker's kqueue/epoll itself (which
// relies on another thread being able to add to a poller its owner is blocked on). The worker takes
// the connection over, and opens its session, when its first event arrives.
class DirectRegistrar {
public:
    // Acceptor thread. False if the fd could not be registered (it is closed then).
    virtual bool register_direct(UniqueFd fd) noexcept = 0;

protected:
    ~DirectRegistrar() = default;
};

struct WorkerLink {
    Mailbox* mailbox;         // push accepted fds here (acceptor thread only)
    const Counter* closed;    // connections the worker has closed so far (any thread may read)
    DirectRegistrar* direct;  // --handoff direct (acceptor thread only)
};

}  // namespace kq
