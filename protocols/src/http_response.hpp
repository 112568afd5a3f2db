// Response writing for the HTTP protocol: status lines, the cached Date header, and the canned bodies.
#pragma once

#include <string>
#include <string_view>

namespace kq::http {

inline constexpr std::string_view kRootBody = "Hello from kqserver\n";

// "Date: <IMF-fixdate>\r\n", formatted at most once a second per thread (each worker has its own).
std::string_view date_header();

struct Response {
    int status = 200;
    bool keep_alive = true;
    // Headers only, with the Content-Length of the body: a HEAD request's answer, or one whose body the
    // caller sends itself (a streamed /bytes/N).
    bool head = false;
    std::string_view body;  // ignored when fill_bytes is set
    size_t fill_bytes = 0;  // /bytes/N: N bytes of 'x' (built here: meant for small N, see fill_piece)
    bool use_fill = false;
    bool allow_header = false;  // 405: Allow: GET, HEAD
};

// Appends the whole response (head and, unless HEAD, body) to out.
void append_response(std::string& out, const Response& r);

// The largest piece fill_piece() gives.
inline constexpr size_t kMaxFillPiece = 64 * 1024;
// n (at most kMaxFillPiece) bytes of /bytes/N's body, 'x', from one buffer shared by every thread: a large
// body is sent piece by piece from it rather than built.
std::string_view fill_piece(size_t n);

// A short text body for an error status: "404 Not Found\n".
std::string_view error_body(int status);

}  // namespace kq::http
