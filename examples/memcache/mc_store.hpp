// The memcached item store: a hash map split into shards with a mutex each, an LRU list per shard,
// memory accounting against a cap with LRU eviction, cas uniques, memcached's expiry and flush rules.
// Written here because no packaged library offers memcached's item semantics (cas, append, expiry rules,
// flush_all delay) as an embeddable store.
// Thread rules: every method may be called from any thread at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kqmc {

// Unix time in seconds. Injected so that tests move time by hand instead of sleeping.
using Clock = std::function<int64_t()>;
int64_t system_clock_seconds();

struct StoreOptions {
    size_t memory_limit = size_t{64} << 20;  // bytes of keys, values and per-item overhead
    size_t max_item_size = size_t{1} << 20;  // largest value in bytes
    size_t shards = 16;                      // independent locks (and LRU lists)
    Clock clock = system_clock_seconds;
};

// What a reader sees of an item, valid only during the callback (under the shard lock).
struct ItemView {
    std::string_view key, value;
    uint32_t flags;
    int64_t exptime;  // absolute unix seconds, 0 = never
    uint64_t cas;
};
using ItemVisitor = std::function<void(const ItemView&)>;

enum class StoreMode { set, add, replace, append, prepend };
enum class StoreResult { stored, not_stored, exists, not_found, too_large, no_memory };
enum class DeleteResult { deleted, not_found, exists };
enum class ArithResult { ok, not_found, non_numeric, exists };

struct StoreRequest {
    StoreMode mode = StoreMode::set;
    std::string_view key, value;
    uint32_t flags = 0;
    int64_t exptime = 0;         // as the client sent it (memcached's rules, see Store::deadline)
    uint64_t compare_cas = 0;    // 0: none; otherwise store only if the item's cas matches
    bool vivify = false;         // append/prepend on a miss stores the value as a new item...
    int64_t vivify_exptime = 0;  // ...with this exptime
};

struct ArithRequest {
    std::string_view key;
    bool incr = true;
    uint64_t delta = 1;
    uint64_t compare_cas = 0;
    bool vivify = false;  // on a miss create the item with `initial` (no delta applied)
    int64_t vivify_exptime = 0;
    uint64_t initial = 0;
    bool set_exptime = false;  // on success set the exptime to `exptime`
    int64_t exptime = 0;
};
struct ArithOutcome {
    uint64_t value = 0;
    uint64_t cas = 0;
    int64_t exptime = 0;  // absolute
};

// Counters for `stats`; read without locks, so a snapshot is only roughly consistent.
struct StoreStats {
    uint64_t curr_items, total_items, bytes, evictions, reclaimed;
};

class Store {
public:
    explicit Store(StoreOptions options = {});
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const StoreOptions& options() const noexcept { return options_; }
    int64_t now() const { return options_.clock(); }
    // memcached's exptime rules: 0 never; negative already expired; up to 30 days relative to now;
    // above that an absolute unix time. Returns the absolute deadline (0 = never).
    int64_t deadline(int64_t exptime) const;
    // Remaining seconds for `t` flags: -1 when the item never expires.
    int64_t ttl(int64_t abs_exptime) const;

    // Calls visit with the live item and returns true; false on a miss. bump moves it to the LRU head;
    // touch_exptime, when given, sets its exptime first (gat, touch).
    bool get(std::string_view key, const ItemVisitor& visit, bool bump = true, const int64_t* touch_exptime = nullptr);
    StoreResult store(const StoreRequest& request, uint64_t* cas_out = nullptr);
    DeleteResult remove(std::string_view key, uint64_t compare_cas = 0);
    ArithResult arith(const ArithRequest& request, ArithOutcome& out);
    // Every item stored before now + delay is gone from then on; delay 0 empties the store at once.
    void flush(int64_t delay);
    // Drops expired and flushed items; returns how many.
    size_t sweep();
    StoreStats stats() const;

private:
    struct Entry {
        std::string key, value;
        uint32_t flags;
        int64_t exptime;
        int64_t stored_at;
        uint64_t cas;
    };
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    using Lru = std::list<Entry>;
    struct Shard {
        std::mutex mu;
        Lru lru;  // front: most recently used
        std::unordered_map<std::string_view, Lru::iterator, Hash, std::equal_to<>> index;
    };

    Shard& shard_of(std::string_view key) { return *shards_[Hash{}(key) % shards_.size()]; }
    size_t shard_index(std::string_view key) const { return Hash{}(key) % shards_.size(); }
    static size_t charge(const Entry& e) noexcept;
    bool dead(const Entry& e, int64_t now) const noexcept;
    // The live entry for key (a dead one is dropped on the way), or lru.end(). Shard locked.
    Lru::iterator find(Shard& s, std::string_view key, int64_t now);
    void unlink(Shard& s, Lru::iterator it);
    Lru::iterator link(Shard& s, Entry entry);
    void replace_value(Shard& s, Lru::iterator it, std::string value);
    // Evicts LRU tails, the given shard first, until the bytes fit under the cap.
    void evict_until_fits(size_t first_shard);
    uint64_t next_cas() noexcept { return cas_.fetch_add(1, std::memory_order_relaxed) + 1; }

    StoreOptions options_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::atomic<uint64_t> cas_{0};
    std::atomic<int64_t> flush_at_{0};  // items stored before it are dead once now >= it; 0 = none
    std::atomic<uint64_t> bytes_{0}, items_{0}, total_items_{0}, evictions_{0}, reclaimed_{0};
};

}  // namespace kqmc
