// libFuzzer target for the HTTP request path: the input, cut into reads at points its first bytes choose,
// goes through one HTTP Session exactly as the worker feeds it; a recording Reply then checks that every
// answer is well formed, that requests counted match answers written, and that nothing follows close().
//
// Input: byte 0 = options preset (bits 0-1), end with the request time-out instead of EOF (bit 2), number
// of split bytes (bits 4-7); then that many split bytes (each cuts the payload at byte*len/256); then the
// payload, the bytes a client sent. A seed "\x00GET / HTTP/1.1\r\n\r\n" is one unsplit request.
#include <http_parser.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http_simple.hpp"
#include "kq/http.hpp"

namespace {

const std::string* g_output = nullptr;  // the current input's answers, shown when a check fails

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "fuzz_http: invariant violated: %s\n", what);
    if (g_output != nullptr) {
        std::string shown;
        for (char ch : g_output->substr(0, 4096)) {
            if (ch == '\r') shown += "\\r";
            else if (ch == '\n') shown += "\\n\n";
            else shown += ch;
        }
        std::fprintf(stderr, "session output (%zu bytes):\n%s\n", g_output->size(), shown.c_str());
    }
    std::abort();
}
void check(bool ok, const char* what) {
    if (!ok) violated(what);
}

// Presets that let short inputs reach every limit: defaults, then small header/body/route limits.
kq::HttpOptions preset(int i) {
    kq::HttpOptions o;
    if (i == 1) o.max_header = 256, o.max_body = 64, o.max_bytes_route = 4096;
    if (i == 2) o.max_header = 64;
    if (i == 3) o.max_header = 1024, o.max_body = 0, o.max_bytes_route = 0;
    return o;
}

// One on_data / on_peer_eof / on_request_timeout call: where its output lies, what it counted, and
// whether the connection was closed by the end of it.
struct Call {
    enum Kind { data, eof, timeout } kind = data;
    size_t out_begin = 0, out_end = 0;
    uint64_t counted = 0;
    bool closed = false;
};

class RecordingReply final : public kq::Reply {
public:
    void send(std::span<const char> bytes) override {
        check(!closed_, "send() after close()");
        out_.append(bytes.data(), bytes.size());
    }
    void close() override { closed_ = true; }
    void count_requests(uint64_t n) override { counted_ += n; }

    void begin_call(Call::Kind kind) { calls_.push_back({kind, out_.size(), 0, counted_, false}); }
    void end_call() {
        Call& c = calls_.back();
        c.out_end = out_.size();
        c.counted = counted_ - c.counted;
        c.closed = closed_;
    }
    bool closed() const { return closed_; }
    const std::string& out() const { return out_; }
    const std::vector<Call>& calls() const { return calls_; }

private:
    std::string out_;
    uint64_t counted_ = 0;
    bool closed_ = false;
    std::vector<Call> calls_;
};

// The methods of the requests a plain http-parser completes over the whole payload, in order: the
// session's i-th answer (other than a final error answer) is to the i-th of them.
std::vector<int> reference_methods(std::string_view payload) {
    std::vector<int> methods;
    http_parser_settings s{};
    s.on_message_complete = [](http_parser* p) {
        static_cast<std::vector<int>*>(p->data)->push_back(static_cast<int>(p->method));
        return 0;
    };
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &methods;
    http_parser_execute(&p, &s, payload.data(), payload.size());
    return methods;
}

// The fast path (worker/src/http_simple.hpp) against http-parser: whenever it accepts the start of the
// payload as one simple request, http-parser, fed exactly those bytes, must complete exactly one request,
// at their end, with the same method, URL and keep-alive, no body and no upgrade, and a head that its
// callbacks count within max_header (so --max-header would not have answered 431 on that path).
struct Reference {
    int completed = 0, begun = 0;
    std::string url;
    size_t counted = 0;  // the head as HttpSession's callbacks count it
    bool in_field = false;
};

