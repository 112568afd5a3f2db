// String commands: GET, SET (NX XX EX PX KEEPTTL GET), INCR and friends, MGET, MSET.
#include <limits>

#include "resp_handlers.hpp"
#include "resp_parser.hpp"

namespace resp::cmd {
namespace {

struct SetOptions {
    bool nx = false, xx = false, get = false, keep_ttl = false;
    int64_t ttl_ms = 0;  // 0: none
};

// Parses SET's options after the value into o; false after replying with the error.
bool parse_set_options(Args args, Reply& reply, SetOptions& o) {
    bool expiry = false;
    for (size_t i = 3; i < args.size(); ++i) {
        const std::string_view a = args[i];
        const bool ex = equals_nocase(a, "ex"), px = equals_nocase(a, "px");
        if (equals_nocase(a, "nx") && !o.xx) {
            o.nx = true;
        } else if (equals_nocase(a, "xx") && !o.nx) {
            o.xx = true;
        } else if (equals_nocase(a, "get")) {
            o.get = true;
        } else if (equals_nocase(a, "keepttl") && !expiry) {
            o.keep_ttl = true;
        } else if ((ex || px) && !expiry && !o.keep_ttl && i + 1 < args.size()) {
            int64_t v = 0;
            if (!parse_int64(args[++i], v)) return reply.error(kNotInteger), false;
            if (v <= 0 || (ex && v > std::numeric_limits<int64_t>::max() / 1000))
                return reply.error("ERR invalid expire time in 'set' command"), false;
            o.ttl_ms = ex ? v * 1000 : v;
            expiry = true;
        } else {
            return reply.error(kSyntax), false;
        }
    }
    return true;
}

// The integer a string value holds, as INCR reads it; false if it holds none.
bool value_as_int(const Store::Entry& e, int64_t& v) {
    const auto* s = std::get_if<std::string>(&e.value);
    return s != nullptr && parse_int64(*s, v);
}

void add(Call& c, std::string_view key, int64_t by) {
    c.store.with(key, [&](Store::Shard& shard) {
        Store::Entry* e = shard.find(key);
        int64_t v = 0;
        if (e != nullptr && !std::holds_alternative<std::string>(e->value)) return c.reply.error(kWrongType);
        if (e != nullptr && !value_as_int(*e, v)) return c.reply.error(kNotInteger);
        if ((by < 0 && v < 0 && by < std::numeric_limits<int64_t>::min() - v) ||
            (by > 0 && v > 0 && by > std::numeric_limits<int64_t>::max() - v))
            return c.reply.error(kOverflow);
        v += by;
        shard.put(key, std::to_string(v), true);
        c.reply.integer(v);
    });
}

}  // namespace

void get(Call& c) {
    c.store.with(c.args[1], [&](Store::Shard& shard) {
        const Store::Entry* e = shard.find(c.args[1]);
        if (e == nullptr) return c.reply.null();
        const auto* s = std::get_if<std::string>(&e->value);
        if (s == nullptr) return c.reply.error(kWrongType);
        c.reply.bulk(*s);
    });
}

void set(Call& c) {
    SetOptions o;
    if (!parse_set_options(c.args, c.reply, o)) return;
    const std::string_view key = c.args[1];
    c.store.with(key, [&](Store::Shard& shard) {
        Store::Entry* e = shard.find(key);
        if (o.get && e != nullptr && !std::holds_alternative<std::string>(e->value)) return c.reply.error(kWrongType);
        if (o.get) {
            if (e == nullptr) c.reply.null();
            else c.reply.bulk(std::get<std::string>(e->value));
        }
        if ((o.nx && e != nullptr) || (o.xx && e == nullptr)) {
            if (!o.get) c.reply.null();
            return;
        }
        shard.put(key, std::string(c.args[2]), o.keep_ttl);
        if (o.ttl_ms > 0) {
            Store::Entry* fresh = shard.find(key);
            shard.set_expiry(key, *fresh, shard.now() + o.ttl_ms);
        }
        if (!o.get) c.reply.ok();
    });
}

void incr(Call& c) { add(c, c.args[1], 1); }
void decr(Call& c) { add(c, c.args[1], -1); }

void incrby(Call& c) {
    int64_t by = 0;
    if (!parse_int64(c.args[2], by)) return c.reply.error(kNotInteger);
    add(c, c.args[1], by);
}

void decrby(Call& c) {
    int64_t by = 0;
    if (!parse_int64(c.args[2], by)) return c.reply.error(kNotInteger);
    if (by == std::numeric_limits<int64_t>::min()) return c.reply.error("ERR decrement would overflow");
    add(c, c.args[1], -by);
}

// Each key under its own shard's lock, one after another: a concurrent writer may change a later key
// between two reads (Redis would answer from one instant).
void mget(Call& c) {
    c.reply.array(c.args.size() - 1);
    for (size_t i = 1; i < c.args.size(); ++i) {
        c.store.with(c.args[i], [&](Store::Shard& shard) {
            const Store::Entry* e = shard.find(c.args[i]);
            const auto* s = e == nullptr ? nullptr : std::get_if<std::string>(&e->value);
            if (s == nullptr) c.reply.null();
            else c.reply.bulk(*s);
        });
    }
}

// Not atomic across shards (see README.md): each pair is set under its own shard's lock.
void mset(Call& c) {
    if (c.args.size() % 2 == 0) return c.reply.error("ERR wrong number of arguments for 'mset' command");
    for (size_t i = 1; i + 1 < c.args.size(); i += 2)
        c.store.with(c.args[i], [&](Store::Shard& shard) { shard.put(c.args[i], std::string(c.args[i + 1])); });
    c.reply.ok();
}

}  // namespace resp::cmd
