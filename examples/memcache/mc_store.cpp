// The memcached item store (see mc_store.hpp): lookups drop dead items as they meet them, sweep() drops the
// rest, and every insert evicts least recently used items until the bytes fit under the cap again.
// Hand-written: no packaged cache library has memcached's item rules (see mc_store.hpp).
#include "mc_store.hpp"

#include <charconv>
#include <chrono>

namespace kqmc {
namespace {

// Relative exptimes end here: anything larger is an absolute unix time (memcached's rule).
constexpr int64_t kMaxRelativeExptime = 60 * 60 * 24 * 30;
// Bytes an item costs beyond its key and value: the list node, the index slot, the strings' headers.
// Counted so that a million tiny items cannot slip under the memory cap.
constexpr size_t kItemOverhead = 96;

// memcached reads a counter as an unsigned decimal with optional surrounding white space; anything else
// (a sign, letters, an empty value, more than 64 bits) is not a number.
bool parse_counter(std::string_view v, uint64_t& out) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
    while (!v.empty() && space(v.front())) v.remove_prefix(1);
    while (!v.empty() && space(v.back())) v.remove_suffix(1);
    if (v.empty()) return false;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && end == v.data() + v.size();
}

}  // namespace

int64_t system_clock_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Store::Store(StoreOptions options) : options_(std::move(options)) {
    if (options_.shards == 0) options_.shards = 1;
    if (!options_.clock) options_.clock = system_clock_seconds;
    for (size_t i = 0; i < options_.shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

int64_t Store::deadline(int64_t exptime) const {
    if (exptime == 0) return 0;
    if (exptime < 0) return -1;  // already in the past: the item is dead at once
    if (exptime > kMaxRelativeExptime) return exptime;
    return now() + exptime;
}

int64_t Store::ttl(int64_t abs_exptime) const {
    if (abs_exptime == 0) return -1;
    int64_t left = abs_exptime - now();
    return left > 0 ? left : 0;
}

size_t Store::charge(const Entry& e) noexcept { return e.key.size() + e.value.size() + kItemOverhead; }

bool Store::dead(const Entry& e, int64_t now) const noexcept {
    if (e.exptime != 0 && e.exptime <= now) return true;
    int64_t flush_at = flush_at_.load(std::memory_order_relaxed);
    return flush_at != 0 && now >= flush_at && e.stored_at < flush_at;
}

Store::Lru::iterator Store::find(Shard& s, std::string_view key, int64_t now) {
    auto found = s.index.find(key);
    if (found == s.index.end()) return s.lru.end();
    Lru::iterator it = found->second;
    if (!dead(*it, now)) return it;
    unlink(s, it);
    reclaimed_.fetch_add(1, std::memory_order_relaxed);
    return s.lru.end();
}

void Store::unlink(Shard& s, Lru::iterator it) {
    bytes_.fetch_sub(charge(*it), std::memory_order_relaxed);
    items_.fetch_sub(1, std::memory_order_relaxed);
    s.index.erase(std::string_view(it->key));  // before the entry: the index key points into it
    s.lru.erase(it);
}

Store::Lru::iterator Store::link(Shard& s, Entry entry) {
    s.lru.push_front(std::move(entry));
    Lru::iterator it = s.lru.begin();
    s.index.emplace(std::string_view(it->key), it);
    bytes_.fetch_add(charge(*it), std::memory_order_relaxed);
    items_.fetch_add(1, std::memory_order_relaxed);
    total_items_.fetch_add(1, std::memory_order_relaxed);
    return it;
}

void Store::replace_value(Shard& s, Lru::iterator it, std::string value) {
    bytes_.fetch_sub(charge(*it), std::memory_order_relaxed);
    it->value = std::move(value);
    bytes_.fetch_add(charge(*it), std::memory_order_relaxed);
    s.lru.splice(s.lru.begin(), s.lru, it);
}

bool Store::get(std::string_view key, const ItemVisitor& visit, bool bump, const int64_t* touch_exptime) {
    const int64_t t = now();
    Shard& s = shard_of(key);
    std::lock_guard lock(s.mu);
    Lru::iterator it = find(s, key, t);
    if (it == s.lru.end()) return false;
    if (touch_exptime) it->exptime = deadline(*touch_exptime);
    if (bump) s.lru.splice(s.lru.begin(), s.lru, it);
    visit(ItemView{it->key, it->value, it->flags, it->exptime, it->cas});
    return true;
}

StoreResult Store::store(const StoreRequest& r, uint64_t* cas_out) {
    if (r.value.size() > options_.max_item_size) return StoreResult::too_large;
    if (r.key.size() + r.value.size() + kItemOverhead > options_.memory_limit) return StoreResult::no_memory;
    const int64_t t = now();
    const size_t index = shard_index(r.key);
    Shard& s = *shards_[index];
    {
        std::lock_guard lock(s.mu);
        Lru::iterator it = find(s, r.key, t);
        const bool concat = r.mode == StoreMode::append || r.mode == StoreMode::prepend;
        if (it == s.lru.end()) {
            if (r.compare_cas != 0) return StoreResult::not_found;
            if (r.mode == StoreMode::replace || (concat && !r.vivify)) return StoreResult::not_stored;
            int64_t exptime = deadline(concat ? r.vivify_exptime : r.exptime);
            it = link(s, Entry{std::string(r.key), std::string(r.value), r.flags, exptime, t, next_cas()});
        } else {
            if (r.compare_cas != 0 && r.compare_cas != it->cas) return StoreResult::exists;
            if (r.mode == StoreMode::add) {  // memcached bumps the item it refused to overwrite
                s.lru.splice(s.lru.begin(), s.lru, it);
                return StoreResult::not_stored;
            }
            if (concat) {
                if (it->value.size() + r.value.size() > options_.max_item_size) return StoreResult::too_large;
                std::string joined;
                joined.reserve(it->value.size() + r.value.size());
                joined.append(r.mode == StoreMode::append ? it->value : r.value);
                joined.append(r.mode == StoreMode::append ? r.value : it->value);
                replace_value(s, it, std::move(joined));
            } else {
                replace_value(s, it, std::string(r.value));
                it->flags = r.flags;
                it->exptime = deadline(r.exptime);
            }
            it->stored_at = t;
            it->cas = next_cas();
        }
        if (cas_out) *cas_out = it->cas;
    }
    evict_until_fits(index);
    return StoreResult::stored;
}

DeleteResult Store::remove(std::string_view key, uint64_t compare_cas) {
    Shard& s = shard_of(key);
    std::lock_guard lock(s.mu);
    Lru::iterator it = find(s, key, now());
    if (it == s.lru.end()) return DeleteResult::not_found;
    if (compare_cas != 0 && compare_cas != it->cas) return DeleteResult::exists;
    unlink(s, it);
    return DeleteResult::deleted;
}

ArithResult Store::arith(const ArithRequest& r, ArithOutcome& out) {
    const int64_t t = now();
    const size_t index = shard_index(r.key);
    Shard& s = *shards_[index];
    {
        std::lock_guard lock(s.mu);
        Lru::iterator it = find(s, r.key, t);
        if (it == s.lru.end()) {
            if (r.compare_cas != 0 || !r.vivify) return ArithResult::not_found;
            it = link(
                s, Entry{std::string(r.key), std::to_string(r.initial), 0, deadline(r.vivify_exptime), t, next_cas()});
            out = {r.initial, it->cas, it->exptime};
        } else {
            if (r.compare_cas != 0 && r.compare_cas != it->cas) return ArithResult::exists;
            uint64_t value = 0;
            if (!parse_counter(it->value, value)) return ArithResult::non_numeric;
            if (r.incr) {
                value += r.delta;  // unsigned: wraps at 2^64 as memcached's does
            } else {
                value = value > r.delta ? value - r.delta : 0;
            }
            std::string digits = std::to_string(value);
            // memcached rewrites a counter in place when the new digits fit, padding with spaces: the
            // value keeps its length ("100" decremented is "99 ").
            if (digits.size() < it->value.size()) digits.resize(it->value.size(), ' ');
            replace_value(s, it, std::move(digits));
            if (r.set_exptime) it->exptime = deadline(r.exptime);
            it->cas = next_cas();
            out = {value, it->cas, it->exptime};
        }
    }
    evict_until_fits(index);
    return ArithResult::ok;
}

void Store::flush(int64_t delay) {
    if (delay > 0) {
        flush_at_.store(deadline(delay), std::memory_order_relaxed);
        return;
    }
    flush_at_.store(0, std::memory_order_relaxed);
    for (auto& s : shards_) {
        std::lock_guard lock(s->mu);
        while (!s->lru.empty()) unlink(*s, s->lru.begin());
    }
}

size_t Store::sweep() {
    const int64_t t = now();
    size_t dropped = 0;
    for (auto& s : shards_) {
        std::lock_guard lock(s->mu);
        for (auto it = s->lru.begin(); it != s->lru.end();) {
            auto next = std::next(it);
            if (dead(*it, t)) {
                unlink(*s, it);
                ++dropped;
            }
            it = next;
        }
    }
    reclaimed_.fetch_add(dropped, std::memory_order_relaxed);
    return dropped;
}

void Store::evict_until_fits(size_t first_shard) {
    const size_t n = shards_.size();
    const int64_t t = now();
    for (size_t k = 0; k < n && bytes_.load(std::memory_order_relaxed) > options_.memory_limit; ++k) {
        Shard& s = *shards_[(first_shard + k) % n];
        std::lock_guard lock(s.mu);
        // The first shard keeps its head: the item just stored there, which fits on its own.
        const size_t keep = k == 0 ? 1 : 0;
        while (bytes_.load(std::memory_order_relaxed) > options_.memory_limit && s.lru.size() > keep) {
            Lru::iterator victim = std::prev(s.lru.end());
            (dead(*victim, t) ? reclaimed_ : evictions_).fetch_add(1, std::memory_order_relaxed);
            unlink(s, victim);
        }
    }
}

StoreStats Store::stats() const {
    return StoreStats{items_.load(std::memory_order_relaxed), total_items_.load(std::memory_order_relaxed),
                      bytes_.load(std::memory_order_relaxed), evictions_.load(std::memory_order_relaxed),
                      reclaimed_.load(std::memory_order_relaxed)};
}

}  // namespace kqmc
