// HTTP/1.1 sessions on the strict request framing of http_request.hpp: keep-alive, pipelining (answered
// in order, all the answers to one read in one send()), bodies read and discarded, Expect: 100-continue,
// and a clear status for every bad request, after which the connection closes.
#include <charconv>
#include <string>
#include <utility>

#include "http_request.hpp"
#include "http_response.hpp"
#include "kq/http.hpp"

namespace kq {
namespace {

// The answers to one read are built in one buffer, and 64 KiB of pipelined "GET /bytes/1048576" asks
// for 2 GB. Past this budget the answer being built is the last: it says close and the connection
// ends after it (RFC 9112 9.3.2: a pipelining client retries what was left unanswered).
constexpr size_t kOutputBudget = 4 << 20;

// A closing error answer; to a HEAD request (its head was read) without the body (RFC 9110 9.3.2).
void append_error(std::string& out, int status, bool head_only) {
    http::Response r;
    r.status = status;
    r.keep_alive = false;
    r.head = head_only;
    r.body = http::error_body(status);
    http::append_response(out, r);
}

class HttpSession final : public Session {
public:
    explicit HttpSession(const HttpOptions& opt) : opt_(opt), reader_({opt.max_header, opt.max_body}) {}

    size_t on_data(std::span<char> bytes, Conn& reply) override;
    // From the first byte of a request until its last (head and body): the worker's --header-timeout
    // runs from that first byte, so a client trickling a byte a second (slowloris) is cut off.
    bool mid_request() const override { return reader_.mid_request(); }
    // Only a close the client asked for, with nothing after its request, needs no lingering close.
    bool input_may_follow() const override { return !clean_close_; }
    void on_request_timeout(Conn& reply) override;

private:
    void route(const http::RequestHead& head);
    void respond(std::string& out, bool keep_alive) const;

    const HttpOptions& opt_;
    http::RequestReader reader_;
    size_t fill_ = 0;        // N for /bytes/N
    int status_ = 0;         // the answer to the request being read, decided with its head
    bool use_fill_ = false;  // the answer is /bytes/N's
    bool clean_close_ = false;
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

void HttpSession::respond(std::string& out, bool keep_alive) const {
    http::Response r;
    r.status = status_;
    r.keep_alive = keep_alive;
    r.head = reader_.head().method == http::Method::head;
    if (use_fill_) r.use_fill = true, r.fill_bytes = fill_;
    else r.body = status_ == 200 ? http::kRootBody : http::error_body(status_);
    r.allow_header = status_ == 405;
    http::append_response(out, r);
}

size_t HttpSession::on_data(std::span<char> bytes, Conn& reply) {
    // One buffer per worker thread: a session is only ever called on its worker's thread.
    thread_local std::string out;
    out.clear();
    std::string_view in(bytes.data(), bytes.size());
    uint64_t answered = 0;
    bool stop = false;
    while (!stop) {
        const auto event = reader_.next(in);
        if (event == http::RequestReader::Event::need_more) break;
        if (event == http::RequestReader::Event::head) {
            route(reader_.head());
            if (reader_.head().expect_continue) {
                if (status_ != 200) {
                    // RFC 9110 10.1.1: the final answer instead of 100, and the content is not read.
                    respond(out, false);
                    ++answered;
                    stop = true;
                } else {
                    out += "HTTP/1.1 100 Continue\r\n\r\n";
                }
            }
        } else if (event == http::RequestReader::Event::message) {
            // The answer is the last after Connection: close and once this read's answers passed the budget.
            const bool asked = reader_.head().keep_alive;
            const bool keep_alive = asked && out.size() < kOutputBudget;
            respond(out, keep_alive);
            ++answered;
            if (!keep_alive) {
                stop = true;
                clean_close_ = !asked && in.empty();
            }
        } else {  // error
            append_error(out, reader_.status(), reader_.head().method == http::Method::head);
            ++answered;  // an error answer is an answered request too
            stop = true;
        }
    }
    if (!out.empty()) reply.send(std::string_view(out));
    if (answered > 0) reply.count_requests(answered);
    if (stop) reply.close();
    if (out.capacity() > (64u << 10)) std::string().swap(out);  // do not keep a /bytes/N buffer around
    return bytes.size();  // the reader keeps what it needs of an unfinished head
}

// The request time-out, outside any on_data call: 408 and close.
void HttpSession::on_request_timeout(Conn& reply) {
    std::string out;
    append_error(out, 408, reader_.head().method == http::Method::head);
    reply.send(std::string_view(out));
    reply.count_requests();
    reply.close();
}

class HttpProtocol final : public Protocol {
public:
    explicit HttpProtocol(const HttpOptions& opt) : opt_(opt) {}
    std::string_view name() const override { return "http"; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<HttpSession>(opt_); }

private:
    HttpOptions opt_;
};

}  // namespace

std::unique_ptr<Protocol> make_http_protocol(const HttpOptions& options) {
    return std::make_unique<HttpProtocol>(options);
}

}  // namespace kq
