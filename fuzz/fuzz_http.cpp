// libFuzzer target for the HTTP request path. The payload goes through one HTTP Session, cut into reads at
// points the input's first bytes choose, fed as the worker feeds it (input the session leaves is held and
// offered again, reading pauses and resumes, output drains and on_drained() follows); a recording Conn
// then checks the answers, and that each call's output stays bounded. The same bytes go through kq::http::RequestReader whole and split at the same points (the
// events must be the same), and each request it frames is framed again by Boost.Beast's basic_parser, an
// independent implementation: where both accept, both must frame it the same way.
//
// Input: byte 0 = options preset (bits 0-1), end with the request time-out instead of EOF (bit 2), a slow
// client (bit 3: it reads only when the server waits for it, else after every call), number of split bytes
// (bits 4-7); then that many split bytes (each cuts the payload at byte*len/256); then the
// payload, the bytes a client sent. A seed "\x00GET / HTTP/1.0\r\n\r\n" is one unsplit request.
//
// Run with KQ_FUZZ_HTTP_STATS=1 to see, at exit, how often each documented difference from Beast was
// needed and how often ours refused (with each status) a request Beast accepts.
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_request.hpp"
#include "kq/conn_stub.hpp"
#include "kq/http.hpp"

namespace {

namespace bhttp = boost::beast::http;
using kq::http::Method;
using kq::http::method_name;
using kq::http::RequestReader;
using Event = RequestReader::Event;

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

struct Input {
    int preset = 0;
    bool end_with_timeout = false;
    bool slow_client = false;
    std::vector<size_t> cuts;  // sorted offsets into payload, its size last
    std::string_view payload;
};

Input decode(const uint8_t* data, size_t size) {
    Input in;
    in.preset = data[0] & 3;
    in.end_with_timeout = (data[0] & 4) != 0;
    in.slow_client = (data[0] & 8) != 0;
    size_t splits = std::min<size_t>(data[0] >> 4, size - 1);
    in.payload = std::string_view(reinterpret_cast<const char*>(data) + 1 + splits, size - 1 - splits);
    for (size_t i = 0; i < splits; ++i) in.cuts.push_back(data[1 + i] * in.payload.size() / 256);
    in.cuts.push_back(in.payload.size());
    std::sort(in.cuts.begin(), in.cuts.end());
    return in;
}

// The reads the worker would make of the payload: up to each cut, at most one read buffer (64 KiB) each.
std::vector<std::string_view> reads(const Input& in) {
    constexpr size_t kReadBuffer = 64 * 1024;
    std::vector<std::string_view> out;
    size_t pos = 0;
    for (size_t cut : in.cuts) {
        for (; pos < cut; pos += std::min(cut - pos, kReadBuffer))
            out.push_back(in.payload.substr(pos, std::min(cut - pos, kReadBuffer)));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------
// RequestReader's events, with what each reported copied out (the head's slices do not outlive the call).

struct Ev {
    Event kind = Event::need_more;
    size_t offset = 0;           // payload bytes consumed when it was reported
    kq::http::RequestHead head;  // kind head; target and path cleared, kept below
    std::string target, path;
    uint64_t body = 0;  // kind message: body_bytes()
    int status = 0;     // kind error
};

bool same_head(const kq::http::RequestHead& a, const kq::http::RequestHead& b) {
    return a.method == b.method && a.minor == b.minor && a.keep_alive == b.keep_alive && a.chunked == b.chunked &&
           a.has_length == b.has_length && a.content_length == b.content_length &&
           a.expect_continue == b.expect_continue && a.size == b.size;
}

// Feeds one read, each in a buffer of its own (ASan sees any access past it); false once the stream failed.
bool read_events(RequestReader& reader, std::string_view bytes, size_t base, std::vector<Ev>& out) {
    std::vector<char> copy(bytes.begin(), bytes.end());
    std::string_view in(copy.data(), copy.size());
    for (int idle = 0;;) {
        size_t before = in.size();
        Ev e;
        e.kind = reader.next(in);
        check(in.size() <= before, "RequestReader::next grew its input");
        idle = in.size() == before ? idle + 1 : 0;
        check(idle <= 2, "RequestReader::next reports events without consuming anything");
        e.offset = base + copy.size() - in.size();
        if (e.kind == Event::need_more) return check(in.empty(), "need_more with input left"), true;
        if (e.kind == Event::head) {
            e.head = reader.head();
            e.target = e.head.target, e.path = e.head.path;
            e.head.target = e.head.path = {};
        }
        if (e.kind == Event::message) e.body = reader.body_bytes();
        if (e.kind == Event::error) e.status = reader.status();
        out.push_back(std::move(e));
        if (out.back().kind == Event::error) return false;
    }
}

// The events of the payload cut into `pieces`; a stream that did not fail is mid-request at its end exactly
// when bytes follow its last complete request.
std::vector<Ev> events(const kq::HttpOptions& o, const std::vector<std::string_view>& pieces,
                       std::string_view payload) {
    RequestReader reader(kq::http::Limits{o.max_header, o.max_body});
    std::vector<Ev> out;
    for (std::string_view piece : pieces) {
        if (!read_events(reader, piece, static_cast<size_t>(piece.data() - payload.data()), out)) return out;
    }
    auto last = std::find_if(out.rbegin(), out.rend(), [](const Ev& e) { return e.kind == Event::message; });
    check(reader.mid_request() == ((last == out.rend() ? 0 : last->offset) < payload.size()),
          "mid_request() wrong at the end of the input");
    return out;
}

// The events read whole, grouped by request: where it began, its head and message events, its error.
struct Request {
    size_t begin = 0;
    const Ev* head = nullptr;
    const Ev* message = nullptr;
    int error = 0;
    bool maybe_head = false;  // its bytes begin (after empty lines) with "HEAD ": an answer may omit its body
};

std::vector<Request> requests(const std::vector<Ev>& evs, std::string_view payload) {
    const size_t payload_size = payload.size();
    std::vector<Request> rs(1);
    for (const Ev& e : evs) {
        Request& r = rs.back();
        if (e.kind == Event::head) r.head = &e;
        if (e.kind == Event::message) r.message = &e;
        if (e.kind == Event::error) r.error = e.status;
        if (e.kind == Event::message && e.offset < payload_size) rs.push_back({e.offset});
    }
    if (rs.back().head == nullptr && rs.back().error == 0 && rs.back().begin == payload_size) rs.pop_back();
    for (Request& r : rs) {
        const size_t start = payload.find_first_not_of("\r\n", r.begin);
        r.maybe_head = start != std::string_view::npos && payload.substr(start, 5) == "HEAD ";
    }
    return rs;
}

// What the header promises about every head it accepts, whatever the bytes were.
void check_head(const Ev& e, size_t begin, size_t max_header) {
    const kq::http::RequestHead& h = e.head;
    check(e.offset - begin == h.size, "head event not right after the head's bytes");
    check(h.size > 0 && h.size <= max_header, "head size 0 or over max_header");
    check(h.method != Method::unknown, "an unknown method accepted (501)");
    check(h.minor <= 1, "minor version not 0 or 1");
    check(!(h.chunked && h.has_length), "both chunked and Content-Length");
    check(!h.chunked || h.minor == 1, "chunked in HTTP/1.0");
    check(h.has_length || h.content_length == 0, "a content length without Content-Length");
    check(!h.expect_continue || (h.minor == 1 && h.has_body()), "expect_continue without HTTP/1.1 and content");
    if (e.target.starts_with('/'))
        check(e.path == e.target.substr(0, e.target.find('?')), "origin-form path is not the target up to '?'");
    else if (h.method == Method::connect || e.target == "*") check(e.path.empty(), "authority-form or '*' with a path");
    else check(e.path.starts_with('/'), "absolute-form path does not begin with '/'");
}

void check_same_events(const std::vector<Ev>& whole, const std::vector<Ev>& split) {
    check(whole.size() == split.size(), "split reads give another number of events");
    for (size_t i = 0; i < whole.size(); ++i) {
        const Ev &a = whole[i], &b = split[i];
        check(a.kind == b.kind, "split reads give another event");
        if (a.kind == Event::error) check(a.status == b.status, "split reads give another error status");
        else check(a.offset == b.offset, "split reads end an event elsewhere");
        if (a.kind == Event::head) {
            check(same_head(a.head, b.head) && a.target == b.target && a.path == b.path,
                  "split reads give another head");
        }
        if (a.kind == Event::message) check(a.body == b.body, "split reads count other body bytes");
    }
}

// ---------------------------------------------------------------------------------------------------
// Beast's view of one request: a basic_parser that records what its callbacks see and discards the body.

class BeastRequest final : public bhttp::basic_parser<true> {
public:
    std::string method, target;
    int version = 0;
    uint64_t body = 0;
    bool close_token = false;  // "close" in a Connection field (not Proxy-Connection)
    int expect_fields = 0;
    bool expect_100 = false;  // the (only) Expect field is 100-continue

private:
    using error_code = boost::beast::error_code;
    using string_view = boost::beast::string_view;
    void on_request_impl(bhttp::verb, string_view m, string_view t, int v, error_code&) override {
        method.assign(m.data(), m.size()), target.assign(t.data(), t.size()), version = v;
    }
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(bhttp::field f, string_view, string_view value, error_code&) override {
        if (is_header_done()) return;  // a trailer field
        if (f == bhttp::field::connection) {
            for (auto token : bhttp::opt_token_list{value}) close_token |= boost::beast::iequals(token, "close");
        }
        if (f == bhttp::field::expect) ++expect_fields, expect_100 = boost::beast::iequals(value, "100-continue");
    }
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<uint64_t>&, error_code&) override {}
    size_t on_body_impl(string_view b, error_code&) override { return body += b.size(), b.size(); }
    void on_chunk_header_impl(uint64_t, string_view, error_code&) override {}
    size_t on_chunk_body_impl(uint64_t, string_view b, error_code&) override { return body += b.size(), b.size(); }
    void on_finish_impl(error_code&) override {}
};

struct BeastRun {
    bool head_done = false, done = false, need_more = false;
    size_t head_size = 0, size = 0;  // bytes of the head, of the whole request
    int version = 0;
    std::string method, target;
    bool keep_alive = false, chunked = false;
    std::optional<uint64_t> length;
    uint64_t body = 0;
    bool close_token = false;
    int expect_fields = 0;
    bool expect_100 = false;
};

// Beast reads the request at the start of `s`: the head first (eager off, so it stops there and its size
// is known), then the body with eager on. Limits: none of its own, so ours (431, 413) decide alone.
BeastRun run_beast(std::string_view s) {
    BeastRequest p;
    p.header_limit(std::numeric_limits<uint32_t>::max());
    p.body_limit(std::numeric_limits<uint64_t>::max());  // not boost::none: 1.74 compares len_ > none as true
    p.eager(false);
    BeastRun r;
    boost::beast::error_code ec;
    r.head_size = p.put(boost::asio::buffer(s.data(), s.size()), ec);
    r.need_more = ec == bhttp::error::need_more;
    if (!p.is_header_done()) return r;
    r.head_done = true;
    r.version = p.version, r.method = p.method, r.target = p.target;
    r.keep_alive = p.keep_alive(), r.chunked = p.chunked();
    if (auto n = p.content_length()) r.length = *n;
    r.close_token = p.close_token, r.expect_fields = p.expect_fields, r.expect_100 = p.expect_100;
    p.eager(true);
    size_t pos = r.head_size;
    while (!p.is_done() && !ec && pos < s.size()) {
        size_t n = p.put(boost::asio::buffer(s.data() + pos, s.size() - pos), ec);
        if (n == 0 && !ec) break;
        pos += n;
    }
    r.need_more = !p.is_done() && (!ec || ec == bhttp::error::need_more);
    r.done = p.is_done(), r.size = pos, r.body = p.body;
    return r;
}

// ---------------------------------------------------------------------------------------------------
// Where ours deliberately accepts what Beast 1.74 refuses, the request is framed by Beast again with the
// difference rewritten away; it must then agree on everything, sizes mapped through the rewrite. Nothing
// else may make Beast refuse a request ours accepts.
enum Rule : unsigned {
    // RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line terminator" in the start-line and
    // fields, which ours does; Beast demands CRLF (the LF case in parse_token_to_eol is #if 0).
    kBareLf = 1,
    // RFC 9112 §2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior to the
    // request-line"; ours skips them (counting them in the head), Beast takes CR for a method character.
    kEmptyLines = 2,
    // RFC 9110 §2.5 (RFC 9112 §2.3 for the syntax): a 1.x message with a minor version higher than ours is
    // processed as the highest we support, 1.1; Beast refuses every version but 1.0 and 1.1.
    kMinor = 4,
    // Proxy-Connection is no field of RFC 9110 or 9112 (§7.6.1 of RFC 9110 defines only Connection); ours
    // ignores it, Beast reads it as Connection. Renamed to "Xroxy-Connection", same length.
    kProxyConnection = 8,
    // RFC 9112 §7.1.1: "A recipient MUST ignore unrecognized chunk extensions"; ours does not look at the
    // bytes after ";", Beast parses them by the chunk-ext grammar (and its quoted-string scan may run past
    // the line's CRLF). Dropped; only after optional BWS and ";", whitespace alone stays for Beast to judge.
    kChunkExt = 16,
    // RFC 9112 §7.1.2: a recipient MAY discard trailer fields, which ours does; Beast applies the
    // Content-Length, Transfer-Encoding and (Proxy-)Connection rules of the header section to them and
    // refuses e.g. a Content-Length trailer in a chunked message. Renamed, same length.
    kTrailer = 32,
    // RFC 9110 §7.6.1: Connection is a list of options, and ours acts only on "close" and "keep-alive",
    // ignoring every other element, a malformed one too (as nginx does); Beast refuses the message when an
    // element is not a token. The elements that are not tokens are dropped.
    kConnectionList = 64,
};
constexpr size_t kRules = 7;
constexpr const char* kRuleNames[kRules] = {
    "bare LF",         "empty lines before",    "HTTP/1.x, x>1",       "Proxy-Connection",
    "chunk extension", "framing trailer field", "Connection non-token"};

struct Stats {
    uint64_t compared = 0, rewritten[kRules] = {};
    std::map<int, uint64_t> stricter;  // ours' status -> requests it refused whose head Beast accepted
};
Stats g_stats;

void print_stats() {
    std::fprintf(stderr, "fuzz_http: %llu requests compared with Beast\n",
                 static_cast<unsigned long long>(g_stats.compared));
    for (size_t i = 0; i < kRules; ++i)
        std::fprintf(stderr, "  rewritten for Beast (%s): %llu\n", kRuleNames[i],
                     static_cast<unsigned long long>(g_stats.rewritten[i]));
    for (auto [status, n] : g_stats.stricter)
        std::fprintf(stderr, "  ours %d, Beast accepts the head: %llu\n", status, static_cast<unsigned long long>(n));
}

bool iequals(std::string_view a, std::string_view b) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string rewrite_head(std::string_view head, unsigned& rules) {
    std::string h;
    for (size_t i = 0; i < head.size(); ++i) {
        if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) h += '\r', rules |= kBareLf;
        h += head[i];
    }
    size_t lead = 0;
    while (h.compare(lead, 2, "\r\n") == 0) lead += 2;
    if (lead > 0) h.erase(0, lead), rules |= kEmptyLines;
    size_t eol = h.find("\r\n");
    if (eol >= 8 && eol != h.npos && h.compare(eol - 8, 7, "HTTP/1.") == 0 && h[eol - 1] > '1' && h[eol - 1] <= '9') {
        h[eol - 1] = '1', rules |= kMinor;
    }
    for (size_t pos = eol + 2; eol != h.npos && pos < h.size(); pos = eol + 2) {
        if (iequals(std::string_view(h).substr(pos, 17), "proxy-connection:")) h[pos] = 'X', rules |= kProxyConnection;
        eol = h.find("\r\n", pos);
        if (eol != h.npos && iequals(std::string_view(h).substr(pos, 11), "connection:")) {
            std::string kept;
            std::string_view value = std::string_view(h).substr(pos + 11, eol - pos - 11);
            bool dropped = false;
            for (size_t start = 0; start <= value.size();) {
                size_t comma = std::min(value.find(',', start), value.size());
                std::string_view e = value.substr(start, comma - start);
                while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
                while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
                if (!e.empty() && std::all_of(e.begin(), e.end(), [](char c) { return is_tchar(c); })) {
                    kept += (kept.empty() ? " " : ", ") + std::string(e);
                } else if (!e.empty()) {
                    dropped = true;
                }
                start = comma + 1;
            }
            if (dropped) {
                h.replace(pos + 11, eol - pos - 11, kept);
                eol = h.find("\r\n", pos);
                rules |= kConnectionList;
            }
        }
    }
    return h;
}

// The chunked body ours accepted, extensions and framing trailer fields taken out of Beast's way. False if
// the bytes do not even walk as chunk lines, data and trailer lines: ours accepted something unframed.
bool rewrite_chunked(std::string_view body, std::string& out, unsigned& rules) {
    size_t i = 0;
    for (uint64_t size = 1; size != 0;) {
        size_t eol = body.find("\r\n", i);
        if (eol == body.npos) return false;
        std::string_view line = body.substr(i, eol - i);
        size_t digits = 0;
        for (size = 0; digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits])); ++digits) {
            if (size >> 60) return false;
            char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[digits])));
            size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        if (digits == 0) return false;
        size_t semi = line.find_first_not_of(" \t", digits);
        if (semi != line.npos && line[semi] == ';') line = line.substr(0, digits), rules |= kChunkExt;
        out.append(line).append("\r\n");
        i = eol + 2;
        if (size == 0) break;
        if (body.size() - i < size + 2 || body.substr(i + size, 2) != "\r\n") return false;
        out.append(body.substr(i, size + 2));
        i += size + 2;
    }
    for (;;) {
        size_t eol = body.find("\r\n", i);
        if (eol == body.npos) return false;
        std::string line(body.substr(i, eol - i));
        i = eol + 2;
        std::string_view name = std::string_view(line).substr(0, line.find(':'));
        for (std::string_view framing : {"content-length", "transfer-encoding", "connection", "proxy-connection"}) {
            if (iequals(name, framing)) line[0] = 'X', rules |= kTrailer;
        }
        out.append(line).append("\r\n");
        if (line.empty()) return i == body.size();
    }
}

