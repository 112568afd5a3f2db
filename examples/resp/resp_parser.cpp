// RESP2 request framing: multibulk and inline, resumable across partial input.
#include "resp_parser.hpp"

#include <algorithm>
#include <cctype>

namespace resp {

bool parse_int64(std::string_view s, int64_t& value) {
    if (s.empty() || s.size() > 20) return false;
    const bool negative = s[0] == '-';
    std::string_view digits = negative ? s.substr(1) : s;
    if (digits.empty() || (digits[0] == '0' && (digits.size() > 1 || negative))) return false;
    uint64_t v = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return false;
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    if (v > limit) return false;
    value = negative ? static_cast<int64_t>(~v + 1) : static_cast<int64_t>(v);
    return true;
}

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'; }

// One double-quoted argument's escape at line[i] (the backslash); appends the byte, returns the next index.
size_t unescape(std::string_view line, size_t i, std::string& bytes) {
    if (i + 3 < line.size() && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 && hex_digit(line[i + 3]) >= 0) {
        bytes += static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3]));
        return i + 4;
    }
    if (i + 1 >= line.size()) {  // a backslash ending the line: kept, and the quote is unbalanced anyway
        bytes += '\\';
        return i + 1;
    }
    char c = line[i + 1];
    switch (c) {
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'b':
        c = '\b';
        break;
    case 'a':
        c = '\a';
        break;
    default:
        break;
    }
    bytes += c;
    return i + 2;
}

}  // namespace

bool split_inline(std::string_view line, std::string& bytes, std::vector<std::pair<size_t, size_t>>& spans) {
    line = line.substr(0, line.find('\0'));  // Redis reads the line as a C string
    size_t i = 0;
    for (;;) {
        while (i < line.size() && is_space(line[i])) ++i;
        if (i == line.size()) return true;
        const size_t start = bytes.size();
        char quote = 0;  // the quote we are inside, if any
        for (bool done = false; !done;) {
            if (quote == 0) {
                if (i == line.size() || is_space(line[i])) {
                    done = true;
                } else if (line[i] == '"' || line[i] == '\'') {
                    quote = line[i++];
                } else {
                    bytes += line[i++];
                }
            } else if (i == line.size()) {
                return false;  // unterminated quotes
            } else if (line[i] == quote) {
                ++i;
                if (i < line.size() && !is_space(line[i])) return false;  // "a"b: Redis refuses it
                done = true;
            } else if (quote == '"' && line[i] == '\\') {
                i = unescape(line, i, bytes);
            } else if (quote == '\'' && line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
                bytes += '\'';
                i += 2;
            } else {
                bytes += line[i++];
            }
        }
        spans.emplace_back(start, bytes.size() - start);
    }
}

RequestParser::Status RequestParser::parse(std::string_view in) {
    if (in.empty()) return Status::need_more;
    return in[0] == '*' ? parse_multibulk(in) : parse_inline(in);
}

RequestParser::Status RequestParser::fail(std::string message) {
    error_ = std::move(message);
    return Status::error;
}

RequestParser::Status RequestParser::parse_inline(std::string_view in) {
    const size_t nl = in.find('\n', scanned_);
    const size_t line_len = nl == std::string_view::npos ? in.size() : nl;
    // Checked whether or not the line has ended, so that the answer does not depend on how it was split.
    if (line_len > limits_.max_inline) return fail("Protocol error: too big inline request");
    if (nl == std::string_view::npos) {
        scanned_ = in.size();
        return Status::need_more;
    }
    std::string_view line = in.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = nl + 1;
    inline_bytes_.clear();
    spans_.clear();
    if (!split_inline(line, inline_bytes_, spans_)) return fail("Protocol error: unbalanced quotes in request");
    args_.clear();
    for (auto [off, len] : spans_) args_.push_back(std::string_view(inline_bytes_).substr(off, len));
    return args_.empty() ? Status::empty : Status::complete;
}

bool RequestParser::find_line_end(std::string_view in, size_t& cr, const char* too_big) {
    cr = in.find('\r', pos_);
    const size_t end = cr == std::string_view::npos ? in.size() : cr;
    if (end - pos_ > limits_.max_inline) {
        error_ = too_big;
        return false;
    }
    return cr != std::string_view::npos && cr + 1 < in.size();  // the byte after "\r" has arrived
}

RequestParser::Status RequestParser::parse_multibulk(std::string_view in) {
    size_t cr = 0;
    if (expected_ < 0) {
        if (!find_line_end(in, cr, "Protocol error: too big mbulk count string"))
            return error_.empty() ? Status::need_more : Status::error;
        int64_t n = 0;
        if (!parse_int64(in.substr(1, cr - 1), n) || n > static_cast<int64_t>(limits_.max_args))
            return fail("Protocol error: invalid multibulk length");
        pos_ = cr + 2;
        if (n <= 0) return Status::empty;
        expected_ = n;
        spans_.clear();
        spans_.reserve(static_cast<size_t>(std::min<int64_t>(n, 1024)));  // n is the client's word only
    }
    while (static_cast<int64_t>(spans_.size()) < expected_) {
        if (bulk_len_ < 0) {
            if (!find_line_end(in, cr, "Protocol error: too big bulk count string"))
                return error_.empty() ? Status::need_more : Status::error;
            if (in[pos_] != '$') {
                const unsigned char got = static_cast<unsigned char>(in[pos_]);
                // Redis prints the byte as it is, but maps "\r" and "\n" to spaces to keep the reply one line.
                return fail(std::string("Protocol error: expected '$', got '") +
                            (got == '\r' || got == '\n' ? ' ' : static_cast<char>(got)) + "'");
            }
            int64_t len = 0;
            if (!parse_int64(in.substr(pos_ + 1, cr - pos_ - 1), len) || len < 0 ||
                static_cast<uint64_t>(len) > limits_.max_bulk)
                return fail("Protocol error: invalid bulk length");
            // The whole request as announced so far must fit: checked before waiting for its bytes.
            if (cr + 2 + static_cast<size_t>(len) + 2 > limits_.max_request)
                return fail("Protocol error: too big request");
            bulk_len_ = len;
            pos_ = cr + 2;
        }
        const size_t len = static_cast<size_t>(bulk_len_);
        if (in.size() - pos_ < len + 2) return Status::need_more;
        spans_.emplace_back(pos_, len);
        pos_ += len + 2;  // Redis skips the two bytes after the argument without looking at them
        bulk_len_ = -1;
    }
    return Status::complete;  // args() makes the views: the caller's buffer may differ from `in` by then
}

std::span<const std::string_view> RequestParser::args(std::string_view in) {
    // Inline arguments live in inline_bytes_; multibulk ones in `in`, which the caller may have moved.
    if (expected_ > 0) {
        args_.clear();
        for (auto [off, len] : spans_) args_.push_back(in.substr(off, len));
    }
    return args_;
}

void RequestParser::reset() {
    pos_ = 0;
    expected_ = -1;
    bulk_len_ = -1;
    scanned_ = 0;
    spans_.clear();
    args_.clear();
    if (spans_.capacity() > 4096) spans_.shrink_to_fit();  // a huge request's index is not kept
    if (args_.capacity() > 4096) args_.shrink_to_fit();
    if (inline_bytes_.capacity() > 4096) inline_bytes_.shrink_to_fit();
    error_.clear();
}

}  // namespace resp
