// The built-in HTTP/1.1 protocol: keep-alive, pipelining, GET/HEAD routes `/` and `/bytes/N`,
// request bodies read and discarded up to a limit, and a clear status for every bad request.
#pragma once

#include <cstddef>
#include <memory>

#include "kq/handler.hpp"

namespace kq {

struct HttpOptions {
    size_t max_header = 8 * 1024;      // request line + headers; above it: 431 and close (414 when the
                                       // request line alone is longer); also bounds chunk extensions
                                       // and trailers together
    size_t max_body = 1024 * 1024;     // Content-Length or chunked body; above it: 413 and close
    size_t max_bytes_route = 1 << 20;  // largest N that GET /bytes/N serves; above it: 400
};

std::unique_ptr<Protocol> make_http_protocol(const HttpOptions& options = {});

}  // namespace kq
