// Hand-off throughput with a real producer (the acceptor) and consumer (a worker) thread: fds per
// second and system calls per fd, where the single-threaded figures miss contention, context
// switches and the batching that a busy worker gets for free.
#include <array>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "kq/mailbox.hpp"
#include "micro_util.hpp"

namespace kq::micro {
namespace {

// How the producer gives the consumer an fd.
enum class Mode {
    mailbox,  // push only: the consumer drains and drops it (the queue and its wake-ups alone)
    queue,    // the server's design: push; the worker drains, registers it and waits for its first event
    direct,   // --handoff direct: the producer registers it in the worker's poller itself
};

constexpr size_t kPool = 256;  // sockets in flight at most; each returns to the producer after its first event

// Everything the two threads share for one run of the benchmark function.
struct Channel {
    explicit Channel(Backend backend) : poller(make_poller(backend)), mailbox(*poller) {
        for (size_t i = 0; i < kPool; ++i) {
            pairs.push_back(make_socketpair());
            free_fds.push(static_cast<int>(i));
        }
    }
    int fd(int index) const { return pairs[static_cast<size_t>(index)].mine.get(); }
    // udata carries the pool index (+1, so that it is never nullptr).
    static void* udata(int index) { return reinterpret_cast<void*>(static_cast<intptr_t>(index) + 1); }
    static int index_of(void* udata) { return static_cast<int>(reinterpret_cast<intptr_t>(udata) - 1); }

    std::vector<SocketPair> pairs;
    std::unique_ptr<Poller> poller;
    Mailbox mailbox;
    boost::lockfree::spsc_queue<int, boost::lockfree::capacity<kPool + 1>> free_fds;  // consumer -> producer
    std::atomic<bool> stop{false};
    uint64_t waits = 0;  // consumer only; read after join
};

// The worker's side, shaped like WorkerLoop::run: sleep only when the mailbox is empty, then take the
// events (an fd's first readiness: remove it and return it to the producer), then drain the mailbox.
void consume(Channel& ch, Mode mode) {
    std::array<PollEvent, 64> events{};
    while (!ch.stop.load(std::memory_order_acquire)) {
        bool may_sleep = mode == Mode::direct || ch.mailbox.prepare_sleep();
        int n = ch.poller->wait(events, may_sleep ? -1 : 0);
        if (mode != Mode::direct && may_sleep) ch.mailbox.woke();
        ++ch.waits;
        for (int i = 0; i < n; ++i) {
            const PollEvent& ev = events[static_cast<size_t>(i)];
            if (ev.wake) continue;
            int index = Channel::index_of(ev.udata);
            ch.poller->remove(ch.fd(index));
            ch.free_fds.push(index);
        }
        ch.mailbox.drain([&](int index) {
            if (mode == Mode::queue) ch.poller->add(ch.fd(index), Channel::udata(index));
            else ch.free_fds.push(index);
        });
    }
}

// The acceptor's side, one fd per iteration; it spins (yielding) while all kPool fds are in flight.
void BM_Handoff_Threads(benchmark::State& state, Backend backend, Mode mode) {
    Channel ch(backend);
    std::thread worker([&] { consume(ch, mode); });
    for (auto _ : state) {
        int index;
        while (!ch.free_fds.pop(index)) std::this_thread::yield();
        if (mode == Mode::direct) {
            ch.poller->add(ch.fd(index), Channel::udata(index));
        } else {
            while (!ch.mailbox.push(index)) std::this_thread::yield();
        }
    }
    ch.stop.store(true, std::memory_order_release);
    ch.poller->wake();
    worker.join();
    const auto fds = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
    state.counters["waits/fd"] = static_cast<double>(ch.waits) / fds;
    if (mode != Mode::direct) state.counters["wakes/fd"] = static_cast<double>(ch.mailbox.wakes_sent()) / fds;
}

}  // namespace

void register_handoff_thread_benchmarks() {
    // Real time: the work is split over two threads and the main thread's CPU time sees only the
    // producer's, including its spinning while the worker is behind: not the acceptor's cost per fd
    // (BM_Mailbox_PushDrain and BM_Direct_Add are).
    auto configure = [](benchmark::internal::Benchmark* b) { b->UseRealTime(); };
    register_per_backend(
        "BM_Handoff_Threads_Mailbox", [](benchmark::State& s, Backend b) { BM_Handoff_Threads(s, b, Mode::mailbox); },
        configure);
    register_per_backend(
        "BM_Handoff_Threads_Queue", [](benchmark::State& s, Backend b) { BM_Handoff_Threads(s, b, Mode::queue); },
        configure);
    register_per_backend(
        "BM_Handoff_Threads_Direct", [](benchmark::State& s, Backend b) { BM_Handoff_Threads(s, b, Mode::direct); },
        configure);
}

}  // namespace kq::micro
