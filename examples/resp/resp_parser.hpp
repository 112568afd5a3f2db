// Framing of RESP2 requests: multibulk (`*N\r\n$len\r\narg\r\n...`) and inline (a line split on spaces
// with Redis's quoting rules), with the limits that keep one connection's held input bounded.
// Hand-written: Debian packages no RESP server-side parser (hiredis parses replies, not requests).
// Thread rules: one parser per session, used only by its worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resp {

struct Limits {
    size_t max_bulk = 64 << 20;      // longest argument (Redis: proto-max-bulk-len, 512 MiB)
    size_t max_args = 1 << 20;       // most arguments in one multibulk request
    size_t max_inline = 64 << 10;    // longest inline request line, and longest `*N` / `$N` line
    size_t max_request = 128 << 20;  // largest whole request, as received
};

// Parses the request at the front of the input. The input may end anywhere: parse() says need_more, and
// the caller offers the same bytes again later with more after them (the worker's held input does
// exactly that); the parser remembers how far it got, as offsets, so each byte is examined once. Every
// limit is checked before need_more is returned, so a client can never make the caller hold more than
// Limits::max_request (+ one read) for it.
class RequestParser {
public:
    enum class Status {
        complete,   // args() is the request; consumed() its bytes
        empty,      // an empty request (a blank line, `*0`, `*-1`): consumed() bytes, nothing to run
        need_more,  // the request continues past the input
        error,      // error() says why; the connection must be closed after answering it
    };

    explicit RequestParser(const Limits& limits) : limits_(limits) {}

    Status parse(std::string_view in);
    size_t consumed() const noexcept { return pos_; }
    // The arguments of a complete request, valid until reset() and while `in` (the same bytes passed to
    // parse()) is.
    std::span<const std::string_view> args(std::string_view in);
    // The text of a protocol error, without the "-ERR " prefix, e.g. "Protocol error: invalid bulk length".
    const std::string& error() const noexcept { return error_; }
    // Forgets the request just parsed; the next parse() starts at a new request.
    void reset();

private:
    Status parse_inline(std::string_view in);
    Status parse_multibulk(std::string_view in);
    // Finds the "\r" that ends a `*N` or `$N` line starting at pos_, and the byte after it, as Redis
    // does (it does not check that byte); returns false to wait for more. Sets error_ if too long.
    bool find_line_end(std::string_view in, size_t& cr, const char* too_big);
    Status fail(std::string message);

    const Limits& limits_;
    size_t pos_ = 0;                                // bytes of the request parsed so far
    int64_t expected_ = -1;                         // multibulk: arguments announced, -1 before the `*N` line
    int64_t bulk_len_ = -1;                         // the current argument's length once its `$N` line is parsed
    size_t scanned_ = 0;                            // inline: bytes already searched for the line end
    std::vector<std::pair<size_t, size_t>> spans_;  // multibulk: (offset, length) of each argument
    std::string inline_bytes_;                      // inline: the unquoted arguments, end to end
    std::vector<std::string_view> args_;
    std::string error_;
};

// Parses a whole decimal number as Redis's string2ll does: optional '-', no '+', no spaces, no leading
// zeros, within int64_t. False if s is anything else.
bool parse_int64(std::string_view s, int64_t& value);

// Splits an inline line into arguments with Redis's quoting rules ("..." with \n \r \t \b \a \xHH
// escapes, '...' with \'), appending each argument's bytes to bytes and its (offset, length) to spans.
// False on unbalanced quotes (or a closing quote not followed by a space).
bool split_inline(std::string_view line, std::string& bytes, std::vector<std::pair<size_t, size_t>>& spans);

}  // namespace resp
