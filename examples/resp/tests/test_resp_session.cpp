// kqresp unit tests: the session driven through the handler API with a recording Conn (no sockets, no
// threads, a hand-driven clock). Expected replies are Redis 7.0.15's, taken from redis-server over a
// socket with the same requests, not from this implementation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resp_harness.hpp"

namespace resp::test {
namespace {

// A multibulk request of the given arguments.
std::string mb(std::vector<std::string> args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
}

TEST(RespSession, PingEchoAndUnknownCommands) {
    Harness h;
    EXPECT_EQ(h.run(mb({"PING"})), "+PONG\r\n");
    EXPECT_EQ(h.run(mb({"ping", "hi"})), "$2\r\nhi\r\n");
    EXPECT_EQ(h.run(mb({"PING", "a", "b"})), "-ERR wrong number of arguments for 'ping' command\r\n");
    EXPECT_EQ(h.run(mb({"echo", "x"})), "$1\r\nx\r\n");
    EXPECT_EQ(h.run(mb({"echo"})), "-ERR wrong number of arguments for 'echo' command\r\n");
    EXPECT_EQ(h.run(mb({"foo", "a", "b"})), "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    EXPECT_EQ(h.run(mb({"foo"})), "-ERR unknown command 'foo', with args beginning with: \r\n");
    // Arguments are shown while the list is under 128 bytes, and a newline in one becomes a space.
    std::string long_arg(200, 'x');
    EXPECT_EQ(h.run(mb({"nope", long_arg, "b"})),
              "-ERR unknown command 'nope', with args beginning with: '" + std::string(128, 'x') + "' \r\n");
    EXPECT_EQ(h.run(mb({"no\r\npe"})), "-ERR unknown command 'no  pe', with args beginning with: \r\n");
    EXPECT_FALSE(h.conn.closed);
}

TEST(RespSession, StringsAndIntegers) {
    Harness h;
    EXPECT_EQ(h.run(mb({"GET", "k"})), "$-1\r\n");
    EXPECT_EQ(h.run(mb({"SET", "k", "v"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"get", "k"})), "$1\r\nv\r\n");
    EXPECT_EQ(h.run(mb({"GET"})), "-ERR wrong number of arguments for 'get' command\r\n");
    EXPECT_EQ(h.run(mb({"SET", "k"})), "-ERR wrong number of arguments for 'set' command\r\n");
    EXPECT_EQ(h.run(mb({"incr", "k"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"set", "n", "9223372036854775807"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"incr", "n"})), "-ERR increment or decrement would overflow\r\n");
    EXPECT_EQ(h.run(mb({"set", "n", "-9223372036854775808"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"decr", "n"})), "-ERR increment or decrement would overflow\r\n");
    EXPECT_EQ(h.run(mb({"decrby", "m", "-9223372036854775808"})), "-ERR decrement would overflow\r\n");
    EXPECT_EQ(h.run(mb({"incrby", "m", "x"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"incrby", "m", "01"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"incrby", "m", "+1"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"incrby", "m", "5"})), ":5\r\n");
    EXPECT_EQ(h.run(mb({"decrby", "m", "9223372036854775807"})), ":-9223372036854775802\r\n");
    EXPECT_EQ(h.run(mb({"INCR", "c"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"DECR", "c"})), ":0\r\n");
    for (std::string bad : {"1.5", " 1", "99999999999999999999"}) {
        h.run(mb({"set", "f", bad}));
        EXPECT_EQ(h.run(mb({"incr", "f"})), "-ERR value is not an integer or out of range\r\n") << bad;
    }
}

TEST(RespSession, SetOptions) {
    Harness h;
    EXPECT_EQ(h.run(mb({"set", "k", "v", "zz"})), "-ERR syntax error\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "ex", "0"})), "-ERR invalid expire time in 'set' command\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "ex", "-1"})), "-ERR invalid expire time in 'set' command\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "ex", "abc"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "nx", "xx"})), "-ERR syntax error\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "ex", "1", "px", "1"})), "-ERR syntax error\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "ex"})), "-ERR syntax error\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v", "nx", "get"})), "$-1\r\n");       // absent: set, old value nil
    EXPECT_EQ(h.run(mb({"set", "k", "v2", "nx", "get"})), "$1\r\nv\r\n");  // present: not set
    EXPECT_EQ(h.run(mb({"set", "k", "v3", "xx"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"set", "absent", "v", "xx"})), "$-1\r\n");
    EXPECT_EQ(h.run(mb({"get", "absent"})), "$-1\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v4", "GET"})), "$2\r\nv3\r\n");
    EXPECT_EQ(h.run(mb({"rpush", "li", "1"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"set", "li", "v", "get"})),
              "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    EXPECT_EQ(h.run(mb({"set", "li", "v"})), "+OK\r\n");  // a plain SET replaces a list
    EXPECT_EQ(h.run(mb({"get", "li"})), "$1\r\nv\r\n");
}

