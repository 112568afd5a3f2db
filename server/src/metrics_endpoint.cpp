// The GET /metrics endpoint: a kq::Worker of its own accepts on the metrics listening socket and runs a
// one-request protocol, so the endpoint has the worker's edge-triggered reads, non-blocking writes,
// connection limit and time-outs. The request time-out runs from a request's first byte (the session is
// mid-request until it has answered), so it is a deadline for the whole request however slowly it
// trickles; the idle time-out cuts a client that sends nothing or stops reading its answer.
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <string_view>

#include "kq/metrics.hpp"
#include "kq/worker.hpp"

namespace kq {
namespace {

constexpr std::string_view kTextType = "text/plain; charset=utf-8";
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

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
    case 503:
        return "Service Unavailable";
    default:
        return "Request Header Fields Too Large";  // 431
    }
}

// A whole answer; every one closes the connection. HEAD gets the head alone.
std::string response(int status, std::string_view type, std::string_view body, bool head_only = false) {
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n", status,
                    reason(status), type, body.size(), status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only) out += body;
    return out;
}

std::string error_response(int status) {
    return response(status, kTextType,
                    fmt::format("{} {}: try GET /metrics, /health or /ready\n", status, reason(status)));
}

// The longest method that could be valid here ("DELETE", "OPTIONS" ...): longer is garbage.
constexpr size_t kMaxMethod = 16;

bool is_method(std::string_view s) {
    return !s.empty() && s.size() <= kMaxMethod &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// What a request's first bytes say before the head is complete: false once they cannot begin a valid
// request line, so garbage (a TLS hello, a stray protocol) is answered 400 at once, not at the deadline.
bool plausible_start(std::string_view head) {
    size_t sp = head.find(' ');
    if (sp == std::string_view::npos) return head.size() <= kMaxMethod && (head.empty() || is_method(head));
    return is_method(head.substr(0, sp));
}

// The request line split at its two spaces, or false if it is not "METHOD TARGET HTTP/1.x".
bool parse_request_line(std::string_view line, std::string_view& method, std::string_view& target) {
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return false;
    method = line.substr(0, sp1);
    target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    return is_method(method) && !target.empty() && target.find(' ') == std::string_view::npos &&
           (version == "HTTP/1.1" || version == "HTTP/1.0");
}

bool is_path(std::string_view target, std::string_view path) {
    return target == path || (target.starts_with(path) && target[path.size()] == '?');
}

// The answer to a request line; only GET and HEAD of /metrics, /health and /ready (each with any
// ?query) are served. /health: the process is up and serving. /ready: it still wants new clients.
std::string answer_request_line(std::string_view line, const Server& server, const std::atomic<bool>& ready) {
    std::string_view method, target;
    if (!parse_request_line(line, method, target)) return error_response(400);
    if (method != "GET" && method != "HEAD") return error_response(405);
    const bool head = method == "HEAD";
    if (is_path(target, "/metrics")) return response(200, kMetricsType, render_metrics(server), head);
    if (is_path(target, "/health")) return response(200, kTextType, "ok\n", head);
    if (is_path(target, "/ready")) {
        return ready.load(std::memory_order_relaxed) ? response(200, kTextType, "ready\n", head)
                                                     : response(503, kTextType, "draining\n", head);
    }
    return error_response(404);
}

// One connection: collects the request head (at most max_request bytes), answers it and closes.
class MetricsSession final : public Session {
public:
    MetricsSession(const Server& server, const std::atomic<bool>& ready, size_t max_request)
        : server_(server), ready_(ready), max_request_(max_request) {}

    size_t on_data(std::span<char> bytes, Conn& reply) override {
        if (answered_) return bytes.size();
        started_ = true;
        head_.append(bytes.data(), std::min(bytes.size(), max_request_ + 1 - head_.size()));
        size_t line_end = head_.find('\n');
        std::string_view line(head_.data(), std::min(line_end, head_.size()));
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (head_.find("\r\n\r\n") != std::string::npos || head_.find("\n\n") != std::string::npos) {
            head_done_ = true;
            answer(answer_request_line(line, server_, ready_), reply);
        } else if (head_.size() > max_request_) {
            answer(error_response(431), reply);
        } else if (!plausible_start(line)) {
            answer(error_response(400), reply);
        } else if (std::string_view m, t; line_end != std::string::npos && !parse_request_line(line, m, t)) {
            answer(error_response(400), reply);  // a whole request line that is not one
        }
        return bytes.size();  // kept in head_ (it is a copy either way: at most max_request bytes)
    }
    void on_peer_eof(Conn& reply) override {
        if (started_ && !answered_) answer(error_response(400), reply);  // half a request, then nothing
        else reply.close();
    }
    // From the first byte until the head is complete: the worker's request time-out is the deadline of
    // the whole request, and an error answered before the head ended closes with a linger.
    bool mid_request() const override { return started_ && !head_done_; }
    void on_request_timeout(Conn& reply) override { answer(error_response(408), reply); }

private:
    void answer(const std::string& bytes, Conn& reply) {
        answered_ = true;
        head_.clear();
        head_.shrink_to_fit();
        reply.send(bytes);
        reply.count_requests();
        reply.close();
    }

    const Server& server_;
    const std::atomic<bool>& ready_;
    size_t max_request_;
    std::string head_;
    bool started_ = false, head_done_ = false, answered_ = false;
};

class MetricsProtocol final : public Protocol {
public:
    MetricsProtocol(const Server& server, const std::atomic<bool>& ready, size_t max_request)
        : server_(server), ready_(ready), max_request_(max_request) {}
    std::string_view name() const override { return "metrics"; }
    std::unique_ptr<Session> open(Conn&) override {
        return std::make_unique<MetricsSession>(server_, ready_, max_request_);
    }

private:
    const Server& server_;
    const std::atomic<bool>& ready_;
    size_t max_request_;
};

WorkerConfig worker_config(const MetricsConfig& m) {
    WorkerConfig w;
    w.batch = 64;
    w.read_buffer = 16 * 1024;
    w.idle_timeout_ms = m.idle_timeout_ms;
    w.request_timeout_ms = m.request_timeout_ms;
    w.linger_ms = m.linger_ms;
    w.drain_timeout_ms = 0;  // never drained: stop() is immediate
    return w;
}

}  // namespace

// The worker's id only names it in a fatal log line; -1 tells it apart from the server's workers.
MetricsServer::MetricsServer(const Server& server, const ListenOptions& listen, const MetricsConfig& cfg)
    : MetricsServer(server, listen_tcp(listen), cfg) {}

MetricsServer::MetricsServer(const Server& server, UniqueFd listener, const MetricsConfig& cfg)
    : protocol_(std::make_unique<MetricsProtocol>(server, ready_, cfg.max_request)),
      worker_(std::make_unique<Worker>(-1, worker_config(cfg), *protocol_)) {
    port_ = local_port(listener.get());
    address_ = local_address(listener.get());
    listen_fd_ = listener.get();
    worker_->listen_on(std::move(listener), cfg.max_connections);
}

MetricsServer::~MetricsServer() { stop(); }

const WorkerStats& MetricsServer::stats() const noexcept { return worker_->stats(); }

void MetricsServer::start() { worker_->start(); }

void MetricsServer::stop() noexcept {
    worker_->request_stop();
    worker_->join();
}

}  // namespace kq
