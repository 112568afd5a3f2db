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
    bool head = false;      // HEAD: headers only, Content-Length of the body it would have
    std::string_view body;  // ignored when fill_bytes is set
    size_t fill_bytes = 0;  // /bytes/N: N bytes of 'x'
    bool use_fill = false;
    bool allow_header = false;  // 405: Allow: GET, HEAD
};

// Appends the whole response (head and, unless HEAD, body) to out.
void append_response(std::string& out, const Response& r);

// A short text body for an error status: "404 Not Found\n".
std::string_view error_body(int status);

}  // namespace kq::http
