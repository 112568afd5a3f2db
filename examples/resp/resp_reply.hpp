// RESP2 reply encoding, appended to a string that a session sends whole, and the error texts clients
// match on (Redis 7.0's, word for word).
// Thread rules: a Reply appends to one string, owned by the session's worker.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace resp {

inline constexpr std::string_view kWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kOverflow = "ERR increment or decrement would overflow";
inline constexpr std::string_view kSyntax = "ERR syntax error";
inline constexpr std::string_view kNotPositive = "ERR value is out of range, must be positive";

class Reply {
public:
    explicit Reply(std::string& out) : out_(out) {}

    void ok() { out_ += "+OK\r\n"; }
    void simple(std::string_view s) { line('+', s); }
    // text begins with the error code ("ERR ...", "WRONGTYPE ..."); "\r" and "\n" in it become spaces,
    // as Redis does, so that the reply stays one line whatever a client's arguments held.
    void error(std::string_view text) {
        out_ += '-';
        for (char c : text) out_ += (c == '\r' || c == '\n') ? ' ' : c;
        out_ += "\r\n";
    }
    void integer(int64_t v) { number(':', v); }
    void bulk(std::string_view s) {
        number('$', static_cast<int64_t>(s.size()));
        out_.append(s);
        out_ += "\r\n";
    }
    void null() { out_ += "$-1\r\n"; }
    void null_array() { out_ += "*-1\r\n"; }
    void array(size_t n) { number('*', static_cast<int64_t>(n)); }
    std::string& out() noexcept { return out_; }

private:
    void line(char type, std::string_view s) {
        out_ += type;
        out_.append(s);
        out_ += "\r\n";
    }
    void number(char type, int64_t v) {
        char buf[24];
        buf[0] = type;
        auto end = std::to_chars(buf + 1, buf + sizeof buf, v).ptr;
        out_.append(buf, static_cast<size_t>(end - buf));
        out_ += "\r\n";
    }

    std::string& out_;
};

}  // namespace resp
