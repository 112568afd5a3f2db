// The HTTP session under flow control, without sockets: a ConnStub whose output is taken by nobody until the
// test lets the client read (drain), as a worker's connection to a client that does not read. What is
// sent when, what the session leaves unconsumed, when it pauses, resumes and closes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kq/conn_stub.hpp"
#include "kq/http.hpp"

using namespace kq;

namespace {

constexpr size_t kLowWater = 256 * 1024;  // ConnStub's, as WorkerConfig's default
constexpr size_t kPiece = 64 * 1024;      // the largest piece of a body one send() carries

// A connection to a client that reads only when the test says: everything sent stays unsent until
// drain(), which then calls on_drained() if the output had gone above low water (as the worker does).
class SlowClientConn final : public kq::testing::ConnStub {
public:
    using ConnStub::send;
    void send(std::span<const char> bytes) override {
        if (closed) return;
        ConnStub::send(bytes);
        unsent_bytes += bytes.size();
        largest_send = std::max(largest_send, bytes.size());
        if (unsent_bytes > low_water) drain_wanted = true;
    }
    // The client reads all that was sent; true if the session was told (on_drained).
    bool drain(Session& s) {
        unsent_bytes = 0;
        if (!std::exchange(drain_wanted, false)) return false;
        s.on_drained(*this);
        return true;
    }
    bool drain_wanted = false;
    size_t largest_send = 0;
};

struct Answer {
    int status = 0;
    size_t length = 0;
    bool close = false;
    std::string_view body;
};

// The answers in out, none to HEAD unless head_only; a cut answer ends the list (with what arrived of it).
std::vector<Answer> answers(std::string_view out, bool head_only = false) {
    std::vector<Answer> rs;
    while (!out.empty()) {
        const size_t end = out.find("\r\n\r\n");
        if (end == std::string_view::npos) break;
        std::string_view head = out.substr(0, end + 4);
        Answer a;
        a.status = head.starts_with("HTTP/1.1 ") ? std::stoi(std::string(head.substr(9, 3))) : -1;
        const size_t cl = head.find("\r\nContent-Length: ");
        if (cl != std::string_view::npos) a.length = std::stoul(std::string(head.substr(cl + 18, 20)));
        a.close = head.find("\r\nConnection: close\r\n") != std::string_view::npos;
        out.remove_prefix(end + 4);
        a.body = out.substr(0, head_only ? 0 : a.length);
        out.remove_prefix(a.body.size());
        rs.push_back(a);
    }
    return rs;
}

std::string get(std::string_view path, std::string_view extra = "") {
    return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}

// Feeds bytes as the worker's scratch buffer would (the session may change them in place).
size_t feed(Session& s, Conn& c, std::string_view bytes) {
    std::string copy(bytes);
    return s.on_data(std::span<char>(copy.data(), copy.size()), c);
}

class HttpSessionFlow : public ::testing::Test {
protected:
    std::unique_ptr<Protocol> protocol_ = make_http_protocol();
    SlowClientConn conn_;
    std::unique_ptr<Session> session_ = protocol_->open(conn_);
};

// GET /bytes/1 MiB: the head says the whole length, the body goes out in pieces until the output is
// congested, then reading pauses; each drain lets it go on by at most low water and a piece; once it is
// all out reading resumes. One request counted, in the call that began the answer.
TEST_F(HttpSessionFlow, ALargeBodyStreamsWhileNotCongestedAndGoesOnWhenDrained) {
    const std::string req = get("/bytes/1048576");
    EXPECT_EQ(feed(*session_, conn_, req), req.size());
    EXPECT_EQ(conn_.requests, 1u);
    EXPECT_TRUE(conn_.paused);
    EXPECT_TRUE(conn_.congested());
    EXPECT_LE(conn_.unsent_bytes, kLowWater + 2 * kPiece);
    EXPECT_FALSE(session_->mid_request()) << "the request time-out must not run while the answer streams";
    auto rs = answers(conn_.sent);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].length, 1048576u);
    EXPECT_LT(rs[0].body.size(), 1048576u);
    int drains = 0;
    while (conn_.paused) {
        ASSERT_LT(++drains, 100) << "the body never ends";
        const size_t before = conn_.sent.size();
        ASSERT_TRUE(conn_.drain(*session_)) << "paused with nothing to wait for";
        EXPECT_LE(conn_.sent.size() - before, kLowWater + kPiece);
    }
    EXPECT_GT(drains, 1);
    rs = answers(conn_.sent);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].body.size(), 1048576u);
    EXPECT_EQ(rs[0].body.find_first_not_of('x'), std::string_view::npos);
    EXPECT_FALSE(rs[0].close);
    EXPECT_FALSE(conn_.closed);
    EXPECT_EQ(conn_.requests, 1u);
    EXPECT_LE(conn_.largest_send, kPiece + 512) << "a body piece (with at most a head) per send";
}

