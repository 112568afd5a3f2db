// HTTP protocol integration tests: an in-process server on port 0 (every built backend) and a blocking
// client with its own small response parser, so each status, header and body byte is checked.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "http_test_client.hpp"
#include "kq/http.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;
using namespace kq::test::http;

namespace {

constexpr std::string_view kRootBody = "Hello from kqserver\n";

// The 4xx answer to bad input: the status, "Connection: close", then the server closes.
void expect_rejected(Client& c, int status) {
    Response r = c.read();
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

class HttpTest : public ::testing::TestWithParam<Backend> {
protected:
    void SetUp() override { KQ_SKIP_IF_UNAVAILABLE(GetParam()); }
    std::unique_ptr<RunningServer> start(const HttpOptions& opt = {}, int workers = 2) {
        ServerConfig cfg;
        cfg.workers = workers;
        cfg.worker.backend = GetParam();
        return std::make_unique<RunningServer>(cfg, make_http_protocol(opt));
    }
};

TEST_P(HttpTest, KeepAliveServesThreeRequestsOnOneConnection) {
    auto srv = start();
    Client c(srv->port());
    for (int i = 0; i < 3; ++i) {
        Response r = c.get("/");
        ASSERT_EQ(r.status, 200) << "request " << i;
        EXPECT_EQ(r.version, "HTTP/1.1");
        EXPECT_EQ(r.body, kRootBody);
        EXPECT_EQ(r.header("connection"), "keep-alive");
        EXPECT_EQ(r.header("content-type"), "text/plain");
    }
}

// Ten requests in one send come back as ten responses in request order; the sizes say which is which.
// A second round with larger bodies makes the answers span several socket writes.
TEST_P(HttpTest, PipelinedRequestsAreAnsweredInOrder) {
    auto srv = start();
    Client c(srv->port());
    for (size_t scale : {1, 50'000}) {
        std::string all;
        for (size_t i = 1; i <= 10; ++i) all += request("GET", "/bytes/" + std::to_string(i * scale + i));
        c.send(all);
        for (size_t i = 1; i <= 10; ++i) {
            Response r = c.read();
            ASSERT_EQ(r.status, 200) << "response " << i;
            EXPECT_EQ(r.body.size(), i * scale + i) << "response " << i;
        }
    }
    EXPECT_EQ(c.get("/").status, 200);
}

// The request after "Connection: close" in the same send is never answered.
TEST_P(HttpTest, ConnectionCloseIsAnsweredThenClosed) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("GET", "/", "Connection: close\r\n") + request("GET", "/bytes/5"));
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, kRootBody);
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST_P(HttpTest, Http10WithoutKeepAliveIsClosed) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("GET", "/bytes/7", "", "HTTP/1.0"));
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, std::string(7, 'x'));
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST_P(HttpTest, Http10WithKeepAliveStaysOpen) {
    auto srv = start();
    Client c(srv->port());
    for (int i = 0; i < 3; ++i) {
        c.send(request("GET", "/", "Connection: keep-alive\r\n", "HTTP/1.0"));
        Response r = c.read();
        ASSERT_EQ(r.status, 200) << "request " << i;
        EXPECT_EQ(r.header("connection"), "keep-alive");
        EXPECT_EQ(r.body, kRootBody);
    }
    c.send(request("GET", "/", "", "HTTP/1.0"));  // and without it, the connection ends
    EXPECT_EQ(c.read().header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

// --defer-accept (TCP_DEFER_ACCEPT): the kernel holds a silent client instead of handing it to accept();
// its first bytes bring it to a worker, which reads them at once and registers the connection only if it
// stays open. Here the first bytes are half a request, so the worker must register after that read and
// serve the rest when it comes; then an HTTP/1.0 request that arrives whole is answered and closed
// without ever being registered. With the acceptor and with reuseport (each worker's own listener).
TEST_P(HttpTest, DeferredAcceptServesAHalfRequestWhenTheRestArrives) {
    for (AcceptMode mode : {AcceptMode::acceptor, AcceptMode::reuseport}) {
        SCOPED_TRACE(mode == AcceptMode::acceptor ? "acceptor" : "reuseport");
        ServerConfig cfg;
        cfg.workers = 2;
        cfg.accept = mode;
        cfg.worker.backend = GetParam();
        cfg.listen.defer_accept_s = 30;  // far longer than the test: a silent client is never accepted
        RunningServer srv(cfg, make_http_protocol({}));
        auto total = [&](Counter WorkerStats::*counter) { return worker_total(srv.server(), counter); };
        auto wait_for = [&](Counter WorkerStats::*counter, uint64_t want) {
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (total(counter) < want && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
            return total(counter);
        };

        Client c(srv.port());
        // Silent: no worker gets it. Without TCP_DEFER_ACCEPT it would be accepted within microseconds,
        // so 300 ms of observation is ample (this is watching for an absence, not a synchronisation).
        auto watch_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        while (std::chrono::steady_clock::now() < watch_until && total(&WorkerStats::accepted) == 0)
            std::this_thread::yield();
        ASSERT_EQ(total(&WorkerStats::accepted), 0u) << "a client that sent nothing was accepted";

        const std::string head = "GET / HTTP/1.1\r\nHost: kq\r\n";  // the blank line is still to come
        c.send(head);
        ASSERT_EQ(wait_for(&WorkerStats::accepted, 1), 1u) << "its first bytes did not bring it to a worker";
        ASSERT_GE(wait_for(&WorkerStats::bytes_read, head.size()), head.size());
        c.send("\r\n");
        Response r = c.read();
        ASSERT_EQ(r.status, 200);
        EXPECT_EQ(r.body, kRootBody);
        EXPECT_EQ(c.get("/bytes/3").body, "xxx") << "the registered connection serves the next request too";

        Client once(srv.port());
        once.send(request("GET", "/", "", "HTTP/1.0"));
        Response r10 = once.read();
        ASSERT_EQ(r10.status, 200);
        EXPECT_EQ(r10.body, kRootBody);
        EXPECT_TRUE(once.closed_by_server());
        EXPECT_EQ(wait_for(&WorkerStats::closed, 1), 1u) << "only the HTTP/1.0 connection closed";
        EXPECT_EQ(total(&WorkerStats::accepted), 2u);
    }
}

// HEAD answers carry the length the body would have and no body: were one sent, the GET pipelined
// behind them would not parse.
TEST_P(HttpTest, HeadHasContentLengthButNoBody) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("HEAD", "/bytes/100") + request("HEAD", "/") + request("HEAD", "/missing") +
           request("GET", "/bytes/3"));
    Response a = c.read(true), b = c.read(true), d = c.read(true), e = c.read();
    ASSERT_EQ(a.status, 200);
    EXPECT_EQ(a.header("content-length"), "100");
    ASSERT_EQ(b.status, 200);
    EXPECT_EQ(b.header("content-length"), std::to_string(kRootBody.size()));
    ASSERT_EQ(d.status, 404);
    EXPECT_NE(d.header("content-length"), "0");
    ASSERT_EQ(e.status, 200);
    EXPECT_EQ(e.body, "xxx");
}

// A POST body is read and thrown away; the 405 says what is allowed and the connection goes on.
TEST_P(HttpTest, PostBodyIsDiscardedWith405AndAllow) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("POST", "/", "Content-Length: 11\r\n") + "hello world" + request("GET", "/bytes/4"));
    Response r = c.read();
    ASSERT_EQ(r.status, 405);
    EXPECT_EQ(r.header("allow"), "GET, HEAD");
    EXPECT_EQ(r.header("connection"), "keep-alive");
    Response next = c.read();
    ASSERT_EQ(next.status, 200);
    EXPECT_EQ(next.body, "xxxx");
    for (std::string_view method : {"PUT", "DELETE", "OPTIONS"}) {
        c.send(request(method, "/"));
        EXPECT_EQ(c.read().status, 405) << method;
    }
    EXPECT_EQ(c.get("/").status, 200);
}