// Where ours and Beast frame a request ours accepted differently; nullptr if they agree. head_size and
// total are what Beast must find in the bytes it was given (total only once ours completed the request).
const char* disagreement(const Request& r, const BeastRun& b, size_t head_size, size_t total) {
    const kq::http::RequestHead& h = r.head->head;
    if (!b.head_done)
        return b.need_more ? "Beast wants more of a head ours accepted" : "Beast refuses a head ours accepted";
    if (b.head_size != head_size) return "head sizes differ";
    if (b.method != method_name(h.method)) return "methods differ";
    if (b.target != r.head->target) return "targets differ";
    if (b.version != 10 + h.minor) return "versions differ";
    if (b.chunked != h.chunked) return "chunked differs";
    if (b.length.has_value() != h.has_length || b.length.value_or(0) != h.content_length)
        return "Content-Length differs";
    // RFC 9112 §9.3: "close" ends the connection whatever else Connection holds; Beast's keep_alive() only
    // looks for "keep-alive" in an HTTP/1.0 request.
    if ((b.keep_alive && !b.close_token) != h.keep_alive) return "keep-alive differs";
    if (h.expect_continue && b.expect_fields == 0) return "expect_continue without an Expect field";
    if (!h.expect_continue && b.expect_fields == 1 && b.expect_100 && h.minor == 1 && h.has_body()) {
        return "Expect: 100-continue with content not seen";
    }
    if (r.message != nullptr) {
        if (!b.done)
            return b.need_more ? "Beast wants more of a request ours completed" : "Beast refuses a body ours accepted";
        if (b.size != total) return "request sizes differ";
        if (b.body != r.message->body) return "content lengths differ";
    } else if (r.error == 0 && b.done) {
        return "Beast completed a request whose body ours still waits for";
    }
    return nullptr;
}