TEST(RespSession, MultiKeyCommands) {
    Harness h;
    EXPECT_EQ(h.run(mb({"mset", "a", "1", "b"})), "-ERR wrong number of arguments for 'mset' command\r\n");
    EXPECT_EQ(h.run(mb({"mset", "a", "1", "b", "2"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"mget", "a", "b", "c"})), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
    EXPECT_EQ(h.run(mb({"exists", "a", "a", "c"})), ":2\r\n");
    EXPECT_EQ(h.run(mb({"del", "a", "b", "c"})), ":2\r\n");
    EXPECT_EQ(h.run(mb({"exists", "a", "a", "b"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"exists"})), "-ERR wrong number of arguments for 'exists' command\r\n");
    EXPECT_EQ(h.run(mb({"del"})), "-ERR wrong number of arguments for 'del' command\r\n");
    h.run(mb({"rpush", "l", "x"}));
    h.run(mb({"set", "s", "y"}));
    EXPECT_EQ(h.run(mb({"mget", "l", "s"})), "*2\r\n$-1\r\n$1\r\ny\r\n");  // a list reads as nil
    EXPECT_EQ(h.run(mb({"dbsize"})), ":2\r\n");
    EXPECT_EQ(h.run(mb({"flushdb", "x"})), "-ERR syntax error\r\n");
    EXPECT_EQ(h.run(mb({"flushall", "async"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"dbsize"})), ":0\r\n");
}

TEST(RespSession, Lists) {
    Harness h;
    EXPECT_EQ(h.run(mb({"rpush", "l", "1", "2", "3"})), ":3\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "0", "-1"})), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "-100", "100"})), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "5", "1"})), "*0\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "1", "-2"})), "*1\r\n$1\r\n2\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "-1", "-2"})), "*0\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "x", "1"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"lrange", "l", "0"})), "-ERR wrong number of arguments for 'lrange' command\r\n");
    EXPECT_EQ(h.run(mb({"lpush", "l", "0"})), ":4\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l"})), "$1\r\n0\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l"})), "$1\r\n1\r\n");
    EXPECT_EQ(h.run(mb({"rpop", "l", "5"})), "*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l"})), "$-1\r\n");  // the last pop deleted the key
    EXPECT_EQ(h.run(mb({"llen", "l"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"exists", "l"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "nokey", "2"})), "*-1\r\n");
    EXPECT_EQ(h.run(mb({"rpush", "l", "a"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l", "0"})), "*0\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l", "-1"})), "-ERR value is out of range, must be positive\r\n");
    EXPECT_EQ(h.run(mb({"lpop", "l", "x"})), "-ERR value is out of range, must be positive\r\n");
    EXPECT_EQ(h.run(mb({"llen", "l"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"lpush", "l"})), "-ERR wrong number of arguments for 'lpush' command\r\n");
}

TEST(RespSession, WrongTypeEverywhere) {
    Harness h;
    const std::string wrongtype = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    h.run(mb({"set", "s", "v"}));
    h.run(mb({"rpush", "l", "a"}));
    for (auto req : std::vector<std::vector<std::string>>{{"lpush", "s", "1"},
                                                          {"rpush", "s", "1"},
                                                          {"lpop", "s"},
                                                          {"rpop", "s", "2"},
                                                          {"lrange", "s", "0", "1"},
                                                          {"llen", "s"},
                                                          {"get", "l"},
                                                          {"incr", "l"},
                                                          {"decrby", "l", "2"},
                                                          {"set", "l", "v", "get"}})
        EXPECT_EQ(h.run(mb(req)), wrongtype) << req[0];
    EXPECT_EQ(h.run(mb({"get", "s"})), "$1\r\nv\r\n");  // unchanged by the refused commands
    EXPECT_EQ(h.run(mb({"llen", "l"})), ":1\r\n");
}

TEST(RespSession, ExpiryFollowsTheInjectedClock) {
    Harness h;
    EXPECT_EQ(h.run(mb({"set", "k", "v", "px", "100"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"pttl", "k"})), ":100\r\n");
    h.now_ms += 99;
    EXPECT_EQ(h.run(mb({"get", "k"})), "$1\r\nv\r\n");
    h.now_ms += 1;
    EXPECT_EQ(h.run(mb({"get", "k"})), "$-1\r\n");
    EXPECT_EQ(h.run(mb({"ttl", "k"})), ":-2\r\n");

    EXPECT_EQ(h.run(mb({"expire", "nokey", "10"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"ttl", "k"})), ":-1\r\n");
    EXPECT_EQ(h.run(mb({"expire", "k", "100"})), ":1\r\n");
    h.now_ms += 1'499;  // 98.501 s left: TTL rounds to the nearest second, as Redis does
    EXPECT_EQ(h.run(mb({"ttl", "k"})), ":99\r\n");
    h.now_ms += 2;
    EXPECT_EQ(h.run(mb({"ttl", "k"})), ":98\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v2", "keepttl"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"pttl", "k"})), ":98499\r\n");
    EXPECT_EQ(h.run(mb({"incr", "n"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"set", "k", "v3"})), "+OK\r\n");  // a plain SET clears the expiry
    EXPECT_EQ(h.run(mb({"ttl", "k"})), ":-1\r\n");
    EXPECT_EQ(h.run(mb({"expire", "k", "x"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"expire", "k", "9999999999999999"})), "-ERR invalid expire time in 'expire' command\r\n");
    EXPECT_EQ(h.run(mb({"expire", "k", "-1"})), ":1\r\n");  // a time in the past deletes
    EXPECT_EQ(h.run(mb({"get", "k"})), "$-1\r\n");
}

