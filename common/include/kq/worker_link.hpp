// What the acceptor may see of a worker: its mailbox and its close counter. The acceptor depends on
// this, never on the worker's internals.
#pragma once

#include "kq/counter.hpp"
#include "kq/mailbox.hpp"

namespace kq {

struct WorkerLink {
    Mailbox* mailbox;        // push accepted fds here (acceptor thread only)
    const Counter* closed;   // connections the worker has closed so far (any thread may read)
};

}  // namespace kq