[[noreturn]] void differs(const char* why, std::string_view request, unsigned rules) {
    std::string shown;
    for (unsigned char c : request.substr(0, 2048)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') shown += static_cast<char>(c);
        else shown += "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
    }
    std::fprintf(stderr, "fuzz_http: ours and Beast differ on the request \"%s\"%s\n", shown.c_str(),
                 rules != 0 ? " (also after the documented rewrites)" : "");
    violated(why);
}

void compare_with_beast(std::string_view payload, const Request& r) {
    std::string_view rest = payload.substr(r.begin);
    BeastRun raw = run_beast(rest);
    if (r.head == nullptr) {  // ours refused the head or is waiting for it
        if (r.error == 0) check(!raw.head_done, "Beast completed a head ours still waits for");
        else if (raw.head_done) ++g_stats.stricter[r.error];
        return;
    }
    ++g_stats.compared;
    size_t head_size = r.head->head.size, total = r.message != nullptr ? r.message->offset - r.begin : 0;
    const char* why = disagreement(r, raw, head_size, total);
    if (why == nullptr) {
        if (r.error != 0) ++g_stats.stricter[r.error];
        return;
    }
    unsigned rules = 0;
    std::string bytes = rewrite_head(rest.substr(0, head_size), rules);
    size_t new_head = bytes.size(), tail = head_size;
    if (r.message != nullptr && r.head->head.chunked) {
        check(rewrite_chunked(rest.substr(head_size, total - head_size), bytes, rules),
              "ours accepted a chunked body that is no chunked framing");
        tail = total;
    }
    size_t new_total = bytes.size() + (r.message != nullptr ? total - tail : 0);
    bytes.append(rest.substr(tail));
    BeastRun again = rules != 0 ? run_beast(bytes) : raw;
    const char* still = rules != 0 ? disagreement(r, again, new_head, new_total) : why;
    if (still != nullptr && !(r.error != 0 && !again.head_done))
        differs(still, rest.substr(0, r.message ? total : head_size), rules);
    for (size_t i = 0; i < kRules; ++i) g_stats.rewritten[i] += (rules >> i) & 1;
    if (r.error != 0 && again.head_done) ++g_stats.stricter[r.error];
}

