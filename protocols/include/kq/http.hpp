// The built-in HTTP/1.1 protocol: keep-alive, pipelining, GET/HEAD routes `/` and `/bytes/N`,
// request bodies read and discarded up to a limit, and a clear status for every bad request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kq/handler.hpp"

namespace kq {

// An access log: a Common Log Format line per answered request (peer address, time in UTC, request-line
// escaped, status, body bytes), written by a thread of its own; a worker never waits for the disk (when
// the writer falls behind, the oldest queued lines are dropped and counted).
class AccessLog;
// Opens path for appending ("-" = stdout). Throws std::runtime_error naming it when it cannot.
std::shared_ptr<AccessLog> open_access_log(const std::string& path);
// Lines dropped so far because the writer fell behind.
uint64_t access_log_dropped(const AccessLog& log);

struct HttpOptions {
    size_t max_header = 8 * 1024;           // request line + headers; above it: 431 and close (414 when the
                                            // request line alone is longer); also bounds chunk extensions
                                            // and trailers together
    size_t max_body = 1024 * 1024;          // Content-Length or chunked body; above it: 413 and close
    size_t max_bytes_route = 1 << 20;       // largest N that GET /bytes/N serves; above it: 400
    std::shared_ptr<AccessLog> access_log;  // nullptr: no access log, and no cost per request
};

std::unique_ptr<Protocol> make_http_protocol(const HttpOptions& options = {});

}  // namespace kq
