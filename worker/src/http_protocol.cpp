// HTTP/1.1 sessions on Debian's http-parser (libhttp-parser-dev): a parser hardened by years of
// fuzzing in Node.js, where a hand-written one would be this server's largest attack surface.
// Pipelined requests are answered in order; all responses produced by one read go out in one send().
#include <http_parser.h>

#include <charconv>
#include <string>

#include "http_response.hpp"
#include "kq/http.hpp"

namespace kq {
namespace {

// Bytes of a request head that http-parser's callbacks do not show: request-line spaces and version,
// ": " and CRLF per header, the final CRLF. Added so --max-header bounds what was really sent.
constexpr size_t kLineOverhead = 4;

class HttpSession final : public Session {
public:
    explicit HttpSession(const HttpOptions& opt) : opt_(opt) {
        http_parser_init(&parser_, HTTP_REQUEST);
        parser_.data = this;
    }

    void on_data(std::span<char> bytes, Reply& reply) override;

private:
    static const http_parser_settings settings_;
    static HttpSession& self(http_parser* p) { return *static_cast<HttpSession*>(p->data); }

    // Callbacks: returning non-zero stops the parser; stop_status_ then says why.
    int on_message_begin();
    int on_url(const char* at, size_t len);
    int on_head_bytes(size_t len);
    int on_headers_complete();
    int on_body(size_t len);
    int on_message_complete();
    int fail(int status);
    void respond(int status);

    const HttpOptions& opt_;
    http_parser parser_{};
    std::string url_;
    std::string* out_ = nullptr;  // the current on_data call's response buffer
    size_t head_bytes_ = 0;
    uint64_t body_bytes_ = 0;
    int stop_status_ = 0;         // 4xx to answer before closing, or -1: stop after a Connection: close
};

int HttpSession::on_message_begin() {
    url_.clear();
    head_bytes_ = kLineOverhead * 2;
    body_bytes_ = 0;
    return 0;
}

int HttpSession::on_url(const char* at, size_t len) {
    if (on_head_bytes(len) != 0) return 1;
    url_.append(at, len);
    return 0;
}

int HttpSession::on_head_bytes(size_t len) {
    head_bytes_ += len;
    return head_bytes_ > opt_.max_header ? fail(431) : 0;
}

int HttpSession::on_headers_complete() {
    // Content-Length is known here; a chunked body is counted as it arrives (on_body).
    if ((parser_.flags & F_CONTENTLENGTH) != 0 && parser_.content_length > opt_.max_body) return fail(413);
    return 0;
}

int HttpSession::on_body(size_t len) {
    body_bytes_ += len;  // read and discarded
    return body_bytes_ > opt_.max_body ? fail(413) : 0;
}

int HttpSession::fail(int status) {
    stop_status_ = status;
    return 1;
}

int HttpSession::on_message_complete() {
    auto method = static_cast<http_method>(parser_.method);
    if (method != HTTP_GET && method != HTTP_HEAD) {
        respond(405);
    } else if (url_ == "/") {
        respond(200);
    } else if (url_.starts_with("/bytes/")) {
        respond(0);  // decided by respond()
    } else {
        respond(404);
    }
    if (!http_should_keep_alive(&parser_)) return fail(-1);
    return 0;
}

void HttpSession::respond(int status) {
    http::Response r;
    r.keep_alive = http_should_keep_alive(&parser_) != 0;
    r.head = parser_.method == HTTP_HEAD;
    if (status == 0) {
        std::string_view digits = std::string_view(url_).substr(7);
        size_t n = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (ec != std::errc() || end != digits.data() + digits.size()) status = 404;
        else if (n > opt_.max_bytes_route) status = 400;
        else status = 200, r.use_fill = true, r.fill_bytes = n;
    }
    r.status = status;
    if (status == 200 && !r.use_fill) r.body = http::kRootBody;
    if (status != 200) r.body = http::error_body(status);
    r.allow_header = status == 405;
    http::append_response(*out_, r);
}

void HttpSession::on_data(std::span<char> bytes, Reply& reply) {
    // One buffer per worker thread: a session is only ever called on its worker's thread.
    thread_local std::string out;
    out.clear();
    out_ = &out;
    http_parser_execute(&parser_, &settings_, bytes.data(), bytes.size());
    bool failed = HTTP_PARSER_ERRNO(&parser_) != HPE_OK;
    if (failed && stop_status_ == 0) stop_status_ = 400;  // malformed: the parser said why, we say 400
    // An Upgrade/CONNECT request was answered as plain HTTP; what follows it is not HTTP: close.
    bool stop = failed || parser_.upgrade;
    if (stop_status_ > 0) {
        http::Response r;
        r.status = stop_status_;
        r.keep_alive = false;
        r.body = http::error_body(stop_status_);
        http::append_response(out, r);
    }
    if (!out.empty()) reply.send(std::string_view(out));
    if (stop) reply.close();
    if (out.capacity() > (64u << 10)) std::string().swap(out);  // do not keep a /bytes/N buffer around
}

const http_parser_settings HttpSession::settings_ = [] {
    http_parser_settings s{};
    s.on_message_begin = [](http_parser* p) { return self(p).on_message_begin(); };
    s.on_url = [](http_parser* p, const char* at, size_t len) { return self(p).on_url(at, len); };
    s.on_header_field = [](http_parser* p, const char*, size_t len) {
        return self(p).on_head_bytes(len + kLineOverhead);
    };
    s.on_header_value = [](http_parser* p, const char*, size_t len) { return self(p).on_head_bytes(len); };
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
