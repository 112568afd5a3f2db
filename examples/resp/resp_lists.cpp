// List commands: LPUSH, RPUSH, LPOP, RPOP (with a count), LRANGE, LLEN.
#include <algorithm>

#include "resp_handlers.hpp"
#include "resp_parser.hpp"

namespace resp::cmd {
namespace {

void push(Call& c, bool front) {
    const std::string_view key = c.args[1];
    c.store.with(key, [&](Store::Shard& shard) {
        Store::Entry& e = shard.find_or_create(key, List{});
        auto* list = std::get_if<List>(&e.value);
        if (list == nullptr) return c.reply.error(kWrongType);
        for (size_t i = 2; i < c.args.size(); ++i) {
            if (front) list->emplace_front(c.args[i]);
            else list->emplace_back(c.args[i]);
        }
        c.reply.integer(static_cast<int64_t>(list->size()));
    });
}

void pop(Call& c, bool front) {
    if (c.args.size() > 3)
        return c.reply.error("ERR wrong number of arguments for '" + std::string(front ? "lpop" : "rpop") +
                             "' command");
    int64_t count = -1;  // -1: no count given, the reply is one bulk string
    if (c.args.size() == 3) {
        if (!parse_int64(c.args[2], count) || count < 0) return c.reply.error(kNotPositive);
    }
    const std::string_view key = c.args[1];
    c.store.with(key, [&](Store::Shard& shard) {
        Store::Entry* e = shard.find(key);
        if (e == nullptr) return count < 0 ? c.reply.null() : c.reply.null_array();
        auto* list = std::get_if<List>(&e->value);
        if (list == nullptr) return c.reply.error(kWrongType);
        const size_t n = count < 0 ? 1 : std::min(list->size(), static_cast<size_t>(count));
        if (count >= 0) c.reply.array(n);
        for (size_t i = 0; i < n; ++i) {
            c.reply.bulk(front ? list->front() : list->back());
            if (front) list->pop_front();
            else list->pop_back();
        }
        if (list->empty()) shard.erase(key);  // a list never stays empty
    });
}

}  // namespace

void lpush(Call& c) { push(c, true); }
void rpush(Call& c) { push(c, false); }
void lpop(Call& c) { pop(c, true); }
void rpop(Call& c) { pop(c, false); }

void lrange(Call& c) {
    int64_t start = 0, stop = 0;
    if (!parse_int64(c.args[2], start) || !parse_int64(c.args[3], stop)) return c.reply.error(kNotInteger);
    c.store.with(c.args[1], [&](Store::Shard& shard) {
        const Store::Entry* e = shard.find(c.args[1]);
        if (e == nullptr) return c.reply.array(0);
        const auto* list = std::get_if<List>(&e->value);
        if (list == nullptr) return c.reply.error(kWrongType);
        const auto size = static_cast<int64_t>(list->size());
        if (start < 0) start = std::max<int64_t>(size + start, 0);
        if (stop < 0) stop += size;
        if (start > stop || start >= size) return c.reply.array(0);
        stop = std::min(stop, size - 1);
        c.reply.array(static_cast<size_t>(stop - start + 1));
        for (auto it = list->begin() + start, end = list->begin() + stop + 1; it != end; ++it) c.reply.bulk(*it);
    });
}

void llen(Call& c) {
    c.store.with(c.args[1], [&](Store::Shard& shard) {
        const Store::Entry* e = shard.find(c.args[1]);
        if (e == nullptr) return c.reply.integer(0);
        const auto* list = std::get_if<List>(&e->value);
        if (list == nullptr) return c.reply.error(kWrongType);
        c.reply.integer(static_cast<int64_t>(list->size()));
    });
}

}  // namespace resp::cmd
