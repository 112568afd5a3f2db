// What a connection may use of its worker: configuration, statistics, the scratch buffer, the coarse
// clock, the deadline queue, the open and resume lists and the graveyard. A plain struct, so a
// connection reaches them without a call; the worker's scheduling (waiting, dispatch, admission, drain)
// stays in WorkerLoop, which is built on it.
// Thread rules: the worker's thread only.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "conn_list.hpp"
#include "conn_port.hpp"
#include "connection.hpp"
#include "deadline_queue.hpp"
#include "kq/worker.hpp"

namespace kq {

struct WorkerContext {
    WorkerContext(int index, const WorkerConfig& cfg, WorkerStats& stats)
        : cfg_(cfg), stats_(stats), index_(index), scratch_(cfg.read_buffer) {}

    using OpenList = IntrusiveList<Connection, &Connection::open_hook_>;

    WorkerConfig cfg_;
    WorkerStats& stats_;
    int index_;                       // this worker's, 0-based (Conn::worker)
    uint64_t opened_ = 0;             // connections opened so far (Conn::id)
    uint64_t last_id_ = 0;            // the last timer id or reservation ticket given
    std::shared_ptr<ConnPort> port_;  // what other threads send through ConnHandles
    Poller* io_ = nullptr;            // the worker's poller, for outbound connections (readiness backends)
    UringEngine* ring_ = nullptr;     // io_uring: the worker's ring while its loop runs; nullptr otherwise
    std::thread::id thread_;          // the worker's thread while it runs (checked in debug builds)

    // Debug builds: a session's Conn used from another thread is a bug the API cannot prevent (ConnHandle
    // is the way); the assertion names it at the call instead of as a data race later.
    bool on_worker_thread() const noexcept {
        return thread_ == std::thread::id() || thread_ == std::this_thread::get_id();
    }
    std::vector<char> scratch_;           // every read lands here; sessions copy what they keep
    int64_t now_ms_ = 0;                  // coarse clock, read once per loop iteration
    bool draining_ = false;               // a graceful stop is under way
    bool first_request_grace_ = false;    // and a connection that has had no answer yet may still ask
    DeadlineQueue timers_;                // one timer per connection: its state's earliest deadline
    OpenList open_;                       // every connection not yet closed, in admission order
    std::vector<Connection*> scheduled_;  // the resume list: input no edge will announce again
    std::vector<Connection*> graveyard_;  // closed during this batch; freed after it
    std::vector<Connection*> to_send_;    // io_uring: connections with new output, sent with the next wait
};

}  // namespace kq
