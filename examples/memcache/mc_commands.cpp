// The classic memcached text commands (get family, storage, delete, incr/decr, touch, flush_all, stats,
// version, verbosity, quit), with memcached 1.6's replies, error lines and noreply rules.
// Hand-written: there is no packaged parser of memcached's text protocol to serve it with.
#include "mc_commands.hpp"

#include <unistd.h>

#include <charconv>
#include <climits>

namespace kqmc {
namespace {

constexpr std::string_view kError = "ERROR\r\n";
constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format\r\n";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument\r\n";
constexpr std::string_view kTooLarge = "SERVER_ERROR object too large for cache\r\n";
constexpr std::string_view kNoMemory = "SERVER_ERROR out of memory storing object\r\n";
constexpr std::string_view kVersion = "1.6.18-kqmemcache";

bool noreply_at(const Tokens& t, size_t i) { return t.n > i && t[i] == "noreply"; }

// Appends reply unless the command asked for no reply. memcached's noreply silences errors as well.
void reply(std::string& out, bool noreply, std::string_view line) {
    if (!noreply) out += line;
}

std::string_view store_reply(StoreResult r) {
    switch (r) {
    case StoreResult::stored:
        return "STORED\r\n";
    case StoreResult::not_stored:
        return "NOT_STORED\r\n";
    case StoreResult::exists:
        return "EXISTS\r\n";
    case StoreResult::not_found:
        return "NOT_FOUND\r\n";
    case StoreResult::too_large:
        return kTooLarge;
    case StoreResult::no_memory:
        break;
    }
    return kNoMemory;
}

// set/add/replace/append/prepend key flags exptime bytes [noreply], cas ... bytes cas-unique [noreply].
Outcome run_storage(const Tokens& t, StoreMode mode, bool cas, std::string_view after, Shared& sh, std::string& out) {
    const size_t fixed = cas ? 6 : 5;
    if (t.n != fixed && t.n != fixed + 1) {
        out += kError;
        return {};
    }
    const bool noreply = noreply_at(t, fixed);
    StoreRequest r;
    r.mode = mode;
    r.key = t[1];
    int64_t length = 0;
    if (r.key.size() > kMaxKey || !parse_u32(t[2], r.flags) || !parse_i32(t[3], r.exptime) ||
        !parse_i32(t[4], length) || length < 0 || (cas && (!parse_u64(t[5], r.compare_cas)))) {
        out += kBadFormat;  // memcached cannot trust the length: what follows is read as commands
        return {};
    }
    const size_t block = static_cast<size_t>(length) + 2;
    if (static_cast<size_t>(length) > sh.options.max_item_size) {
        // As memcached does: a set that fails must not leave the old value to be read as if it succeeded.
        if (mode == StoreMode::set && !cas) sh.store.remove(r.key);
        reply(out, noreply, kTooLarge);
        return {Outcome::done, 0, block};  // the data block is skipped as it arrives
    }
    if (after.size() < block) return {Outcome::need_more};
    if (after.substr(static_cast<size_t>(length), 2) != "\r\n") {
        reply(out, noreply, "CLIENT_ERROR bad data chunk\r\n");
        return {Outcome::done, block};
    }
    r.value = after.substr(0, static_cast<size_t>(length));
    if (cas && r.compare_cas == 0) r.compare_cas = UINT64_MAX;  // cas 0 never matches: no item has it
    sh.counters.add(sh.counters.cmd_set);
    StoreResult result = sh.store.store(r);
    if (cas) {
        auto& c = sh.counters;
        c.add(result == StoreResult::stored ? c.cas_hits : result == StoreResult::exists ? c.cas_badval : c.cas_misses);
    }
    reply(out, noreply, store_reply(result));
    return {Outcome::done, block};
}

void run_delete(const Tokens& t, Shared& sh, std::string& out) {
    if (t.n < 2 || t.n > 4) {
        out += kError;
        return;
    }
    // memcached still accepts the old "delete key 0" (a hold time of zero), nothing else.
    const bool noreply = noreply_at(t, t.n - 1);
    const bool valid = t.n == 2 || (t.n == 3 && (t[2] == "0" || noreply)) || (t.n == 4 && t[2] == "0" && noreply);
    if (!valid) {
        reply(out, noreply, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
        return;
    }
    if (t[1].size() > kMaxKey) return reply(out, noreply, kBadFormat);
    bool deleted = sh.store.remove(t[1]) == DeleteResult::deleted;
    sh.counters.add(deleted ? sh.counters.delete_hits : sh.counters.delete_misses);
    reply(out, noreply, deleted ? "DELETED\r\n" : "NOT_FOUND\r\n");
}

void run_arith(const Tokens& t, bool incr, Shared& sh, std::string& out) {
    if (t.n != 3 && t.n != 4) {
        out += kError;
        return;
    }
    const bool noreply = noreply_at(t, 3);
    ArithRequest r;
    r.key = t[1];
    r.incr = incr;
    if (r.key.size() > kMaxKey) return reply(out, noreply, kBadFormat);
    if (!parse_u64(t[2], r.delta)) return reply(out, noreply, "CLIENT_ERROR invalid numeric delta argument\r\n");
    ArithOutcome o;
    ArithResult result = sh.store.arith(r, o);
    auto& c = sh.counters;
    c.add(result == ArithResult::not_found ? (incr ? c.incr_misses : c.decr_misses)
                                           : (incr ? c.incr_hits : c.decr_hits));
    if (noreply) return;
    switch (result) {
    case ArithResult::ok:
        append_number(out, o.value);
        out += "\r\n";
        break;
    case ArithResult::non_numeric:
        out += "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        break;
    default:
        out += "NOT_FOUND\r\n";
    }
}

void run_touch(const Tokens& t, Shared& sh, std::string& out) {
    if (t.n != 3 && t.n != 4) {
        out += kError;
        return;
    }
    const bool noreply = noreply_at(t, 3);
    int64_t exptime = 0;
    if (t[1].size() > kMaxKey) return reply(out, noreply, kBadFormat);
    if (!parse_i32(t[2], exptime)) return reply(out, noreply, kBadExptime);
    sh.counters.add(sh.counters.cmd_touch);
    bool hit = sh.store.get(
        t[1], [](const ItemView&) {}, true, &exptime);
    sh.counters.add(hit ? sh.counters.touch_hits : sh.counters.touch_misses);
    reply(out, noreply, hit ? "TOUCHED\r\n" : "NOT_FOUND\r\n");
}

void run_flush(const Tokens& t, Shared& sh, std::string& out) {
    if (t.n > 3) {
        out += kError;
        return;
    }
    const bool noreply = noreply_at(t, t.n - 1);
    int64_t delay = 0;
    if (t.n == 3 || (t.n == 2 && !noreply)) {
        if (!parse_i32(t[1], delay)) return reply(out, noreply, kBadExptime);
    }
    sh.counters.add(sh.counters.cmd_flush);
    sh.store.flush(delay);
    reply(out, noreply, "OK\r\n");
}

void run_verbosity(const Tokens& t, std::string& out) {
    if (t.n != 2 && t.n != 3) {
        out += kError;
        return;
    }
    uint64_t level = 0;
    const bool noreply = noreply_at(t, t.n - 1);
    // There is no log level to change: the server logs through kqserver's logger, set at startup.
    reply(out, noreply, parse_u64(t[1], level) ? "OK\r\n" : kBadFormat);
}

// get/gets/gat/gats: checks the line and hands the lookups to the session.
Outcome parse_retrieval(const Tokens& t, std::string_view line, bool with_cas, bool touch, std::string& out,
                        Retrieval& get) {
    std::string_view rest = line;
    next_word(rest);  // the command
    get = Retrieval{with_cas, touch, 0, {}};
    if (t.n < 2) {
        out += kError;
        return {};
    }
    if (touch && !parse_i32(next_word(rest), get.exptime)) {
        out += kBadExptime;
        return {};
    }
    get.keys = rest;
    for (std::string_view key; !(key = next_word(rest)).empty();) {
        if (key.size() > kMaxKey) {  // checked before any answer: no half-answered get
            out += kBadFormat;
            return {};
        }
    }
    return {Outcome::retrieve};
}

}  // namespace

Tokens::Tokens(std::string_view line) {
    for (std::string_view w; !(w = next_word(line)).empty();) {
        if (n == kMax) {
            overflow = true;
            return;
        }
        v[n++] = w;
    }
}

std::string_view next_word(std::string_view& rest) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) start = rest.size();
    size_t end = rest.find(' ', start);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view word = rest.substr(start, end - start);
    rest.remove_prefix(end);
    return word;
}