TEST(RespSession, ExpireOptions) {
    Harness h;
    h.run(mb({"rpush", "l", "a", "b", "c"}));
    h.run(mb({"set", "x", "1"}));
    EXPECT_EQ(h.run(mb({"expire", "l", "10", "nx", "xx"})),
              "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "10", "gt", "lt"})),
              "-ERR GT and LT options at the same time are not compatible\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "10", "foo"})), "-ERR Unsupported option foo\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "100"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "50", "gt"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "200", "gt"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"ttl", "l"})), ":200\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "300", "lt"})), ":0\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "10", "lt"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"expire", "l", "10", "xx"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"expire", "x", "10", "xx"})), ":0\r\n");  // no expiry yet
    EXPECT_EQ(h.run(mb({"expire", "x", "10", "lt"})), ":1\r\n");  // none counts as infinite
    EXPECT_EQ(h.run(mb({"pexpire", "x", "5000"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"pttl", "x"})), ":5000\r\n");
    EXPECT_EQ(h.run(mb({"expire", "x", "10", "nx"})), ":0\r\n");
}

TEST(RespSession, ExpiredKeysAreReclaimedWithoutBeingAskedFor) {
    Harness h;
    for (int i = 0; i < 200; ++i) h.run(mb({"set", "k" + std::to_string(i), "v", "px", "10"}));
    h.run(mb({"set", "keep", "v"}));
    EXPECT_EQ(h.run(mb({"dbsize"})), ":201\r\n");
    h.now_ms += 10;
    EXPECT_EQ(h.run(mb({"dbsize"})), ":1\r\n");
    EXPECT_EQ(h.run(mb({"exists", "k0", "k199", "keep"})), ":1\r\n");
}