TEST_P(HttpTest, ChunkedBodyIsDiscarded) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("POST", "/upload", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" +
           request("GET", "/bytes/2"));
    EXPECT_EQ(c.read().status, 405);
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "xx");
}

// --max-body 1000: a body of exactly 1000 is fine; a declared 1001 is refused before it arrives,
// and a chunked body is refused once its chunks pass the limit.
TEST_P(HttpTest, BodyOverMaxBodyGets413AndClose) {
    HttpOptions opt;
    opt.max_body = 1000;
    auto srv = start(opt);
    Client ok(srv->port());
    ok.send(request("POST", "/", "Content-Length: 1000\r\n") + std::string(1000, 'b'));
    EXPECT_EQ(ok.read().status, 405);
    EXPECT_EQ(ok.get("/").status, 200);

    Client declared(srv->port());
    declared.send(request("POST", "/", "Content-Length: 1001\r\n"));
    expect_rejected(declared, 413);

    Client chunked(srv->port());
    chunked.send(request("POST", "/", "Transfer-Encoding: chunked\r\n") + "258\r\n" + std::string(600, 'c') +
                 "\r\n258\r\n" + std::string(600, 'c') + "\r\n0\r\n\r\n");
    expect_rejected(chunked, 413);
}

TEST_P(HttpTest, MalformedRequestsGet400AndClose) {
    auto srv = start();
    const std::vector<std::string> bad = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon in this line\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
    };
    for (const auto& input : bad) {
        SCOPED_TRACE(input);
        Client c(srv->port());
        c.send(input);
        expect_rejected(c, 400);
    }
}

