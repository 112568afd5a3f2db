// kqresp unit tests of the commands: the session driven through the handler API with a recording Conn
// (no sockets, no threads, a hand-driven clock); framing and limits are in test_resp_framing.cpp.
// Expected replies are Redis 7.0.15's, taken from redis-server over a socket with the same requests, not
// from this implementation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resp_harness.hpp"

namespace resp::test {
namespace {

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

}  // namespace
}  // namespace resp::test
