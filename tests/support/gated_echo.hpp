// A gated echo for tests that need a batch of events or completions at once: echo, except that a read
// of exactly the one byte kGateByte, while the gate is armed, holds the worker inside on_data until the
// test opens the gate, so events pile up meanwhile and the next wait returns them as one batch.
// (Blocking a worker is forbidden to real protocols; here it is the tool.) With close_on_bang, input
// that ends in '!' is echoed and then the server closes the connection itself.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string_view>

#include "kq/handler.hpp"
#include "kq/worker_config.hpp"
#include "test_util.hpp"

namespace kq::test {

constexpr char kGateByte = '\x01';
struct Gate {
    std::atomic<bool> armed{false}, holding{false}, open{false};
};

class GatedEchoProtocol final : public Protocol {
public:
    explicit GatedEchoProtocol(Gate& gate, bool close_on_bang = false) : gate_(gate), close_on_bang_(close_on_bang) {}
    std::string_view name() const override { return "gated-echo"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<GatedSession>(gate_, close_on_bang_); }

private:
    class GatedSession final : public Session {
    public:
        GatedSession(Gate& gate, bool close_on_bang) : gate_(gate), close_on_bang_(close_on_bang) {}
        size_t on_data(std::span<char> bytes, Conn& reply) override {
            if (bytes.size() == 1 && bytes[0] == kGateByte && gate_.armed.exchange(false)) {
                gate_.holding.store(true);
                eventually([&] { return gate_.open.load(); }, 30'000);  // bounded: a failing test cannot hang
            }
            reply.send(bytes);
            if (close_on_bang_ && !bytes.empty() && bytes.back() == '!') reply.close();
            return bytes.size();
        }

    private:
        Gate& gate_;
        bool close_on_bang_;
    };
    Gate& gate_;
    bool close_on_bang_;
};

// The waits that returned more than `events` events or completions (from the power-of-two buckets).
inline uint64_t waits_with_more_than(const WorkerStats& s, uint64_t events) {
    uint64_t n = 0;
    for (size_t i = 0; i < EventsPerWait::kBuckets; ++i) {
        if (i > 0 && EventsPerWait::bucket_bound(i - 1) >= events) n += s.events_per_wait.bucket(i);
    }
    return n;
}

}  // namespace kq::test
