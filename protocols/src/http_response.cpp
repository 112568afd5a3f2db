// HTTP response writing: status lines, the per-thread cached Date header, canned bodies.
#include "http_response.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <string>

namespace kq::http {
namespace {

std::string_view reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

void append_number(std::string& out, size_t n) {
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, res.ptr);
}

}  // namespace

std::string_view date_header() {
    // time() is a vDSO call, not a system call; the string is rebuilt only when the second changes.
    thread_local std::time_t cached_at = 0;
    thread_local char line[64];
    thread_local size_t len = 0;
    std::time_t now = std::time(nullptr);
    if (now != cached_at) {
        // The names are spelled out: strftime's %a and %b follow the locale, which a program embedding
        // the server may set, and the header must be English (IMF-fixdate, RFC 9110 5.6.7).
        static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm tm{};
        gmtime_r(&now, &tm);
        int n = std::snprintf(line, sizeof line, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", kDays[tm.tm_wday],
                              tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        len = n > 0 ? static_cast<size_t>(n) : 0;
        cached_at = now;
    }
    return {line, len};
}

std::string_view fill_piece(size_t n) {
    static const std::string piece(kMaxFillPiece, 'x');  // thread-safe initialisation, then read-only
    return std::string_view(piece).substr(0, n);
}

std::string_view error_body(int status) {
    switch (status) {
    case 400:
        return "400 Bad Request\n";
    case 404:
        return "404 Not Found\n";
    case 405:
        return "405 Method Not Allowed\n";
    case 408:
        return "408 Request Timeout\n";
    case 413:
        return "413 Content Too Large\n";
    case 414:
        return "414 URI Too Long\n";
    case 431:
        return "431 Request Header Fields Too Large\n";
    case 501:
        return "501 Not Implemented\n";
    case 505:
        return "505 HTTP Version Not Supported\n";
    default:
        return "error\n";
    }
}

void append_response(std::string& out, const Response& r) {
    size_t length = r.use_fill ? r.fill_bytes : r.body.size();
    out += "HTTP/1.1 ";
    append_number(out, static_cast<size_t>(r.status));
    out += ' ';
    out += reason(r.status);
    out += "\r\nServer: kqserver\r\n";
    out += date_header();
    out += "Content-Type: text/plain\r\nContent-Length: ";
    append_number(out, length);
    out += r.keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
    if (r.allow_header) out += "Allow: GET, HEAD\r\n";
    out += "\r\n";
    if (r.head) return;
    if (r.use_fill) out.append(r.fill_bytes, 'x');
    else out += r.body;
}

}  // namespace kq::http
