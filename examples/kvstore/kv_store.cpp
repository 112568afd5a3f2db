// The sharded store: a key's hash picks its shard; the shard's mutex guards its map.
#include "kv_store.hpp"

#include <stdexcept>

namespace kvstore {

ShardedStore::ShardedStore(size_t shards) : count_(shards), shards_(std::make_unique<Shard[]>(shards)) {
    if (shards == 0) throw std::invalid_argument("ShardedStore: at least one shard");
}

// std::unordered_map (libstdc++) picks a bucket by hash modulo a prime, so keys that share a shard (the
// same hash modulo count_) still spread over that shard's buckets.
ShardedStore::Shard& ShardedStore::shard_for(std::string_view key) const noexcept {
    return shards_[Hash{}(key) % count_];
}

void ShardedStore::set(std::string_view key, std::string_view value) {
    std::string k(key), v(value);  // allocate outside the lock
    Shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    s.map.insert_or_assign(std::move(k), std::move(v));
}

bool ShardedStore::get_into(std::string_view key, std::string& out) const {
    const Shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out += it->second;
    return true;
}

bool ShardedStore::erase(std::string_view key) {
    Shard& s = shard_for(key);
    std::lock_guard lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    s.map.erase(it);
    return true;
}

size_t ShardedStore::size() const {
    size_t n = 0;
    for (size_t i = 0; i < count_; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        n += shards_[i].map.size();
    }
    return n;
}

}  // namespace kvstore
