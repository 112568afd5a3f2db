// ConnPort: the handle table and the task queue of one worker, and ConnHandle's calls, which go through it.
#include "conn_port.hpp"

#include <utility>

#include "connection.hpp"

namespace kq {

ConnPort::~ConnPort() {
    for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
}

bool ConnPort::post(uint32_t slot, uint64_t generation, std::function<void(Conn&)> fn) {
    if (!alive(slot, generation)) return false;
    std::lock_guard lock(mutex_);
    if (mailbox_ == nullptr) return false;
    tasks_.push_back(Task{slot, generation, std::move(fn)});
    // Under the lock: shutdown() cannot detach (and the worker cannot free) the mailbox meanwhile.
    if (tasks_.size() == 1) mailbox_->signal();
    return true;
}

uint32_t ConnPort::acquire(Connection* c) {
    uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
        owners_[slot] = c;
    } else {
        slot = static_cast<uint32_t>(owners_.size());
        if (slot / kChunk >= kChunks) return kNoSlot;
        if (slot % kChunk == 0)
            chunks_[slot / kChunk].store(new std::atomic<uint64_t>[kChunk](), std::memory_order_release);
        owners_.push_back(c);
        free_.reserve(owners_.size());  // so that release(), noexcept, never allocates
    }
    auto& g = gen_of(slot);
    g.store(g.load(std::memory_order_relaxed) + 1, std::memory_order_release);  // odd: open
    return slot;
}

void ConnPort::release(uint32_t slot) noexcept {
    auto& g = gen_of(slot);
    g.store(g.load(std::memory_order_relaxed) + 1, std::memory_order_release);  // even: closed
    owners_[slot] = nullptr;
    free_.push_back(slot);  // within the capacity acquire() reserved
}

uint64_t ConnPort::run() {
    {
        std::lock_guard lock(mutex_);
        running_.swap(tasks_);
    }
    uint64_t dropped = 0;
    // Tasks run in the order they were queued; one may close a connection a later one is for, or open
    // a handle (acquire), but never frees a Connection (that waits for the end of the batch).
    for (Task& t : running_) {
        if (generation(t.slot) != t.generation) {
            ++dropped;
            continue;
        }
        Connection* c = owners_[t.slot];
        t.fn(*c);
    }
    running_.clear();
    return dropped;
}

void ConnPort::shutdown() noexcept {
    std::vector<Task> dropped;
    {
        std::lock_guard lock(mutex_);
        mailbox_ = nullptr;
        dropped.swap(tasks_);
    }
    // Destroyed outside the lock: a task may hold the last reference to something that posts.
}

// ---- ConnHandle

bool ConnHandle::send(std::string bytes) const {
    if (!port_) return false;
    return port_->post(slot_, generation_, [b = std::move(bytes)](Conn& c) { c.send(std::string_view(b)); });
}

bool ConnHandle::close() const {
    if (!port_) return false;
    return port_->post(slot_, generation_, [](Conn& c) { c.close(); });
}

bool ConnHandle::fill(Reservation r, std::string bytes) const {
    if (!port_) return false;
    return port_->post(slot_, generation_, [r, b = std::move(bytes)](Conn& c) mutable {
        static_cast<Connection&>(c).fill(r, std::move(b));
    });
}

bool ConnHandle::fail(Reservation r) const {
    if (!port_) return false;
    return port_->post(slot_, generation_, [r](Conn& c) { static_cast<Connection&>(c).fail(r); });
}

bool ConnHandle::post(std::function<void(Conn&)> fn) const {
    if (!port_) return false;
    return port_->post(slot_, generation_, std::move(fn));
}

bool ConnHandle::alive() const noexcept { return port_ && port_->alive(slot_, generation_); }

}  // namespace kq
