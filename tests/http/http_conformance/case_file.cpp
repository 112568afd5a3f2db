// Reading cases.txt: a tiny tokenizer for one case per line (name, options, quoted bytes, expectation).
#include "case_file.hpp"

#include <charconv>
#include <fstream>
#include <stdexcept>

namespace kq::conformance {
namespace {

[[noreturn]] void bad(std::string_view what) { throw std::invalid_argument(std::string(what)); }

int parse_int(std::string_view s, std::string_view what) {
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0)
        bad(std::string(what) + ": not a number: " + std::string(s));
    return v;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    bad("\\x needs two hex digits");
}

// Cuts the next space-separated word off the front of s.
std::string_view next_word(std::string_view& s) {
    size_t b = s.find_first_not_of(" \t");
    s.remove_prefix(b == std::string_view::npos ? s.size() : b);
    size_t e = s.find_first_of(" \t");
    std::string_view w = s.substr(0, e);
    s.remove_prefix(w.size());
    return w;
}

// Decodes one double-quoted string at the front of s (which starts with the quote) and removes it from s.
std::string take_quoted(std::string_view& s) {
    std::string out;
    size_t i = 1;
    for (; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (++i >= s.size()) break;
        switch (s[i]) {
        case 'r':
            out += '\r';
            break;
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        case '0':
            out += '\0';
            break;
        case '\\':
            out += '\\';
            break;
        case '"':
            out += '"';
            break;
        case 'x':
            if (i + 2 >= s.size()) bad("\\x needs two hex digits");
            out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
            break;
        default:
            bad(std::string("unknown escape \\") + s[i]);
        }
    }
    if (i >= s.size()) bad("unterminated string");
    s.remove_prefix(i + 1);
    return out;
}

void apply_option(Case& c, std::string_view opt) {
    size_t eq = opt.find('=');
    if (eq == std::string_view::npos) bad("expected KEY=VALUE, a quoted string, '/' or '=>': " + std::string(opt));
    std::string_view key = opt.substr(0, eq), value = opt.substr(eq + 1);
    if (key == "requests") {
        c.requests = parse_int(value, "requests");
    } else if (key == "head") {
        for (std::string_view rest = value; !rest.empty();) {
            size_t comma = rest.find(',');
            c.head.insert(parse_int(rest.substr(0, comma), "head"));
            rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
        }
    } else if (key == "split" && value == "bytes") {
        c.split_bytes = true;
    } else {
        bad("unknown option " + std::string(opt));
    }
}

// The part of a case line before "=>": name, options and bytes. Returns what follows "=>".
std::string_view parse_request_part(Case& c, std::string_view s) {
    c.name = next_word(s);
    if (c.name.empty()) bad("no name");
    c.pieces.emplace_back();
    for (;;) {
        s.remove_prefix(std::min(s.size(), s.find_first_not_of(" \t")));
        if (s.empty()) bad("no '=>' expectation");
        if (s.starts_with("=>")) return s.substr(2);
        if (s.front() == '"') {
            std::string str = take_quoted(s);
            if (s.starts_with('*')) {  // "x"*N: the string N times
                s.remove_prefix(1);
                int n = parse_int(next_word(s), "repeat count");
                std::string rep;
                for (int i = 0; i < n; ++i) rep += str;
                str = std::move(rep);
            }
            c.pieces.back() += str;
        } else if (s.front() == '/' && (s.size() == 1 || s[1] == ' ' || s[1] == '\t')) {
            s.remove_prefix(1);
            c.pieces.emplace_back();
        } else {
            apply_option(c, next_word(s));
        }
    }
}

void parse_expectation(Case& c, std::string_view s) {
    size_t hash = s.find('#');
    std::string_view words = s.substr(0, hash);
    if (hash != std::string_view::npos) {
        std::string_view reason = s.substr(hash + 1);
        reason.remove_prefix(std::min(reason.size(), reason.find_first_not_of(' ')));
        c.reason = reason;
    }
    std::string_view kind = next_word(words);
    if (kind == "same") {
        c.expect = Expectation::same;
        if (!next_word(words).empty()) bad("'same' takes no outcome");
        return;
    }
    if (kind == "differs") c.expect = Expectation::differs;
    else if (kind == "known-bug") c.expect = Expectation::known_bug;
    else bad("expectation must be same, differs or known-bug: " + std::string(kind));
    c.outcome = parse_outcome(words);
    // A deliberate difference or a bug is only as good as its justification.
    if (c.reason.find("RFC 911") == std::string::npos || c.reason.find("§") == std::string::npos)
        bad("'" + std::string(kind) + "' needs a reason citing an RFC 9110/9112 section (# ... RFC 9112 §N)");
}

}  // namespace

std::string Outcome::text() const {
    std::string out;
    for (size_t i = 0; i < statuses.size();) {
        size_t run = 1;
        while (i + run < statuses.size() && statuses[i + run] == statuses[i]) ++run;
        if (!out.empty()) out += ' ';
        out += std::to_string(statuses[i]);
        if (run >= 3) out += '*' + std::to_string(run);
        i += run >= 3 ? run : 1;
    }
    if (probe) out += out.empty() ? "+probe" : " +probe";
    return out.empty() ? "(none)" : out;
}

Outcome parse_outcome(std::string_view text) {
    Outcome o;
    for (std::string_view w = next_word(text); !w.empty(); w = next_word(text)) {
        if (w == "+probe") {
            o.probe = true;
            continue;
        }
        if (w == "(none)") continue;
        size_t star = w.find('*');
        int status = parse_int(w.substr(0, star), "status");
        int times = star == std::string_view::npos ? 1 : parse_int(w.substr(star + 1), "status repeat");
        if (status < 100 || status > 599) bad("not a status: " + std::string(w));
        o.statuses.insert(o.statuses.end(), static_cast<size_t>(times), status);
    }
    return o;
}

bool same_classes(const Outcome& a, const Outcome& b) {
    // 1xx answers counted, final ones as their classes, in order.
    auto shape = [](const Outcome& o) {
        std::pair<size_t, std::vector<int>> s;
        for (int status : o.statuses) {
            if (status < 200) ++s.first;
            else s.second.push_back(status / 100);
        }
        return s;
    };
    return shape(a) == shape(b) && a.probe == b.probe;
}

std::string Case::bytes() const {
    std::string all;
    for (const auto& p : pieces) all += p;
    return all;
}

Case parse_case_line(std::string_view line) {
    Case c;
    std::string_view rest = parse_request_part(c, line);
    parse_expectation(c, rest);
    if (c.bytes().empty()) bad("no bytes");
    for (const auto& p : c.pieces) {
        if (p.empty()) bad("an empty piece around '/'");
    }
    for (int h : c.head) {
        if (h < 1 || h > c.requests) bad("head= names a request beyond requests=");
    }
    return c;
}

std::vector<Case> load_cases(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::vector<Case> cases;
    std::set<std::string> names;
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        size_t first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        try {
            cases.push_back(parse_case_line(line));
        } catch (const std::exception& e) {
            throw std::runtime_error(path + ":" + std::to_string(n) + ": " + e.what());
        }
        cases.back().line = n;
        if (!names.insert(cases.back().name).second)
            throw std::runtime_error(path + ":" + std::to_string(n) + ": duplicate name " + cases.back().name);
    }
    return cases;
}

std::string escape(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\\' || c == '"') out += '\\', out += static_cast<char>(c);
        else if (c < 0x20 || c >= 0x7f) out += "\\x", out += kHex[c >> 4], out += kHex[c & 15];
        else out += static_cast<char>(c);
    }
    return out;
}

}  // namespace kq::conformance