bool parse_u64(std::string_view s, uint64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool parse_u32(std::string_view s, uint32_t& out) {
    uint64_t v = 0;
    if (!parse_u64(s, v) || v > UINT32_MAX) return false;
    out = static_cast<uint32_t>(v);
    return true;
}

bool parse_i32(std::string_view s, int64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size() && out >= INT32_MIN && out <= INT32_MAX;
}

void append_number(std::string& out, uint64_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, end);
}

void append_signed(std::string& out, int64_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, end);
}

void retrieve_one(std::string_view key, const Retrieval& get, Shared& sh, std::string& out) {
    auto& c = sh.counters;
    c.add(c.cmd_get);
    if (get.touch) c.add(c.cmd_touch);
    bool hit = sh.store.get(
        key,
        [&](const ItemView& item) {
            out += "VALUE ";
            out += item.key;
            out += ' ';
            append_number(out, item.flags);
            out += ' ';
            append_number(out, item.value.size());
            if (get.with_cas) {
                out += ' ';
                append_number(out, item.cas);
            }
            out += "\r\n";
            out += item.value;
            out += "\r\n";
        },
        true, get.touch ? &get.exptime : nullptr);
    c.add(hit ? c.get_hits : c.get_misses);
    if (get.touch) c.add(hit ? c.touch_hits : c.touch_misses);
}