// The limit counts the request line and headers as sent: a head of exactly --max-header bytes is
// served, one byte more is refused, whether the excess is in the URL or in a header.
TEST_P(HttpTest, HeadOverMaxHeaderGets431AndClose) {
    HttpOptions opt;
    opt.max_header = 1024;
    auto srv = start(opt);
    auto padded = [](size_t total) {
        std::string head = request("GET", "/", "X-Pad: \r\n");
        return request("GET", "/", "X-Pad: " + std::string(total - head.size(), 'p') + "\r\n");
    };
    ASSERT_EQ(padded(1024).size(), 1024u);
    Client exact(srv->port());
    exact.send(padded(1024));
    EXPECT_EQ(exact.read().status, 200);

    Client header(srv->port());
    header.send(padded(1025));
    expect_rejected(header, 431);

    // A request-line longer than the whole limit is 414, not 431 (RFC 9112 3).
    Client url(srv->port());
    url.send(request("GET", "/" + std::string(1100, 'u')));
    expect_rejected(url, 414);

    Client many(srv->port());
    std::string lines;
    for (int i = 0; i < 100; ++i) lines += "X-Header-" + std::to_string(i) + ": v\r\n";
    many.send(request("GET", "/", lines));
    expect_rejected(many, 431);
}

// The default limit (8 KiB), also for a request-line that never ends; a larger --max-header is honoured
// whole, with no smaller bound of the parser's own.
TEST_P(HttpTest, DefaultHeaderLimitIs8KiB) {
    auto srv = start();
    Client under(srv->port());
    under.send(request("GET", "/", "X-Pad: " + std::string(8000, 'p') + "\r\n"));
    EXPECT_EQ(under.read().status, 200);

    Client over(srv->port());
    over.send(request("GET", "/", "X-Pad: " + std::string(8200, 'p') + "\r\n"));
    expect_rejected(over, 431);

    Client url(srv->port());
    url.send("GET /" + std::string(10'000, 'u'));  // no line end: refused once past the limit
    expect_rejected(url, 414);

    // The limit is the flag's alone: no bound of the parser's own cuts a larger head short.
    HttpOptions opt;
    opt.max_header = 1 << 20;
    auto big = start(opt);
    Client huge(big->port());
    huge.send(request("GET", "/", "X-Pad: " + std::string(90'000, 'p') + "\r\n"));
    EXPECT_EQ(huge.read().status, 200);
}

TEST_P(HttpTest, BytesRouteServesExactlyNBytes) {
    HttpOptions opt;
    auto srv = start(opt);
    Client c(srv->port());
    for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{65537}, opt.max_bytes_route}) {
        Response r = c.get("/bytes/" + std::to_string(n));
        ASSERT_EQ(r.status, 200) << n;
        EXPECT_EQ(r.header("content-length"), std::to_string(n));
        EXPECT_EQ(r.body.size(), n);
        EXPECT_EQ(r.body.find_first_not_of('x'), std::string::npos) << n;
    }
}

TEST_P(HttpTest, BytesAboveTheLimitAre400) {
    HttpOptions opt;
    opt.max_bytes_route = 5000;
    auto srv = start(opt);
    Client c(srv->port());
    EXPECT_EQ(c.get("/bytes/5000").body.size(), 5000u);
    EXPECT_EQ(c.get("/bytes/5001").status, 400);
    EXPECT_EQ(c.get("/bytes/99999999999999999999999999").status, 400);  // beyond size_t: still too big
    EXPECT_EQ(c.get("/bytes/2").body, "xx");                            // and the connection goes on
}

TEST_P(HttpTest, UnknownPathsAre404) {
    auto srv = start();
    Client c(srv->port());
    for (std::string_view path : {"/nope", "/bytes/", "/bytes/abc", "/bytes/12x", "/bytes/-1", "//"}) {
        Response r = c.get(path);
        EXPECT_EQ(r.status, 404) << path;
        EXPECT_EQ(r.body, "404 Not Found\n") << path;
    }
    EXPECT_EQ(c.get("/").status, 200);
}

// IMF-fixdate (RFC 9110 5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT", within a few seconds of now: parsed,
// then formatted again, it must come back unchanged (two-digit day, English names, the right weekday).
TEST_P(HttpTest, DateHeaderIsImfFixdate) {
    auto srv = start();
    Client c(srv->port());
    std::string date = c.get("/").header("date");
    constexpr const char* kFormat = "%a, %d %b %Y %H:%M:%S GMT";
    std::tm tm{};
    const char* end = strptime(date.c_str(), kFormat, &tm);
    ASSERT_TRUE(end != nullptr && *end == '\0') << date;
    std::time_t t = timegm(&tm);
    std::tm again{};
    gmtime_r(&t, &again);
    char formatted[64];
    ASSERT_GT(std::strftime(formatted, sizeof formatted, kFormat, &again), 0u);
    EXPECT_EQ(date, formatted);
    EXPECT_LE(std::abs(std::difftime(t, std::time(nullptr))), 5.0) << date;
}

// One byte per read: each send waits until the worker has read it (its bytes_read counter), so the
// parser must carry every state (method, URL, header name, value, CRLF) across reads. The first head is
// exactly --max-header bytes: counting a header line's overhead once per slice would refuse it.
TEST_P(HttpTest, RequestSplitByteByByteWorks) {
    std::string headers;
    for (int i = 0; i < 30; ++i) headers += "X-A-Rather-Long-Header-Field-Name-" + std::to_string(i) + ": 1\r\n";
    std::string first = request("GET", "/bytes/6", headers);
    HttpOptions opt;
    opt.max_header = first.size();
    auto srv = start(opt, 1);
    Client c(srv->port());
    const auto& stats = srv->server().worker(0).stats();  // one worker, so every byte is counted there
    uint64_t sent = 0;
    for (char ch : first + request("HEAD", "/")) {
        c.send(std::string_view(&ch, 1));
        ++sent;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (stats.bytes_read.get() < sent) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "byte " << sent << " never read";
            std::this_thread::yield();
        }
    }
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "xxxxxx");
    EXPECT_EQ(c.read(true).status, 200);
    EXPECT_EQ(c.get("/").body, kRootBody);
}

// One worker serves a healthy client with a request half-sent while another client sends bad input;
// the bad client is refused and closed, and the healthy one's request completes with a 200, each time.
TEST_P(HttpTest, BadInputDoesNotAffectAHealthyConnection) {
    HttpOptions opt;
    opt.max_body = 100;
    auto srv = start(opt, 1);
    Client healthy(srv->port());
    const std::vector<std::pair<std::string, int>> bad = {
        {"BAD REQUEST LINE\r\n\r\n", 400},
        {request("GET", "/", "X-Big: " + std::string(9000, 'h') + "\r\n"), 431},
        {request("POST", "/", "Content-Length: 101\r\n"), 413},
        {"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    };
    std::string req = request("GET", "/bytes/9");
    for (int round = 0; round < 5; ++round) {
        for (const auto& [input, status] : bad) {
            healthy.send(std::string_view(req).substr(0, 10));
            Client c(srv->port());
            c.send(input);
            expect_rejected(c, status);
            healthy.send(std::string_view(req).substr(10));
            Response r = healthy.read();
            ASSERT_EQ(r.status, 200);
            ASSERT_EQ(r.body, "xxxxxxxxx");
        }
    }
}

// Large answers (streamed, under flow control) and small ones (built whole) pipelined in one send: the
// small ones wait behind the large ones, and every answer comes back whole, in order (its length says
// which) and kept alive, however much the client asked for at once; the last, asked to close, closes.
// (Past a 4 MiB output budget per read an answer used to say close and end the connection early.)
TEST_P(HttpTest, PipelinedLargeAndSmallAnswersAllComeBackInOrder) {
    auto srv = start({}, 1);
    Client c(srv->port());
    std::vector<size_t> sizes;
    for (size_t i = 0; i < 8; ++i) sizes.push_back(1048576 - i), sizes.push_back(i + 1);
    std::string all;
    for (size_t n : sizes) all += request("GET", "/bytes/" + std::to_string(n));
    c.send(all + request("GET", "/", "Connection: close\r\n"));
    for (size_t i = 0; i < sizes.size(); ++i) {
        Response r = c.read();
        ASSERT_EQ(r.status, 200) << "answer " << i;
        ASSERT_EQ(r.body.size(), sizes[i]) << "answer " << i;
        ASSERT_EQ(r.body.find_first_not_of('x'), std::string::npos) << "answer " << i;
        ASSERT_EQ(r.header("connection"), "keep-alive") << "answer " << i;
    }
    Response last = c.read();
    EXPECT_EQ(last.body, kRootBody);
    EXPECT_EQ(last.header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(srv->total(&WorkerStats::requests), sizes.size() + 1);
}

// Upgrade is a request the server may ignore (RFC 9110 7.8): it answers as HTTP/1.1 and the connection
// stays HTTP, so a next request is answered and bytes that are not HTTP get a 400.
TEST_P(HttpTest, UpgradeIsIgnoredAndTheConnectionStaysHttp) {
    auto srv = start();
    Client c(srv->port());
    c.send(request("GET", "/", "Connection: Upgrade\r\nUpgrade: websocket\r\n") + request("GET", "/bytes/3"));
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("connection"), "keep-alive");
    EXPECT_EQ(r.header("upgrade"), "(absent)");
    EXPECT_EQ(c.read().body, "xxx");
    c.send("\x81\x85 not http");
    expect_rejected(c, 400);
}

// An error answer to a HEAD request whose head was read has no body (RFC 9110 9.3.2), only the length the
// body would have; the connection then closes.
TEST_P(HttpTest, ErrorAnswerToHeadHasNoBody) {
    auto srv = start();
    UniqueFd fd = connect_blocking(srv->port());
    send_all(fd.get(), request("HEAD", "/", "Content-Length: 2000000\r\n"));
    const std::string got = recv_until_eof(fd.get());
    EXPECT_TRUE(got.starts_with("HTTP/1.1 413 ")) << got;
    EXPECT_NE(got.find("\r\nContent-Length: 22\r\n"), std::string::npos) << got;
    EXPECT_TRUE(got.ends_with("\r\n\r\n")) << got;
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpTest, ::testing::ValuesIn(built_backends()), backend_label);

}  // namespace