// ---------------------------------------------------------------------------------------------------
// The session: a recording Reply, then the answers it wrote parsed and held against the requests above.

// One on_data / on_drained / on_peer_eof / on_request_timeout call: where its output lies, what it counted,
// and whether the connection was closed by the end of it.
struct Call {
    enum Kind { data, drained, eof, timeout } kind = data;
    size_t out_begin = 0, out_end = 0;
    uint64_t counted = 0;
    bool closed = false;
};

// The worker's flow-control settings (WorkerConfig's defaults): the session sees congestion above low
// water; the worker stops reading above high water and reads again once the output drained to low water.
constexpr size_t kLowWater = 256 * 1024, kHighWater = 1024 * 1024;
// What one call may add to output that was at most low water (or to what it found, if more): two 64 KiB
// pieces (a piece's worth of gathered answers and one more answer, or a head and a body's first piece)
// and a few heads; unbounded pipelining must not show here.
constexpr size_t kCallSlack = 2 * 64 * 1024 + 4096;
// A client that has received this much goes away (no EOF, no more reads): keeps each run short, since a
// few KiB of pipelined GET /bytes/1048576 ask for hundreds of MiB, all of it now answered.
constexpr size_t kOutputCap = 8 << 20;

class RecordingReply final : public kq::testing::ConnStub {
public:
    RecordingReply() { low_water = kLowWater; }
    using ConnStub::send;
    void send(std::span<const char> bytes) override {
        check(!closed_, "send() after close()");
        out_.append(bytes.data(), bytes.size());
        // As Connection::emit, with a kernel that takes nothing during a call: unsent until drain().
        unsent_bytes += bytes.size();
        if (unsent_bytes > kLowWater) drain_wanted_ = true;
        if (unsent_bytes > kHighWater) backpressure_ = true;
    }
    void close() override { closed_ = true; }
    void count_requests(uint64_t n) override { counted_ += n; }
    void resume_reading() override {
        if (paused) resumed_ = true;
        ConnStub::resume_reading();
    }