void check_simple_path(std::string_view payload, size_t max_header) {
    kq::http::SimpleRequest req;
    size_t n = kq::http::parse_simple_request(payload, max_header, req);
    if (n == 0) return;
    check(n <= payload.size(), "fast path: took more bytes than there are");
    Reference ref;
    http_parser_settings s{};
    s.on_message_begin = [](http_parser* p) { return ++static_cast<Reference*>(p->data)->begun, 0; };
    s.on_url = [](http_parser* p, const char* at, size_t len) { return static_cast<Reference*>(p->data)->url.append(at, len), 0; };
    s.on_header_field = [](http_parser* p, const char*, size_t len) {
        auto& r = *static_cast<Reference*>(p->data);
        r.counted += len + (r.in_field ? 0 : 4);  // ": " and CRLF once per line, as the session counts
        r.in_field = true;
        return 0;
    };
    s.on_header_value = [](http_parser* p, const char*, size_t len) {
        auto& r = *static_cast<Reference*>(p->data);
        r.counted += len;
        r.in_field = false;
        return 0;
    };
    s.on_message_complete = [](http_parser* p) { return ++static_cast<Reference*>(p->data)->completed, 0; };
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &ref;
    size_t parsed = http_parser_execute(&p, &s, payload.data(), n);
    check(HTTP_PARSER_ERRNO(&p) == HPE_OK, "fast path: accepted a request http-parser rejects");
    check(parsed == n, "fast path: http-parser stopped elsewhere");
    check(ref.begun == 1 && ref.completed == 1, "fast path: not exactly one complete request to http-parser");
    check(p.method == (req.head ? HTTP_HEAD : HTTP_GET), "fast path: method differs");
    check(ref.url == req.url, "fast path: URL differs");
    check((http_should_keep_alive(&p) != 0) == req.keep_alive, "fast path: keep-alive differs");
    check(p.upgrade == 0 && (p.flags & (F_CHUNKED | F_CONTENTLENGTH)) == 0, "fast path: upgrade or a body");
    ref.counted += std::strlen(http_method_str(static_cast<http_method>(p.method))) + ref.url.size() + 14;
    check(ref.counted <= max_header, "fast path: a head the callbacks would have refused with 431");
}

// The statuses this server may send and their phrases, written out here rather than taken from the
// server's table: an oracle that shares the code under test would agree with its mistakes.
std::string_view reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    default: violated("unexpected status code");
    }
}
std::string error_body(int status) { return std::to_string(status) + " " + std::string(reason(status)) + "\n"; }
constexpr std::string_view kRootBody = "Hello from kqserver\n";  // GET /
bool is_error_answer(int status) { return status == 400 || status == 408 || status == 413 || status == 431; }

struct Response {
    size_t begin = 0, end = 0;
    int status = 0;
    uint64_t content_length = 0;
    bool close = false;
    bool has_body = false;
};

