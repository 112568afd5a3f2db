// A worker's inbox for other threads: what ConnHandle calls carry to the worker that owns a connection,
// and the table that tells any thread whether a handle's connection is still open.
//
// A connection gets a slot in the table the first time its session asks for a handle (an echo
// connection never does, and costs nothing); the slot's generation counter goes up when the connection
// closes, so a handle (slot, generation) taken before names a closed connection from then on, whatever
// later reuses the slot. Generations are 64-bit: a slot would have to be reused 2^64 times to alias.
// The table grows in chunks that are never moved or freed while the port lives, so any thread may read
// a generation while the worker adds chunks. The port is shared (handles hold it), so it outlives its
// worker: shutdown() detaches it from the worker's mailbox, and later calls return false.
// Tasks queue under a mutex (calls from many threads; one lock per call is far below the cost of the
// system call that sends the answer) and wake the worker through its mailbox, coalesced: one wake per sleep.
// Thread rules: post(), alive() from any thread; acquire(), release(), run() and shutdown() on the
// worker's thread (or its owner after join).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "kq/counter.hpp"
#include "kq/mailbox.hpp"

namespace kq {

class Connection;
class Conn;

class ConnPort {
public:
    static constexpr uint32_t kChunk = 4096;
    static constexpr uint32_t kChunks = 1024;  // 4 Mi connections open at once per worker
    static constexpr uint32_t kNoSlot = UINT32_MAX;

    explicit ConnPort(Mailbox& mailbox) : mailbox_(&mailbox) {}
    ~ConnPort();
    ConnPort(const ConnPort&) = delete;
    ConnPort& operator=(const ConnPort&) = delete;

    // Any thread.
    bool alive(uint32_t slot, uint64_t generation) const noexcept {
        const std::atomic<uint64_t>* g = gen_at(slot);
        return g != nullptr && g->load(std::memory_order_acquire) == generation && (generation & 1) == 1;
    }
    // Queues fn for the connection (slot, generation); false if it is known closed or the worker stopped.
    bool post(uint32_t slot, uint64_t generation, std::function<void(Conn&)> fn);

    // Worker thread: a slot for c, and its generation (odd while open); kNoSlot when the table is full.
    uint32_t acquire(Connection* c);
    uint64_t generation(uint32_t slot) const noexcept { return gen_at(slot)->load(std::memory_order_relaxed); }
    // Worker thread: c closed; its handles go dead.
    void release(uint32_t slot) noexcept;
    // Worker thread: runs the queued calls whose connection is still open; returns how many were
    // dropped because it had closed.
    uint64_t run();
    // Worker thread, as it stops: later calls return false; queued ones are dropped.
    void shutdown() noexcept;

private:
    struct Task {
        uint32_t slot;
        uint64_t generation;
        std::function<void(Conn&)> fn;
    };
    // The worker's own access to a slot it holds (acquire() published its chunk).
    std::atomic<uint64_t>& gen_of(uint32_t slot) noexcept { return const_cast<std::atomic<uint64_t>&>(*gen_at(slot)); }
    const std::atomic<uint64_t>* gen_at(uint32_t slot) const noexcept {
        if (slot / kChunk >= kChunks) return nullptr;
        const std::atomic<uint64_t>* chunk = chunks_[slot / kChunk].load(std::memory_order_acquire);
        return chunk == nullptr ? nullptr : &chunk[slot % kChunk];
    }

    // Generations: even = free, odd = open. Written by the worker only.
    std::array<std::atomic<std::atomic<uint64_t>*>, kChunks> chunks_{};
    // Worker only: who holds each slot, and the free slots.
    std::vector<Connection*> owners_;
    std::vector<uint32_t> free_;

    std::mutex mutex_;
    std::vector<Task> tasks_;    // guarded by mutex_
    Mailbox* mailbox_;           // guarded by mutex_; null after shutdown()
    std::vector<Task> running_;  // worker only: the batch being run
};

}  // namespace kq
