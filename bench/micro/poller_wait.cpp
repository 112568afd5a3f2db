// Cost of one Poller::wait() that returns N ready fds (1 to 1024), per backend: the system call plus
// the translation into PollEvent (and, for kqueue, the per-fd merge of READ and WRITE), per event.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "micro_util.hpp"

namespace kq::micro {
namespace {

// Re-arming edge-triggered readiness between iterations needs a new edge on every fd: one byte written
// to each peer (both kernels report a new edge for new data even while older bytes are unread, so the
// bytes are read back only every kDrainEvery rounds, before the buffers fill). That write is a system
// call per fd, more than the wait's share per event, so it is kept out of the figure with manual
// timing around wait() alone; PauseTiming/ResumeTiming would do the same but costs more than a small
// wait itself, and timing `write + wait` per event would measure mostly the writes. The CPU column
// therefore includes the re-arming; the Time column and items_per_second are the wait alone.
constexpr int64_t kDrainEvery = 64;

void BM_Poller_Wait(benchmark::State& state, Backend backend) {
    const auto n = static_cast<size_t>(state.range(0));
    auto poller = make_poller(backend);
    std::vector<SocketPair> pairs;
    pairs.reserve(n);  // udata points into it
    for (size_t i = 0; i < n; ++i) {
        pairs.push_back(make_socketpair());
        poller->add(pairs.back().mine.get(), &pairs.back());
    }
    // Room for one event per kevent (kqueue reports READ and WRITE separately before merging; see
    // the libkqueue caveat in poller_kqueue.cpp) plus a wake.
    std::vector<PollEvent> events(2 * n + 1);
    poller->wait(events, 0);  // the writable edges that the registration itself reports
    const char byte = 'x';
    char sink[kDrainEvery];
    int64_t round = 0;
    for (auto _ : state) {
        const bool drain = ++round % kDrainEvery == 0;
        for (auto& p : pairs) {
            if (drain && ::read(p.mine.get(), sink, sizeof sink) <= 0) return state.SkipWithError("read");
            if (::write(p.peer.get(), &byte, 1) != 1) return state.SkipWithError("write");
        }
        auto start = std::chrono::steady_clock::now();
        int got = poller->wait(events, 0);
        auto stop = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(stop - start).count());
        if (static_cast<size_t>(got) != n) return state.SkipWithError("wait did not return every ready fd");
    }
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}

}  // namespace

void register_poller_wait_benchmarks() {
    register_per_backend("BM_Poller_Wait", BM_Poller_Wait, [](benchmark::internal::Benchmark* b) {
        b->ArgName("ready")->RangeMultiplier(4)->Range(1, 1024)->UseManualTime();
    });
}

}  // namespace kq::micro
