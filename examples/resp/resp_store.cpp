// The sharded keyspace: lookups with lazy expiry, the deadline index and its sweep.
#include "resp_store.hpp"

#include <chrono>
#include <limits>

namespace resp {

int64_t steady_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

Store::Entry* Store::Shard::find(std::string_view key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    if (it->second.expires_at != 0 && it->second.expires_at <= now_) {
        forget_deadline(key, it->second.expires_at);
        map_.erase(it);
        return nullptr;
    }
    return &it->second;
}

Store::Entry& Store::Shard::find_or_create(std::string_view key, Value fresh, bool* created) {
    if (Entry* e = find(key)) {
        if (created != nullptr) *created = false;
        return *e;
    }
    if (created != nullptr) *created = true;
    return map_.emplace(std::string(key), Entry{std::move(fresh), 0}).first->second;
}

void Store::Shard::put(std::string_view key, Value value, bool keep_ttl) {
    if (Entry* e = find(key)) {
        e->value = std::move(value);
        if (!keep_ttl) set_expiry(key, *e, 0);
        return;
    }
    map_.emplace(std::string(key), Entry{std::move(value), 0});
}

bool Store::Shard::erase(std::string_view key) {
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    const bool live = it->second.expires_at == 0 || it->second.expires_at > now_;
    if (it->second.expires_at != 0) forget_deadline(key, it->second.expires_at);
    map_.erase(it);
    return live;
}

void Store::Shard::set_expiry(std::string_view key, Entry& entry, int64_t at) {
    if (entry.expires_at == at) return;
    if (entry.expires_at != 0) forget_deadline(key, entry.expires_at);
    entry.expires_at = at;
    if (at != 0) deadlines_.emplace(at, std::string(key));
}

void Store::Shard::forget_deadline(std::string_view key, int64_t at) {
    auto it = deadlines_.find(DeadlineKey(at, key));
    if (it != deadlines_.end()) deadlines_.erase(it);
}

size_t Store::Shard::sweep(size_t limit) {
    size_t n = 0;
    while (n < limit && !deadlines_.empty() && deadlines_.begin()->first <= now_) {
        auto node = deadlines_.extract(deadlines_.begin());
        map_.erase(node.value().second);
        ++n;
    }
    return n;
}

Store::Store(size_t shards, Clock clock)
    : count_(shards == 0 ? 1 : shards), shards_(std::make_unique<Shard[]>(count_)), clock_(std::move(clock)),
      started_(clock_()) {}

Store::Shard& Store::shard_for(std::string_view key) noexcept {
    return shards_[std::hash<std::string_view>{}(key) % count_];
}

size_t Store::size() {
    size_t total = 0;
    for (size_t i = 0; i < count_; ++i) {
        std::lock_guard lock(shards_[i].mutex_);
        shards_[i].now_ = clock_();
        shards_[i].sweep(std::numeric_limits<size_t>::max());
        total += shards_[i].map_.size();
    }
    return total;
}

void Store::clear() {
    for (size_t i = 0; i < count_; ++i) {
        std::lock_guard lock(shards_[i].mutex_);
        shards_[i].map_.clear();
        shards_[i].deadlines_.clear();
    }
}

}  // namespace resp
