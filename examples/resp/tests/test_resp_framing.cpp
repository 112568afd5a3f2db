// kqresp unit tests of framing: inline requests, protocol errors, pipelining, every split of the input,
// the limits, flow control. The session runs on a recording Conn; expected replies are Redis 7.0.15's,
// taken from redis-server over a socket with the same requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "resp_harness.hpp"

namespace resp::test {
namespace {

TEST(RespFraming, InlineCommandsAndQuoting) {
    Harness h;
    EXPECT_EQ(h.run("set \"a b\" \"c\\x41d\"\r\nget \"a b\"\r\n"), "+OK\r\n$3\r\ncAd\r\n");
    EXPECT_EQ(h.run("set q 'it\\'s' \r\nget q\n"), "+OK\r\n$4\r\nit's\r\n");
    EXPECT_EQ(h.run("\r\n\r\n\n   \r\nping\r\n"), "+PONG\r\n");  // blank lines are no requests
    EXPECT_EQ(h.run("echo \"\\n\\t\"\r\n"), "$2\r\n\n\t\r\n");
    EXPECT_EQ(h.run("foo a b\r\n"), "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    EXPECT_FALSE(h.conn.closed);
    EXPECT_EQ(h.run("set \"unterminated\r\nping\r\n"), "-ERR Protocol error: unbalanced quotes in request\r\n");
    EXPECT_TRUE(h.conn.closed);
    Harness h2;
    EXPECT_EQ(h2.run("set k \"a\"b\r\n"), "-ERR Protocol error: unbalanced quotes in request\r\n");
    EXPECT_TRUE(h2.conn.closed);
}

TEST(RespFraming, ProtocolErrorsAnswerThenClose) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n"},
        {"*1\r\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n"},
        {"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$600000000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"ping\r\n*2\r\n$4\r\necho\r\n$01\r\n", "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
    };
    for (const auto& [in, out] : cases) {
        Harness h;
        EXPECT_EQ(h.run(in), out) << in;
        EXPECT_TRUE(h.conn.closed) << in;
    }
}

TEST(RespFraming, EmptyAndOddMultibulksAsRedisReadsThem) {
    Harness h;
    EXPECT_EQ(h.run("*-1\r\nping\r\n*0\r\nping\r\n"), "+PONG\r\n+PONG\r\n");
    // The two bytes after an argument are skipped unread: "abcd" with length 3 runs "abc", and "d\r\n"
    // leaves "\n", a blank inline line.
    EXPECT_EQ(h.run("*1\r\n$3\r\nabcd\r\n"), "-ERR unknown command 'abc', with args beginning with: \r\n");
    EXPECT_EQ(h.run(mb({"ping"})), "+PONG\r\n");
    EXPECT_FALSE(h.conn.closed);
}

TEST(RespFraming, PipelinedRequestsGetOneSendInOrder) {
    Harness h;
    const std::string in = mb({"set", "a", "1"}) + "incr a\r\n" + mb({"get", "a"}) + mb({"ping"}) + "ping x\r\n";
    EXPECT_EQ(h.run(in), "+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n$1\r\nx\r\n");
    EXPECT_EQ(h.conn.sends, 1);
    EXPECT_EQ(h.conn.requests, 5u);
    EXPECT_TRUE(h.conn.held.empty());
}

// Every cut of a mixed pipeline, one cut and then byte by byte: the same answers as fed whole.
TEST(RespFraming, EverySplitGivesTheSameOutput) {
    const std::string in = mb({"SET", "k", "hello\r\nworld"}) + "get k\r\n" + mb({"RPUSH", "l", "a", "", "c"}) +
                           "*0\r\n\r\n" + mb({"LRANGE", "l", "0", "-1"}) + "set 'a b' \"\\x41\"\n" +
                           mb({"MGET", "k", "a b", "zz"}) + mb({"INCR", "k"}) + "*1\r\n$x\r\n";
    const std::string whole = run_split(in, {});
    EXPECT_TRUE(whole.ends_with("-ERR Protocol error: invalid bulk length\r\n<closed>")) << whole;
    EXPECT_NE(whole.find("$12\r\nhello\r\nworld\r\n"), std::string::npos) << whole;
    for (size_t cut = 1; cut < in.size(); ++cut) ASSERT_EQ(run_split(in, {cut}), whole) << "cut at " << cut;
    for (size_t a = 1; a < in.size(); a += 7)
        for (size_t b = a + 1; b < in.size(); b += 5) ASSERT_EQ(run_split(in, {a, b}), whole) << a << "," << b;
    std::vector<size_t> every;
    for (size_t i = 1; i < in.size(); ++i) every.push_back(i);
    EXPECT_EQ(run_split(in, every), whole);
}

TEST(RespFraming, BinarySafeValues) {
    Harness h;
    std::string value;
    for (int i = 0; i < 256; ++i) value += static_cast<char>(i);
    EXPECT_EQ(h.run(mb({"set", std::string("k\0k", 3), value})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"get", std::string("k\0k", 3)})), "$256\r\n" + value + "\r\n");
    EXPECT_EQ(h.run(mb({"get", "k"})), "$-1\r\n");
}