    void begin_call(Call::Kind kind) {
        calls_.push_back({kind, out_.size(), 0, counted_, false});
        unsent_before_ = unsent_bytes;
    }
    void end_call() {
        Call& c = calls_.back();
        c.out_end = out_.size();
        c.counted = counted_ - c.counted;
        c.closed = closed_;
        check(unsent_bytes <= std::max(unsent_before_, kLowWater) + kCallSlack,
              "one call's output is not bounded by flow control");
    }
    // The client read: the output is down to `to`; true if the session is to hear of it (on_drained(),
    // once output that was above low water is at most low water, as Connection::flush).
    bool drain(size_t to) {
        unsent_bytes = std::min(unsent_bytes, to);
        if (unsent_bytes > kLowWater) return false;
        backpressure_ = false;
        return std::exchange(drain_wanted_, false);
    }
    // Reading is held back: by the session, or by the worker's own backpressure.
    bool reading_held() const { return paused || backpressure_; }
    bool drain_wanted() const { return drain_wanted_; }
    bool take_resumed() { return std::exchange(resumed_, false); }
    bool closed() const { return closed_; }
    const std::string& out() const { return out_; }
    const std::vector<Call>& calls() const { return calls_; }

private:
    std::string out_;
    uint64_t counted_ = 0;
    bool closed_ = false;
    bool drain_wanted_ = false;  // the output went above low water since the last on_drained()
    bool backpressure_ = false;  // above high water: the worker reads nothing until it drained
    bool resumed_ = false;       // resume_reading() since the worker last looked
    size_t unsent_before_ = 0;
    std::vector<Call> calls_;
};