// Requests after a streaming answer are not read: on_data returns the bytes up to the end of the answered
// one (the worker holds the rest), and nothing of the next answer is sent until the body is out. Offered
// again after the resume, they are answered; a partial request at the end is then mid-request.
TEST_F(HttpSessionFlow, PipelinedRequestsWaitWithTheWorkerWhileABodyStreams) {
    const std::string first = get("/bytes/1048576"), rest = get("/bytes/3") + "GET / HTTP/1.1\r\nHo";
    EXPECT_EQ(feed(*session_, conn_, first + rest), first.size());
    EXPECT_EQ(conn_.requests, 1u);
    EXPECT_TRUE(conn_.paused);
    EXPECT_FALSE(session_->mid_request()) << "the held partial request is not the session's yet";
    for (int i = 0; conn_.paused; ++i) {
        ASSERT_LT(i, 100);
        ASSERT_TRUE(conn_.drain(*session_));
    }
    EXPECT_EQ(answers(conn_.sent).size(), 1u) << "the next answer came before the body ended";
    EXPECT_EQ(feed(*session_, conn_, rest), rest.size());  // the worker offers the held bytes again
    auto rs = answers(conn_.sent);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].body.size(), 1048576u);
    EXPECT_EQ(rs[1].body, "xxx");
    EXPECT_EQ(conn_.requests, 2u);
    EXPECT_FALSE(conn_.paused);
    EXPECT_TRUE(session_->mid_request());
}

// HEAD /bytes/N: only the head, with the length; nothing streams and the next request is answered at once.
TEST_F(HttpSessionFlow, HeadOfALargeBodyIsOnlyTheHead) {
    const std::string in = "HEAD /bytes/1048576 HTTP/1.1\r\nHost: t\r\n\r\n" + get("/bytes/2");
    EXPECT_EQ(feed(*session_, conn_, in), in.size());
    EXPECT_FALSE(conn_.paused);
    EXPECT_EQ(conn_.requests, 2u);
    auto rs = answers(conn_.sent, true);
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].length, 1048576u);
    EXPECT_TRUE(conn_.sent.ends_with("\r\n\r\nxx")) << "HEAD got a body";
    EXPECT_LT(conn_.sent.size(), 1024u);
}

// Connection: close on a streaming answer: the connection closes once the body is out, not before, and
// the request after it is never answered.
TEST_F(HttpSessionFlow, ConnectionCloseOnAStreamingAnswerClosesOnceTheBodyIsOut) {
    feed(*session_, conn_, get("/bytes/1048576", "Connection: close\r\n") + get("/"));
    EXPECT_FALSE(conn_.closed);
    EXPECT_EQ(conn_.requests, 1u);
    for (int i = 0; !conn_.closed; ++i) {
        ASSERT_LT(i, 100);
        ASSERT_TRUE(conn_.drain(*session_));
    }
    auto rs = answers(conn_.sent);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].close);
    EXPECT_EQ(rs[0].body.size(), 1048576u);
    EXPECT_EQ(conn_.sent.size() - (conn_.sent.find("\r\n\r\n") + 4), 1048576u) << "bytes after the body";
    EXPECT_TRUE(session_->input_may_follow()) << "a request followed the closing one";
}

// Many answers of up to a piece each, built in one buffer: they go out a piece's worth at a time, and the
// answering stops at a request boundary once the output is congested, to go on when the worker offers the
// rest again after the drain. Every answer arrives, in order (each length says which).
TEST_F(HttpSessionFlow, ManySmallAnswersStopAtARequestBoundaryWhenCongested) {
    std::string in;
    std::vector<size_t> ends;  // where each request ends in `in`
    for (size_t i = 0; i < 200; ++i) {
        in += get("/bytes/" + std::to_string(50'000 + i));
        ends.push_back(in.size());
    }
    std::string_view held = in;
    int calls = 0;
    while (!held.empty()) {
        ASSERT_LT(++calls, 1000);
        ASSERT_FALSE(conn_.paused);
        const uint64_t requests_before = conn_.requests;
        const size_t used = feed(*session_, conn_, held);
        ASSERT_LE(used, held.size());
        EXPECT_LE(conn_.unsent_bytes, kLowWater + 2 * kPiece + 1024) << "call " << calls;
        if (used < held.size()) {
            EXPECT_TRUE(conn_.paused) << "input left unconsumed without a pause";
            const size_t at = in.size() - held.size() + used;
            EXPECT_TRUE(std::find(ends.begin(), ends.end(), at) != ends.end()) << "stopped inside a request";
            EXPECT_GT(conn_.requests, requests_before) << "stopped without answering anything";
        }
        held.remove_prefix(used);
        while (conn_.paused) ASSERT_TRUE(conn_.drain(*session_));
    }
    EXPECT_GT(calls, 1) << "never congested: the test proves nothing";
    EXPECT_EQ(conn_.requests, 200u);
    auto rs = answers(conn_.sent);
    ASSERT_EQ(rs.size(), 200u);
    for (size_t i = 0; i < rs.size(); ++i) ASSERT_EQ(rs[i].body.size(), 50'000 + i) << "answer " << i;
}

// A client that takes everything at once (nothing stays unsent): every answer in the one call, no pause.
TEST(HttpSessionFast, AnUncongestedConnectionGetsEveryAnswerInOneCall) {
    auto protocol = make_http_protocol();
    kq::testing::ConnStub conn;  // unsent() stays 0
    auto session = protocol->open(conn);
    const std::string in = get("/bytes/1048576") + get("/bytes/1048576") + get("/");
    EXPECT_EQ(feed(*session, conn, in), in.size());
    EXPECT_FALSE(conn.paused);
    EXPECT_EQ(conn.requests, 3u);
    auto rs = answers(conn.sent);
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0].body.size(), 1048576u);
    EXPECT_EQ(rs[1].body.size(), 1048576u);
    EXPECT_EQ(rs[2].body, "Hello from kqserver\n");
}

}  // namespace
