// Strict HTTP/1.1 request framing: the rules and their RFC 9112 sections are in http_request.hpp.
// The head is read in one table-driven pass, each byte checked once; a chunked body byte by byte, except
// chunk data, which is skipped whole.
#include "http_request.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace kq::http {
namespace {

constexpr uint64_t kNoFit = std::numeric_limits<uint64_t>::max();
constexpr std::string_view kRootPath = "/";  // the path of an absolute-form target without one

// Byte classes, one table each.
enum : uint8_t {
    kToken = 1,    // tchar (RFC 9110 §5.6.2)
    kTarget = 2,   // a request-target byte: VCHAR except '#'
    kValue = 4,    // a field-value byte: VCHAR, obs-text, SP, HTAB
    kRegName = 8,  // unreserved / sub-delims (uri-host's reg-name without pct-encoded, RFC 3986 §3.2.2)
    kHexDigit = 16,
    kScheme = 32,  // ALPHA / DIGIT / "+" / "-" / "."
};

constexpr std::array<uint8_t, 256> make_classes() {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        uint8_t v = 0;
        if (alpha || digit || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos)
            v |= kToken;
        if (c > 0x20 && c < 0x7f && c != '#') v |= kTarget;
        if ((c >= 0x20 && c != 0x7f) || c == '\t') v |= kValue;
        if (alpha || digit || std::string_view("-._~!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos)
            v |= kRegName;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHexDigit;
        if (alpha || digit || c == '+' || c == '-' || c == '.') v |= kScheme;
        t[static_cast<size_t>(c)] = v;
    }
    return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

bool is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c; }
bool is_ws(char c) { return c == ' ' || c == '\t'; }

int hex_value(char c) {
    if (c <= '9') return c - '0';
    return (c | 0x20) - 'a' + 10;
}

// Past the run of `cls` bytes at p.
const char* skip(const char* p, const char* end, uint8_t cls) {
    while (p < end && is(*p, cls)) ++p;
    return p;
}

// Eight bytes at a time (SWAR) for the long runs, the target and field values: a word is skipped whole when
// none of its bytes can end or break the run, else the table decides byte by byte. On any byte order.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;
uint64_t load8(const char* p) {
    uint64_t x;
    std::memcpy(&x, p, sizeof x);
    return x;
}
uint64_t any_below(uint64_t x, uint8_t n) { return (x - kOnes * n) & ~x & kHighs; }  // n <= 128: exact
uint64_t any_equal(uint64_t x, uint8_t b) { return any_below(x ^ (kOnes * b), 1); }

// Past the request-target bytes at p: VCHAR except '#'.
const char* skip_target(const char* p, const char* end) {
    for (; end - p >= 8; p += 8) {
        const uint64_t x = load8(p);
        if ((any_below(x, 0x21) | any_equal(x, 0x7f) | any_equal(x, '#') | (x & kHighs)) != 0) break;
    }
    return skip(p, end, kTarget);
}

// Past the field-value bytes at p: VCHAR, obs-text, SP, HTAB (a word with a tab takes the slow way).
const char* skip_value(const char* p, const char* end) {
    for (; end - p >= 8; p += 8) {
        const uint64_t x = load8(p);
        if ((any_below(x, 0x20) | any_equal(x, 0x7f)) != 0) break;
    }
    return skip(p, end, kValue);
}

// Length of the run of `cls` bytes at the start of s.
size_t span_of(std::string_view s, uint8_t cls) {
    return static_cast<size_t>(skip(s.data(), s.data() + s.size(), cls) - s.data());
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
    return s;
}

// ASCII case-insensitive equality with a lower-case literal.
bool iequals(std::string_view s, std::string_view literal) {
    if (s.size() != literal.size()) return false;
    for (size_t i = 0; i < s.size(); ++i)
        if (lower(s[i]) != literal[i]) return false;
    return true;
}

Method method_of(std::string_view m) {
    switch (m.size()) {
    case 3:
        if (m == "GET") return Method::get;
        if (m == "PUT") return Method::put;
        break;
    case 4:
        if (m == "HEAD") return Method::head;
        if (m == "POST") return Method::post;
        break;
    case 5:
        if (m == "TRACE") return Method::trace;
        if (m == "PATCH") return Method::patch;
        break;
    case 6:
        if (m == "DELETE") return Method::del;
        break;
    case 7:
        if (m == "CONNECT") return Method::connect;
        if (m == "OPTIONS") return Method::options;
        break;
    default:
        break;
    }
    return Method::unknown;
}

// uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2); with need_port, the port is there and not empty.
bool valid_authority(std::string_view v, bool need_port) {
    const char* p = v.data();
    const char* const end = p + v.size();
    if (p < end && *p == '[') {  // IP-literal: IPv6address or IPvFuture, bytes checked loosely
        const char* const start = ++p;
        while (p < end && (is(*p, kRegName) || *p == ':')) ++p;
        if (p == end || *p != ']' || p == start) return false;
        ++p;
    } else {
        for (;;) {
            p = skip(p, end, kRegName);
            if (p == end || *p != '%') break;
            if (end - p < 3 || !is(p[1], kHexDigit) || !is(p[2], kHexDigit)) return false;  // pct-encoded
            p += 3;
        }
    }
    if (p == end) return !need_port;
    if (*p++ != ':' || (need_port && p == end)) return false;
    for (; p < end; ++p)
        if (!is_digit(*p)) return false;
    return true;
}

// Once the request-line is complete and well-formed: its version, method and target form. Fills method,
// path and minor; target is set.
int check_request_line(std::string_view method, char major, char minor, RequestHead& out) {
    if (major != '1') return 505;
    out.minor = minor == '0' ? 0 : 1;
    out.method = method_of(method);
    if (out.method == Method::unknown) return 501;
    const std::string_view target = out.target;
    if (out.method == Method::connect) return valid_authority(target, true) ? 0 : 400;  // authority-form
    if (target[0] == '/') {                                                             // origin-form
        out.path = target.substr(0, target.find('?'));
        return 0;
    }
    if (target == "*") return out.method == Method::options ? 0 : 400;  // asterisk-form
    // absolute-form: scheme "://" authority, then the path it is routed on. (An absolute-URI without an
    // authority, "a:80" or "urn:x", names no resource an HTTP server has: 400.) The authority is checked as
    // Host is; an empty host is invalid (RFC 9110 §4.2.1), userinfo too (§4.2.4: no '@' in uri-host).
    const size_t s = span_of(target, kScheme);
    if (s == 0 || !is_alpha(target[0]) || target.substr(s, 3) != "://") return 400;
    std::string_view after = target.substr(s + 3);
    const std::string_view authority = after.substr(0, after.find_first_of("/?"));
    if (authority.empty() || authority[0] == ':' || !valid_authority(authority, false)) return 400;
    after.remove_prefix(authority.size());
    out.path = after.substr(0, after.find('?'));
    if (out.path.empty()) out.path = kRootPath;
    return 0;
}

// Splits a comma-separated list, calling f with each non-empty, OWS-trimmed element until f returns false.
template <class F>
bool for_each_element(std::string_view v, F f) {
    while (true) {
        const size_t comma = v.find(',');
        const std::string_view e = trim_ows(v.substr(0, comma));
        if (!e.empty() && !f(e)) return false;
        if (comma == std::string_view::npos) return true;
        v.remove_prefix(comma + 1);
    }
}

// One field line's name and value (OWS already trimmed); both were checked byte by byte.
int parse_field(std::string_view name, std::string_view value, RequestHead& out, HeadFields& f) {
    switch (name.size()) {
    case 4:
        if (iequals(name, "host")) {
            if (++f.hosts > 1) return 400;
            if (!value.empty() && !valid_authority(value, false)) return 400;
        }
        break;
    case 6:
        if (iequals(name, "expect") && iequals(value, "100-continue")) f.expect = true;
        break;
    case 10:
        if (iequals(name, "connection")) {
            for_each_element(value, [&](std::string_view e) {
                if (iequals(e, "close")) f.close = true;
                else if (iequals(e, "keep-alive")) f.keep_alive = true;
                return true;
            });
        }
        break;
    case 14:
        if (iequals(name, "content-length")) {
            if (out.has_length || value.empty()) return 400;
            uint64_t length = 0;
            for (const char c : value) {
                if (!is_digit(c)) return 400;
                const uint64_t d = static_cast<uint64_t>(c - '0');
                length = length > (kNoFit - d) / 10 ? kNoFit : length * 10 + d;
            }
            out.has_length = true;
            out.content_length = length;
        }
        break;
    case 17:
        if (iequals(name, "transfer-encoding")) {
            f.te = true;
            bool any = false;  // a line that names no coding is refused, wherever it stands
            const bool ok = for_each_element(value, [&](std::string_view e) {
                any = true;
                const size_t coding = span_of(e, kToken);
                if (coding == 0) return false;
                const std::string_view params = trim_ows(e.substr(coding));
                if (!params.empty() && params[0] != ';') return false;
                const bool chunked = params.empty() && iequals(e.substr(0, coding), "chunked");
                f.te_chunked += chunked;
                f.te_other |= !chunked;
                f.te_last_chunked = chunked;
                return true;
            });
            if (!ok || !any) return 400;
        }
        break;
    default:
        break;
    }
    return 0;
}

// Once the head is complete: the rules that need every field.
int finish(RequestHead& out, const HeadFields& f) {
    if (out.minor == 1 ? f.hosts != 1 : f.hosts > 1) return 400;
    out.chunked = false;
    if (f.te) {
        if (out.has_length || out.minor == 0 || !f.te_last_chunked || f.te_chunked > 1) return 400;
        if (f.te_other) return 501;
        out.chunked = true;
    }
    out.keep_alive = out.minor == 1 ? !f.close : f.keep_alive && !f.close;
    out.expect_continue = f.expect && out.minor == 1 && out.has_body();
    return 0;
}

// A line end at p: CRLF or a bare LF. ok: p moves past it; more: the input ends first; bad: another byte.
enum class Eol : uint8_t { ok, more, bad };
Eol line_end(const char*& p, const char* end) {
    if (p == end) return Eol::more;
    if (*p == '\n') {
        ++p;
        return Eol::ok;
    }
    if (*p != '\r') return Eol::bad;
    if (p + 1 == end) return Eol::more;
    if (p[1] != '\n') return Eol::bad;
    p += 2;
    return Eol::ok;
}

}  // namespace

std::string_view method_name(Method m) {
    switch (m) {
    case Method::get:
        return "GET";
    case Method::head:
        return "HEAD";
    case Method::post:
        return "POST";
    case Method::put:
        return "PUT";
    case Method::del:
        return "DELETE";
    case Method::connect:
        return "CONNECT";
    case Method::options:
        return "OPTIONS";
    case Method::trace:
        return "TRACE";
    case Method::patch:
        return "PATCH";
    case Method::unknown:
        break;
    }
    return "";
}

// One pass over the bytes, each checked once against its class, over the first max_header bytes only: a
// head within the limit lies wholly among them, an error found there is reported (400) as soon as its
// byte has arrived, and running out of them means 414 (still in the request-line) or 431. The answer thus
// depends only on those bytes, never on how they were split into reads. A parse that runs out of bytes
// leaves `st` where it stopped; called again with more bytes (the same ones first), it goes on from there,
// so a head arriving in many reads is still read once.
HeadResult parse_head(std::string_view in, size_t max_header, HeadState& st, RequestHead& out) {
    using Step = HeadState::Step;
    if (st.step == HeadState::Step::lead && st.pos == 0) out = RequestHead{};
    const char* const begin = in.data();
    const char* const end = begin + std::min(in.size(), max_header);
    const bool clipped = in.size() > max_header;
    const char* p = begin + st.pos;
    const char* q = nullptr;
    int status = 0;
    Eol e = Eol::ok;
    // Out of bytes at p in `step`: to be resumed there; 414 or 431 if that was the limit.
    const auto more = [&](Step step) {
        st.step = step;
        st.pos = static_cast<size_t>(p - begin);
        return HeadResult{0, !clipped ? 0 : step <= Step::line_end ? 414 : 431};
    };
    constexpr HeadResult bad{0, 400};
    switch (st.step) {
    case Step::lead:
        goto lead;
    case Step::method:
        goto method;
    case Step::target:
        goto target;
    case Step::version:
        goto version;
    case Step::line_end:
        goto line_end;
    case Step::field:
        goto field;
    case Step::name:
        goto name;
    case Step::value:
        goto value;
    case Step::field_end:
        goto field_end;
    case Step::head_end:
        goto head_end;
    }

lead:  // empty lines before the request-line
    while (p < end && (*p == '\r' || *p == '\n')) {
        q = p;
        e = line_end(q, end);
        if (e == Eol::more) return more(Step::lead);
        if (e == Eol::bad) return bad;
        p = q;
    }
    if (p == end) return more(Step::lead);
    st.line = static_cast<size_t>(p - begin);
method:  // method SP request-target SP HTTP-version
    p = skip(p, end, kToken);
    if (p == end) return more(Step::method);
    if (p == begin + st.line || *p != ' ') return bad;
    st.target_begin = static_cast<size_t>(++p - begin);
target:
    p = skip_target(p, end);
    if (p == end) return more(Step::target);
    if (p == begin + st.target_begin || *p != ' ') return bad;
    st.target_size = static_cast<size_t>(p - begin) - st.target_begin;
    ++p;
version:
    if (const size_t done = static_cast<size_t>(p - begin) - st.target_begin - st.target_size - 1;
        done == 0 && end - p >= 8 && (std::memcmp(p, "HTTP/1.1", 8) == 0 || std::memcmp(p, "HTTP/1.0", 8) == 0)) {
        p += 8;  // nearly always
    } else {
        static constexpr char kVersion[] = "HTTP/D.D";  // D: a digit
        for (size_t i = done; i < 8; ++i, ++p) {
            if (p == end) return more(Step::version);
            if (kVersion[i] == 'D' ? !is_digit(*p) : *p != kVersion[i]) return bad;
        }
    }
line_end:
    q = p;
    e = line_end(q, end);
    if (e == Eol::more) return more(Step::line_end);
    if (e == Eol::bad) return bad;
    {
        const char* const version_text = begin + st.target_begin + st.target_size + 1;
        out.target = std::string_view(begin + st.target_begin, st.target_size);
        status = check_request_line(std::string_view(begin + st.line, st.target_begin - 1 - st.line), version_text[5],
                                    version_text[7], out);
        if (status != 0) return {0, status};
        // The path as an offset into the target (or none, or the "/" of an absolute-form without one).
        st.path_offset = out.path.empty() ? HeadState::kNoPath
                         : out.path.data() == kRootPath.data()
                             ? HeadState::kRootPath
                             : static_cast<size_t>(out.path.data() - out.target.data());
        st.path_size = out.path.size();
    }
    p = q;
field:  // field lines up to the empty line
    if (p == end) return more(Step::field);
    if (*p == '\r' || *p == '\n') goto head_end;
    if (is_ws(*p)) return bad;  // obsolete folding, or whitespace before the first field
    st.line = static_cast<size_t>(p - begin);
name:
    p = skip(p, end, kToken);
    if (p == end) return more(Step::name);
    if (p == begin + st.line || *p != ':') return bad;
    st.mark = static_cast<size_t>(++p - begin);  // the value begins
value:
    p = skip_value(p, end);
    if (p == end) return more(Step::value);
field_end:
    q = p;
    e = line_end(q, end);
    if (e == Eol::more) return more(Step::field_end);
    if (e == Eol::bad) return bad;
    status = parse_field(std::string_view(begin + st.line, st.mark - 1 - st.line),
                         trim_ows(std::string_view(begin + st.mark, static_cast<size_t>(p - begin) - st.mark)), out,
                         st.fields);
    if (status != 0) return {0, status};
    p = q;
    goto field;
head_end:
    q = p;
    e = line_end(q, end);
    if (e == Eol::more) return more(Step::head_end);
    if (e == Eol::bad) return bad;
    if ((status = finish(out, st.fields)) != 0) return {0, status};
    // The slices again, from offsets: a caller that resumed may have moved the bytes since the request-line.
    out.target = std::string_view(begin + st.target_begin, st.target_size);
    out.path = st.path_offset == HeadState::kNoPath     ? std::string_view()
               : st.path_offset == HeadState::kRootPath ? kRootPath
                                                        : out.target.substr(st.path_offset, st.path_size);
    out.size = static_cast<size_t>(q - begin);
    return {out.size, 0};
}

HeadResult parse_head(std::string_view in, size_t max_header, RequestHead& out) {
    HeadState st;
    return parse_head(in, max_header, st, out);
}

size_t ChunkedDecoder::fail(int status, size_t used) {
    state_ = State::error;
    status_ = status;
    return used;
}

size_t ChunkedDecoder::feed(std::string_view in, uint64_t& data, size_t max_header, uint64_t max_body) {
    if (state_ == State::done || state_ == State::error) return 0;
    size_t i = 0;
    while (i < in.size()) {
        if (state_ == State::data) {  // the bulk: skipped whole
            const uint64_t n = std::min<uint64_t>(left_, in.size() - i);
            i += n;
            data += n;
            left_ -= n;
            if (left_ == 0) state_ = State::data_cr;
            continue;
        }
        const char c = in[i++];
        switch (state_) {
        case State::size_first:
            if (!is(c, kHexDigit)) return fail(400, i);
            left_ = static_cast<uint64_t>(hex_value(c));
            state_ = State::size;
            break;
        case State::size:
            if (is(c, kHexDigit)) {
                if (left_ == 0 && ++meta_ > max_header) return fail(431, i);  // leading zeros: no size, only bytes
                if (left_ > (kNoFit >> 4)) return fail(413, i);
                left_ = left_ << 4 | static_cast<uint64_t>(hex_value(c));
            } else if (c == '\r') {
                state_ = State::size_lf;
            } else if (c == ';') {
                state_ = State::ext;
            } else if (is_ws(c)) {
                state_ = State::size_ws;
            } else {
                return fail(400, i);
            }
            break;
        case State::size_ws:
            if (c == ';') state_ = State::ext;
            else if (!is_ws(c)) return fail(400, i);
            break;
        case State::ext:
            if (c == '\r') {
                state_ = State::size_lf;
                break;
            }
            if (!is(c, kValue)) return fail(400, i);
            if (++meta_ > max_header) return fail(431, i);
            break;
        case State::size_lf:
            if (c != '\n') return fail(400, i);
            if (left_ > max_body - std::min(total_, max_body)) return fail(413, i);
            total_ += left_;
            state_ = left_ == 0 ? State::trailer_start : State::data;
            break;
        case State::data_cr:
            if (c != '\r') return fail(400, i);
            state_ = State::data_lf;
            break;
        case State::data_lf:
            if (c != '\n') return fail(400, i);
            state_ = State::size_first;
            break;
        case State::trailer_start:
            if (c == '\r') {
                state_ = State::end_lf;
                break;
            }
            if (!is(c, kToken)) return fail(400, i);
            if (++meta_ > max_header) return fail(431, i);
            state_ = State::trailer_name;
            break;
        case State::trailer_name:
            if (c == ':') state_ = State::trailer_value;
            else if (!is(c, kToken)) return fail(400, i);
            if (++meta_ > max_header) return fail(431, i);
            break;
        case State::trailer_value:
            if (c == '\r') state_ = State::trailer_lf;
            else if (!is(c, kValue)) return fail(400, i);
            if (++meta_ > max_header) return fail(431, i);
            break;
        case State::trailer_lf:
            if (c != '\n') return fail(400, i);
            state_ = State::trailer_start;
            break;
        case State::end_lf:
            if (c != '\n') return fail(400, i);
            state_ = State::done;
            return i;
        case State::data:  // handled above
        case State::done:
        case State::error:
            break;
        }
    }
    return i;
}

RequestReader::Event RequestReader::fail(int status) {
    phase_ = Phase::failed;
    status_ = status;
    return Event::error;
}

RequestReader::Event RequestReader::read_head(std::string_view& in) {
    if (in.empty()) return Event::need_more;
    HeadResult r;
    if (!partial_) {
        HeadState st;
        r = parse_head(in, limits_.max_header, st, head_);
        if (r.status != 0) return fail(r.status);
        if (r.size == 0) {  // the rest of this read starts a head: keep it, and where its parse stopped
            buffer_ = std::make_unique<Partial>();
            buffer_->bytes.assign(in);
            buffer_->state = st;
            in = {};
            partial_ = true;
            return Event::need_more;
        }
        in.remove_prefix(r.size);
    } else {
        // The buffer holds at most max_header bytes here (more would have been an error): take enough to know.
        Partial& part = *buffer_;
        std::string& buffer = part.bytes;
        const size_t old = buffer.size();
        const size_t room = limits_.max_header - old;
        const size_t take = in.size() <= room ? in.size() : room + 1;
        buffer.append(in.data(), take);
        r = parse_head(buffer, limits_.max_header, part.state, head_);  // from where it stopped
        if (r.status != 0) return fail(r.status);
        if (r.size == 0) {
            in.remove_prefix(take);
            return Event::need_more;
        }
        in.remove_prefix(r.size - old);  // the head's last line end is among the new bytes
        partial_ = false;                // the buffer stays until the next call: head_ points into it
    }
    // (A length that does not fit in 64 bits is too large whatever max_body says.)
    if (head_.has_length && (head_.content_length > limits_.max_body || head_.content_length == kNoFit))
        return fail(413);
    body_ = 0;
    phase_ = Phase::head_done;
    return Event::head;
}

RequestReader::Event RequestReader::next(std::string_view& in) {
    if (phase_ == Phase::failed) return Event::error;
    if (!partial_ && buffer_) buffer_.reset();  // the last head's bytes; split heads are rare
    switch (phase_) {
    case Phase::idle:
        return read_head(in);
    case Phase::head_done:
        if (head_.chunked) {
            chunked_.reset();
            phase_ = Phase::chunked;
        } else if (head_.content_length > 0) {
            left_ = head_.content_length;
            phase_ = Phase::length;
        } else {
            phase_ = Phase::idle;
            return Event::message;
        }
        return next(in);
    case Phase::length: {
        const uint64_t n = std::min<uint64_t>(left_, in.size());
        in.remove_prefix(n);
        left_ -= n;
        body_ += n;
        if (left_ > 0) return Event::need_more;
        phase_ = Phase::idle;
        return Event::message;
    }
    case Phase::chunked: {
        in.remove_prefix(chunked_.feed(in, body_, limits_.max_header, limits_.max_body));
        if (chunked_.status() != 0) return fail(chunked_.status());
        if (!chunked_.done()) return Event::need_more;
        phase_ = Phase::idle;
        return Event::message;
    }
    case Phase::failed:
        break;
    }
    return Event::error;
}

}  // namespace kq::http
