// Blocking work off the workers: a thread pool of its own (Boost.Asio's thread_pool underneath), and
// kq::offload(), which runs a job there and sends what it returns on the connection's own worker, in
// order with the rest of the connection's output. The worker goes on serving its other connections
// meanwhile: the answer to `--block-ms`, where one sleeping handler stalls every neighbour.
// Thread rules: submit() from any thread; the destructor waits for the jobs already submitted, so a
// protocol that owns a pool destroys it (after its sessions) only once nothing submits any more.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "kq/handler.hpp"

namespace kq {

class OffloadPool {
public:
    // threads = 0: one per core.
    explicit OffloadPool(size_t threads = 0);
    ~OffloadPool();
    OffloadPool(const OffloadPool&) = delete;
    OffloadPool& operator=(const OffloadPool&) = delete;

    // Runs job on one of the pool's threads, in no particular order with other jobs. job must not
    // throw (kq::offload() catches for its jobs), and must not refer to a session: it may outlive it.
    void submit(std::function<void()> job);
    size_t threads() const noexcept { return threads_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    size_t threads_;
};

// Reserves the connection's next output, runs job() on pool, and sends the string it returns there:
// after everything the session sent before this call, before everything it sends after. A job that
// throws closes the connection after the output before it: nothing after it (later answers, later
// sends) is written (ConnHandle::fail). job runs on another thread: give it copies, not references into
// the session or the bytes of on_data().
template <class Job>
void offload(Conn& conn, OffloadPool& pool, Job job) {
    Reservation place = conn.reserve();
    ConnHandle to = conn.handle();
    pool.submit([to = std::move(to), place, job = std::move(job)]() mutable {
        std::string answer;
        try {
            answer = job();
        } catch (...) {
            to.fail(place);
            return;
        }
        to.fill(place, std::move(answer));
    });
}

}  // namespace kq
