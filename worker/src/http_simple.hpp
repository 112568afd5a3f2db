// A fast path in front of http-parser for the request nearly every client sends: a complete GET or HEAD
// head, HTTP/1.0 or 1.1, plain header lines, no body. http-parser spends about 45 instructions per byte
// (callgrind: 1,780 of the worker's 2,989 user-space instructions per keep-alive request, 60%); this
// scan of a strict subset of the grammar spends a few. It is written by hand because no packaged parser
// is faster (Debian packages no picohttpparser or llhttp for C), and it is kept small on purpose:
// whatever it does not recognise with certainty, an incomplete head included, it leaves to http-parser,
// so every odd, hostile or partial request still meets the hardened parser. fuzz/fuzz_http checks on
// every input that what this accepts, http-parser parses to the same request.
#pragma once

#include <cstddef>
#include <string_view>

namespace kq::http {

struct SimpleRequest {
    bool head = false;        // HEAD, else GET
    bool keep_alive = true;   // what http_should_keep_alive() says for it
    std::string_view url;     // a slice of the input
    size_t header_lines = 0;  // header lines after the request line
};

// Accepted, and the request takes the first `size` bytes of the input, only if all of these hold:
//   "GET " or "HEAD ", a URL of '/' and unreserved, sub-delim, ':', '@', '/', '?' or '%' characters,
//   " HTTP/1.1\r\n" or " HTTP/1.0\r\n";
//   header lines "name:value\r\n", the name of RFC 9110 token characters, the value of visible ASCII,
//   space and tab; then "\r\n";
//   no Content-Length, Upgrade or Proxy-Connection header, no header whose name begins with
//   Transfer-Encoding (http-parser 2.9 matches that one by prefix); at most one Connection header,
//   whose value (after leading blanks) is exactly "close" or "keep-alive", any case;
//   size + header_lines <= max_header (the head that http-parser's callbacks would count stays within
//   --max-header, so the limit means the same on both paths).
// Else returns 0: http-parser takes these bytes.
size_t parse_simple_request(std::string_view in, size_t max_header, SimpleRequest& out) noexcept;

}  // namespace kq::http
