// The HTTP access log (--access-log): one Common Log Format line per answered request, written by a
// thread of its own so that a worker never waits for the disk.
// Thread rules: AccessLog::write and common_log_line may be called from every worker at once.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "kq/handler.hpp"

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
class periodic_worker;
}  // namespace details
}  // namespace spdlog

namespace kq {

// spdlog's async logger, one writer thread, a bounded queue whose oldest line is dropped when it is
// full (overrun_oldest): a worker never blocks on a slow disk, it only takes the queue's lock for a
// push. The file is written through stdio's buffer and flushed every second and when it closes.
class AccessLog {
public:
    // path "-" = stdout; a file is created if missing, appended to. Throws std::runtime_error naming
    // the path when it cannot be opened.
    explicit AccessLog(const std::string& path);
    ~AccessLog();  // writes every line still queued (the file is flushed as it closes)
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    void write(std::string_view line);  // without its newline
    uint64_t dropped() const;           // lines lost because the queue was full

private:
    std::shared_ptr<spdlog::details::thread_pool> pool_;  // destroyed last: it drains the queue
    std::shared_ptr<spdlog::async_logger> logger_;
    std::unique_ptr<spdlog::details::periodic_worker> flusher_;
};

// The numeric address of a peer without its port ("192.0.2.1", "2001:db8::1"); "-" if unknown.
std::string peer_host(const SocketAddress& peer);

// The request-line in the bytes of a head as received (or of its start, for a request refused before
// its head was complete): after any empty lines, up to the line end, without the CR.
std::string_view request_line_of(std::string_view head);

// Replaces out with `host - - [10/Oct/2000:13:55:36 +0000] "request line" status bytes`: the time in
// UTC, the request-line with '"', '\' and every byte outside printable ASCII as \xHH (as nginx does), so
// that no request can forge or break a line; bytes "-" when 0.
void common_log_line(std::string& out, std::string_view host, std::string_view request_line, int status,
                     uint64_t bytes);

}  // namespace kq
