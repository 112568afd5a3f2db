// HTTP/1.1 sessions on Debian's http-parser (libhttp-parser-dev): a parser hardened by years of
// fuzzing in Node.js, where a hand-written one would be this server's largest attack surface. In front
// of it, a fast path (http_simple.hpp) takes complete, plain GET and HEAD heads at a request boundary,
// the bulk of real traffic, at a fraction of the cost; anything else goes to http-parser.
// Pipelined requests are answered in order; all responses produced by one read go out in one send().
#include <http_parser.h>

#include <charconv>
#include <cstring>
#include <string>
#include <utility>

#include "http_response.hpp"
#include "http_simple.hpp"
#include "kq/http.hpp"

namespace kq {
namespace {

// Bytes of a request head that http-parser's callbacks do not show, added so that --max-header bounds
// what was really sent: the method, " " and " HTTP/1.1\r\n" around the URL and the final CRLF once per
// request; ": " and CRLF once per header line (not per callback: one field may come in many slices).
constexpr size_t kRequestOverhead = 14;
constexpr size_t kHeaderLineOverhead = 4;

// The answers to one read are built in one buffer, and 64 KiB of pipelined "GET /bytes/1048576" asks
// for 2 GB. Past this budget the answer being built is the last: it says close and the connection
// ends after it (RFC 9112 9.3.2: a pipelining client retries what was left unanswered).
constexpr size_t kOutputBudget = 4 << 20;

void append_error(std::string& out, int status) {
    http::Response r;
    r.status = status;
    r.keep_alive = false;
    r.body = http::error_body(status);
    http::append_response(out, r);
}

class HttpSession final : public Session {
public:
    explicit HttpSession(const HttpOptions& opt) : opt_(opt) {
        http_parser_init(&parser_, HTTP_REQUEST);
        parser_.data = this;
    }

    void on_data(std::span<char> bytes, Reply& reply) override;
    // From the first byte of a request until its last (head and body): the worker's --header-timeout
    // runs from that first byte, so a client trickling a byte a second (slowloris) is cut off.
    bool mid_request() const override { return in_request_; }
    void on_request_timeout(Reply& reply) override { answer_error(408, reply); }

private:
    static const http_parser_settings settings_;
    static HttpSession& self(http_parser* p) { return *static_cast<HttpSession*>(p->data); }

    // Callbacks: returning non-zero stops the parser; stop_status_ then says why.
    int on_message_begin();
    int on_url(const char* at, size_t len);
    enum class Part { none, url, field, value };  // which piece of the head the last slice belonged to
    int on_head(Part part, size_t len);
    int on_headers_complete();
    int on_body(size_t len);
    int on_message_complete();
    int fail(int status);
    void route(bool get_or_head, bool head);
    void respond(int status, bool head);
    void answer_error(int status, Reply& reply);

