// The strict HTTP/1.1 request framing (protocols/src/http_request.hpp), tested from the header's rules and RFC
// 9112 rather than from the code: parse_head and ChunkedDecoder rule by rule, each from both sides with the
// exact status, and RequestReader's events, which must not depend on where the reads split the stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "http_request.hpp"

namespace {

using kq::http::ChunkedDecoder;
using kq::http::HeadResult;
using kq::http::Limits;
using kq::http::Method;
using kq::http::method_name;
using kq::http::parse_head;
using kq::http::RequestHead;
using kq::http::RequestReader;
using Event = RequestReader::Event;
using namespace std::string_literals;  // "..."s keeps a NUL inside the bytes
using namespace std::string_view_literals;

constexpr size_t kMax = 8192;
constexpr uint64_t kMaxBody = 1 << 20;
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// Failure messages show CR, LF and every byte outside printable ASCII escaped.
std::string escaped(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : s) {
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (c < 0x20 || c >= 0x7f) out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
        else out += static_cast<char>(c);
    }
    return out;
}

struct Parsed {
    HeadResult result;
    RequestHead head;
};

Parsed parse(std::string_view in, size_t max_header = kMax) {
    Parsed p;
    p.result = parse_head(in, max_header, p.head);
    return p;
}

// A head that must be accepted whole; the slices of the result point into `in`.
RequestHead accepted(std::string_view in, size_t max_header = kMax) {
    const Parsed p = parse(in, max_header);
    EXPECT_EQ(p.result.status, 0) << escaped(in);
    EXPECT_EQ(p.result.size, in.size()) << escaped(in);
    return p.head;
}

// Bytes and the status parse_head must give them; 0: a complete head made of all the bytes.
struct Case {
    const char* name;
    std::string bytes;
    int status;
};

void check_cases(const std::vector<Case>& cases, size_t max_header = kMax) {
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.name) + ": " + escaped(c.bytes));
        const Parsed p = parse(c.bytes, max_header);
        EXPECT_EQ(p.result.status, c.status);
        if (c.status == 0) {
            EXPECT_EQ(p.result.size, c.bytes.size());
        }
    }
}

// An HTTP/1.1 GET with a Host and then `fields` (whole lines).
std::string get11(std::string_view fields) { return "GET / HTTP/1.1\r\nHost: a\r\n" + std::string(fields) + "\r\n"; }
std::string post11(std::string_view fields) { return "POST / HTTP/1.1\r\nHost: a\r\n" + std::string(fields) + "\r\n"; }

std::string repeat(std::string_view s, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += s;
    return out;
}

// A valid head of exactly `n` bytes: `start`, then one field padded to length, then the end, lines ending in `eol`.
std::string head_of_size(size_t n, std::string_view start = "GET / HTTP/1.1\r\nHost: a\r\n",
                         std::string_view eol = "\r\n") {
    const size_t fixed = start.size() + 3 + 2 * eol.size();
    EXPECT_GT(n, fixed);
    return std::string(start) + "X: " + std::string(n - fixed, 'v') + std::string(eol) + std::string(eol);
}

// ---------------------------------------------------------------------------------------------------
// parse_head: lines, the request-line, the target

