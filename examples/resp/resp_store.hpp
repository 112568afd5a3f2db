// The keyspace of the RESP example: string and list values with optional expiry, shared by every worker
// thread and split into shards that each have their own mutex. Hand-written because Debian packages no
// embeddable Redis-like store (hiredis and friends are clients); it is a few hash maps.
// Thread rules: every method may be called from any thread at once; a Shard reference passed to a
// with() callback is valid, and locked, only inside that callback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>

namespace resp {

using List = std::deque<std::string>;
// A key's value: a string or a list (a list is never empty: its last pop deletes the key).
using Value = std::variant<std::string, List>;

// Milliseconds on a monotonic clock; injected by the tests so that expiry needs no sleeping.
using Clock = std::function<int64_t()>;
int64_t steady_now_ms();

// Expiry is lazy (a key found expired on access is deleted then) plus an amortised sweep: each time a
// shard is locked, up to kSweepPerLock of its expired keys are deleted, earliest first, from an index
// ordered by deadline; DBSIZE and FLUSHALL reclaim all. No background thread and no timer: the handler
// API has timers per connection only, a thread would need a life cycle of its own, and this way an
// expired key's memory is reclaimed the next time anything touches its shard, which under any load is
// soon. A shard nobody touches keeps its expired keys (bounded by what was stored) until DBSIZE.
class Store {
public:
    static constexpr size_t kSweepPerLock = 16;

    struct Entry {
        Value value;
        int64_t expires_at = 0;  // 0: never
    };

    // One locked shard, as with() gives it to its callback. Lookups see no expired key.
    class Shard {
    public:
        // The live entry of key, or nullptr (an expired one is deleted first).
        Entry* find(std::string_view key);
        // The entry of key, created holding `fresh` if absent; a created entry has no expiry.
        Entry& find_or_create(std::string_view key, Value fresh, bool* created = nullptr);
        // Replaces key's value; its expiry is cleared unless keep_ttl.
        void put(std::string_view key, Value value, bool keep_ttl = false);
        bool erase(std::string_view key);
        // Sets (at > 0) or clears (at == 0) the expiry of a live entry of key.
        void set_expiry(std::string_view key, Entry& entry, int64_t at);
        int64_t now() const noexcept { return now_; }

    private:
        friend class Store;
        struct Hash {
            using is_transparent = void;
            size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
        };
        using Map = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;
        using DeadlineKey = std::pair<int64_t, std::string_view>;
        // Orders (deadline, key) pairs and finds one by a string_view key without a copy.
        struct DeadlineLess {
            using is_transparent = void;
            static DeadlineKey view(const std::pair<int64_t, std::string>& p) { return {p.first, p.second}; }
            static DeadlineKey view(const DeadlineKey& p) { return p; }
            template <class A, class B>
            bool operator()(const A& a, const B& b) const {
                return view(a) < view(b);
            }
        };
        using Deadlines = std::set<std::pair<int64_t, std::string>, DeadlineLess>;
        void forget_deadline(std::string_view key, int64_t at);
        size_t sweep(size_t limit);  // deletes up to limit expired keys; returns how many

        std::mutex mutex_;
        Map map_;
        Deadlines deadlines_;  // (expires_at, key) of every entry that has one
        int64_t now_ = 0;      // the clock when the lock was taken: one instant per command
    };

    explicit Store(size_t shards = 64, Clock clock = steady_now_ms);
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // Runs fn(shard) with key's shard locked and swept; returns what fn returns. fn must not call back
    // into the store (one lock at a time: commands on several keys lock their shards one after another).
    template <class Fn>
    decltype(auto) with(std::string_view key, Fn&& fn) {
        Shard& s = shard_for(key);
        std::lock_guard lock(s.mutex_);
        s.now_ = clock_();
        s.sweep(kSweepPerLock);
        return fn(s);
    }

    // Live keys in all shards (each shard swept whole under its lock: a snapshot of no single instant).
    size_t size();
    void clear();
    int64_t now() const { return clock_(); }
    int64_t started() const noexcept { return started_; }  // the clock when the store was made

private:
    Shard& shard_for(std::string_view key) noexcept;

    size_t count_;
    std::unique_ptr<Shard[]> shards_;
    Clock clock_;
    int64_t started_;
};

}  // namespace resp