// Feeds the reads as the worker would. Each on_data() gets the held input followed by the next read, in a
// buffer of its own (the session may change it; ASan sees any access past it); what it leaves unconsumed is
// held. No read while reading is held back (the session paused, or the output is above high water); after
// the session resumes, the held input is offered at once. Between calls the client reads: everything after
// every call (a fast client), or only when the server waits for it and only down to low water (a slow
// one); on_drained() follows as the worker calls it. Then EOF or the request time-out, unless the client
// went away (kOutputCap). Returns false in that case: the last answer may be cut.
bool feed(kq::Session& session, const Input& in, const std::vector<std::string_view>& pieces, RecordingReply& reply) {
    std::string held;
    const auto gone = [&] { return reply.out().size() >= kOutputCap; };
    const auto deliver = [&](std::string_view fresh) {
        std::vector<char> bytes(held.begin(), held.end());
        bytes.insert(bytes.end(), fresh.begin(), fresh.end());
        held.clear();
        reply.begin_call(Call::data);
        const size_t used = session.on_data(bytes, reply);
        reply.end_call();
        check(used <= bytes.size(), "on_data() consumed more than it was given");
        if (reply.closed()) return;
        // HTTP's reader keeps what it needs of an unfinished request: the session leaves input only to wait
        // for its output, at a request boundary, and a session that left it without pausing would be offered
        // it again with every read.
        if (used < bytes.size()) check(reply.paused, "input left unconsumed without pausing");
        held.assign(bytes.begin() + static_cast<std::ptrdiff_t>(used), bytes.end());
        check(held.size() <= 64 * 1024, "more held than one read");
    };
    const auto drain = [&](size_t to) {
        if (!reply.drain(to) || reply.closed()) return;
        reply.begin_call(Call::drained);
        session.on_drained(reply);
        reply.end_call();
    };
    // Until the worker would read again: held input offered after a resume, and waits for the client.
    const auto settle = [&] {
        while (!reply.closed() && !gone()) {
            if (reply.take_resumed() && !held.empty() && !reply.reading_held()) {
                deliver({});
                if (!in.slow_client) drain(0);
                continue;
            }
            if (!reply.reading_held()) return;
            // Only the output's draining can end a wait; without it the connection would hang.
            check(reply.drain_wanted() || !reply.paused, "reading paused with no output to wait for");
            drain(in.slow_client ? kLowWater : 0);
        }
    };
    for (std::string_view piece : pieces) {
        settle();
        if (reply.closed() || gone()) return !gone();
        deliver(piece);
        if (!in.slow_client) drain(0);
    }
    settle();
    if (reply.closed() || gone()) return !gone();
    check(held.empty(), "input held while reading");
    bool timeout = in.end_with_timeout && session.mid_request();
    reply.begin_call(timeout ? Call::timeout : Call::eof);
    if (timeout) session.on_request_timeout(reply);
    else session.on_peer_eof(reply);
    reply.end_call();
    return true;
}