// Parses "HTTP/1.1 NNN Reason\r\n" and the header lines up to the blank line; returns the offset after it.
size_t parse_head(std::string_view out, size_t pos, Response& r) {
    auto line_end = [&](size_t from) {
        size_t e = out.find("\r\n", from);
        check(e != std::string_view::npos, "unterminated header line");
        return e;
    };
    check(out.substr(pos, 9) == "HTTP/1.1 ", "response does not begin with 'HTTP/1.1 '");
    size_t e = line_end(pos);
    std::string_view status_line = out.substr(pos + 9, e - pos - 9);
    check(status_line.size() > 4 && status_line[3] == ' ', "status line is not 'NNN Reason'");
    for (size_t i = 0; i < 3; ++i) check(status_line[i] >= '0' && status_line[i] <= '9', "status is not 3 digits");
    r.status = std::atoi(std::string(status_line.substr(0, 3)).c_str());
    check(status_line.substr(4) == reason(r.status), "reason phrase does not match the status");
    int lengths = 0, connections = 0;
    for (pos = e + 2;; pos = e + 2) {
        e = line_end(pos);
        std::string_view line = out.substr(pos, e - pos);
        if (line.empty()) break;
        size_t colon = line.find(": ");
        check(colon != std::string_view::npos && colon > 0, "header line without 'Name: '");
        std::string_view name = line.substr(0, colon), value = line.substr(colon + 2);
        check(name.find_first_of(" \t\r\n") == std::string_view::npos, "white space in a header name");
        if (name == "Content-Length") {
            ++lengths;
            check(!value.empty() && value.size() <= 19 && value.find_first_not_of("0123456789") == value.npos,
                  "Content-Length is not a decimal number");
            r.content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (name == "Connection") {
            ++connections;
            check(value == "close" || value == "keep-alive", "Connection is neither close nor keep-alive");
            r.close = value == "close";
        }
    }
    check(lengths == 1, "not exactly one Content-Length");
    check(connections == 1, "not exactly one Connection header");
    return e + 2;
}

// A body follows unless the request was HEAD. A HEAD request may still get a body in a final error
// answer (400/408/413/431 close the connection without routing), and then nothing follows it.
void parse_body(std::string_view out, size_t head_end, bool head_request, size_t max_route, Response& r) {
    size_t left = out.size() - head_end;
    if (head_request) {
        r.has_body = left != 0 && !out.substr(head_end).starts_with("HTTP/1.1 ");
        if (r.has_body) {
            check(left == r.content_length, "HEAD answered with a body that is not a final error answer");
            check(is_error_answer(r.status) && r.close, "HEAD answered with a body");
        }
    } else {
        r.has_body = true;
        check(left >= r.content_length, "body shorter than Content-Length");
    }
    r.end = head_end + (r.has_body ? r.content_length : 0);
    std::string_view body = out.substr(head_end, r.has_body ? r.content_length : 0);
    if (r.status != 200) {
        check(r.content_length == error_body(r.status).size(), "error answer's Content-Length is not its body's");
        check(!r.has_body || body == error_body(r.status), "error answer's body does not name its status");
    } else if (r.content_length != kRootBody.size() || (r.has_body && body != kRootBody)) {
        check(r.content_length <= max_route, "200 answer longer than the /bytes/N limit");
        check(body.find_first_not_of('x') == std::string_view::npos, "200 body is neither / nor /bytes/N");
    }
}

// Splits the output into answers; answer i is to a HEAD request if the i-th completed request was one.
std::vector<Response> parse_responses(std::string_view out, const std::vector<int>& methods, size_t max_route) {
    std::vector<Response> rs;
    for (size_t pos = 0; pos < out.size(); pos = rs.back().end) {
        Response r;
        r.begin = pos;
        bool head = rs.size() < methods.size() && methods[rs.size()] == HTTP_HEAD;
        parse_body(out, parse_head(out, pos, r), head, max_route, r);
        rs.push_back(r);
    }
    return rs;
}

// Only the last answer may be an error answer or say close; the ones before it are to requests in order.
void check_answers(const std::vector<Response>& rs, const std::vector<int>& methods) {
    check(rs.size() <= methods.size() + 1, "more answers than requests");
    for (size_t i = 0; i + 1 < rs.size(); ++i) {
        check(!rs[i].close, "an answer saying Connection: close is followed by another");
        bool allowed = methods[i] == HTTP_GET || methods[i] == HTTP_HEAD;
        check((rs[i].status == 405) != allowed, "405 is not exactly the answer to methods other than GET/HEAD");
    }
}

// Per call: count_requests() adds up the answers begun in it; a closing answer closes in the same call,
// and an on_data() that closes has said why in its last answer; EOF and the time-out close.
void check_calls(const RecordingReply& reply, const std::vector<Response>& rs) {
    size_t next = 0;
    for (const Call& c : reply.calls()) {
        size_t first = next;
        while (next < rs.size() && rs[next].begin < c.out_end) ++next;
        check(next - first == c.counted, "count_requests() differs from the answers written in the same call");
        const Response* last = next > first ? &rs[next - 1] : nullptr;
        if (last != nullptr && last->close) check(c.closed, "answered Connection: close but left the connection open");
        if (c.kind == Call::data && c.closed) check(last != nullptr && last->close, "on_data() closed without a closing answer");
        if (c.kind != Call::data) check(c.closed, "the connection is left open after EOF or the request time-out");
        if (c.kind == Call::timeout) {
            check(last != nullptr && next - first == 1 && last->status == 408, "the request time-out did not answer 408");
        }
    }
}

struct Input {
    int preset = 0;
    bool end_with_timeout = false;
    std::vector<size_t> cuts;  // sorted offsets into payload
    std::string_view payload;
};

Input decode(const uint8_t* data, size_t size) {
    Input in;
    in.preset = data[0] & 3;
    in.end_with_timeout = (data[0] & 4) != 0;
    size_t splits = std::min<size_t>(data[0] >> 4, size - 1);
    in.payload = std::string_view(reinterpret_cast<const char*>(data) + 1 + splits, size - 1 - splits);
    for (size_t i = 0; i < splits; ++i) in.cuts.push_back(data[1 + i] * in.payload.size() / 256);
    in.cuts.push_back(in.payload.size());
    std::sort(in.cuts.begin(), in.cuts.end());
    return in;
}

// Feeds the payload as the worker would: in order, at most one read buffer (64 KiB) per call, each call's
// bytes in a buffer of their own (the session may change them; ASan sees any access past them), and no
// call after the session closed. Each on_data() call's output stays within the session's 4 MiB budget
// plus the one answer that crosses it.
void feed(kq::Session& session, const Input& in, size_t max_route, RecordingReply& reply) {
    constexpr size_t kReadBuffer = 64 * 1024, kMaxOutputPerRead = (4u << 20) + 1024;
    size_t pos = 0;
    for (size_t cut : in.cuts) {
        while (pos < cut && !reply.closed()) {
            size_t n = std::min(cut - pos, kReadBuffer);
            std::vector<char> bytes(in.payload.begin() + static_cast<ptrdiff_t>(pos),
                                    in.payload.begin() + static_cast<ptrdiff_t>(pos + n));
            reply.begin_call(Call::data);
            session.on_data(bytes, reply);
            reply.end_call();
            const Call& c = reply.calls().back();
            check(c.out_end - c.out_begin <= kMaxOutputPerRead + max_route, "one read's answers exceed the budget");
            pos += n;
        }
    }
    if (reply.closed()) return;
    bool timeout = in.end_with_timeout && session.mid_request();
    reply.begin_call(timeout ? Call::timeout : Call::eof);
    if (timeout) session.on_request_timeout(reply);
    else session.on_peer_eof(reply);
    reply.end_call();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static std::unique_ptr<kq::Protocol> protocols[] = {kq::make_http_protocol(preset(0)), kq::make_http_protocol(preset(1)),
                                                        kq::make_http_protocol(preset(2)), kq::make_http_protocol(preset(3))};
    Input in = decode(data, size);
    size_t max_route = preset(in.preset).max_bytes_route;
    RecordingReply reply;
    g_output = &reply.out();
    {
        std::unique_ptr<kq::Session> session = protocols[in.preset]->open();
        feed(*session, in, max_route, reply);
    }
    check_simple_path(in.payload, preset(in.preset).max_header);
    std::vector<int> methods = reference_methods(in.payload);
    std::vector<Response> rs = parse_responses(reply.out(), methods, max_route);
    // The shortest request http-parser completes ("GET / HTTP/1.1\n\n") is 16 bytes; one error answer more.
    check(rs.size() <= in.payload.size() / 16 + 1, "more answers than the input could hold requests");
    check_answers(rs, methods);
    check_calls(reply, rs);
    g_output = nullptr;
    return 0;
}
