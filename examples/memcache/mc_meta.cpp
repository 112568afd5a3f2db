// memcached's meta commands: mg (get), ms (set), md (delete), ma (arithmetic), mn (no-op), with their
// common flags. Return flags come back in the order the client gave them; q hides only the nominal answer.
// Hand-written: there is no packaged parser of memcached's meta protocol to serve it with.
#include <bitset>

#include "mc_commands.hpp"

namespace kqmc {
namespace {

constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format\r\n";
constexpr std::string_view kBadToken = "CLIENT_ERROR bad token in command line format\r\n";

// A meta command's flags: one letter each, some followed by a token ("T30", "Oabc").
struct Flags {
    std::bitset<128> has;
    std::array<std::string_view, 128> arg{};
    const Tokens* tokens = nullptr;
    size_t first = 0;  // index of the first flag token
    bool on(char c) const { return has[static_cast<unsigned char>(c)]; }
    std::string_view operator[](char c) const { return arg[static_cast<unsigned char>(c)]; }
};

enum class FlagError { none, invalid, duplicate };

FlagError parse_flags(const Tokens& t, size_t first, std::string_view allowed, Flags& f) {
    f.tokens = &t;
    f.first = first;
    for (size_t i = first; i < t.n; ++i) {
        const unsigned char c = static_cast<unsigned char>(t[i][0]);
        if (c >= 128 || allowed.find(static_cast<char>(c)) == std::string_view::npos) return FlagError::invalid;
        if (f.has[c]) return FlagError::duplicate;
        f.has[c] = true;
        f.arg[c] = t[i].substr(1);
    }
    return t.overflow ? FlagError::invalid : FlagError::none;
}

// What an answer can echo, in the order the flags were given.
struct Echo {
    std::string_view key;
    bool hit = false;  // item values below are known
    uint32_t flags = 0;
    int64_t ttl = -1;
    uint64_t cas = 0;
    size_t size = 0;
    bool echo_size = true;  // ms takes s but, as memcached 1.6 does, returns nothing for it
};

void append_flags(const Flags& f, const Echo& e, std::string& out) {
    for (size_t i = f.first; i < f.tokens->n; ++i) {
        const char c = (*f.tokens)[i][0];
        if (c == 'k' || c == 'O') {  // echoed on every answer, hit or not
            out += ' ';
            out += c;
            out += c == 'k' ? e.key : f['O'];
            continue;
        }
        if (!e.hit || (c != 'f' && c != 't' && c != 'c' && (c != 's' || !e.echo_size))) continue;
        out += ' ';
        out += c;
        if (c == 'f') append_number(out, e.flags);
        if (c == 't') append_signed(out, e.ttl);
        if (c == 'c') append_number(out, e.cas);
        if (c == 's') append_number(out, e.size);
    }
}

void answer(std::string& out, std::string_view code, const Flags& f, const Echo& e) {
    out += code;
    append_flags(f, e, out);
    out += "\r\n";
}

Outcome meta_get(const Tokens& t, Shared& sh, std::string& out) {
    Flags f;
    FlagError err = parse_flags(t, 2, "cfkOqstuv", f);
    if (err != FlagError::none) {
        out += err == FlagError::invalid ? "CLIENT_ERROR invalid flag\r\n" : "CLIENT_ERROR duplicate flag\r\n";
        return {};
    }
    Echo e{t[1]};
    sh.counters.add(sh.counters.cmd_get);
    bool hit = sh.store.get(
        t[1],
        [&](const ItemView& item) {
            e = Echo{t[1], true, item.flags, sh.store.ttl(item.exptime), item.cas, item.value.size()};
            if (!f.on('v')) return answer(out, "HD", f, e);
            out += "VA ";
            append_number(out, item.value.size());
            append_flags(f, e, out);
            out += "\r\n";
            out += item.value;
            out += "\r\n";
        },
        !f.on('u'));
    sh.counters.add(hit ? sh.counters.get_hits : sh.counters.get_misses);
    if (!hit && !f.on('q')) answer(out, "EN", f, e);
    return {};
}

bool meta_mode(std::string_view m, StoreMode& mode) {
    if (m.size() != 1) return false;
    switch (m[0]) {
    case 'E':
    case 'e':
        mode = StoreMode::add;
        return true;
    case 'A':
    case 'a':
        mode = StoreMode::append;
        return true;
    case 'P':
    case 'p':
        mode = StoreMode::prepend;
        return true;
    case 'R':
    case 'r':
        mode = StoreMode::replace;
        return true;
    case 'S':
    case 's':
        mode = StoreMode::set;
        return true;
    }
    return false;
}

// The reason an ms line is refused, once its data length is known; empty when it is fine.
std::string_view check_set(const Tokens& t, Flags& f, StoreRequest& r) {
    FlagError err = parse_flags(t, 3, "cCFkOqsTMN", f);
    if (err == FlagError::invalid) return "CLIENT_ERROR invalid flag\r\n";
    if (err == FlagError::duplicate) return "CLIENT_ERROR duplicate flag\r\n";
    if (t[1].size() > kMaxKey) return kBadFormat;
    if (f.on('F') && !parse_u32(f['F'], r.flags)) return kBadFormat;
    if ((f.on('T') && !parse_i32(f['T'], r.exptime)) || (f.on('C') && !parse_u64(f['C'], r.compare_cas)) ||
        (f.on('N') && !parse_i32(f['N'], r.vivify_exptime)))
        return kBadToken;
    if (f.on('M') && !meta_mode(f['M'], r.mode)) return "CLIENT_ERROR invalid mode for ms M token\r\n";
    r.vivify = f.on('N');
    return {};
}

Outcome meta_set(const Tokens& t, std::string_view after, Shared& sh, std::string& out) {
    int64_t length = 0;
    if (t.n < 3 || !parse_i32(t[2], length) || length < 0) {
        out += kBadFormat;  // no length to trust: what follows is read as commands
        return {};
    }
    const size_t size = static_cast<size_t>(length);
    const size_t block = size + 2;
    Flags f;
    StoreRequest r;
    r.key = t[1];
    if (std::string_view why = check_set(t, f, r); !why.empty()) {
        out += why;
        return {Outcome::done, 0, block};  // errors are always returned; the data block is skipped
    }
    if (size > sh.options.max_item_size) {
        sh.store.remove(r.key);  // as memcached does, in every mode: no stale value behind a failed store
        out += "SERVER_ERROR object too large for cache\r\n";
        return {Outcome::done, 0, block};
    }
    if (after.size() < block) return {Outcome::need_more};
    if (after.substr(size, 2) != "\r\n") {
        out += "CLIENT_ERROR bad data chunk\r\n";
        return {Outcome::done, block};
    }
    r.value = after.substr(0, size);
    sh.counters.add(sh.counters.cmd_set);
    uint64_t cas = 0;
    StoreResult result = sh.store.store(r, &cas);
    Echo e{r.key, result == StoreResult::stored, r.flags, -1, cas, size, false};
    switch (result) {
    case StoreResult::stored:
        if (!f.on('q')) answer(out, "HD", f, e);
        break;
    case StoreResult::not_stored:
        answer(out, "NS", f, e);
        break;
    case StoreResult::exists:
        answer(out, "EX", f, e);
        break;
    case StoreResult::not_found:
        answer(out, "NF", f, e);
        break;
    case StoreResult::too_large:
        out += "SERVER_ERROR object too large for cache\r\n";
        break;
    case StoreResult::no_memory:
        out += "SERVER_ERROR out of memory storing object\r\n";
        break;
    }
    return {Outcome::done, block};
}

void meta_delete(const Tokens& t, Shared& sh, std::string& out) {
    Flags f;
    uint64_t cas = 0;
    if (parse_flags(t, 2, "qOkC", f) != FlagError::none) {
        out += "CLIENT_ERROR invalid or duplicate flag\r\n";
        return;
    }
    if (f.on('C') && !parse_u64(f['C'], cas)) {
        out += kBadToken;
        return;
    }
    DeleteResult result = sh.store.remove(t[1], cas);
    sh.counters.add(result == DeleteResult::deleted ? sh.counters.delete_hits : sh.counters.delete_misses);
    Echo e{t[1]};
    if (result == DeleteResult::deleted && !f.on('q')) answer(out, "HD", f, e);
    if (result == DeleteResult::not_found) answer(out, "NF", f, e);
    if (result == DeleteResult::exists) answer(out, "EX", f, e);
}

// The reason an ma line is refused; empty when it is fine.
std::string_view check_arith(const Tokens& t, Flags& f, ArithRequest& r) {
    if (parse_flags(t, 2, "NJDTMqOtcvkC", f) != FlagError::none) return "CLIENT_ERROR invalid or duplicate flag\r\n";
    if ((f.on('N') && !parse_i32(f['N'], r.vivify_exptime)) || (f.on('J') && !parse_u64(f['J'], r.initial)) ||
        (f.on('D') && !parse_u64(f['D'], r.delta)) || (f.on('T') && !parse_i32(f['T'], r.exptime)) ||
        (f.on('C') && !parse_u64(f['C'], r.compare_cas)))
        return "CLIENT_ERROR invalid or duplicate flag\r\n";  // memcached 1.6 says so for ma's numbers too
    if (f.on('M')) {
        std::string_view m = f['M'];
        if (m == "I" || m == "i" || m == "+") {
            r.incr = true;
        } else if (m == "D" || m == "d" || m == "-") {
            r.incr = false;
        } else {
            return "CLIENT_ERROR invalid mode for ma M token\r\n";
        }
    }
    r.vivify = f.on('N');
    r.set_exptime = f.on('T');
    return {};
}

void meta_arith(const Tokens& t, Shared& sh, std::string& out) {
    Flags f;
    ArithRequest r;
    r.key = t[1];
    if (std::string_view why = check_arith(t, f, r); !why.empty()) {
        out += why;
        return;
    }
    ArithOutcome o;
    ArithResult result = sh.store.arith(r, o);
    auto& c = sh.counters;
    c.add(result == ArithResult::not_found ? (r.incr ? c.incr_misses : c.decr_misses)
                                           : (r.incr ? c.incr_hits : c.decr_hits));
    Echo e{r.key, result == ArithResult::ok, 0, sh.store.ttl(o.exptime), o.cas, 0};
    switch (result) {
    case ArithResult::ok: {
        if (f.on('q')) break;
        if (!f.on('v')) return answer(out, "HD", f, e);
        std::string digits;
        append_number(digits, o.value);
        out += "VA ";
        append_number(out, digits.size());
        append_flags(f, e, out);
        out += "\r\n";
        out += digits;
        out += "\r\n";
        break;
    }
    case ArithResult::not_found:
        answer(out, "NF", f, e);
        break;
    case ArithResult::exists:
        answer(out, "EX", f, e);
        break;
    case ArithResult::non_numeric:
        out += "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        break;
    }
}

}  // namespace

Outcome execute_meta(const Tokens& t, std::string_view after, Shared& sh, std::string& out) {
    const std::string_view cmd = t[0];
    if (cmd == "mn") {
        out += "MN\r\n";
        return {};
    }
    const bool known = cmd == "mg" || cmd == "ms" || cmd == "md" || cmd == "ma";
    if (!known || t.n < 2) {
        out += "ERROR\r\n";
        return {};
    }
    if (cmd == "ms") return meta_set(t, after, sh, out);
    if (t[1].size() > kMaxKey) {
        out += kBadFormat;
        return {};
    }
    if (cmd == "mg") return meta_get(t, sh, out);
    if (cmd == "md") {
        meta_delete(t, sh, out);
    } else {
        meta_arith(t, sh, out);
    }
    return {};
}

}  // namespace kqmc