TEST(ParseHead, LinesEndInCrlfOrBareLfAndABareCrIsRefused) {
    check_cases({
        {"CRLF", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        {"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 0},
        {"bare LF after the request-line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 0},
        {"bare LF after a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 0},
        {"bare CR ends the request-line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
        {"bare CR ends a field", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400},
        {"CR inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        {"CR CR LF after the request-line", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400},
        {"CR CR LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400},
        {"CR then a field where the end was", "GET / HTTP/1.1\r\nHost: a\r\n\rX: y\r\n\r\n", 400},
        {"CR before the request-line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"CR CR LF as an empty line before", "\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"CR inside the target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"CR inside the method", "G\rET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    });
}

TEST(ParseHead, EmptyLinesBeforeTheRequestLineAreSkippedButBelongToTheHead) {
    const std::string base = "GET /e HTTP/1.1\r\nHost: a\r\n\r\n";
    for (const std::string& head : {"\r\n" + base, "\r\n\r\n\r\n" + base}) {
        SCOPED_TRACE(escaped(head));
        const RequestHead h = accepted(head);
        EXPECT_EQ(h.size, head.size());
        EXPECT_EQ(h.method, Method::get);
        EXPECT_EQ(h.target, "/e");
        // They count against max_header like any other byte of the head.
        EXPECT_EQ(parse(head, head.size()).result.status, 0);
        EXPECT_EQ(parse(head, head.size() - 1).result.status, 431);
    }
}

TEST(ParseHead, TheRequestLineHasExactlyOneSpaceBetweenItsParts) {
    check_cases({
        {"one space each", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        {"two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"two spaces after the target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"a space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
        {"a tab after the method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"a tab after the target", "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"a space before the method", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"no version (HTTP/0.9)", "GET /\r\nHost: a\r\n\r\n", 400},
        {"no version after a space", "GET / \r\nHost: a\r\n\r\n", 400},
        {"the method alone", "GET\r\nHost: a\r\n\r\n", 400},
        {"no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    });
}

TEST(ParseHead, VersionIsHttpSlashDigitDotDigitAndMajorOne) {
    struct V {
        const char* version;
        int status;
        uint8_t minor;
    };
    const V versions[] = {
        {"HTTP/1.1", 0, 1},    {"HTTP/1.0", 0, 0},   {"HTTP/1.2", 0, 1},   {"HTTP/1.9", 0, 1},    {"http/1.1", 400, 0},
        {"HTTP/1", 400, 0},    {"HTTP/1.", 400, 0},  {"HTTP/.1", 400, 0},  {"HTTP/1.10", 400, 0}, {"HTTP/10.1", 400, 0},
        {"HTTP/1.1x", 400, 0}, {"HTTP/x.1", 400, 0}, {"HTTP/1,1", 400, 0}, {"HTTPS/1.1", 400, 0}, {"HTTP 1.1", 400, 0},
        {"HTTP/2.0", 505, 0},  {"HTTP/0.9", 505, 0}, {"HTTP/3.1", 505, 0}, {"HTTP/9.0", 505, 0},
    };
    for (const V& v : versions) {
        const std::string head = "GET / " + std::string(v.version) + "\r\nHost: a\r\n\r\n";
        SCOPED_TRACE(escaped(head));
        const Parsed p = parse(head);
        EXPECT_EQ(p.result.status, v.status);
        if (v.status == 0) {
            EXPECT_EQ(p.head.minor, v.minor);
        }
    }
    // HTTP/1.2 is HTTP/1.1 in every way: persistent by default, and Host is required.
    EXPECT_TRUE(accepted("GET / HTTP/1.2\r\nHost: a\r\n\r\n").keep_alive);
    EXPECT_EQ(parse("GET / HTTP/1.2\r\n\r\n").result.status, 400);
}

TEST(ParseHead, KnownMethodsAreCaseSensitiveTokens) {
    struct M {
        const char* text;
        const char* target;
        Method method;
    };
    const M methods[] = {
        {"GET", "/", Method::get},         {"HEAD", "/", Method::head},   {"POST", "/", Method::post},
        {"PUT", "/", Method::put},         {"DELETE", "/", Method::del},  {"CONNECT", "a:443", Method::connect},
        {"OPTIONS", "/", Method::options}, {"TRACE", "/", Method::trace}, {"PATCH", "/", Method::patch},
    };
    for (const M& m : methods) {
        const std::string head = std::string(m.text) + " " + m.target + " HTTP/1.1\r\nHost: a\r\n\r\n";
        SCOPED_TRACE(head);
        EXPECT_EQ(accepted(head).method, m.method);
    }
    check_cases({
        {"lower case", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"mixed case", "Get / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"longer than a known one", "GETS / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"unknown", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"WebDAV", "PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"token with punctuation", "M-SEARCH!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"'@' is not a token byte", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"'(' is not a token byte", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"':' is not a token byte", "GET: / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"a CTL",
         "G\x01"
         "ET / HTTP/1.1\r\nHost: a\r\n\r\n",
         400},
        {"a byte >= 0x80", "G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"an unknown method with a bad request-line", "BREW  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"an unknown method with a bad target", "BREW /# HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    });
}

TEST(ParseHead, TargetIsVisibleAsciiWithoutHash) {
    check_cases({
        {"every other visible byte", "GET /aZ09-._~!$&'()*+,;=:@%25\"<>[]{}|\\^`?/? HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        {"'#' in the path", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"'#' alone at the end", "GET /# HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"'#' in the query", "GET /?a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"UTF-8", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"0x80", "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"0xff", "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"a CTL", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"DEL", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"NUL", "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n"s, 400},
        {"ESC in an absolute-form", "GET http://a/\x1b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    });
}

TEST(ParseHead, TargetFormsAndThePathTheyRouteOn) {
    struct T {
        const char* method;
        const char* target;
        int status;
        const char* path;
    };
    const T forms[] = {
        {"GET", "/", 0, "/"},
        {"GET", "/a/b?x=1&y", 0, "/a/b"},
        {"GET", "/?x", 0, "/"},
        {"GET", "/a??b", 0, "/a"},
        {"GET", "//a/b", 0, "//a/b"},
        {"POST", "/p", 0, "/p"},
        {"GET", "http://example.com/a/b?x", 0, "/a/b"},
        {"GET", "http://example.com:8080/p", 0, "/p"},
        {"GET", "http://example.com", 0, "/"},
        {"GET", "http://example.com?x=1", 0, "/"},
        {"DELETE", "https://[::1]:8443/r", 0, "/r"},
        {"OPTIONS", "http://a/", 0, "/"},
        {"OPTIONS", "*", 0, ""},
        {"OPTIONS", "/", 0, "/"},
        {"CONNECT", "example.com:443", 0, ""},
        {"CONNECT", "[::1]:443", 0, ""},
        {"GET", "*", 400, ""},
        {"POST", "*", 400, ""},
        {"CONNECT", "/", 400, ""},
        {"CONNECT", "*", 400, ""},
        {"GET", "a.b", 400, ""},
        {"GET", "a:80", 400, ""},
        {"GET", "http:///x", 400, ""},
        {"GET", "http://:80/x", 400, ""},
        {"GET", "http://u@h/x", 400, ""},
        {"GET", "http://u:p@h/x", 400, ""},
        {"GET", "http://[/x", 400, ""},
        {"GET", "http://h:x/", 400, ""},
        {"GET", "http://h:/x", 0, "/x"},
        {"GET", "http://a%41b/x", 0, "/x"},
        {"GET", "urn:x", 400, ""},
        {"GET", "http:/a", 400, ""},
        {"GET", "1http://a/", 400, ""},
        {"GET", "a/b", 400, ""},
        {"GET", "?x", 400, ""},
    };
    for (const T& f : forms) {
        const std::string head = std::string(f.method) + " " + f.target + " HTTP/1.1\r\nHost: a\r\n\r\n";
        SCOPED_TRACE(head);
        const Parsed p = parse(head);
        EXPECT_EQ(p.result.status, f.status);
        if (f.status != 0) continue;
        EXPECT_EQ(p.head.target, f.target);
        EXPECT_EQ(p.head.path, f.path);
    }
}

TEST(ParseHead, TargetAndPathAreSlicesOfTheInput) {
    const std::string head = "GET /x/y?q HTTP/1.1\r\nHost: a\r\n\r\n";
    const RequestHead h = accepted(head);
    const char* begin = head.data();
    const char* end = head.data() + head.size();
    EXPECT_EQ(h.target.data(), begin + 4);
    EXPECT_TRUE(h.path.data() >= begin && h.path.data() + h.path.size() <= end);
}

// ---------------------------------------------------------------------------------------------------
// parse_head: max_header, 414 against 431

TEST(ParseHead, AHeadOfExactlyMaxHeaderBytesIsAcceptedOneMoreIs431) {
    const std::string shapes[] = {
        head_of_size(100),
        head_of_size(100, "GET / HTTP/1.1\nHost: a\n", "\n"),
        head_of_size(100, "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"),
        head_of_size(kMax),
    };
    for (const std::string& head : shapes) {
        SCOPED_TRACE(escaped(head.substr(0, 40)));
        const size_t n = head.size();
        EXPECT_EQ(accepted(head, n).size, n);
        // Bytes after the head (content, the next request) are not part of it, and are not counted.
        const Parsed after = parse(head + std::string(100, 'x'), n);
        EXPECT_EQ(after.result.status, 0);
        EXPECT_EQ(after.result.size, n);
        EXPECT_EQ(parse(head, n - 1).result.status, 431);
    }
}

TEST(ParseHead, ARequestLineLongerThanMaxHeaderIs414EvenBeforeItEnds) {
    constexpr size_t max = 64;
    const std::string long_line = "GET /" + std::string(100, 'a') + " HTTP/1.1";
    check_cases(
        {
            {"complete", long_line + "\r\nHost: a\r\n\r\n", 414},
            {"incomplete", long_line, 414},
            {"incomplete, no version yet", "GET /" + std::string(100, 'a'), 414},
            {"max_header + 1 bytes, no line end", "GET /" + std::string(max - 4, 'a'), 414},
            // 20 bytes of empty lines and a 54-byte request-line: only together are they over 64.
            {"counted with the empty lines before it",
             repeat("\r\n", 10) + "GET /" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
            {"short request-line, long field", "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'v') + "\r\n\r\n",
             431},
            {"short request-line, long field, incomplete", "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40, 'v'),
             431},
        },
        max);
    // max_header bytes with no line end yet: no complete line holds an error, so more bytes are needed.
    const Parsed p = parse("GET /" + std::string(max - 5, 'a'), max);
    EXPECT_EQ(p.result.status, 0);
    EXPECT_EQ(p.result.size, 0u);
}

// ---------------------------------------------------------------------------------------------------
// parse_head: field lines

TEST(ParseHead, FieldSyntax) {
    check_cases({
        {"whitespace before the colon", get11("X : y\r\n"), 400},
        {"tab before the colon", get11("X\t: y\r\n"), 400},
        {"Host with a space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"a space in the name", get11("Bad Name: y\r\n"), 400},
        {"an empty name", get11(": y\r\n"), 400},
        {"no colon", get11("NoColon\r\n"), 400},
        {"'(' in the name", get11("X(: y\r\n"), 400},
        {"a byte >= 0x80 in the name", get11("X\xc3\xa9: y\r\n"), 400},
        {"obsolete folding with a space", get11("X: a\r\n b\r\n"), 400},
        {"obsolete folding with a tab", get11("X: a\r\n\tb\r\n"), 400},
        {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
        {"a tab before the first field", "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400},
        {"SOH in a value",
         get11("X: a\x01"
               "b\r\n"),
         400},
        {"NUL in a value", get11("X: a\0b\r\n"s), 400},
        {"DEL in a value",
         get11("X: a\x7f"
               "b\r\n"),
         400},
        {"ESC in a value", get11("X: \x1b[0m\r\n"), 400},
        {"VT in a value", get11("X: a\vb\r\n"), 400},
        {"FF in a value", get11("X: a\fb\r\n"), 400},
        {"obs-text in a value", get11("X: caf\xc3\xa9 \x80\xff\r\n"), 0},
        {"tab and spaces inside a value", get11("X: a\tb  c\r\n"), 0},
        {"an empty value", get11("X:\r\n"), 0},
        {"only whitespace", get11("X: \t \r\n"), 0},
        {"no space after the colon", get11("X:y\r\n"), 0},
        {"every token byte in a name", get11("aZ09!#$%&'*+-.^_`|~: v\r\n"), 0},
        {"a colon in the value", get11("X: a:b: c\r\n"), 0},
    });
}

TEST(ParseHead, WhitespaceAroundAValueIsNotPartOfIt) {
    // Seen through the fields whose values are checked: each would be refused with the whitespace kept.
    EXPECT_EQ(accepted("GET / HTTP/1.1\r\nHost: \t a:80 \t \r\n\r\n").method, Method::get);
    EXPECT_EQ(accepted(post11("Content-Length: \t 12 \t\r\n")).content_length, 12u);
    EXPECT_TRUE(accepted(post11("Transfer-Encoding:\tchunked\t\r\n")).chunked);
    EXPECT_FALSE(accepted(get11("Connection:   close  \r\n")).keep_alive);
}

TEST(ParseHead, HostExactlyOnceInHttp11AtMostOnceInHttp10) {
    const auto v11 = [](std::string_view fields) { return "GET / HTTP/1.1\r\n" + std::string(fields) + "\r\n"; };
    const auto v10 = [](std::string_view fields) { return "GET / HTTP/1.0\r\n" + std::string(fields) + "\r\n"; };
    check_cases({
        {"1.1 one", v11("Host: a\r\n"), 0},
        {"1.1 name in any case", v11("hOST: a\r\n"), 0},
        {"1.1 none", v11(""), 400},
        {"1.1 none, other fields", v11("X: a\r\n"), 400},
        {"1.1 two equal", v11("Host: a\r\nHost: a\r\n"), 400},
        {"1.1 two differing", v11("Host: a\r\nhost: b\r\n"), 400},
        {"1.0 none", v10(""), 0},
        {"1.0 one", v10("Host: a\r\n"), 0},
        {"1.0 two", v10("Host: a\r\nHost: a\r\n"), 400},
        {"empty", v11("Host:\r\n"), 0},
        {"empty after whitespace", v11("Host:  \r\n"), 0},
        {"a name", v11("Host: example.com\r\n"), 0},
        {"unreserved bytes", v11("Host: a-b_c~d.e\r\n"), 0},
        {"name and port", v11("Host: a:80\r\n"), 0},
        {"IPv4", v11("Host: 1.2.3.4\r\n"), 0},
        {"IPv4 and port", v11("Host: 1.2.3.4:8080\r\n"), 0},
        {"IPv6", v11("Host: [::1]\r\n"), 0},
        {"IPv6 and port", v11("Host: [::1]:8080\r\n"), 0},
        {"a space", v11("Host: a b\r\n"), 400},
        {"a slash", v11("Host: a/b\r\n"), 400},
        {"userinfo", v11("Host: u@a\r\n"), 400},
        {"a port that is not digits", v11("Host: a:b\r\n"), 400},
        {"two ports", v11("Host: a:80:90\r\n"), 400},
        {"an unclosed IPv6", v11("Host: [::1\r\n"), 400},
        {"bytes after an IPv6", v11("Host: [::1]x\r\n"), 400},
        {"a query", v11("Host: a?b\r\n"), 400},
        {"a quote", v11("Host: a\"b\r\n"), 400},
        {"obs-text", v11("Host: caf\xc3\xa9\r\n"), 400},
    });
}

TEST(ParseHead, ContentLengthIsOneStringOfDigits) {
    struct L {
        const char* value;  // right after the colon
        int status;
        uint64_t length;
    };
    const L lengths[] = {
        {"5", 0, 5},
        {" 5", 0, 5},
        {" \t5\t ", 0, 5},
        {" 007", 0, 7},
        {" 0", 0, 0},
        {" 1234567890", 0, 1234567890},
        {" 18446744073709551614", 0, kU64Max - 1},
        {" 18446744073709551615", 0, kU64Max},
        {" 18446744073709551616", 0, kU64Max},
        {" 99999999999999999999999999999999", 0, kU64Max},
        {" 000000000000000000000000000001", 0, 1},
        {" +3", 400, 0},
        {" -1", 400, 0},
        {" 0x3", 400, 0},
        {" 3, 3", 400, 0},
        {" 3,3", 400, 0},
        {" 3,", 400, 0},
        {" ,3", 400, 0},
        {" 1 2", 400, 0},
        {" 3a", 400, 0},
        {" a", 400, 0},
        {"", 400, 0},
        {"   ", 400, 0},
    };
    for (const L& l : lengths) {
        const std::string head = post11("Content-Length:" + std::string(l.value) + "\r\n");
        SCOPED_TRACE(escaped(head));
        const Parsed p = parse(head);
        EXPECT_EQ(p.result.status, l.status);
        if (l.status != 0) continue;
        EXPECT_EQ(p.result.size, head.size());
        EXPECT_TRUE(p.head.has_length);
        EXPECT_EQ(p.head.content_length, l.length);
    }
    check_cases({
        {"two equal lines", post11("Content-Length: 3\r\nContent-Length: 3\r\n"), 400},
        {"two differing lines", post11("Content-Length: 3\r\nContent-Length: 4\r\n"), 400},
        {"two lines, names in other cases", post11("content-length: 3\r\nCONTENT-LENGTH: 3\r\n"), 400},
    });
    const RequestHead none = accepted(post11(""));
    EXPECT_FALSE(none.has_length);
    EXPECT_EQ(none.content_length, 0u);
}

TEST(ParseHead, TransferEncodingMustEndInOneChunked) {
    struct E {
        const char* fields;
        int status;
    };
    const E encodings[] = {
        {"Transfer-Encoding: chunked\r\n", 0},
        {"Transfer-Encoding: Chunked\r\n", 0},
        {"transfer-encoding: CHUNKED\r\n", 0},
        {"Transfer-Encoding: chunked,\r\n", 0},
        {"Transfer-Encoding: , chunked\r\n", 0},
        {"Transfer-Encoding: ,, chunked ,,\r\n", 0},
        {"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", 400},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n", 400},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: , \r\n", 400},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400},
        {"Transfer-Encoding: chunked, chunked\r\n", 400},
        {"Transfer-Encoding: gzip, chunked\r\n", 501},
        {"Transfer-Encoding: deflate,chunked\r\n", 501},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501},
        {"Transfer-Encoding: chunked, gzip\r\n", 400},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", 400},
        {"Transfer-Encoding: gzip\r\n", 400},
        {"Transfer-Encoding: chunkedx\r\n", 400},
        {"Transfer-Encoding: chunked x\r\n", 400},
        {"Transfer-Encoding:\r\n", 400},
        {"Transfer-Encoding: ,\r\n", 400},
        {"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400},
        {"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400},
        {"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", 400},
    };
    for (const E& e : encodings) {
        const std::string head = post11(e.fields);
        SCOPED_TRACE(escaped(head));
        const Parsed p = parse(head);
        EXPECT_EQ(p.result.status, e.status);
        if (e.status != 0) continue;
        EXPECT_TRUE(p.head.chunked);
        EXPECT_FALSE(p.head.has_length);
    }
    EXPECT_EQ(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").result.status, 400);
    EXPECT_FALSE(accepted(post11("")).chunked);
}

TEST(ParseHead, ConnectionCloseEndsItKeepAliveKeepsHttp10Open) {
    struct K {
        const char* request_line;
        const char* fields;
        bool keep_alive;
    };
    const K cases[] = {
        {"GET / HTTP/1.1", "", true},
        {"GET / HTTP/1.1", "Connection: close\r\n", false},
        {"GET / HTTP/1.1", "connection: CLOSE\r\n", false},
        {"GET / HTTP/1.1", "Connection: Close\r\n", false},
        {"GET / HTTP/1.1", "Connection: keep-alive, close\r\n", false},
        {"GET / HTTP/1.1", "Connection: close,keep-alive\r\n", false},
        {"GET / HTTP/1.1", "Connection: ,, close ,\r\n", false},
        {"GET / HTTP/1.1", "Connection: keep-alive\r\nConnection: close\r\n", false},
        {"GET / HTTP/1.1", "Connection: keep-alive\r\n", true},
        {"GET / HTTP/1.1", "Connection: Upgrade\r\nUpgrade: websocket\r\n", true},
        {"GET / HTTP/1.1", "Connection: closed\r\n", true},
        {"GET / HTTP/1.1", "Connection: x-close, foo\r\n", true},
        {"GET / HTTP/1.1", "X-Connection: close\r\n", true},
        {"GET / HTTP/1.0", "", false},
        {"GET / HTTP/1.0", "Connection: keep-alive\r\n", true},
        {"GET / HTTP/1.0", "Connection: Keep-Alive\r\n", true},
        {"GET / HTTP/1.0", "Connection: foo, keep-alive\r\n", true},
        {"GET / HTTP/1.0", "Connection: keep-alive, close\r\n", false},
        {"GET / HTTP/1.0", "Connection: keep-alive\r\nConnection: close\r\n", false},
        {"GET / HTTP/1.0", "Connection: foo\r\n", false},
        {"GET / HTTP/1.0", "Connection: close\r\n", false},
    };
    for (const K& k : cases) {
        const std::string head = std::string(k.request_line) + "\r\nHost: a\r\n" + k.fields + "\r\n";
        SCOPED_TRACE(escaped(head));
        EXPECT_EQ(accepted(head).keep_alive, k.keep_alive);
    }
}

TEST(ParseHead, ExpectContinueOnlyForHttp11WithContent) {
    struct X {
        std::string head;
        bool expect_continue;
    };
    const X cases[] = {
        {post11("Content-Length: 5\r\nExpect: 100-continue\r\n"), true},
        {post11("Expect: 100-Continue\r\nContent-Length: 5\r\n"), true},
        {post11("expect: 100-CONTINUE\r\nTransfer-Encoding: chunked\r\n"), true},
        {"POST / HTTP/1.2\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", true},
        {post11("Content-Length: 0\r\nExpect: 100-continue\r\n"), false},
        {post11("Expect: 100-continue\r\n"), false},
        {"POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", false},
        {post11("Content-Length: 5\r\nExpect: 200-ok\r\n"), false},
        {post11("Content-Length: 5\r\n"), false},
    };
    for (const X& x : cases) {
        SCOPED_TRACE(escaped(x.head));
        EXPECT_EQ(accepted(x.head).expect_continue, x.expect_continue);
    }
}

TEST(ParseHead, HasBodyWhenChunkedOrALengthAboveZero) {
    EXPECT_FALSE(accepted(post11("")).has_body());
    EXPECT_FALSE(accepted(post11("Content-Length: 0\r\n")).has_body());
    EXPECT_TRUE(accepted(post11("Content-Length: 1\r\n")).has_body());
    EXPECT_TRUE(accepted(post11("Content-Length: 99999999999999999999\r\n")).has_body());
    EXPECT_TRUE(accepted(post11("Transfer-Encoding: chunked\r\n")).has_body());
}

// ---------------------------------------------------------------------------------------------------
// parse_head: incomplete heads

const std::vector<std::string>& valid_heads() {
    static const std::vector<std::string> heads = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /x?y HTTP/1.1\nHost: a\nX: v\n\n",
        "\r\n\r\nPOST http://h/p HTTP/1.1\r\nHost: h:80\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n",
        "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\nX: caf\xc3\xa9\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    };
    return heads;
}

TEST(ParseHead, EveryStrictPrefixOfAValidHeadNeedsMoreBytes) {
    for (const std::string& head : valid_heads()) {
        SCOPED_TRACE(escaped(head));
        for (size_t n = 0; n < head.size(); ++n) {
            const Parsed p = parse(std::string_view(head).substr(0, n), head.size());
            EXPECT_EQ(p.result.size, 0u) << n;
            EXPECT_EQ(p.result.status, 0) << n;
        }
        EXPECT_EQ(accepted(head, head.size()).size, head.size());
    }
}

TEST(ParseHead, AnErrorInACompleteLineIsReportedBeforeTheHeadEnds) {
    check_cases({
        {"bad field syntax", "GET / HTTP/1.1\r\nHost : a\r\nX: y", 400},
        {"505 on the request-line", "GET / HTTP/2.0\r\n", 505},
        {"501 on the request-line", "BREW / HTTP/1.1\r\n", 501},
        {"400 on the request-line", "GET /# HTTP/1.1\r\n", 400},
        {"obsolete folding", "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n", 400},
        {"a bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n", 400},
        {"a CTL in a value",
         "GET / HTTP/1.1\r\nX: a\x01"
         "b\r\nHost: a\r\n",
         400},
        {"a second Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400},
        {"a bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n", 400},
        {"a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: +1\r\n", 400},
        {"a second Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n", 400},
    });
}

// A request-line is refused at the first byte that cannot belong to one, line end or not, so that a TLS
// ClientHello or a binary protocol is answered at once instead of holding the connection until its time-out.
TEST(ParseHead, ARequestLineThatCannotBecomeOneIsRefusedBeforeItEnds) {
    check_cases({
        {"a TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s, 400},
        {"a CTL first", "\x01junk", 400},
        {"a space first", " GET", 400},
        {"two spaces", "GET  /", 400},
        {"a tab after the target", "GET /a\tb", 400},
        {"'#' in the target", "GET /a#", 400},
        {"not HTTP/", "GET / HTTPS", 400},
        {"not a digit", "GET / HTTP/x", 400},
        {"a byte after the version", "GET / HTTP/1.1x", 400},
        {"CR after the method", "GET\r", 400},
    });
    for (const std::string_view start : {"\r"sv, "\r\n\r"sv, "GET"sv, "GET "sv, "GET /a?b"sv, "GET / "sv,
                                         "GET / HTTP/2"sv, "GET / HTTP/1.1"sv, "GET / HTTP/1.1\r"sv}) {
        SCOPED_TRACE(escaped(start));
        const Parsed p = parse(start);
        EXPECT_EQ(p.result.status, 0);
        EXPECT_EQ(p.result.size, 0u);
    }
    // Only the first max_header bytes are looked at this way: beyond them, the line is too long (414)
    // whatever comes, and the answer must not depend on how much of the line has arrived.
    constexpr size_t max = 64;
    const std::string late = "GET /" + std::string(max, 'a') + "\x01";
    EXPECT_EQ(parse(late, max).result.status, 414);
    EXPECT_EQ(parse(late + " HTTP/1.1\r\n\r\n", max).result.status, 414);
    EXPECT_EQ(parse(late.substr(0, max + 1), max).result.status, 414);
    const std::string early = "G\x01" + std::string(max * 2, 'a');
    EXPECT_EQ(parse(early, max).result.status, 400);
    EXPECT_EQ(parse(early.substr(0, 3), max).result.status, 400);
}

// ---------------------------------------------------------------------------------------------------
// ChunkedDecoder

struct Decoded {
    size_t used = 0;
    uint64_t data = 0;
    bool done = false;
    int status = 0;
};

// Feeds `body` to a fresh decoder in reads cut at `cuts` (each in a buffer of its own), until it ends or fails.
Decoded decode(std::string_view body, const std::vector<size_t>& cuts = {}, size_t max_header = kMax,
               uint64_t max_body = kMaxBody) {
    ChunkedDecoder d;
    Decoded r;
    size_t begin = 0;
    for (size_t i = 0; i <= cuts.size() && !d.done() && d.status() == 0; ++i) {
        const size_t end = i < cuts.size() ? cuts[i] : body.size();
        const std::string piece(body.substr(begin, end - begin));
        const size_t used = d.feed(piece, r.data, max_header, max_body);
        EXPECT_LE(used, piece.size());
        if (!d.done() && d.status() == 0) {
            EXPECT_EQ(used, piece.size()) << "a read left over before the body ended";
        }
        r.used += used;
        begin = end;
    }
    r.done = d.done();
    r.status = d.status();
    return r;
}

struct ChunkCase {
    const char* name;
    std::string body;
    int status;         // 0: valid, the body is all of `body`
    uint64_t data = 0;  // chunk-data bytes, for a valid body
    size_t max_header = kMax;
    uint64_t max_body = kMaxBody;
};

const std::vector<ChunkCase>& chunk_cases() {
    static const std::vector<ChunkCase> cases = {
        {"one chunk", "5\r\nhello\r\n0\r\n\r\n", 0, 5},
        {"no chunk", "0\r\n\r\n", 0, 0},
        {"several chunks", "3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", 0, 6},
        {"hex upper and lower", "A\r\n0123456789\r\na\r\n0123456789\r\n1F\r\n" + std::string(31, 'x') + "\r\n0\r\n\r\n",
         0, 51},
        {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 0, 5},
        {"more zeros than 64 bits", "0000000000000000000000001\r\nx\r\n0\r\n\r\n", 0, 1},
        {"data holding CR and LF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 0, 4},
        {"extensions", "5;a=b\r\nhello\r\n0;last;q=\"x y\"\r\n\r\n", 0, 5},
        {"BWS before ';'", "5 ;a\r\nhello\r\n3\t;b\r\nabc\r\n0 \t ;c=1\r\n\r\n", 0, 8},
        {"trailers", "3\r\nabc\r\n0\r\nX-T: v\r\nY:w\r\nZ: caf\xc3\xa9\r\n\r\n", 0, 3},
        {"sizes up to max_body", "6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n", 0, 10, kMax, 10},
        {"extension and trailer under max_header", "1;eeeeeeeeee\r\nx\r\n0\r\nX: vvvvvvv\r\n\r\n", 0, 1, 64},
        {"no CRLF after the data", "3\r\nabcXY0\r\n\r\n", 400},
        {"data longer than its size", "3\r\nabcd\r\n0\r\n\r\n", 400},
        {"bare LF after the data", "3\r\nabc\n0\r\n\r\n", 400},
        {"CR then not LF after the data", "3\r\nabc\rX0\r\n\r\n", 400},
        {"bare LF ends the size", "3\nabc\r\n0\r\n\r\n", 400},
        {"bare LF ends an extension", "3;x\nabc\r\n0\r\n\r\n", 400},
        {"CR then not LF after the size", "3\rXabc\r\n0\r\n\r\n", 400},
        {"a space after the size", "3 \r\nabc\r\n0\r\n\r\n", 400},
        {"a tab after the size", "3\t\r\nabc\r\n0\r\n\r\n", 400},
        {"two numbers", "3 4\r\nabc\r\n0\r\n\r\n", 400},
        {"a space before the size", " 3\r\nabc\r\n0\r\n\r\n", 400},
        {"an empty size", "\r\nabc\r\n0\r\n\r\n", 400},
        {"an empty size with an extension", ";x\r\nabc\r\n0\r\n\r\n", 400},
        {"not hex", "g\r\nabc\r\n0\r\n\r\n", 400},
        {"0x", "0x3\r\nabc\r\n0\r\n\r\n", 400},
        {"a sign", "+3\r\nabc\r\n0\r\n\r\n", 400},
        {"bare LF ends the body", "0\r\n\n", 400},
        {"bare LF ends the last size", "0\n\r\n", 400},
        {"CR then not LF at the end", "0\r\n\rX", 400},
        {"bare LF ends a trailer", "0\r\nX: v\n\r\n", 400},
        {"a space in a trailer name", "0\r\nX Y: v\r\n\r\n", 400},
        {"a space before a trailer's colon", "0\r\nX : v\r\n\r\n", 400},
        {"a trailer without a colon", "0\r\nXY\r\n\r\n", 400},
        {"whitespace before the first trailer", "0\r\n X: v\r\n\r\n", 400},
        {"trailer obsolete folding", "0\r\nX: v\r\n folded\r\n\r\n", 400},
        {"a CTL in a trailer value",
         "0\r\nX: a\x01"
         "b\r\n\r\n",
         400},
        {"a bare CR in a trailer value", "0\r\nX: a\rb\r\n\r\n", 400},
        {"sizes over max_body", "6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n", 413, 0, kMax, 10},
        {"one size over max_body", "b\r\n", 413, 0, kMax, 10},
        {"a size over 64 bits", "10000000000000000\r\n", 413, 0, kMax, kU64Max},
        {"an extension over max_header", "1;" + std::string(100, 'e') + "\r\nx\r\n0\r\n\r\n", 431, 0, 64},
        {"a trailer over max_header", "0\r\nX: " + std::string(100, 'v') + "\r\n\r\n", 431, 0, 64},
        {"an extension and a trailer over max_header",
         "1;" + std::string(40, 'e') + "\r\nx\r\n0\r\nX: " + std::string(40, 'v') + "\r\n\r\n", 431, 0, 64},
        {"leading zeros of sizes over max_header", "1\r\nx\r\n" + std::string(100, '0') + "\r\n\r\n", 431, 0, 64},
        {"extensions of several chunks over max_header", repeat("1;eeeeeeeeeeeeeeeeeeee\r\nx\r\n", 5) + "0\r\n\r\n",
         431, 0, 64},
    };
    return cases;
}

TEST(ChunkedDecoder, EachBodyGivesItsDataOrItsStatus) {
    for (const ChunkCase& c : chunk_cases()) {
        SCOPED_TRACE(std::string(c.name) + ": " + escaped(c.body));
        const Decoded r = decode(c.body, {}, c.max_header, c.max_body);
        EXPECT_EQ(r.status, c.status);
        EXPECT_EQ(r.done, c.status == 0);
        if (c.status != 0) continue;
        EXPECT_EQ(r.data, c.data);
        EXPECT_EQ(r.used, c.body.size());
    }
}

TEST(ChunkedDecoder, AnySplitGivesTheSameResultAsOneRead) {
    for (const ChunkCase& c : chunk_cases()) {
        SCOPED_TRACE(std::string(c.name) + ": " + escaped(c.body));
        const Decoded whole = decode(c.body, {}, c.max_header, c.max_body);
        std::vector<size_t> bytewise;
        for (size_t p = 1; p < c.body.size(); ++p) bytewise.push_back(p);
        std::vector<std::vector<size_t>> splits = {bytewise};
        for (size_t p = 1; p < c.body.size(); ++p) splits.push_back({p});
        for (const std::vector<size_t>& cuts : splits) {
            const Decoded r = decode(c.body, cuts, c.max_header, c.max_body);
            SCOPED_TRACE(cuts.size() == 1 ? "split at " + std::to_string(cuts[0]) : "byte by byte");
            EXPECT_EQ(r.status, whole.status);
            EXPECT_EQ(r.done, whole.done);
            EXPECT_EQ(r.data, whole.data);
            if (whole.done) {
                EXPECT_EQ(r.used, whole.used);
            }
        }
    }
}

TEST(ChunkedDecoder, BytesAfterTheBodyAreNotConsumed) {
    const std::string body = "3\r\nabc\r\n0\r\nT: v\r\n\r\n";
    for (const std::string& after : {"GET / HTTP/1.1\r\n"s, "\r\n"s, "0\r\n\r\n"s}) {
        SCOPED_TRACE(escaped(after));
        ChunkedDecoder d;
        uint64_t data = 0;
        EXPECT_EQ(d.feed(body + after, data, kMax, kMaxBody), body.size());
        EXPECT_TRUE(d.done());
        EXPECT_EQ(data, 3u);
        EXPECT_EQ(d.feed(after, data, kMax, kMaxBody), 0u) << "fed again once done";
        EXPECT_EQ(data, 3u);
        d.reset();
        EXPECT_FALSE(d.done());
        EXPECT_EQ(d.feed("0\r\n\r\n", data, kMax, kMaxBody), 5u);
        EXPECT_TRUE(d.done());
    }
}

TEST(ChunkedDecoder, TheLargestSizeThatFitsIsNotAnError) {
    ChunkedDecoder d;
    uint64_t data = 0;
    const std::string line = "FFFFFFFFFFFFFFFF\r\nabc";
    EXPECT_EQ(d.feed(line, data, kMax, kU64Max), line.size());
    EXPECT_EQ(d.status(), 0);
    EXPECT_FALSE(d.done());
    EXPECT_EQ(data, 3u);
}

// ---------------------------------------------------------------------------------------------------
// RequestReader

// A head in one line: "POST /p?q path=/p 1.1 close chunked cl=5 continue", the flags only when they hold.
std::string describe(const RequestHead& h) {
    std::string s = std::string(method_name(h.method)) + " " + std::string(h.target) + " path=" + std::string(h.path) +
                    (h.minor == 0 ? " 1.0" : " 1.1");
    if (!h.keep_alive) s += " close";
    if (h.chunked) s += " chunked";
    if (h.has_length) s += " cl=" + std::to_string(h.content_length);
    if (h.expect_continue) s += " continue";
    return s;
}

// Events as lines, so that a difference between two sequences reads at a glance. The offset is the count of
// stream bytes consumed when the event was reported; an error's is left out, as where it is found may vary.
std::string head_event(std::string_view summary, size_t size, size_t offset) {
    return "head " + std::string(summary) + " size=" + std::to_string(size) + " @" + std::to_string(offset);
}
std::string message_event(uint64_t body, size_t offset) {
    return "message body=" + std::to_string(body) + " @" + std::to_string(offset);
}
std::string error_event(int status) { return "error " + std::to_string(status); }

// What a reader reported, with the read each event came in.
struct Trace {
    std::vector<std::string> events;
    std::vector<size_t> offsets;  // stream bytes consumed when the event was reported
    std::vector<size_t> reads;
};

// Feeds `stream` cut at `cuts`, each read in a buffer of its own that is scribbled over once the reader has
// used it up, so a slice the reader kept of an earlier read shows as wrong bytes (or to ASan).
Trace read_stream(std::string_view stream, const std::vector<size_t>& cuts, Limits limits) {
    RequestReader reader(limits);
    Trace t;
    size_t begin = 0;
    bool failed = false;
    for (size_t read = 0; read <= cuts.size() && !failed; ++read) {
        const size_t end = read < cuts.size() ? cuts[read] : stream.size();
        std::string buffer(stream.substr(begin, end - begin));
        std::string_view in = buffer;
        for (int idle = 0;;) {
            const size_t before = in.size();
            const Event e = reader.next(in);
            EXPECT_LE(in.size(), before);
            idle = in.size() == before ? idle + 1 : 0;
            if (e == Event::need_more) {
                EXPECT_TRUE(in.empty()) << "need_more with " << in.size() << " bytes left";
                break;
            }
            if (idle > 2) {
                ADD_FAILURE() << "events without consuming anything";
                failed = true;
                break;
            }
            const size_t offset = end - in.size();
            if (e == Event::head) t.events.push_back(head_event(describe(reader.head()), reader.head().size, offset));
            if (e == Event::message) t.events.push_back(message_event(reader.body_bytes(), offset));
            if (e == Event::error) t.events.push_back(error_event(reader.status()));
            t.offsets.push_back(offset);
            t.reads.push_back(read);
            if (e == Event::error) {
                failed = true;
                break;
            }
        }
        std::fill(buffer.begin(), buffer.end(), '\xAA');
        begin = end;
    }
    return t;
}

// One request of a stream, from which the events it must give follow.
struct Request {
    std::string head;     // its bytes, the empty lines before it included
    std::string content;  // the bytes after the head up to the next request
    uint64_t body = 0;    // content bytes (chunk data for a chunked body)
    std::string summary;  // the head event's describe(); empty: the head is refused
    int error = 0;        // the stream ends with this status here; 0: the request is complete
};

struct Stream {
    const char* name;
    std::vector<Request> requests;
    Limits limits = {};
};

std::string bytes_of(const Stream& s) {
    std::string out;
    for (const Request& r : s.requests) out += r.head + r.content;
    return out;
}

std::vector<std::string> expected_events(const Stream& s) {
    std::vector<std::string> out;
    size_t begin = 0;
    for (const Request& r : s.requests) {
        const size_t head_end = begin + r.head.size();
        if (!r.summary.empty()) out.push_back(head_event(r.summary, r.head.size(), head_end));
        if (r.error != 0) {
            out.push_back(error_event(r.error));
            break;
        }
        begin = head_end + r.content.size();
        out.push_back(message_event(r.body, begin));
    }
    return out;
}

const Request kGet = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, "GET / path=/ 1.1"};

// A GET with 60 fields (about 2.3 KiB); field `bad` (1-based; 0: none) has a space in its name.
std::string big_head(int bad) {
    std::string h = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i <= 60; ++i) h += (i == bad ? "X Bad-" : "X-Field-") + std::to_string(i) + ": some value here\r\n";
    return h + "\r\n";
}

const std::vector<Stream>& streams() {
    const std::string padded100 = head_of_size(100);
    static const std::vector<Stream> all = {
        {"one GET", {kGet}},
        {"pipelined, every kind of body",
         {
             {"\r\nGET /a?x HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, "GET /a?x path=/a 1.1"},
             {"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", "hello", 5,
              "POST /p path=/p 1.1 cl=5 continue"},
             {"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
              "3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n", 13, "PUT /c path=/c 1.1 chunked"},
             {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "", 0, "POST / path=/ 1.1 cl=0"},
             {"\r\n\r\nGET http://h/x?q HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "", 0,
              "GET http://h/x?q path=/x 1.0"},
             {"HEAD / HTTP/1.0\r\n\r\n", "", 0, "HEAD / path=/ 1.0 close"},
             {"OPTIONS * HTTP/1.1\nHost: a\nConnection: close\n\n", "", 0, "OPTIONS * path= 1.1 close"},
         }},
        {"a bad head after a good one", {kGet, {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", kGet.head, 0, "", 400}}},
        {"505", {{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "", 0, "", 505}}},
        {"501", {kGet, {"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, "", 501}}},
        {"Content-Length at max_body, then over it",
         {{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n", std::string(16, 'x'), 16,
           "POST / path=/ 1.1 cl=16"},
          {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", std::string(17, 'x'), 0, "", 413}},
         {kMax, 16}},
        {"Content-Length over 64 bits",
         {{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", "x", 0, "", 413}}},
        {"chunked over max_body",
         {{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
           "9\r\n123456789\r\n8\r\n12345678\r\n0\r\n\r\n", 0, "POST / path=/ 1.1 chunked", 413}},
         {kMax, 16}},
        {"chunked framing error",
         {{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabcXY0\r\n\r\n", 0,
           "POST / path=/ 1.1 chunked", 400}}},
        {"heads of exactly max_header",
         {{padded100, "", 0, "GET / path=/ 1.1"}, {padded100, "", 0, "GET / path=/ 1.1"}},
         {100, kMaxBody}},
        {"a head one byte over max_header", {kGet, {padded100, "", 0, "", 431}}, {99, kMaxBody}},
        {"a request-line over max_header that never ends",
         {{"GET /" + std::string(100, 'a'), "", 0, "", 414}},
         {64, kMaxBody}},
        {"empty lines and a request-line over max_header together",
         {{repeat("\r\n", 10) + "GET /" + std::string(40, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, "", 414}},
         {64, kMaxBody}},
        // Over 1 KiB a head spanning reads is not parsed again on every read; its events must not change.
        {"a head over 1 KiB", {{big_head(0), "", 0, "GET / path=/ 1.1"}, kGet}},
        {"an error deep in a head over 1 KiB", {{big_head(40), kGet.head, 0, "", 400}}},
        {"empty lines over 1 KiB before a request", {{repeat("\r\n", 700) + kGet.head, "", 0, "GET / path=/ 1.1"}}},
        {"a bare CR after empty lines over 1 KiB",
         {{repeat("\r\n", 700) + "\rGET / HTTP/1.1\r\n\r\n", "", 0, "", 400}}},
        {"fields over max_header that never end",
         {{"GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'v'), "", 0, "", 431}},
         {64, kMaxBody}},
    };
    return all;
}

TEST(RequestReader, EachStreamGivesItsEvents) {
    for (const Stream& s : streams()) {
        SCOPED_TRACE(s.name);
        EXPECT_EQ(read_stream(bytes_of(s), {}, s.limits).events, expected_events(s));
    }
}

// Every cut, and byte by byte: the same events, and each reported in the read that completed it (a head or a
// message whose last byte has arrived must not wait for the next read).
TEST(RequestReader, EverySplitGivesTheSameEventsAsOneRead) {
    for (const Stream& s : streams()) {
        SCOPED_TRACE(s.name);
        const std::string bytes = bytes_of(s);
        const std::vector<std::string> expected = expected_events(s);
        std::vector<size_t> bytewise;
        for (size_t p = 1; p < bytes.size(); ++p) bytewise.push_back(p);
        EXPECT_EQ(read_stream(bytes, bytewise, s.limits).events, expected) << "byte by byte";
        for (size_t p = 1; p < bytes.size(); ++p) {
            const Trace t = read_stream(bytes, {p}, s.limits);
            EXPECT_EQ(t.events, expected) << "split at " << p;
            for (size_t i = 0; i < t.events.size(); ++i) {
                if (t.events[i].starts_with("error")) continue;
                EXPECT_EQ(t.reads[i], t.offsets[i] <= p ? 0u : 1u) << "split at " << p << ": " << t.events[i];
            }
        }
    }
}

TEST(RequestReader, ABodylessRequestIsCompleteRightAfterItsHead) {
    RequestReader r(Limits{});
    std::string_view in = kGet.head;
    EXPECT_EQ(r.next(in), Event::head);
    EXPECT_TRUE(in.empty()) << "the head event consumes the head";
    EXPECT_EQ(r.head().size, kGet.head.size());
    EXPECT_EQ(r.next(in), Event::message);
    EXPECT_EQ(r.body_bytes(), 0u);
    EXPECT_EQ(r.next(in), Event::need_more);
}

TEST(RequestReader, BodyBytesCountTheContentSoFar) {
    RequestReader r(Limits{});
    std::string_view in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe";
    EXPECT_EQ(r.next(in), Event::head);
    EXPECT_EQ(in, "he");
    EXPECT_EQ(r.body_bytes(), 0u);
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_EQ(r.body_bytes(), 2u);
    in = "lloGET";
    EXPECT_EQ(r.next(in), Event::message);
    EXPECT_EQ(in, "GET") << "the next request's bytes are left";
    EXPECT_EQ(r.body_bytes(), 5u);

    RequestReader c(Limits{});
    in = "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\nhe";
    EXPECT_EQ(c.next(in), Event::head);
    EXPECT_EQ(c.body_bytes(), 0u);
    EXPECT_EQ(c.next(in), Event::need_more);
    EXPECT_EQ(c.body_bytes(), 5u) << "chunk data only, not the framing";
    in = "llo\r\n0\r\n\r\n";
    EXPECT_EQ(c.next(in), Event::message);
    EXPECT_EQ(c.body_bytes(), 8u);
    in = kGet.head;
    EXPECT_EQ(c.next(in), Event::head);
    EXPECT_EQ(c.body_bytes(), 0u) << "a new request starts at 0";
}

TEST(RequestReader, MidRequestFromTheFirstByteUntilTheLast) {
    RequestReader r(Limits{});
    std::string_view in;
    EXPECT_FALSE(r.mid_request());
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_FALSE(r.mid_request());

    in = "\r\n";  // an empty line before a request already starts the request time-out
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_TRUE(r.mid_request());
    in = kGet.head;
    EXPECT_EQ(r.next(in), Event::head);
    EXPECT_EQ(r.head().size, kGet.head.size() + 2);
    EXPECT_EQ(r.next(in), Event::message);
    EXPECT_FALSE(r.mid_request());
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_FALSE(r.mid_request());

    in = "\r";
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_TRUE(r.mid_request());
    in = "\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab";
    EXPECT_EQ(r.next(in), Event::head);
    EXPECT_TRUE(r.mid_request());
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_TRUE(r.mid_request());
    in = "c";
    EXPECT_EQ(r.next(in), Event::message);
    EXPECT_FALSE(r.mid_request());

    in = "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    EXPECT_EQ(r.next(in), Event::head);
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_TRUE(r.mid_request());
    in = "\r\n";
    EXPECT_EQ(r.next(in), Event::message);
    EXPECT_FALSE(r.mid_request());

    in = "G";
    EXPECT_EQ(r.next(in), Event::need_more);
    EXPECT_TRUE(r.mid_request());
}

TEST(RequestReader, AnErrorEndsTheStream) {
    RequestReader r(Limits{});
    std::string_view in = "GET / HTTP/1.1\r\nHost : a\r\n\r\n";
    EXPECT_EQ(r.next(in), Event::error);
    EXPECT_EQ(r.status(), 400);
    in = kGet.head;
    EXPECT_EQ(r.next(in), Event::error);
    EXPECT_EQ(in.size(), kGet.head.size()) << "nothing more is read";
    EXPECT_EQ(r.status(), 400);
}

// The largest limits a library user may pass: a length that does not fit in 64 bits is still too large,
// and a head spanning reads does not overflow max_header + 1.
TEST(RequestReader, LimitsAtTheirMaximum) {
    RequestReader r(Limits{std::numeric_limits<size_t>::max(), kU64Max});
    std::string_view in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n";
    EXPECT_EQ(r.next(in), Event::error);
    EXPECT_EQ(r.status(), 413);

    RequestReader split(Limits{std::numeric_limits<size_t>::max(), kU64Max});
    in = "GET / HTTP/1.1\r\nHo";
    EXPECT_EQ(split.next(in), Event::need_more);
    in = "st: a\r\n\r\n";
    EXPECT_EQ(split.next(in), Event::head);
    EXPECT_EQ(split.head().size, 27u);
}

TEST(RequestReader, ContentLengthOverMaxBodyIs413BeforeAnyHeadEvent) {
    RequestReader r(Limits{kMax, 10});
    std::string_view in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    EXPECT_EQ(r.next(in), Event::error);
    EXPECT_EQ(r.status(), 413);
}

}  // namespace
