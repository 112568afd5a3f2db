// HTTP/1.1 sessions on the strict request framing of http_request.hpp: keep-alive, pipelining (answered
// in order, the answers to one read gathered into few send()s), bodies read and discarded, Expect:
// 100-continue, and a clear status for every bad request, after which the connection closes. Output is
// flow-controlled: a large /bytes/N body is streamed in pieces while the connection is not congested, and
// no later request is answered until it is out, so a connection's unsent output stays bounded however
// much a client pipelines and however slowly it reads.
#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include "access_log.hpp"
#include "http_request.hpp"
#include "http_response.hpp"
#include "kq/http.hpp"

namespace kq {
namespace {

// The unit of output: a /bytes/N body longer than this is sent in pieces of this size, each only while
// the connection is not congested (Conn::congested), and the answers gathered in one call are sent
// whenever they reach it, each time checking for congestion. So one call adds at most about two pieces
// to output that was below low water, and small answers keep going out in one send() per read.
constexpr size_t kPiece = 64 << 10;
static_assert(kPiece <= http::kMaxFillPiece);

// A closing error answer; to a HEAD request (its head was read) without the body (RFC 9110 9.3.2).
void append_error(std::string& out, int status, bool head_only) {
    http::Response r;
    r.status = status;
    r.keep_alive = false;
    r.head = head_only;
    r.body = http::error_body(status);
    http::append_response(out, r);
}

// The request-line to log: the one kept at its head event, else the head's bytes so far (a request
// refused before its head was complete, or with it): those held by the reader, or those at `start`.
std::string_view logged_line(const std::string& kept, const http::RequestReader& reader, std::string_view start) {
    if (!kept.empty()) return kept;
    const std::string_view held = reader.held_head();
    return request_line_of(held.empty() ? start : held);
}

// With --access-log, what a session keeps to log its requests: allocated at open() only then.
struct AccessState {
    std::string peer;  // the client's address, without its port
    std::string line;  // the current request's request-line, from its head event until it is logged
};

class HttpSession final : public Session {
public:
    HttpSession(const HttpOptions& opt, std::unique_ptr<AccessState> access)
        : opt_(opt), reader_({opt.max_header, opt.max_body}), access_(std::move(access)) {}

    size_t on_data(std::span<char> bytes, Conn& reply) override;
    // The output drained below low water: the body still owed goes on, then the held requests (or the
    // close its answer announced).
    void on_drained(Conn& reply) override;
    // From the first byte of a request until its last (head and body): the worker's --header-timeout
    // runs from that first byte, so a client trickling a byte a second (slowloris) is cut off. Not while
    // an answer is streaming: the session reads no request then (it paused, at a request boundary), and
    // the client that is slow to read it is timed by the idle time-out, which write progress resets.
    bool mid_request() const override { return reader_.mid_request(); }
    // Only a close the client asked for, with nothing after its request, needs no lingering close.
    bool input_may_follow() const override { return !clean_close_; }
    void on_request_timeout(Conn& reply) override;

private:
    void route(const http::RequestHead& head);
    void respond(std::string& out, bool keep_alive);
    // The body's length of respond()'s answer (0 for HEAD), for the access log.
    uint64_t routed_bytes() const;
    bool send_owed(std::string& out, Conn& reply);
    // The answer to the current request, to the access log; only called when there is one.
    void log_answer(std::string_view start, int status, uint64_t bytes);

