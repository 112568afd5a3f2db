// HTTP/1.1 request framing, written here, strict to RFC 9112. It replaces Debian's http-parser (unmaintained
// since 2022 and built without its strict checks: it took whitespace before a colon, a bare CR as a line end
// and any two bytes after chunk data) and the fast path that ran in front of it. Boost.Beast's basic_parser
// (1.74 in Debian) was the other candidate; it is not used because it takes obsolete line folding, leaves Host
// and the Transfer-Encoding rules for requests to its caller, and would have stayed a second parser behind a
// fast path anyway. Beast is instead the independent parser fuzz/fuzz_http checks this one against.
//
// Every decision, with its section (docs/design.md, "HTTP framing decisions", has the table):
//   lines       end in CRLF, or a bare LF in the request-line and field lines (§2.2 allows it); a CR not
//               followed by LF anywhere in a head -> 400. Chunk-size lines, chunk data and trailers end in
//               CRLF only (a bare LF there -> 400).
//   before      empty lines before the request-line are skipped (§2.2) but belong to the head: they count
//               against max_header and make the connection mid-request (the request time-out runs).
//   request-line  method SP request-target SP HTTP-version, exactly one SP each (§3); no version -> 400
//               (no HTTP/0.9); "HTTP/" DIGIT "." DIGIT else 400; major != 1 -> 505; 1.x for x >= 1 is 1.1.
//               A request-line longer than max_header -> 414 (§3), counted with the empty lines before it.
//   method      a token (§9.1 of RFC 9110), case-sensitive; one this server does not know -> 501, decided
//               once the request-line is complete and valid.
//   target      visible ASCII except '#' (§3.2); origin-form "/..." for any method, absolute-form
//               "scheme://authority..." for any method (routed on its path, §3.2.2; the authority checked
//               as Host is, and not empty, RFC 9110 §4.2.1), authority-form only
//               and always for CONNECT, "*" only for OPTIONS; anything else -> 400. The path is the target
//               up to '?'.
//   fields      name ":" OWS value OWS; the name a token, the colon right after it (whitespace before it or
//               in the name -> 400, §5.1); a line beginning with SP/HTAB (obsolete folding, or whitespace
//               before the first field) -> 400 (§5.2, §2.2); value bytes are VCHAR, obs-text, SP, HTAB
//               (a CTL or NUL -> 400, RFC 9110 §5.5). The whole head over max_header -> 431.
//   Host        HTTP/1.1 needs exactly one, HTTP/1.0 at most one (§3.2); its value empty or
//               uri-host [":" port] (RFC 9110 §7.2), else 400.
//   Content-Length  1*DIGIT after the OWS is stripped; a list, a sign, anything else, or a second
//               Content-Length line -> 400 (§6.3 item 5). Too big for 64 bits: content_length = UINT64_MAX.
//   Transfer-Encoding  lines combine into one list (RFC 9110 §5.3), empty elements skipped, but a line
//               naming no coding at all -> 400 (nothing to combine, and parsers disagree on it); with
//               Content-Length -> 400 (§6.3 item 3); in HTTP/1.0 -> 400 (§6.1); the final coding not chunked,
//               or chunked more than once -> 400 (§6.3 item 4, §7); another coding before chunked -> 501
//               (§6.1, none is implemented here).
//   Connection  a list of tokens: "close" ends the connection after the answer, "keep-alive" keeps an
//               HTTP/1.0 one open (§9.3); anything else (Upgrade included) is ignored.
//   Expect      "100-continue" in an HTTP/1.1 request with content sets expect_continue (RFC 9110 §10.1.1);
//               other expectations are ignored.
//   chunked     chunk-size = 1*HEXDIG, then optional BWS ";" extension up to CRLF (extension bytes are not
//               interpreted); whitespace after the size without ";" -> 400; chunk data then exactly CRLF;
//               the last chunk's trailer fields follow field syntax (no folding) and are discarded (§7.1).
//               Extension and trailer bytes, and leading zeros of chunk sizes, together count against
//               max_header (431).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kq::http {

enum class Method : uint8_t { get, head, post, put, del, connect, options, trace, patch, unknown };
// "GET", "HEAD", ...; "" for unknown (for logs and tests).
std::string_view method_name(Method m);

struct RequestHead {
    std::string_view target;      // as sent; a slice of the input or of the reader's buffer
    std::string_view path;        // origin-form: target up to '?'; absolute-form: its path ("/" if none);
                                  // authority-form and "*": empty
    uint64_t content_length = 0;  // Content-Length's value; UINT64_MAX if it does not fit
    size_t size = 0;              // bytes of the head, the empty lines before it and its final line included
    Method method = Method::unknown;
    uint8_t minor = 1;             // 0 or 1: HTTP/1.0 or HTTP/1.1 (and any 1.x, x >= 1)
    bool keep_alive = true;        // the connection stays open after the answer (version and Connection)
    bool chunked = false;          // Transfer-Encoding ends in chunked
    bool has_length = false;       // a Content-Length field
    bool expect_continue = false;  // HTTP/1.1, "Expect: 100-continue", and content follows
    bool has_body() const { return chunked || content_length > 0; }
};

