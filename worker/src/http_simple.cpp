// The simple-request fast path (see http_simple.hpp for why it exists and what it accepts).
#include "http_simple.hpp"

#include <array>
#include <cstdint>

namespace kq::http {
namespace {

enum : uint8_t { kUrl = 1, kToken = 2, kValue = 4 };

constexpr std::array<uint8_t, 256> kClass = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 32] = kUrl | kToken;
    for (int c = '0'; c <= '9'; ++c) t[c] = kUrl | kToken;
    for (unsigned char c : std::string_view("-._~!$&'()*+,;=:@/?%")) t[c] |= kUrl;
    for (unsigned char c : std::string_view("!#$%&'*+-.^_`|~")) t[c] |= kToken;
    for (int c = 0x20; c <= 0x7e; ++c) t[c] |= kValue;
    t['\t'] |= kValue;
    return t;
}();

bool is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }

// ASCII case-insensitive equality with a lowercase literal.
bool iequals(std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
    }
    return true;
}

// Whether s begins with the lowercase literal, ASCII case-insensitively.
bool begins(std::string_view s, std::string_view lower) {
    return s.size() >= lower.size() && iequals(s.substr(0, lower.size()), lower);
}

}  // namespace

size_t parse_simple_request(std::string_view in, size_t max_header, SimpleRequest& out) noexcept {
    size_t i;
    if (in.starts_with("GET ")) {
        out.head = false, i = 4;
    } else if (in.starts_with("HEAD ")) {
        out.head = true, i = 5;
    } else {
        return 0;
    }
    const size_t url_begin = i;
    if (i >= in.size() || in[i] != '/') return 0;
    while (i < in.size() && is(in[i], kUrl)) ++i;
    out.url = in.substr(url_begin, i - url_begin);
    std::string_view rest = in.substr(i);
    bool http11;
    if (rest.starts_with(" HTTP/1.1\r\n")) {
        http11 = true;
    } else if (rest.starts_with(" HTTP/1.0\r\n")) {
        http11 = false;
    } else {
        return 0;
    }
    i += 11;
    bool close = false, keep_alive = false, connection_seen = false;
    out.header_lines = 0;
    for (;;) {
        if (i + 1 >= in.size()) return 0;  // incomplete
        if (in[i] == '\r') {
            if (in[i + 1] != '\n') return 0;
            i += 2;
            break;
        }
        const size_t name_begin = i;
        while (i < in.size() && is(in[i], kToken)) ++i;
        if (i == name_begin || i >= in.size() || in[i] != ':') return 0;
        const std::string_view name = in.substr(name_begin, i - name_begin);
        ++i;
        while (i < in.size() && (in[i] == ' ' || in[i] == '\t')) ++i;
        const size_t value_begin = i;
        while (i < in.size() && is(in[i], kValue)) ++i;
        if (i + 1 >= in.size() || in[i] != '\r' || in[i + 1] != '\n') return 0;
        const std::string_view value = in.substr(value_begin, i - value_begin);
        i += 2;
        ++out.header_lines;
        // The headers http-parser gives a meaning are left to it, all but a plain Connection. Its 2.9
        // flags Transfer-Encoding by prefix ("Transfer-Encoding2: x" is refused as an invalid
        // transfer-encoding; found by fuzz/fuzz_http), so any name beginning so goes to it too.
        switch (name[0] | 0x20) {
        case 'c':
            if (iequals(name, "content-length")) return 0;
            if (iequals(name, "connection")) {
                if (connection_seen) return 0;
                connection_seen = true;
                if (iequals(value, "close")) close = true;
                else if (iequals(value, "keep-alive")) keep_alive = true;
                else return 0;
            }
            break;
        case 't': if (begins(name, "transfer-encoding")) return 0; break;
        case 'u': if (iequals(name, "upgrade")) return 0; break;
        case 'p': if (iequals(name, "proxy-connection")) return 0; break;
        default: break;
        }
    }
    if (i + out.header_lines > max_header) return 0;
    out.keep_alive = http11 ? !close : keep_alive;
    return i;
}

}  // namespace kq::http