    const HttpOptions& opt_;
    http::RequestReader reader_;
    size_t fill_ = 0;        // N for /bytes/N
    size_t body_left_ = 0;   // bytes of a streamed /bytes/N body not yet sent
    int status_ = 0;         // the answer to the request being read, decided with its head
    bool use_fill_ = false;  // the answer is /bytes/N's
    bool clean_close_ = false;
    bool paused_ = false;                  // reading paused until the output drains (on_drained resumes it)
    bool close_after_body_ = false;        // the streaming answer said Connection: close: close once it is out
    std::unique_ptr<AccessState> access_;  // nullptr: no access log
};

// Decides the answer to a request from its head, while its path is still valid: status_, and fill_ for
// /bytes/N. (The rest of the head, method and keep-alive, stays readable in reader_ until the next request.)
void HttpSession::route(const http::RequestHead& head) {
    use_fill_ = false;
    if (head.method != http::Method::get && head.method != http::Method::head) {
        status_ = 405;
    } else if (head.path == "/") {
        status_ = 200;
    } else if (!head.path.starts_with("/bytes/")) {
        status_ = 404;
    } else {
        const std::string_view digits = head.path.substr(7);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fill_);
        if (digits.empty() || ec == std::errc::invalid_argument || end != digits.data() + digits.size()) status_ = 404;
        else if (ec == std::errc::result_out_of_range || fill_ > opt_.max_bytes_route)  // > size_t: too big
            status_ = 400;
        else status_ = 200, use_fill_ = true;
    }
}

// Appends the answer to the request just read. A /bytes/N body of up to one piece is built in out with
// it; a longer one is not built at all: out gets the head (its Content-Length says N), and body_left_
// tells send_owed() to stream the body after it.
void HttpSession::respond(std::string& out, bool keep_alive) {
    http::Response r;
    r.status = status_;
    r.keep_alive = keep_alive;
    r.head = reader_.head().method == http::Method::head;
    if (use_fill_) {
        r.use_fill = true, r.fill_bytes = fill_;
        if (!r.head && fill_ > kPiece) r.head = true, body_left_ = fill_;
    } else {
        r.body = status_ == 200 ? http::kRootBody : http::error_body(status_);
    }
    r.allow_header = status_ == 405;
    http::append_response(out, r);
}

uint64_t HttpSession::routed_bytes() const {
    if (reader_.head().method == http::Method::head) return 0;
    if (use_fill_) return fill_;
    return status_ == 200 ? http::kRootBody.size() : http::error_body(status_).size();
}

void HttpSession::log_answer(std::string_view start, int status, uint64_t bytes) {
    thread_local std::string line;  // one per worker, kept: no allocation per request once it is grown
    common_log_line(line, access_->peer, logged_line(access_->line, reader_, start), status, bytes);
    opt_.access_log->write(line);
    access_->line.clear();
}

// Sends the answers gathered in out, then the streamed body still owed in pieces while the output is not
// congested. True once the body is out (or there was none).
bool HttpSession::send_owed(std::string& out, Conn& reply) {
    if (body_left_ > 0 && !out.empty()) {  // the body's first piece goes with the head: one write fewer
        const size_t n = std::min(body_left_, kPiece);
        out += http::fill_piece(n);
        body_left_ -= n;
    }
    if (!out.empty()) reply.send(std::string_view(out));
    out.clear();
    while (body_left_ > 0 && !reply.congested()) {
        const size_t n = std::min(body_left_, kPiece);
        reply.send(http::fill_piece(n));
        body_left_ -= n;
    }
    return body_left_ == 0;
}

size_t HttpSession::on_data(std::span<char> bytes, Conn& reply) {
    // One buffer per worker thread: a session is only ever called on its worker's thread. It holds at
    // most about two pieces (send_owed() empties it whenever it reaches one), so it is kept.
    thread_local std::string out;
    out.clear();
    std::string_view in(bytes.data(), bytes.size());
    uint64_t answered = 0;
    bool close = false;  // the last answer says close
    bool wait = false;   // the output is congested (or a body still streams): answer nothing more for now
    while (!close && !wait) {
        const std::string_view start = in;  // where a new head begins
        const auto event = reader_.next(in);
        if (event == http::RequestReader::Event::need_more) break;
        if (event == http::RequestReader::Event::head) {
            route(reader_.head());
            if (access_) [[unlikely]]
                access_->line.assign(logged_line({}, reader_, start));
            if (reader_.head().expect_continue) {
                if (status_ != 200) {
                    // RFC 9110 10.1.1: the final answer instead of 100, and the content is not read.
                    respond(out, false);
                    if (access_) [[unlikely]]
                        log_answer(start, status_, routed_bytes());
                    ++answered;
                    close = true;
                } else {
                    out += "HTTP/1.1 100 Continue\r\n\r\n";
                }
            }
        } else if (event == http::RequestReader::Event::message) {
            const bool keep_alive = reader_.head().keep_alive;
            respond(out, keep_alive);
            if (access_) [[unlikely]]
                log_answer(start, status_, routed_bytes());
            ++answered;
            if (!keep_alive) close = true, clean_close_ = in.empty();
            // A body to stream, or a piece's worth of answers: out they go, and a congested output stops
            // the answering here, at a request boundary, until it drains.
            if (body_left_ > 0 || out.size() >= kPiece) wait = !send_owed(out, reply) || reply.congested();
        } else {  // error
            const bool head_only = reader_.head().method == http::Method::head;
            append_error(out, reader_.status(), head_only);
            if (access_) [[unlikely]]
                log_answer(start, reader_.status(), head_only ? 0 : http::error_body(reader_.status()).size());
            ++answered;  // an error answer is an answered request too
            close = true;
        }
    }
    if (!out.empty()) reply.send(std::string_view(out));
    if (answered > 0) reply.count_requests(answered);
    if (close && body_left_ == 0) {
        reply.close();
    } else if (wait) {
        // No on_data() until on_drained() resumes: the requests after this one stay with the worker (the
        // return value), unread by the reader, so that their answers follow this one in order; and a
        // client that pipelines more stays in the kernel, where TCP slows it down.
        reply.pause_reading();
        paused_ = true;
        close_after_body_ = close;
        if (!close) return bytes.size() - in.size();
    }
    return bytes.size();  // the reader keeps what it needs of an unfinished head; after a close, nothing
}

void HttpSession::on_drained(Conn& reply) {
    std::string none;                     // nothing gathered: the pieces go out as they are
    if (!send_owed(none, reply)) return;  // congested again: the next on_drained() goes on
    if (close_after_body_) {
        reply.close();
    } else if (paused_) {
        paused_ = false;
        reply.resume_reading();  // the worker offers the held requests again, after this call
    }
}

// The request time-out, outside any on_data call: 408 and close.
void HttpSession::on_request_timeout(Conn& reply) {
    std::string out;
    const bool head_only = reader_.head().method == http::Method::head;
    append_error(out, 408, head_only);
    if (access_) log_answer({}, 408, head_only ? 0 : http::error_body(408).size());
    reply.send(std::string_view(out));
    reply.count_requests();
    reply.close();
}

class HttpProtocol final : public Protocol {
public:
    explicit HttpProtocol(const HttpOptions& opt) : opt_(opt) {}
    std::string_view name() const override { return "http"; }
    std::unique_ptr<Session> open(Conn& conn) override {
        std::unique_ptr<AccessState> access;
        if (opt_.access_log) access = std::make_unique<AccessState>(AccessState{peer_host(conn.peer()), {}});
        return std::make_unique<HttpSession>(opt_, std::move(access));
    }

private:
    HttpOptions opt_;
};

}  // namespace

std::unique_ptr<Protocol> make_http_protocol(const HttpOptions& options) {
    return std::make_unique<HttpProtocol>(options);
}

}  // namespace kq