// Parses the request head at the start of `in`. Returns:
//   size > 0, status 0   a complete, valid head of `size` bytes; `out` is filled (slices point into `in`)
//   size 0, status 0     no error in the complete lines seen so far and the head is not complete: more bytes
//                        are needed (in.size() <= max_header then, else it would be 414 or 431)
//   status > 0           the request is invalid: 400, 414, 431, 501 or 505, the answer before closing
// Checks every complete line of `in`, so an error is found as soon as the line holding it has arrived.
struct HeadResult {
    size_t size = 0;
    int status = 0;
};
HeadResult parse_head(std::string_view in, size_t max_header, RequestHead& out);

// What the field lines said so far (internal to the parse).
struct HeadFields {
    int hosts = 0;
    int te_chunked = 0;  // how many times chunked appears in Transfer-Encoding
    bool te = false;     // a Transfer-Encoding field
    bool te_last_chunked = false;
    bool te_other = false;  // a coding other than chunked
    bool close = false;
    bool keep_alive = false;
    bool expect = false;
};

// Where a parse of an incomplete head stopped. parse_head(in, max_header, state, out) goes on from there when
// `in` holds the same bytes and more, so a head that arrives in many reads is read once, not once per read.
struct HeadState {
    enum class Step : uint8_t { lead, method, target, version, line_end, field, name, value, field_end, head_end };
    static constexpr size_t kNoPath = SIZE_MAX, kRootPath = SIZE_MAX - 1;
    size_t pos = 0;   // the next byte to look at
    size_t line = 0;  // where the current line began
    size_t mark = 0;  // where the current field value began
    size_t target_begin = 0, target_size = 0;
    size_t path_offset = kNoPath, path_size = 0;  // the path within the target
    Step step = Step::lead;
    HeadFields fields;
};
// `out` holds what the parse found so far between the calls (complete once the result says so).
HeadResult parse_head(std::string_view in, size_t max_header, HeadState& state, RequestHead& out);

// The chunked body after a head: chunk-size lines, data, the last chunk and the trailer section.
class ChunkedDecoder {
public:
    // Consumes bytes from the start of `in` until the body ends or `in` does. Returns how many were
    // consumed; `data` grows by the chunk-data bytes among them (this server reads and discards content).
    // max_header bounds extension and trailer bytes (431), max_body the sum of chunk sizes (413).
    size_t feed(std::string_view in, uint64_t& data, size_t max_header, uint64_t max_body);
    bool done() const { return state_ == State::done; }
    int status() const { return status_; }  // > 0 once invalid: the answer before closing
    void reset() { *this = ChunkedDecoder(); }

private:
    enum class State : uint8_t {
        size_first,
        size,
        size_ws,
        ext,
        size_lf,
        data,
        data_cr,
        data_lf,
        trailer_start,
        trailer_name,
        trailer_value,
        trailer_lf,
        end_lf,
        done,
        error
    };
    size_t fail(int status, size_t used);
    uint64_t left_ = 0;   // data bytes left in the current chunk, or the chunk size being read
    uint64_t total_ = 0;  // sum of chunk sizes so far
    size_t meta_ = 0;     // extension and trailer bytes, and leading zeros of sizes, so far
    int status_ = 0;
    State state_ = State::size_first;
};

struct Limits {
    size_t max_header = 8 * 1024;
    uint64_t max_body = 1024 * 1024;
};

// One connection's request stream: heads split across reads are kept (at most max_header + 1 bytes),
// bodies are read and discarded. next() reports one event at a time, each in the read that completes it,
// an error as soon as the byte that shows it has arrived. A head arriving in many reads is parsed once:
// each read goes on where the last stopped.
class RequestReader {
public:
    enum class Event : uint8_t {
        need_more,  // `in` is used up: wait for more bytes
        head,       // a head is complete: head() is valid until the next call
        message,    // the request (head and content) is complete; the next request starts after it
        error,      // the stream is invalid from here: status() is the answer, nothing more is read
    };
    explicit RequestReader(Limits limits) : limits_(limits) {}
    // Consumes bytes from the front of `in` up to the next event.
    Event next(std::string_view& in);
    // After a head event, the head; after an error or while a request is under way, what is known of the
    // current request so far (its method once its request-line was read whole and valid, else unknown).
    const RequestHead& head() const { return head_; }
    int status() const { return status_; }
    // From the first byte of a request (an empty line before it included) until its last.
    bool mid_request() const { return phase_ != Phase::idle || partial_; }
    uint64_t body_bytes() const { return body_; }  // content bytes of the current request so far
    // The bytes of a head that began in an earlier read (kept across reads, and after its head or error
    // event until the next call), for an access log's request-line; empty when the head (or the part
    // refused) lay whole in the bytes the last next() was given, which then began with it.
    std::string_view held_head() const { return buffer_ ? std::string_view(buffer_->bytes) : std::string_view(); }

private:
    enum class Phase : uint8_t { idle, head_done, length, chunked, failed };
    // A head that began in an earlier read (and, once reported, until the next call).
    struct Partial {
        std::string bytes;
        HeadState state;  // where its parse stopped
    };
    Event fail(int status);
    Event read_head(std::string_view& in);
    Limits limits_;
    RequestHead head_;
    std::unique_ptr<Partial> buffer_;  // allocated only then: a connection between requests holds none
    ChunkedDecoder chunked_;
    uint64_t left_ = 0;  // Content-Length bytes still to read
    uint64_t body_ = 0;
    Phase phase_ = Phase::idle;
    bool partial_ = false;  // buffer_ holds the start of a head not yet complete
    int status_ = 0;
};

}  // namespace kq::http
