// The HTTP access log: spdlog's async logger on a file or stdout, and the Common Log Format line.
#include "access_log.hpp"

#include "kq/http.hpp"

#include <netdb.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/periodic_worker.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <charconv>
#include <cstdio>
#include <stdexcept>

namespace kq {
namespace {

// Lines the queue holds while the writer is behind (about 2 MB of 250-byte slots); beyond, the oldest go.
constexpr size_t kQueueLines = 8192;

// "[10/Oct/2000:13:55:36 +0000]", rebuilt only when the second changes (time() is a vDSO call).
std::string_view clf_time() {
    thread_local std::time_t cached_at = -1;
    thread_local char text[40];
    thread_local size_t len = 0;
    const std::time_t now = std::time(nullptr);
    if (now != cached_at) {
        static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm tm{};
        gmtime_r(&now, &tm);
        const int n = std::snprintf(text, sizeof text, "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday,
                                    kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        len = n > 0 ? static_cast<size_t>(n) : 0;
        cached_at = now;
    }
    return {text, len};
}

void append_escaped(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') {
            const char esc[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
            out.append(esc, 4);
        } else {
            out.push_back(c);
        }
    }
}

}  // namespace

AccessLog::AccessLog(const std::string& path) {
    spdlog::sink_ptr sink;
    try {
        if (path == "-") sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
        else sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    } catch (const spdlog::spdlog_ex& e) {
        throw std::runtime_error(e.what());
    }
    pool_ = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
    // Not registered with spdlog: the server's own --log-level and --log-format must not touch it.
    logger_ = std::make_shared<spdlog::async_logger>("access", std::move(sink), pool_,
                                                     spdlog::async_overflow_policy::overrun_oldest);
    logger_->set_pattern("%v");
    logger_->set_level(spdlog::level::info);
    std::weak_ptr<spdlog::async_logger> weak = logger_;
    flusher_ = std::make_unique<spdlog::details::periodic_worker>(
        [weak] {
            if (auto l = weak.lock()) l->flush();
        },
        std::chrono::seconds(1));
}

// No flush request of its own at the end: with the queue full it would push out (overrun) a line after
// the exit summary has counted the drops, one line neither written nor counted. The pool's destructor
// writes every queued line, and the sinks flush by themselves (stdout each line, the file as it closes).
AccessLog::~AccessLog() { flusher_.reset(); }

void AccessLog::write(std::string_view line) {
    logger_->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

uint64_t AccessLog::dropped() const { return pool_->overrun_counter(); }

std::string peer_host(const SocketAddress& peer) {
    char host[NI_MAXHOST];
    if (peer.length == 0 || ::getnameinfo(reinterpret_cast<const sockaddr*>(&peer.storage), peer.length, host,
                                          sizeof host, nullptr, 0, NI_NUMERICHOST) != 0)
        return "-";
    return host;
}

std::string_view request_line_of(std::string_view head) {
    const size_t begin = head.find_first_not_of("\r\n");
    if (begin == std::string_view::npos) return {};
    head.remove_prefix(begin);
    head = head.substr(0, head.find('\n'));
    if (!head.empty() && head.back() == '\r') head.remove_suffix(1);
    return head;
}

void common_log_line(std::string& out, std::string_view host, std::string_view request_line, int status,
                     uint64_t bytes) {
    out.assign(host);
    out += " - - ";
    out += clf_time();
    out += " \"";
    append_escaped(out, request_line);
    out += "\" ";
    char num[24];
    out.append(num, std::to_chars(num, num + sizeof num, status).ptr);
    out += ' ';
    if (bytes == 0) out += '-';
    else out.append(num, std::to_chars(num, num + sizeof num, bytes).ptr);
}

std::shared_ptr<AccessLog> open_access_log(const std::string& path) { return std::make_shared<AccessLog>(path); }

uint64_t access_log_dropped(const AccessLog& log) { return log.dropped(); }

}  // namespace kq
