// Per-fd cost of handing a connection from the acceptor to a worker, single-threaded so the figure is
// repeatable: the mailbox without a wake (worker busy), with a wake (worker asleep), and the
// alternative, the acceptor registering the fd in the worker's poller itself ("direct").
#include <array>
#include <memory>
#include <vector>

#include "kq/mailbox.hpp"
#include "micro_util.hpp"

namespace kq::micro {
namespace {

// (a) The worker is busy (never announced sleep), so push() is a queue write and an atomic exchange,
// drain() one consume_all. Arg = fds pushed before each drain: a burst of accepts shares one drain.
void BM_Mailbox_PushDrain(benchmark::State& state) {
    auto poller = make_poller(Backend::automatic);
    Mailbox mailbox(*poller);
    const int batch = static_cast<int>(state.range(0));
    int sum = 0;
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            if (!mailbox.push(i)) {
                state.SkipWithError("mailbox full");
                return;
            }
        }
        mailbox.drain([&](int fd) { sum += fd; });
        benchmark::DoNotOptimize(sum);
    }
    if (mailbox.wakes_sent() != 0) state.SkipWithError("a busy consumer was woken");
    state.SetItemsProcessed(state.iterations() * batch);
}

// (b) The worker announced sleep, so push() also calls poller.wake(); the worker's wait collects the
// wake event and it drains. Both sides on one thread: no context switch, only the system calls
// (epoll: eventfd write, epoll_wait, eventfd read; kqueue: two kevent calls).
void BM_Mailbox_PushWake(benchmark::State& state, Backend backend) {
    auto poller = make_poller(backend);
    Mailbox mailbox(*poller);
    std::array<PollEvent, 4> events{};
    int sum = 0;
    for (auto _ : state) {
        if (!mailbox.prepare_sleep()) {
            state.SkipWithError("prepare_sleep saw a queued fd");
            return;
        }
        mailbox.push(7);
        int n = poller->wait(events, 0);
        mailbox.woke();
        mailbox.drain([&](int fd) { sum += fd; });
        if (n != 1 || !events[0].wake) {
            state.SkipWithError("the wait did not return exactly one wake event");
            return;
        }
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations());
}

// The fds a direct-registration benchmark adds: real sockets, since both kernels refuse to register
// regular files (epoll: EPERM) and the readiness check at add time is part of the cost.
class FdPool {
public:
    explicit FdPool(size_t n) {
        for (size_t i = 0; i < n; ++i) pairs_.push_back(make_socketpair());
    }
    size_t size() const { return pairs_.size(); }
    int fd(size_t i) const { return pairs_[i].mine.get(); }
    void* udata(size_t i) { return &pairs_[i]; }

private:
    std::vector<SocketPair> pairs_;
};

// (c) Direct registration: Poller::add() of a socket (READ|WRITE, edge-triggered), as the acceptor
// thread would do into the worker's poller. Only the add is timed: the removes that make the next
// round possible run with the timer paused, once per kPool adds so that pausing costs little.
void BM_Direct_Add(benchmark::State& state, Backend backend) {
    constexpr size_t kPool = 256;
    auto poller = make_poller(backend);
    FdPool pool(kPool);
    size_t next = 0;
    for (auto _ : state) {
        if (next == kPool) {
            state.PauseTiming();
            for (size_t i = 0; i < kPool; ++i) poller->remove(pool.fd(i));
            next = 0;
            state.ResumeTiming();
        }
        poller->add(pool.fd(next), pool.udata(next));
        ++next;
    }
    state.SetItemsProcessed(state.iterations());
}

// (c') add() then remove() of one socket per iteration: the brief's form, and an upper bound on the
// direct path's kernel work per connection (a closed fd is removed by close() instead).
void BM_Direct_AddRemove(benchmark::State& state, Backend backend) {
    auto poller = make_poller(backend);
    FdPool pool(1);
    for (auto _ : state) {
        poller->add(pool.fd(0), pool.udata(0));
        poller->remove(pool.fd(0));
    }
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

void register_handoff_benchmarks() {
    benchmark::RegisterBenchmark("BM_Mailbox_PushDrain", BM_Mailbox_PushDrain)->ArgName("batch")->Arg(1)->Arg(64);
    auto plain = [](benchmark::internal::Benchmark*) {};
    register_per_backend("BM_Mailbox_PushWake", BM_Mailbox_PushWake, plain);
    register_per_backend("BM_Direct_Add", BM_Direct_Add, plain);
    register_per_backend("BM_Direct_AddRemove", BM_Direct_AddRemove, plain);
}

}  // namespace kq::micro
