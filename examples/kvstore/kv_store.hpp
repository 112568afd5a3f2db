// An in-memory map from string keys to string values, shared by every worker thread: split into shards
// that each have their own mutex, so workers serving different keys rarely wait for one another.
// Thread rules: every method may be called from any thread at once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvstore {

class ShardedStore {
public:
    // shards: how many independent locks. A few times the number of workers keeps two workers from
    // wanting the same lock at once most of the time; more only costs a little memory.
    explicit ShardedStore(size_t shards = 64);
    ShardedStore(const ShardedStore&) = delete;
    ShardedStore& operator=(const ShardedStore&) = delete;

    // Inserts or replaces. The key and value are copied before the lock is taken.
    void set(std::string_view key, std::string_view value);
    // Appends the value to out and returns true if key is present: one copy, made under the shard lock.
    bool get_into(std::string_view key, std::string& out) const;
    // Returns true if the key was present.
    bool erase(std::string_view key);
    // Keys in all shards; each shard is counted under its lock, so under concurrent writes the total is a
    // snapshot of no single instant.
    size_t size() const;
    size_t shard_count() const noexcept { return count_; }

private:
    // Transparent, so lookups take the string_view as it is and allocate nothing.
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    using Map = std::unordered_map<std::string, std::string, Hash, std::equal_to<>>;
    // One cache line per lock at least: two workers locking neighbouring shards do not share a line.
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        Map map;
    };
    Shard& shard_for(std::string_view key) const noexcept;

    size_t count_;
    std::unique_ptr<Shard[]> shards_;
};

}  // namespace kvstore