// Limits: each is refused as soon as it is known, before the session waits for the rest, so the held
// input never grows past it.
TEST(RespFraming, OversizedBulkIsRefusedBeforeItsBytesArrive) {
    Limits limits;
    limits.max_bulk = 1000;
    Harness ok(limits);
    EXPECT_EQ(ok.run(mb({"set", "k", std::string(1000, 'x')})), "+OK\r\n");
    Harness h(limits);
    EXPECT_EQ(h.run("*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1001\r\n"), "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_TRUE(h.conn.closed);
}

TEST(RespFraming, OversizedMultibulkCountIsRefused) {
    Limits limits;
    limits.max_args = 4;
    Harness ok(limits);
    EXPECT_EQ(ok.run(mb({"mset", "a", "1", "b"})), "-ERR wrong number of arguments for 'mset' command\r\n");
    Harness h(limits);
    EXPECT_EQ(h.run("*5\r\n"), "-ERR Protocol error: invalid multibulk length\r\n");
    EXPECT_TRUE(h.conn.closed);
    Harness big;  // the default limit, 1 Mi arguments
    EXPECT_EQ(big.run("*1048577\r\n"), "-ERR Protocol error: invalid multibulk length\r\n");
    Harness held;  // within the limit: waits for the arguments, holding only what arrived
    EXPECT_EQ(held.run("*1048576\r\n$4\r\nping\r\n"), "");
    EXPECT_FALSE(held.conn.closed);
}

TEST(RespFraming, OversizedInlineLineIsRefusedBeforeItEnds) {
    Limits limits;
    limits.max_inline = 100;
    Harness ok(limits);
    // 100 bytes before the "\n", the "\r" included: the longest line allowed.
    EXPECT_EQ(ok.run("echo " + std::string(94, 'x') + "\r\n"), "$94\r\n" + std::string(94, 'x') + "\r\n");
    Harness h(limits);
    EXPECT_EQ(h.run(std::string(100, 'a')), "");  // not yet over
    EXPECT_FALSE(h.conn.closed);
    EXPECT_EQ(h.run("a"), "-ERR Protocol error: too big inline request\r\n");
    EXPECT_TRUE(h.conn.closed);
    EXPECT_LE(h.max_held, 101u);
    Harness count(limits);  // a `*N` line that never ends
    EXPECT_EQ(count.run("*" + std::string(101, '1')), "-ERR Protocol error: too big mbulk count string\r\n");
    Harness bulk(limits);
    EXPECT_EQ(bulk.run("*1\r\n$" + std::string(101, '1')), "-ERR Protocol error: too big bulk count string\r\n");
}

TEST(RespFraming, RequestLargerThanMaxRequestIsRefused) {
    Limits limits;
    limits.max_bulk = 600;
    limits.max_request = 1000;
    Harness h(limits);
    // Two arguments of 500 each: each within max_bulk, together over max_request.
    EXPECT_EQ(h.run("*3\r\n$3\r\nset\r\n$500\r\n" + std::string(500, 'k') + "\r\n$500\r\n"),
              "-ERR Protocol error: too big request\r\n");
    EXPECT_TRUE(h.conn.closed);
}

// A partial request is held by the worker, not copied by the session: what it leaves is the request.
TEST(RespFraming, PartialRequestIsLeftToTheWorker) {
    Harness h;
    const std::string req = mb({"set", "k", std::string(100'000, 'v')});
    EXPECT_EQ(h.feed(req.substr(0, 50'000)), 0u);
    EXPECT_EQ(h.conn.held.size(), 50'000u);
    EXPECT_EQ(h.feed(req.substr(50'000)), req.size());
    EXPECT_EQ(h.conn.sent, "+OK\r\n");
    EXPECT_TRUE(h.conn.held.empty());
}

// A client that pipelines reads of a long list and reads nothing: the session stops once the output is
// congested, pauses reading, and goes on when told that the output drained.
TEST(RespFraming, PipelinedLargeRepliesWaitForTheOutputToDrain) {
    Harness h;
    std::string fill = "*10002\r\n$5\r\nrpush\r\n$1\r\nl\r\n";
    for (int i = 0; i < 10'000; ++i) fill += "$10\r\n" + std::string(10, 'a' + i % 26) + "\r\n";
    EXPECT_EQ(h.run(fill), ":10000\r\n");
    h.conn.sent.clear();
    h.conn.requests = 0;
    h.conn.stalled = true;
    std::string reads;
    for (int i = 0; i < 100; ++i) reads += mb({"lrange", "l", "0", "-1"});
    h.feed(reads);
    EXPECT_TRUE(h.conn.paused);
    EXPECT_FALSE(h.conn.held.empty());
    const size_t one = h.conn.sent.size() / std::max<uint64_t>(h.conn.requests, 1);
    EXPECT_LT(h.conn.requests, 100u);
    EXPECT_LE(h.conn.sent.size(), h.conn.low_water + 2 * one + 64 * 1024);
    for (int rounds = 0; h.conn.requests < 100 && rounds < 1000; ++rounds) {
        h.conn.unsent_bytes = 0;  // the client read everything
        h.session->on_drained(h.conn);
        EXPECT_FALSE(h.conn.paused);
        h.feed("");  // the worker offers the held requests again
    }
    EXPECT_EQ(h.conn.requests, 100u);
    EXPECT_EQ(h.conn.sent.size(), 100 * one);
    EXPECT_TRUE(h.conn.held.empty());
}

TEST(RespFraming, SessionsShareOneStore) {
    Harness h;
    auto other = h.protocol->open(h.conn);
    h.run(mb({"set", "shared", "1"}));
    std::vector<char> req;
    const std::string get = mb({"get", "shared"});
    req.assign(get.begin(), get.end());
    h.conn.sent.clear();
    EXPECT_EQ(other->on_data(req, h.conn), get.size());
    EXPECT_EQ(h.conn.sent, "$1\r\n1\r\n");
}

}  // namespace
}  // namespace resp::test
