// kqmemcache's protocol on kqserver's handler API: memcached's ASCII text protocol (classic and meta
// commands) over one Store shared by every connection. Written here because no packaged library serves
// the memcached protocol from an embedding program; memcached itself is a server, not a library.
// Thread rules: open() runs on every worker at once; the store and counters are safe from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "kq/handler.hpp"
#include "mc_store.hpp"

namespace kqmc {

struct MemcacheOptions {
    size_t memory_limit = size_t{64} << 20;  // the store's cap in bytes (--memory-limit is in MiB)
    size_t max_item_size = size_t{1} << 20;  // largest value; larger ones get SERVER_ERROR, their data skipped
    size_t shards = 16;
    size_t max_line = 2048;                 // longest command line but a get's (memcached's limit)
    size_t max_get_line = size_t{1} << 20;  // get/gets/gat/gats take many keys: their line may be longer
    int sweep_interval_ms = 1000;           // background sweep of expired items; 0 = none (tests sweep by hand)
    int workers = 0;                        // reported by `stats` as threads
    Clock clock = system_clock_seconds;
    // The held input a connection needs: a command line and a whole data block (WorkerConfig::max_input).
    size_t max_input() const noexcept {
        size_t storage = max_line + 2 + max_item_size + 2;
        return (storage > max_get_line ? storage : max_get_line) + 2;
    }
};

// The server-wide counters `stats` reports, updated from every worker.
struct Counters {
    std::atomic<uint64_t> cmd_get{0}, cmd_set{0}, cmd_flush{0}, cmd_touch{0}, get_hits{0}, get_misses{0},
        delete_hits{0}, delete_misses{0}, incr_hits{0}, incr_misses{0}, decr_hits{0}, decr_misses{0}, cas_hits{0},
        cas_misses{0}, cas_badval{0}, touch_hits{0}, touch_misses{0}, curr_connections{0}, total_connections{0};
    void add(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
};

// What every session shares: the options, the store, the counters.
struct Shared {
    explicit Shared(MemcacheOptions o);
    MemcacheOptions options;
    Store store;
    Counters counters;
    int64_t started;  // unix seconds, for uptime
};

class MemcacheProtocol final : public kq::Protocol {
public:
    explicit MemcacheProtocol(MemcacheOptions options = {});
    ~MemcacheProtocol() override;
    std::string_view name() const override { return "memcache"; }
    std::unique_ptr<kq::Session> open(kq::Conn&) override;
    Shared& shared() noexcept { return shared_; }
    Store& store() noexcept { return shared_.store; }

private:
    // Expired items nobody asks for again would keep their memory until LRU eviction reaches them; one
    // thread that sweeps the whole store now and then is the simplest correct answer. The library's timers
    // belong to connections, and a store-wide sweep has no connection to belong to.
    void sweep_loop();

    Shared shared_;
    std::mutex mu_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread sweeper_;
};

// A session for one connection, without a server (unit tests and the fuzzer drive it with a ConnStub).
std::unique_ptr<kq::Session> make_session(Shared& shared);

}  // namespace kqmc