Outcome execute(std::string_view line, std::string_view after, Shared& sh, std::string& out, Retrieval& get) {
    const Tokens t(line);
    if (t.n == 0) {
        out += kError;
        return {};
    }
    const std::string_view cmd = t[0];
    if (cmd.size() == 2 && cmd[0] == 'm') return execute_meta(t, after, sh, out);
    if (cmd == "get" || cmd == "gets") return parse_retrieval(t, line, cmd == "gets", false, out, get);
    if (cmd == "gat" || cmd == "gats") return parse_retrieval(t, line, cmd == "gats", true, out, get);
    if (t.overflow) {
        out += kError;
        return {};
    }
    if (cmd == "set") return run_storage(t, StoreMode::set, false, after, sh, out);
    if (cmd == "add") return run_storage(t, StoreMode::add, false, after, sh, out);
    if (cmd == "replace") return run_storage(t, StoreMode::replace, false, after, sh, out);
    if (cmd == "append") return run_storage(t, StoreMode::append, false, after, sh, out);
    if (cmd == "prepend") return run_storage(t, StoreMode::prepend, false, after, sh, out);
    if (cmd == "cas") return run_storage(t, StoreMode::set, true, after, sh, out);
    if (cmd == "delete") {
        run_delete(t, sh, out);
    } else if (cmd == "incr" || cmd == "decr") {
        run_arith(t, cmd == "incr", sh, out);
    } else if (cmd == "touch") {
        run_touch(t, sh, out);
    } else if (cmd == "flush_all") {
        run_flush(t, sh, out);
    } else if (cmd == "version") {
        out += "VERSION ";
        out += kVersion;
        out += "\r\n";
    } else if (cmd == "verbosity") {
        run_verbosity(t, out);
    } else if (cmd == "stats") {
        append_stats(t.n > 1 ? t[1] : std::string_view(), sh, out);
    } else if (cmd == "quit") {
        return {Outcome::quit};
    } else {
        out += kError;
    }
    return {};
}

void append_stats(std::string_view what, Shared& sh, std::string& out) {
    if (what == "reset") {
        for (auto* c :
             {&sh.counters.cmd_get, &sh.counters.cmd_set, &sh.counters.cmd_flush, &sh.counters.cmd_touch,
              &sh.counters.get_hits, &sh.counters.get_misses, &sh.counters.delete_hits, &sh.counters.delete_misses,
              &sh.counters.incr_hits, &sh.counters.incr_misses, &sh.counters.decr_hits, &sh.counters.decr_misses,
              &sh.counters.cas_hits, &sh.counters.cas_misses, &sh.counters.cas_badval, &sh.counters.touch_hits,
              &sh.counters.touch_misses})
            c->store(0, std::memory_order_relaxed);
        out += "RESET\r\n";
        return;
    }
    if (!what.empty()) {  // memcached's items, slabs, settings... describe machinery kqmemcache has not got
        out += kError;
        return;
    }
    auto stat = [&out](std::string_view name, uint64_t v) {
        out += "STAT ";
        out += name;
        out += ' ';
        append_number(out, v);
        out += "\r\n";
    };
    auto& c = sh.counters;
    auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    const int64_t now = sh.store.now();
    const StoreStats s = sh.store.stats();
    stat("pid", static_cast<uint64_t>(::getpid()));
    stat("uptime", static_cast<uint64_t>(now > sh.started ? now - sh.started : 0));
    stat("time", static_cast<uint64_t>(now));
    out += "STAT version ";
    out += kVersion;
    out += "\r\nSTAT pointer_size 64\r\n";
    stat("curr_connections", get(c.curr_connections));
    stat("total_connections", get(c.total_connections));
    const std::pair<std::string_view, const std::atomic<uint64_t>*> counters[] = {{"cmd_get", &c.cmd_get},
                                                                                  {"cmd_set", &c.cmd_set},
                                                                                  {"cmd_flush", &c.cmd_flush},
                                                                                  {"cmd_touch", &c.cmd_touch},
                                                                                  {"get_hits", &c.get_hits},
                                                                                  {"get_misses", &c.get_misses},
                                                                                  {"delete_misses", &c.delete_misses},
                                                                                  {"delete_hits", &c.delete_hits},
                                                                                  {"incr_misses", &c.incr_misses},
                                                                                  {"incr_hits", &c.incr_hits},
                                                                                  {"decr_misses", &c.decr_misses},
                                                                                  {"decr_hits", &c.decr_hits},
                                                                                  {"cas_misses", &c.cas_misses},
                                                                                  {"cas_hits", &c.cas_hits},
                                                                                  {"cas_badval", &c.cas_badval},
                                                                                  {"touch_hits", &c.touch_hits},
                                                                                  {"touch_misses", &c.touch_misses}};
    for (const auto& [name, value] : counters) stat(name, get(*value));
    stat("threads", static_cast<uint64_t>(sh.options.workers));
    stat("bytes", s.bytes);
    stat("curr_items", s.curr_items);
    stat("total_items", s.total_items);
    stat("reclaimed", s.reclaimed);
    stat("evictions", s.evictions);
    stat("limit_maxbytes", sh.options.memory_limit);
    out += "END\r\n";
}

}  // namespace kqmc
