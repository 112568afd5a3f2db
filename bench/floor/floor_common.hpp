// Hand-written, not packaged: the pieces the two floor references share (flags, SO_REUSEPORT listeners,
// the fixed HTTP answer and request framing). Nothing packaged is this minimal, and a floor must be.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace floor_ref {

struct Options {
    int port = 0;
    int threads = 0;        // 0 = one per core
    bool http = true;       // --mode http|echo
    bool use_recv = false;  // --syscalls rs (recv/send) instead of rw (read/write); the epoll floor only
};

[[noreturn]] inline void usage(const char* prog, bool syscalls_flag) {
    std::fprintf(stderr, "usage: %s [--port N] [--threads N] [--mode http|echo]%s\n", prog,
                 syscalls_flag ? " [--syscalls rw|rs]" : "");
    std::exit(2);
}

inline Options parse_options(int argc, char** argv, bool syscalls_flag) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (i + 1 >= argc) usage(argv[0], syscalls_flag);
        std::string_view value = argv[++i];
        char* end = nullptr;
        if (flag == "--port" || flag == "--threads") {
            long v = std::strtol(argv[i], &end, 10);
            if (*end != '\0' || v < 0 || v > (flag == "--port" ? 65535 : 1024)) usage(argv[0], syscalls_flag);
            (flag == "--port" ? o.port : o.threads) = static_cast<int>(v);
        } else if (flag == "--mode" && (value == "http" || value == "echo")) {
            o.http = value == "http";
        } else if (syscalls_flag && flag == "--syscalls" && (value == "rw" || value == "rs")) {
            o.use_recv = value == "rs";
        } else {
            usage(argv[0], syscalls_flag);
        }
    }
    if (o.threads == 0) o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return o;
}

[[noreturn]] inline void die(const char* what) {
    std::fprintf(stderr, "%s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

// One non-blocking SO_REUSEPORT listener per thread on 127.0.0.1:port (port 0: the first one picks a free
// port and the others join it). Prints "listening 127.0.0.1:PORT" once all are listening.
inline std::vector<int> open_listeners(int port, int count) {
    std::vector<int> fds;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    for (int i = 0; i < count; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        int one = 1;
        if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("SO_REUSEADDR");
        if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
        if (::listen(fd, 4096) != 0) die("listen");
        socklen_t len = sizeof addr;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");
        fds.push_back(fd);
    }
    std::printf("listening 127.0.0.1:%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    return fds;
}

// Nagle off, as the servers measured against it do: a reply must not wait for the previous one's ACK.
inline void set_nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

inline constexpr std::string_view http_response =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nHello from kqserver\n";
inline constexpr size_t max_header = 64 * 1024;  // a request head longer than this closes the connection

// Request framing without features: every "\r\n\r\n" ends one request (no bodies). Counts the complete
// requests in data and sets consumed to the end of the last one.
inline size_t count_requests(std::string_view data, size_t& consumed) {
    size_t n = 0;
    consumed = 0;
    for (size_t at; (at = data.find("\r\n\r\n", consumed)) != std::string_view::npos; ++n) consumed = at + 4;
    return n;
}

// Feeds newly read bytes to a connection's held partial request; appends one response per complete
// request to out. Returns false when a request head grows past max_header.
inline bool frame_http(std::string& partial, std::string_view in, std::string& out) {
    std::string_view data = in;
    if (!partial.empty()) {
        // A terminator may straddle the two reads: scan the held bytes too.
        partial.append(in);
        data = partial;
    }
    size_t consumed = 0;
    for (size_t n = count_requests(data, consumed); n > 0; --n) out.append(http_response);
    if (data.data() == partial.data()) {
        partial.erase(0, consumed);
    } else {
        partial.assign(data.substr(consumed));
    }
    return partial.size() <= max_header;
}

}  // namespace floor_ref
