// Keyspace commands: DEL, EXISTS, EXPIRE, PEXPIRE (NX XX GT LT), TTL, PTTL, DBSIZE, FLUSHALL, FLUSHDB.
#include <limits>

#include "resp_handlers.hpp"
#include "resp_parser.hpp"

namespace resp::cmd {
namespace {

struct ExpireFlags {
    bool nx = false, xx = false, gt = false, lt = false;
};

// EXPIRE's options after the time; false after replying with the error.
bool parse_expire_flags(Args args, Reply& reply, ExpireFlags& f) {
    for (size_t i = 3; i < args.size(); ++i) {
        if (equals_nocase(args[i], "nx")) f.nx = true;
        else if (equals_nocase(args[i], "xx")) f.xx = true;
        else if (equals_nocase(args[i], "gt")) f.gt = true;
        else if (equals_nocase(args[i], "lt")) f.lt = true;
        else return reply.error("ERR Unsupported option " + std::string(args[i])), false;
    }
    if (f.nx && (f.xx || f.gt || f.lt))
        return reply.error("ERR NX and XX, GT or LT options at the same time are not compatible"), false;
    if (f.gt && f.lt) return reply.error("ERR GT and LT options at the same time are not compatible"), false;
    return true;
}

void expire_in(Call& c, int64_t unit_ms, std::string_view name) {
    int64_t amount = 0;
    if (!parse_int64(c.args[2], amount)) return c.reply.error(kNotInteger);
    ExpireFlags f;
    if (!parse_expire_flags(c.args, c.reply, f)) return;
    const int64_t now = c.store.now();
    if (amount > (std::numeric_limits<int64_t>::max() - now) / unit_ms ||
        amount < std::numeric_limits<int64_t>::min() / unit_ms)
        return c.reply.error("ERR invalid expire time in '" + std::string(name) + "' command");
    const std::string_view key = c.args[1];
    c.store.with(key, [&](Store::Shard& shard) {
        Store::Entry* e = shard.find(key);
        if (e == nullptr) return c.reply.integer(0);
        const int64_t at = shard.now() + amount * unit_ms;
        const bool has = e->expires_at != 0;
        // No expiry counts as an infinite one for GT and LT, as in Redis.
        if ((f.nx && has) || (f.xx && !has) || (f.gt && (!has || at <= e->expires_at)) ||
            (f.lt && has && at >= e->expires_at))
            return c.reply.integer(0);
        if (at <= shard.now()) shard.erase(key);
        else shard.set_expiry(key, *e, at);
        c.reply.integer(1);
    });
}

void time_to_live(Call& c, bool in_ms) {
    c.store.with(c.args[1], [&](Store::Shard& shard) {
        const Store::Entry* e = shard.find(c.args[1]);
        if (e == nullptr) return c.reply.integer(-2);
        if (e->expires_at == 0) return c.reply.integer(-1);
        const int64_t left = e->expires_at - shard.now();
        c.reply.integer(in_ms ? left : (left + 500) / 1000);
    });
}

}  // namespace

// Each key under its own shard's lock, one after another (see README.md).
void del(Call& c) {
    int64_t n = 0;
    for (size_t i = 1; i < c.args.size(); ++i)
        n += c.store.with(c.args[i], [&](Store::Shard& shard) { return shard.erase(c.args[i]) ? 1 : 0; });
    c.reply.integer(n);
}

void exists(Call& c) {
    int64_t n = 0;
    for (size_t i = 1; i < c.args.size(); ++i)
        n += c.store.with(c.args[i], [&](Store::Shard& shard) { return shard.find(c.args[i]) != nullptr ? 1 : 0; });
    c.reply.integer(n);
}

void expire(Call& c) { expire_in(c, 1000, "expire"); }
void pexpire(Call& c) { expire_in(c, 1, "pexpire"); }
void ttl(Call& c) { time_to_live(c, false); }
void pttl(Call& c) { time_to_live(c, true); }

void dbsize(Call& c) { c.reply.integer(static_cast<int64_t>(c.store.size())); }

// FLUSHALL and FLUSHDB (one database): SYNC and ASYNC are accepted, and both flush at once.
void flushall(Call& c) {
    if (c.args.size() > 2 ||
        (c.args.size() == 2 && !equals_nocase(c.args[1], "sync") && !equals_nocase(c.args[1], "async")))
        return c.reply.error(kSyntax);
    c.store.clear();
    c.reply.ok();
}

}  // namespace resp::cmd
