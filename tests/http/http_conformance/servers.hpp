// The two servers the suite compares: kqserver (the binary under test) and Debian's nginx configured to
// serve the same routes under the same limits. Each runs as a child on a free loopback port for the whole
// suite, with its files in one temporary directory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "child_process.hpp"

namespace kq::conformance {

// The limits both servers are given.
struct Limits {
    size_t max_header = 8192;  // kqserver --max-header; nginx client_header_buffer_size (see nginx_config)
    size_t max_body = 16384;   // kqserver --max-body; nginx client_max_body_size
    int timeout_s = 2;         // kqserver --header-timeout; nginx's header, body and keep-alive time-outs
};

// The nginx.conf for this suite: what each directive is and why, in the text.
std::string nginx_config(const std::string& dir, uint16_t port, const Limits& limits);

class Server {
public:
    virtual ~Server() = default;
    uint16_t port() const { return port_; }
    // Stops the server; the wait status (-1: it had to be killed).
    virtual int stop() = 0;

protected:
    uint16_t port_ = 0;
};

// nginx -p DIR -c DIR/nginx.conf, single process, in the foreground. Ready once it has written its pid
// file, which it does after it has opened its listening socket.
std::unique_ptr<Server> start_nginx(const std::string& binary, const TempDir& dir, const Limits& limits);

// kqserver --protocol http --port 0 --workers 1 with the limits; ready once it prints "listening HOST:PORT".
std::unique_ptr<Server> start_kqserver(const std::string& binary, const TempDir& dir, const Limits& limits);

}  // namespace kq::conformance
