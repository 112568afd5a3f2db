// kvstore unit tests: the command interpreter, and a session driven directly through the handler API
// with a recording Conn: no sockets, no threads, every framing case deterministic.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "kq/conn_stub.hpp"
#include "kv_protocol.hpp"

namespace kvstore {
namespace {

// What the worker would have done with the session's calls (kq::testing::ConnStub records them); each
// send also stays unsent, as if the client read nothing, when `stalled`.
class RecordingReply final : public kq::testing::ConnStub {
public:
    using ConnStub::send;
    void send(std::span<const char> bytes) override {
        ++sends;
        ConnStub::send(bytes);
        if (stalled) unsent_bytes += bytes.size();
    }
    int sends = 0;
    bool stalled = false;
};

// Feeds text as the worker does: after the input the session left unconsumed (held), through a scratch
// buffer scribbled over afterwards: a session that kept a view into it would read garbage later.
void feed(kq::Session& session, RecordingReply& reply, std::string_view text) {
    reply.held.append(text);
    std::vector<char> scratch(reply.held.begin(), reply.held.end());
    size_t used = session.on_data(scratch, reply);
    ASSERT_LE(used, scratch.size());
    reply.held.erase(0, used);
    std::fill(scratch.begin(), scratch.end(), '#');
}

std::string run(ShardedStore& store, std::string_view line) {
    std::string out;
    execute(line, store, out);
    return out;
}

TEST(kvstoreCommands, SetGetDel) {
    ShardedStore store(4);
    EXPECT_EQ(run(store, "GET k"), "NOT_FOUND\n");
    EXPECT_EQ(run(store, "SET k hello world"), "OK\n");
    EXPECT_EQ(run(store, "GET k"), "VALUE hello world\n");
    EXPECT_EQ(run(store, "SET k v2"), "OK\n");
    EXPECT_EQ(run(store, "get k"), "VALUE v2\n");   // commands are case-insensitive
    EXPECT_EQ(run(store, "GET K"), "NOT_FOUND\n");  // keys are not
    EXPECT_EQ(run(store, "DEL k"), "DELETED\n");
    EXPECT_EQ(run(store, "DEL k"), "NOT_FOUND\n");
    EXPECT_EQ(store.size(), 0u);
}

TEST(kvstoreCommands, ValuesKeepTheirSpacesAndMayBeEmpty) {
    ShardedStore store(4);
    EXPECT_EQ(run(store, "SET k  two  spaces "), "OK\n");
    EXPECT_EQ(run(store, "GET k"), "VALUE  two  spaces \n");
    EXPECT_EQ(run(store, "SET e "), "OK\n");
    EXPECT_EQ(run(store, "GET e"), "VALUE \n");
    EXPECT_EQ(run(store, "SET crlf v\r"), "OK\n");  // the "\r" of "\r\n" is not part of the value
    EXPECT_EQ(run(store, "GET crlf\r"), "VALUE v\n");
}

TEST(kvstoreCommands, BadCommandsSayWhy) {
    ShardedStore store(4);
    EXPECT_EQ(run(store, ""), "ERROR empty command\n");
    EXPECT_EQ(run(store, "   "), "ERROR empty command\n");
    EXPECT_EQ(run(store, "\r"), "ERROR empty command\n");
    EXPECT_EQ(run(store, "PUT k v"), "ERROR unknown command\n");
    EXPECT_EQ(run(store, "SETX k v"), "ERROR unknown command\n");
    EXPECT_EQ(run(store, "SET"), "ERROR usage: SET key value\n");
    EXPECT_EQ(run(store, "SET k"), "ERROR usage: SET key value\n");
    EXPECT_EQ(run(store, "GET"), "ERROR usage: GET key\n");
    EXPECT_EQ(run(store, "GET a b"), "ERROR usage: GET key\n");
    EXPECT_EQ(run(store, "DEL"), "ERROR usage: DEL key\n");
    EXPECT_EQ(run(store, "DEL a b"), "ERROR usage: DEL key\n");
    EXPECT_EQ(run(store, "GET a  "), "NOT_FOUND\n");  // trailing spaces are not a second key
    EXPECT_EQ(store.size(), 0u);
}

TEST(kvstoreSession, PipelinedLinesGetOneSendInOrder) {
    KvProtocol protocol;
    RecordingReply reply;
    auto session = protocol.open(reply);
    feed(*session, reply, "SET a 1\nSET b 2\nGET a\nBOGUS\nDEL b\nGET b\n");
    EXPECT_EQ(reply.sent, "OK\nOK\nVALUE 1\nERROR unknown command\nDELETED\nNOT_FOUND\n");
    EXPECT_EQ(reply.sends, 1);
    EXPECT_EQ(reply.requests, 6u);
    EXPECT_FALSE(reply.closed);
}

TEST(kvstoreSession, LineSplitByteByByteIsBufferedAndCopied) {
    KvProtocol protocol;
    RecordingReply reply;
    auto session = protocol.open(reply);
    for (char c : std::string_view("SET key some value\r\nGET key\n")) feed(*session, reply, std::string_view(&c, 1));
    EXPECT_EQ(reply.sent, "OK\nVALUE some value\n");
    EXPECT_EQ(reply.sends, 2);  // one per completed line; the other calls had nothing to say
    EXPECT_EQ(reply.requests, 2u);
}

TEST(kvstoreSession, LineOfExactlyMaxLineIsServedOneMoreByteCloses) {
    KvProtocol protocol(KvOptions{.max_line = 64});
    RecordingReply reply;
    auto session = protocol.open(reply);
    std::string fits = "SET k " + std::string(64 - 6, 'v');
    feed(*session, reply, fits.substr(0, 30));
    feed(*session, reply, fits.substr(30) + "\n");
    EXPECT_EQ(reply.sent, "OK\n");
    EXPECT_FALSE(reply.closed);

    // Earlier lines of the same chunk are answered first; the bytes past the limit are never buffered.
    feed(*session, reply, "GET k\n" + fits + "v");
    EXPECT_EQ(reply.sent, "OK\nVALUE " + fits.substr(6) + "\nERROR line too long\n");
    EXPECT_TRUE(reply.closed);
}

// Pipelined GETs of a large value to a client that reads nothing: the session stops taking lines once
// the output is congested and pauses reading (the rest stays held); when the output drains it resumes,
// and the held lines are answered, in order, with nothing lost or closed.
TEST(kvstoreSession, PipelinedLargeGetsWaitForTheOutputToDrain) {
    KvProtocol protocol;
    RecordingReply reply;
    auto session = protocol.open(reply);
    std::string value(40'000, 'v');
    feed(*session, reply, "SET big " + value + "\n");
    std::string gets;
    for (int i = 0; i < 20; ++i) gets += "GET big\n";
    reply.stalled = true;
    feed(*session, reply, gets);
    EXPECT_TRUE(reply.paused);
    EXPECT_FALSE(reply.closed);
    const uint64_t first = reply.requests - 1;
    EXPECT_GT(first, 0u);
    EXPECT_LT(first, 20u);
    EXPECT_EQ(reply.held.size(), (20 - first) * 8) << "the lines not answered yet are held, whole";
    EXPECT_LE(reply.unsent_bytes, reply.low_water + 64 * 1024 + value.size() + 7) << "bounded output";

    reply.stalled = false;
    reply.unsent_bytes = 0;  // the client read it all
    session->on_drained(reply);
    EXPECT_FALSE(reply.paused);
    feed(*session, reply, "");  // what the worker offers again after resume_reading()
    std::string expected = "OK\n";
    for (int i = 0; i < 20; ++i) expected += "VALUE " + value + "\n";
    EXPECT_EQ(reply.sent, expected);
    EXPECT_TRUE(reply.held.empty());
    EXPECT_EQ(reply.requests, 21u);
}

// An unfinished line is held, which the worker times; the time-out is answered, then closed.
TEST(kvstoreSession, UnfinishedLineIsMidRequestAndTimesOut) {
    KvProtocol protocol;
    RecordingReply reply;
    auto session = protocol.open(reply);
    feed(*session, reply, "SET k");
    EXPECT_EQ(reply.held, "SET k") << "held by the worker, which times it as an unfinished request";
    feed(*session, reply, " v\n");
    EXPECT_TRUE(reply.held.empty());
    feed(*session, reply, "GET");
    session->on_request_timeout(reply);
    EXPECT_EQ(reply.sent, "OK\nERROR timeout\n");
    EXPECT_TRUE(reply.closed);
}

TEST(kvstoreSession, UnterminatedLastLineIsAnsweredAtEof) {
    KvProtocol protocol;
    RecordingReply reply;
    auto session = protocol.open(reply);
    feed(*session, reply, "SET k v\nGET k");
    EXPECT_EQ(reply.sent, "OK\n");
    session->on_peer_eof(reply);
    EXPECT_EQ(reply.sent, "OK\nVALUE v\n");
    EXPECT_TRUE(reply.closed);
    EXPECT_EQ(reply.requests, 2u);
}

TEST(kvstoreSession, SessionsShareOneStore) {
    KvProtocol protocol;
    RecordingReply ra, rb;
    auto a = protocol.open(ra);
    auto b = protocol.open(rb);
    feed(*a, ra, "SET shared 42\n");
    feed(*b, rb, "GET shared\n");
    EXPECT_EQ(rb.sent, "VALUE 42\n");
}

// Workers call the store at once: each thread owns some keys and hammers a common one; every owned key
// must end with its last value, and the common key with one of the written values.
TEST(kvstoreShards, ConcurrentWritersKeepEveryKey) {
    ShardedStore store(8);
    constexpr int kThreads = 4, kKeys = 500;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&store, t] {
            for (int i = 0; i < kKeys; ++i) {
                store.set("t" + std::to_string(t) + "k" + std::to_string(i), std::to_string(i));
                store.set("common", std::to_string(t));
                std::string ignored;
                store.get_into("common", ignored);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(store.size(), static_cast<size_t>(kThreads * kKeys + 1));
    std::string v;
    ASSERT_TRUE(store.get_into("t3k499", v));
    EXPECT_EQ(v, "499");
    std::string common;
    ASSERT_TRUE(store.get_into("common", common));
    EXPECT_TRUE(common == "0" || common == "1" || common == "2" || common == "3");
}

}  // namespace
}  // namespace kvstore
