// The simple-request fast path (worker/src/http_simple.hpp): what it takes, and that everything else,
// an incomplete head included, is left to http-parser (0). fuzz/fuzz_http checks it against http-parser
// on random inputs; these are the cases a reader can check by eye.
#include <gtest/gtest.h>

#include <string>

#include "http_simple.hpp"

using kq::http::parse_simple_request;
using kq::http::SimpleRequest;

namespace {

constexpr size_t kMax = 8192;

TEST(HttpSimple, TakesOneCompleteRequestAndStopsAtItsEnd) {
    const std::string wrk = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    const std::string two = wrk + "GET /next HTTP/1.1\r\n\r\n";  // r.url points into it
    SimpleRequest r;
    ASSERT_EQ(parse_simple_request(two, kMax, r), wrk.size());
    EXPECT_FALSE(r.head);
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(r.url, "/");
    EXPECT_EQ(r.header_lines, 1u);

    const std::string head10 = "HEAD /bytes/5?q=%20&x=(y) HTTP/1.0\r\nconnection:   Keep-ALIVE\r\nA-b_c: v\t w\r\n\r\n";
    ASSERT_EQ(parse_simple_request(head10, kMax, r), head10.size());
    EXPECT_TRUE(r.head);
    EXPECT_TRUE(r.keep_alive) << "HTTP/1.0 asking for keep-alive";
    EXPECT_EQ(r.url, "/bytes/5?q=%20&x=(y)");
    EXPECT_EQ(r.header_lines, 2u);
}

TEST(HttpSimple, KeepAliveFollowsTheVersionAndTheConnectionHeader) {
    SimpleRequest r;
    const std::pair<std::string, bool> cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nCONNECTION: Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false},
    };
    for (const auto& [req, keep] : cases) {
        ASSERT_EQ(parse_simple_request(req, kMax, r), req.size()) << req;
        EXPECT_EQ(r.keep_alive, keep) << req;
    }
}

TEST(HttpSimple, AnIncompleteHeadIsLeftToHttpParser) {
    const std::string req = "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    SimpleRequest r;
    for (size_t n = 0; n < req.size(); ++n) EXPECT_EQ(parse_simple_request(req.substr(0, n), kMax, r), 0u) << n;
    EXPECT_EQ(parse_simple_request(req, kMax, r), req.size());
}

TEST(HttpSimple, EverythingElseIsLeftToHttpParser) {
    const char* const others[] = {
        "POST / HTTP/1.1\r\n\r\n",
        "get / HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\n\r\n",
        "GET /a#frag HTTP/1.1\r\n\r\n",
        "GET /a\"b HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",
        "GET / HTTP/1.1\n\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\n: x\r\n\r\n",
        "GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
        "GET / HTTP/1.1\r\nX: \x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding2: x\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close \r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n",
    };
    SimpleRequest r;
    for (const char* req : others) EXPECT_EQ(parse_simple_request(req, kMax, r), 0u) << req;
}

// Names that only look like the special ones stay on the fast path (a browser's Upgrade-Insecure-Requests).
TEST(HttpSimple, LookalikeHeaderNamesAreOrdinary) {
    const std::string req = "GET / HTTP/1.1\r\nUpgrade-Insecure-Requests: 1\r\nContent-Type: a\r\nConnections: close\r\n\r\n";
    SimpleRequest r;
    ASSERT_EQ(parse_simple_request(req, kMax, r), req.size());
    EXPECT_TRUE(r.keep_alive);
}

// The head, plus one per header line (what http-parser's callbacks may count beyond the raw bytes:
// ": " for a bare ":"), must fit --max-header; otherwise http-parser decides, and answers 431 if the
// callbacks' count is over.
TEST(HttpSimple, HeadSizeLimit) {
    const std::string req = "GET / HTTP/1.1\r\nA:1\r\nB:2\r\n\r\n";  // 29 bytes, 2 lines
    SimpleRequest r;
    EXPECT_EQ(parse_simple_request(req, req.size() + 2, r), req.size());
    EXPECT_EQ(parse_simple_request(req, req.size() + 1, r), 0u);
}

}  // namespace
