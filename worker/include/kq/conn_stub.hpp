// A Conn for unit tests of a session, without sockets or a worker: it records what the session does.
// Derive from it and override what a test needs to watch (send, close, ...); the defaults record.
// Thread rules: one thread, as a real Conn.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kq/handler.hpp"

namespace kq::testing {

class ConnStub : public Conn {
public:
    void send(std::span<const char> bytes) override {
        ++sends;
        if (closed) return;  // the worker drops bytes after close()
        sent.append(bytes.data(), bytes.size());
        if (stalled) unsent_bytes += bytes.size();  // a client that reads nothing: all of it stays unsent
    }
    using Conn::send;
    Reservation reserve() override { return Reservation{++last_id}; }
    void close() override { closed = true; }
    void shutdown_write() override { write_shut = true; }
    void count_requests(uint64_t n) override { requests += n; }
    size_t unsent() const noexcept override { return unsent_bytes; }
    bool congested() const noexcept override { return unsent_bytes > low_water; }
    void pause_reading() override { paused = true; }
    void resume_reading() override { paused = false; }
    bool reading_paused() const noexcept override { return paused; }
    TimerId after(std::chrono::milliseconds delay, std::function<void(Conn&)> fn) override {
        timers.push_back({++last_id, delay, false, std::move(fn)});
        return last_id;
    }
    TimerId every(std::chrono::milliseconds period, std::function<void(Conn&)> fn) override {
        timers.push_back({++last_id, period, true, std::move(fn)});
        return last_id;
    }
    bool cancel(TimerId id) override {
        for (auto it = timers.begin(); it != timers.end(); ++it)
            if (it->id == id) {
                timers.erase(it);
                return true;
            }
        return false;
    }
    SocketAddress peer() const override { return {}; }
    SocketAddress local() const override { return {}; }
    int worker() const noexcept override { return 0; }
    uint64_t id() const noexcept override { return 1; }
    ConnHandle handle() override { return {}; }
    void connect(const SocketAddress& to, std::chrono::milliseconds, std::function<std::unique_ptr<Session>(Conn&)>,
                 std::function<void(int)> failed) override {
        connects.push_back(to);
        if (connect_error != 0) failed(connect_error);
    }
    std::span<char> held_input() noexcept override { return {held.data(), held.size()}; }

    // Runs every timer once (one-shot ones are then gone), in the order they were set.
    void run_timers() {
        std::vector<Timer> now;
        now.swap(timers);
        for (Timer& t : now) {
            if (t.repeating) timers.push_back(t);
            t.fn(*this);
        }
    }

    struct Timer {
        TimerId id;
        std::chrono::milliseconds delay;
        bool repeating;
        std::function<void(Conn&)> fn;
    };
    std::string sent;
    int sends = 0;         // send() calls, after close() too (one per on_data is the cheap way)
    bool stalled = false;  // every byte sent also adds to unsent_bytes
    bool closed = false;
    bool write_shut = false;
    bool paused = false;
    uint64_t requests = 0;
    size_t unsent_bytes = 0;  // what unsent() says; congested() above low_water
    size_t low_water = 256 * 1024;
    std::string held;  // what held_input() shows
    std::vector<Timer> timers;
    std::vector<SocketAddress> connects;  // connect() records the address, and fails at once if...
    int connect_error = 0;                // ... this is set
    uint64_t last_id = 0;
};

}  // namespace kq::testing