    const HttpOptions& opt_;
    http_parser parser_{};
    std::string url_;
    std::string* out_ = nullptr;  // the current on_data call's response buffer
    size_t head_bytes_ = 0;
    uint64_t body_bytes_ = 0;
    int stop_status_ = 0;         // 4xx to answer before closing, or -1: stop after the last answer
    Part last_part_ = Part::none;
    bool in_head_ = false;        // between the first byte of a request and the end of its headers
    bool in_request_ = false;     // between the first byte of a request and the end of its body
    bool keep_alive_ = true;      // whether the answer being built is followed by more
    uint64_t answered_ = 0;       // requests answered during the current on_data call
};

int HttpSession::on_message_begin() {
    url_.clear();
    head_bytes_ = kRequestOverhead;
    body_bytes_ = 0;
    last_part_ = Part::none;
    in_head_ = true;
    in_request_ = true;
    return 0;
}

int HttpSession::on_url(const char* at, size_t len) {
    if (on_head(Part::url, len) != 0) return -1;
    url_.append(at, len);
    return 0;
}

int HttpSession::on_head(Part part, size_t len) {
    if (part != last_part_) {  // a new piece, not the next slice of the same one
        if (part == Part::url) len += std::strlen(http_method_str(static_cast<http_method>(parser_.method)));
        if (part == Part::field) len += kHeaderLineOverhead;
        last_part_ = part;
    }
    head_bytes_ += len;
    return head_bytes_ > opt_.max_header ? fail(431) : 0;
}

int HttpSession::on_headers_complete() {
    in_head_ = false;
    // Content-Length is known here; a chunked body is counted as it arrives (on_body).
    if ((parser_.flags & F_CONTENTLENGTH) != 0 && parser_.content_length > opt_.max_body) return fail(413);
    return 0;
}

int HttpSession::on_body(size_t len) {
    body_bytes_ += len;  // read and discarded
    return body_bytes_ > opt_.max_body ? fail(413) : 0;
}

// -1, not 1: from on_headers_complete, 1 would tell http-parser "no body follows" and it would go on,
// parsing the body as the next request.
int HttpSession::fail(int status) {
    stop_status_ = status;
    return -1;
}

int HttpSession::on_message_complete() {
    in_request_ = false;
    // The answer is the last after Connection: close or an Upgrade (what follows is not HTTP), and once
    // this read's answers passed the budget.
    keep_alive_ = http_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0 && out_->size() < kOutputBudget;
    auto method = static_cast<http_method>(parser_.method);
    route(method == HTTP_GET || method == HTTP_HEAD, method == HTTP_HEAD);
    return keep_alive_ ? 0 : fail(-1);
}

// The answer to a complete request for url_, whichever parser read it.
void HttpSession::route(bool get_or_head, bool head) {
    if (!get_or_head) {
        respond(405, head);
    } else if (url_ == "/") {
        respond(200, head);
    } else if (url_.starts_with("/bytes/")) {
        respond(0, head);  // decided by respond()
    } else {
        respond(404, head);
    }
}

void HttpSession::respond(int status, bool head) {
    http::Response r;
    r.keep_alive = keep_alive_;
    r.head = head;
    if (status == 0) {
        std::string_view digits = std::string_view(url_).substr(7);
        size_t n = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (ec == std::errc::invalid_argument || end != digits.data() + digits.size()) status = 404;
        else if (ec == std::errc::result_out_of_range || n > opt_.max_bytes_route) status = 400;  // > size_t: too big
        else status = 200, r.use_fill = true, r.fill_bytes = n;
    }
    r.status = status;
    if (status == 200 && !r.use_fill) r.body = http::kRootBody;
    if (status != 200) r.body = http::error_body(status);
    r.allow_header = status == 405;
    http::append_response(*out_, r);
    ++answered_;
}

void HttpSession::on_data(std::span<char> bytes, Reply& reply) {
    // One buffer per worker thread: a session is only ever called on its worker's thread.
    thread_local std::string out;
    out.clear();
    out_ = &out;
    std::string_view in(bytes.data(), bytes.size());
    bool stop = false;
    // Between requests (http-parser holds no part of one), complete simple requests take the fast path;
    // from the first byte it does not take, http-parser reads the rest of this read.
    if (!in_request_) {
        http::SimpleRequest req;
        while (size_t n = http::parse_simple_request(in, opt_.max_header, req)) {
            in.remove_prefix(n);
            keep_alive_ = req.keep_alive && out.size() < kOutputBudget;  // as on_message_complete
            url_.assign(req.url);
            route(true, req.head);
            if (!keep_alive_) {
                stop = true;  // the last answer: what follows is not read
                break;
            }
        }
    }
    if (!stop && !in.empty()) {
        http_parser_execute(&parser_, &settings_, in.data(), in.size());
        bool failed = HTTP_PARSER_ERRNO(&parser_) != HPE_OK;
        // The callbacks miss head bytes they never show (extra spaces around the URL, CRLFs between
        // requests); http-parser's nread counts them all and is exact once execute returns, so a head
        // still arriving is held to the limit here. A whole head within one read is bounded by the
        // callbacks' count and, for such padding, by http-parser's own 80 KiB (HPE_HEADER_OVERFLOW, below).
        if (!failed && in_head_ && parser_.nread > opt_.max_header) failed = true, stop_status_ = 431;
        // Malformed: the parser said why, we say 400; past http-parser's own head bound (80 KiB), 431.
        if (failed && stop_status_ == 0)
            stop_status_ = HTTP_PARSER_ERRNO(&parser_) == HPE_HEADER_OVERFLOW ? 431 : 400;
        // An Upgrade/CONNECT request is answered as plain HTTP once complete, as the last answer
        // (on_message_complete stops the parser): what follows it is not HTTP. Not on parser_.upgrade
        // alone: it is set with the head, and the body may still be arriving (found by fuzz/fuzz_http).
        stop = failed;
    }
    if (stop_status_ > 0) {
        append_error(out, stop_status_);
        ++answered_;  // an error answer is an answered request too
    }
    if (!out.empty()) reply.send(std::string_view(out));
    if (answered_ > 0) reply.count_requests(std::exchange(answered_, 0));
    if (stop) reply.close();
    if (out.capacity() > (64u << 10)) std::string().swap(out);  // do not keep a /bytes/N buffer around
}

// An error status with a closing answer, outside any on_data call (the request time-out).
void HttpSession::answer_error(int status, Reply& reply) {
    std::string out;
    append_error(out, status);
    reply.send(std::string_view(out));
    reply.count_requests();
    reply.close();
}

const http_parser_settings HttpSession::settings_ = [] {
    http_parser_settings s{};
    s.on_message_begin = [](http_parser* p) { return self(p).on_message_begin(); };
    s.on_url = [](http_parser* p, const char* at, size_t len) { return self(p).on_url(at, len); };
    s.on_header_field = [](http_parser* p, const char*, size_t len) { return self(p).on_head(Part::field, len); };
    s.on_header_value = [](http_parser* p, const char*, size_t len) { return self(p).on_head(Part::value, len); };
    s.on_headers_complete = [](http_parser* p) { return self(p).on_headers_complete(); };
    s.on_body = [](http_parser* p, const char*, size_t len) { return self(p).on_body(len); };
    s.on_message_complete = [](http_parser* p) { return self(p).on_message_complete(); };
    return s;
}();

class HttpProtocol final : public Protocol {
public:
    explicit HttpProtocol(const HttpOptions& opt) : opt_(opt) {}
    std::string_view name() const override { return "http"; }
    std::unique_ptr<Session> open() override { return std::make_unique<HttpSession>(opt_); }

private:
    HttpOptions opt_;
};

}  // namespace

std::unique_ptr<Protocol> make_http_protocol(const HttpOptions& options) {
    return std::make_unique<HttpProtocol>(options);
}

}  // namespace kq