TEST(RespSession, ServerCommandsClientsAskFor) {
    Harness h;
    EXPECT_EQ(h.run(mb({"config", "get", "save"})), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    EXPECT_EQ(h.run(mb({"CONFIG", "GET", "appendonly"})), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    EXPECT_EQ(h.run(mb({"CONFIG", "GET", "SAVE"})), "*2\r\n$4\r\nSAVE\r\n$0\r\n\r\n");
    EXPECT_EQ(h.run(mb({"config", "get", "foo"})), "*0\r\n");
    EXPECT_EQ(h.run(mb({"config", "get"})), "-ERR wrong number of arguments for 'config|get' command\r\n");
    EXPECT_EQ(h.run(mb({"config"})), "-ERR wrong number of arguments for 'config' command\r\n");
    EXPECT_EQ(h.run(mb({"select", "0"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"select", "-1"})), "-ERR DB index is out of range\r\n");
    EXPECT_EQ(h.run(mb({"select", "x"})), "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"command", "docs"})), "*0\r\n");
    EXPECT_EQ(h.run(mb({"command", "foo"})), "-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n");
    EXPECT_EQ(h.run(mb({"client", "setname", "x"})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"client", "foo"})), "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n");
    EXPECT_EQ(h.run(mb({"client"})), "-ERR wrong number of arguments for 'client' command\r\n");
    EXPECT_EQ(h.run(mb({"client", "setname"})), "-ERR wrong number of arguments for 'client|setname' command\r\n");
    EXPECT_EQ(h.run(mb({"hello", "4"})), "-NOPROTO unsupported protocol version\r\n");
    EXPECT_EQ(h.run(mb({"hello", "x"})), "-ERR Protocol version is not an integer or out of range\r\n");
    EXPECT_EQ(h.run(mb({"hello", "2", "foo"})), "-ERR Syntax error in HELLO option 'foo'\r\n");
    EXPECT_TRUE(h.run(mb({"hello"})).starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"));
    const std::string info = h.run(mb({"info"}));
    EXPECT_TRUE(info.starts_with("$")) << info;
    EXPECT_NE(info.find("# Server\r\nredis_version:"), std::string::npos) << info;
    EXPECT_EQ(h.run(mb({"info", "nosuchsection"})), "$0\r\n\r\n");
    EXPECT_FALSE(h.conn.closed);
}

TEST(RespSession, QuitAnswersThenClosesIgnoringWhatFollows) {
    Harness h;
    EXPECT_EQ(h.run("quit x\r\nping\r\n"), "+OK\r\n");
    EXPECT_TRUE(h.conn.closed);
    EXPECT_TRUE(h.session->input_may_follow());  // something did follow QUIT
    Harness alone;
    EXPECT_EQ(alone.run(mb({"QUIT"})), "+OK\r\n");
    EXPECT_TRUE(alone.conn.closed);
    EXPECT_FALSE(alone.session->input_may_follow());
}

TEST(RespSession, InlineCommandsAndQuoting) {
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

TEST(RespSession, ProtocolErrorsAnswerThenClose) {
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

TEST(RespSession, EmptyAndOddMultibulksAsRedisReadsThem) {
    Harness h;
    EXPECT_EQ(h.run("*-1\r\nping\r\n*0\r\nping\r\n"), "+PONG\r\n+PONG\r\n");
    // The two bytes after an argument are skipped unread: "abcd" with length 3 runs "abc", and "d\r\n"
    // leaves "\n", a blank inline line.
    EXPECT_EQ(h.run("*1\r\n$3\r\nabcd\r\n"), "-ERR unknown command 'abc', with args beginning with: \r\n");
    EXPECT_EQ(h.run(mb({"ping"})), "+PONG\r\n");
    EXPECT_FALSE(h.conn.closed);
}

TEST(RespSession, PipelinedRequestsGetOneSendInOrder) {
    Harness h;
    const std::string in = mb({"set", "a", "1"}) + "incr a\r\n" + mb({"get", "a"}) + mb({"ping"}) + "ping x\r\n";
    EXPECT_EQ(h.run(in), "+OK\r\n:2\r\n$1\r\n2\r\n+PONG\r\n$1\r\nx\r\n");
    EXPECT_EQ(h.conn.sends, 1);
    EXPECT_EQ(h.conn.requests, 5u);
    EXPECT_TRUE(h.conn.held.empty());
}

// Every cut of a mixed pipeline, one cut and then byte by byte: the same answers as fed whole.
TEST(RespSession, EverySplitGivesTheSameOutput) {
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

TEST(RespSession, BinarySafeValues) {
    Harness h;
    std::string value;
    for (int i = 0; i < 256; ++i) value += static_cast<char>(i);
    EXPECT_EQ(h.run(mb({"set", std::string("k\0k", 3), value})), "+OK\r\n");
    EXPECT_EQ(h.run(mb({"get", std::string("k\0k", 3)})), "$256\r\n" + value + "\r\n");
    EXPECT_EQ(h.run(mb({"get", "k"})), "$-1\r\n");
}

// Limits: each is refused as soon as it is known, before the session waits for the rest, so the held
// input never grows past it.
TEST(RespSession, OversizedBulkIsRefusedBeforeItsBytesArrive) {
    Limits limits;
    limits.max_bulk = 1000;
    Harness ok(limits);
    EXPECT_EQ(ok.run(mb({"set", "k", std::string(1000, 'x')})), "+OK\r\n");
    Harness h(limits);
    EXPECT_EQ(h.run("*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1001\r\n"), "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_TRUE(h.conn.closed);
}

TEST(RespSession, OversizedMultibulkCountIsRefused) {
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

TEST(RespSession, OversizedInlineLineIsRefusedBeforeItEnds) {
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

TEST(RespSession, RequestLargerThanMaxRequestIsRefused) {
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
TEST(RespSession, PartialRequestIsLeftToTheWorker) {
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
TEST(RespSession, PipelinedLargeRepliesWaitForTheOutputToDrain) {
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

TEST(RespSession, SessionsShareOneStore) {
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