// The statuses this server may send and their phrases (RFC 9110 §15), written out here rather than taken
// from the server's table: an oracle that shares the code under test would agree with its mistakes.
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
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        violated("unexpected status code");
    }
}
std::string error_body(int status) { return std::to_string(status) + " " + std::string(reason(status)) + "\n"; }
constexpr std::string_view kRootBody = "Hello from kqserver\n";  // GET /
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// The answers that end the connection without routing a request (400 is also /bytes/N over the limit).
bool is_error_answer(int status) {
    return status == 400 || status == 408 || status == 413 || status == 414 || status == 431 || status == 501 ||
           status == 505;
}

struct Response {
    size_t begin = 0, end = 0;
    int status = 0;
    uint64_t content_length = 0;
    bool close = false;
    bool has_body = false;
    bool continued = false;  // an interim 100 Continue came before it
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
// answer, and then nothing follows it. `cut`: the client went away, and the last body may be incomplete
// (its end is then past the output).
void parse_body(std::string_view out, size_t head_end, bool head_request, size_t max_route, bool cut, Response& r) {
    size_t left = out.size() - head_end;
    if (head_request) {
        r.has_body = left != 0 && !out.substr(head_end).starts_with("HTTP/1.1 ");
        if (r.has_body) {
            check(left == r.content_length, "HEAD answered with a body that is not a final error answer");
            check(is_error_answer(r.status) && r.close, "HEAD answered with a body");
        }
    } else {
        r.has_body = true;
        check(left >= r.content_length || cut, "body shorter than Content-Length");
    }
    r.end = head_end + (r.has_body ? r.content_length : 0);
    std::string_view body = out.substr(head_end, r.has_body ? r.content_length : 0);
    if (body.size() < r.end - head_end) {  // cut: what arrived of a /bytes/N body
        check(r.status == 200 && body.find_first_not_of('x') == std::string_view::npos, "a cut answer is no /bytes/N");
        return;
    }
    if (r.status != 200) {
        check(r.content_length == error_body(r.status).size(), "error answer's Content-Length is not its body's");
        check(!r.has_body || body == error_body(r.status), "error answer's body does not name its status");
    } else if (r.content_length != kRootBody.size() || (r.has_body && body != kRootBody)) {
        check(r.content_length <= max_route, "200 answer longer than the /bytes/N limit");
        check(body.find_first_not_of('x') == std::string_view::npos, "200 body is neither / nor /bytes/N");
    }
}

bool is_head(const std::vector<Request>& reqs, size_t i) {
    if (i >= reqs.size()) return false;
    // A head the reader refused or has not completed: the session may know the method from its request-line.
    return reqs[i].head != nullptr ? reqs[i].head->head.method == Method::head : reqs[i].maybe_head;
}

// Splits the output into final answers (answer i is to request i) and the interim 100s before them.
std::vector<Response> parse_responses(std::string_view out, const std::vector<Request>& reqs, size_t max_route,
                                      bool cut) {
    std::vector<Response> rs;
    bool continued = false;
    for (size_t pos = 0; pos < out.size();) {
        if (out.substr(pos).starts_with("HTTP/1.1 100")) {
            check(out.substr(pos, kContinue.size()) == kContinue, "an interim answer that is not exactly 100 Continue");
            check(!continued, "two 100 Continue for one request");
            continued = true;
            pos += kContinue.size();
            continue;
        }
        Response r;
        r.begin = pos;
        r.continued = std::exchange(continued, false);
        parse_body(out, parse_head(out, pos, r), is_head(reqs, rs.size()), max_route, cut, r);
        rs.push_back(r);
        pos = r.end;
    }
    if (continued) check(rs.size() < reqs.size(), "100 Continue after the last request");
    if (continued)
        check(reqs[rs.size()].head != nullptr && reqs[rs.size()].head->head.expect_continue, "100 Continue unasked");
    return rs;
}

// Answer i is to request i as the reader frames the whole payload: an error status to a request it
// refuses (and then nothing follows), 405 exactly to complete requests other than GET/HEAD, 408 only to
// an incomplete one; only the last answer may say close.
void check_answers(const std::vector<Response>& rs, const std::vector<Request>& reqs) {
    check(rs.size() <= reqs.size(), "more answers than requests");
    for (size_t i = 0; i < rs.size(); ++i) {
        const Request& q = reqs[i];
        const Response& r = rs[i];
        bool last = i + 1 == rs.size();
        check(last || !r.close, "an answer saying Connection: close is followed by another");
        check(!r.continued || (q.head != nullptr && q.head->head.expect_continue),
              "100 Continue to a request without Expect");
        if (q.head != nullptr && q.head->head.expect_continue && !r.continued) {
            // Expect: 100-continue whose route does not answer 200: the final answer at once, whatever the
            // content that follows (it is not read), and the connection closes.
            check(last && r.close && r.status != 200 && r.status != 408,
                  "Expect answered without 100 but not with a closing final answer");
            Method m = q.head->head.method;
            check((r.status == 405) == (m != Method::get && m != Method::head),
                  "405 is not exactly the answer to methods other than GET/HEAD");
        } else if (q.error != 0) {
            check(last && r.status == q.error, "a request the reader refuses is not answered with its status, last");
        } else if (q.message == nullptr) {
            check(last && r.status == 408, "an incomplete request answered other than with 408");
        } else {
            Method m = q.head->head.method;
            check((r.status == 405) == (m != Method::get && m != Method::head),
                  "405 is not exactly the answer to methods other than GET/HEAD");
        }
    }
}

// Per call: count_requests() adds up the final answers begun in it, and on_drained() begins none (it only
// goes on with a body; the requests after it come back through on_data()). A closing answer closes the
// connection in the call that sends its last byte, and a call that closes has just sent one whole (unless
// EOF or the time-out closes); the time-out answers 408.
void check_calls(const RecordingReply& reply, const std::vector<Response>& rs) {
    size_t next = 0;
    for (const Call& c : reply.calls()) {
        size_t first = next;
        while (next < rs.size() && rs[next].begin < c.out_end) ++next;
        check(next - first == c.counted, "count_requests() differs from the answers written in the same call");
        if (c.kind == Call::drained) check(next == first, "on_drained() began an answer");
        const Response* last = next > first ? &rs[next - 1] : nullptr;
        const bool closing_sent = next > 0 && rs[next - 1].close && rs[next - 1].end <= c.out_end;
        if (closing_sent) check(c.closed, "answered Connection: close but left the connection open");
        if (c.kind == Call::data || c.kind == Call::drained)
            check(!c.closed || closing_sent, "closed without a closing answer, or before its end");
        if (c.kind == Call::eof || c.kind == Call::timeout)
            check(c.closed, "the connection is left open after EOF or the request time-out");
        if (c.kind == Call::timeout) {
            check(last != nullptr && next - first == 1 && last->status == 408,
                  "the request time-out did not answer 408");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static std::unique_ptr<kq::Protocol> protocols[] = {
        kq::make_http_protocol(preset(0)), kq::make_http_protocol(preset(1)), kq::make_http_protocol(preset(2)),
        kq::make_http_protocol(preset(3))};
    static const bool stats = std::getenv("KQ_FUZZ_HTTP_STATS") != nullptr && std::atexit(print_stats) == 0;
    (void)stats;
    Input in = decode(data, size);
    kq::HttpOptions options = preset(in.preset);
    std::vector<std::string_view> pieces = reads(in);

    // The reader, whole and split, and each request it frames against Beast.
    std::vector<Ev> whole = events(options, {in.payload}, in.payload);
    check_same_events(whole, events(options, pieces, in.payload));
    std::vector<Request> reqs = requests(whole, in.payload);
    size_t messages = 0;
    for (const Request& r : reqs) {
        if (r.head != nullptr) check_head(*r.head, r.begin, options.max_header);
        messages += r.message != nullptr;
        compare_with_beast(in.payload, r);
    }
    // The shortest request ours completes ("GET / HTTP/1.0\n\n") is 16 bytes.
    check(messages <= in.payload.size() / 16, "more requests than the input could hold");

    RecordingReply reply;
    g_output = &reply.out();
    bool cut = false;  // the client went away before the end
    {
        std::unique_ptr<kq::Session> session = protocols[in.preset]->open(reply);
        cut = !feed(*session, in, pieces, reply);
    }
    std::vector<Response> rs = parse_responses(reply.out(), reqs, options.max_bytes_route, cut);
    check_answers(rs, reqs);
    check_calls(reply, rs);
    g_output = nullptr;
    return 0;
}
