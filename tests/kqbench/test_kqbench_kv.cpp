// The memcache and resp codecs without a network: requests as memcached's protocol.txt and Redis's RESP2
// specification write them, the SET:GET ratio, replies split at every byte (the same outcomes), and what
// a wrong value, an error reply or garbage does to the stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kqbench/codec.hpp"

using namespace kq::bench;

namespace {

Config kv_config(ProtocolKind p, uint64_t keys, size_t value_size, uint32_t sets, uint32_t gets) {
    Config c;
    c.protocol = p;
    c.keys = keys;
    c.value_size = value_size;
    c.set_ratio = sets;
    c.get_ratio = gets;
    return c;
}

// One request as the test reads it back from the bytes, independently of the codec.
struct Request {
    bool set = false;
    std::string key, value;
};

// memcached protocol.txt: "set <key> <flags> <exptime> <bytes>\r\n<data block>\r\n" and "get <key>\r\n".
std::vector<Request> parse_memcache(std::string_view s) {
    std::vector<Request> out;
    while (!s.empty()) {
        size_t eol = s.find("\r\n");
        EXPECT_NE(eol, std::string_view::npos);
        if (eol == std::string_view::npos) break;
        std::string line(s.substr(0, eol));
        s.remove_prefix(eol + 2);
        Request r;
        if (line.rfind("get ", 0) == 0) {
            r.key = line.substr(4);
        } else {
            char key[256];
            unsigned flags = 9, exptime = 9;
            size_t bytes = 0;
            EXPECT_EQ(std::sscanf(line.c_str(), "set %255s %u %u %zu", key, &flags, &exptime, &bytes), 4) << line;
            EXPECT_EQ(flags, 0u);
            EXPECT_EQ(exptime, 0u);
            r.set = true;
            r.key = key;
            EXPECT_EQ(line, "set " + r.key + " 0 0 " + std::to_string(bytes));
            if (s.size() < bytes + 2) {
                ADD_FAILURE() << "short data block";
                break;
            }
            r.value = std::string(s.substr(0, bytes));
            EXPECT_EQ(s.substr(bytes, 2), "\r\n");
            s.remove_prefix(bytes + 2);
        }
        out.push_back(r);
    }
    return out;
}

// RESP2: an array "*<n>\r\n" of bulk strings "$<len>\r\n<bytes>\r\n".
std::vector<Request> parse_resp(std::string_view s) {
    std::vector<Request> out;
    auto bulk = [&s]() {
        size_t eol = s.find("\r\n");
        EXPECT_EQ(s.substr(0, 1), "$");
        size_t len = std::stoul(std::string(s.substr(1, eol - 1)));
        std::string v(s.substr(eol + 2, len));
        EXPECT_EQ(s.substr(eol + 2 + len, 2), "\r\n");
        s.remove_prefix(eol + 2 + len + 2);
        return v;
    };
    while (!s.empty()) {
        Request r;
        if (s.starts_with("*3\r\n")) {
            s.remove_prefix(4);
            EXPECT_EQ(bulk(), "SET");
            r.set = true;
            r.key = bulk();
            r.value = bulk();
        } else if (s.starts_with("*2\r\n")) {
            s.remove_prefix(4);
            EXPECT_EQ(bulk(), "GET");
            r.key = bulk();
        } else {
            ADD_FAILURE() << "not a RESP array of 2 or 3: " << s.substr(0, 20);
            break;
        }
        out.push_back(r);
    }
    return out;
}

std::vector<Request> parse_requests(ProtocolKind p, std::string_view s) {
    return p == ProtocolKind::memcache ? parse_memcache(s) : parse_resp(s);
}

class KvCodecTest : public ::testing::TestWithParam<ProtocolKind> {};

TEST_P(KvCodecTest, OneKeyRequestsAreExactlyTheDocumentedCommands) {
    Config cfg = kv_config(GetParam(), 1, 5, 1, 0);
    cfg.key_prefix = "k";
    auto payloads = make_payloads(cfg);
    auto codec = make_codec(cfg, payloads, 1);
    std::string set;
    codec->write_request(set);
    const std::string v(kv_value(*payloads, 5, 0));
    ASSERT_EQ(v.size(), 5u);
    if (GetParam() == ProtocolKind::memcache) {
        EXPECT_EQ(set, "set k0 0 0 5\r\n" + v + "\r\n");
    } else {
        EXPECT_EQ(set, "*3\r\n$3\r\nSET\r\n$2\r\nk0\r\n$5\r\n" + v + "\r\n");
    }
    cfg.set_ratio = 0, cfg.get_ratio = 1;
    auto getter = make_codec(cfg, payloads, 1);
    std::string get;
    getter->write_request(get);
    EXPECT_EQ(get, GetParam() == ProtocolKind::memcache ? "get k0\r\n" : "*2\r\n$3\r\nGET\r\n$2\r\nk0\r\n");
}

// Keys are "key:<n>", n in [0, keys); a key's value is the same in every request (and every codec), and
// different keys mostly have different values; the mix follows --ratio.
TEST_P(KvCodecTest, KeysValuesAndRatio) {
    Config cfg = kv_config(GetParam(), 50, 20, 1, 10);
    auto payloads = make_payloads(cfg);
    std::map<std::string, std::string> values;
    size_t sets = 0, total = 0;
    std::set<std::string> keys_seen;
    for (uint64_t seed : {1, 2}) {
        auto codec = make_codec(cfg, payloads, seed);
        std::string out;
        for (int i = 0; i < 11'000; ++i) codec->write_request(out);
        for (const Request& r : parse_requests(GetParam(), out)) {
            ++total;
            ASSERT_EQ(r.key.rfind("key:", 0), 0u) << r.key;
            const unsigned long n = std::stoul(r.key.substr(4));
            EXPECT_LT(n, 50u);
            EXPECT_EQ(r.key, "key:" + std::to_string(n));
            keys_seen.insert(r.key);
            if (!r.set) continue;
            ++sets;
            EXPECT_EQ(r.value.size(), 20u);
            EXPECT_EQ(r.value.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
                      std::string::npos);
            auto [it, fresh] = values.emplace(r.key, r.value);
            EXPECT_EQ(it->second, r.value) << r.key << " got another value";
        }
    }
    EXPECT_EQ(total, 22'000u);
    EXPECT_EQ(keys_seen.size(), 50u);
    // 1:10 is a SET with probability 1/11: 2,000 expected, sd ~43.
    EXPECT_GT(sets, 1'800u);
    EXPECT_LT(sets, 2'200u);
    std::set<std::string> distinct;
    for (const auto& [k, v] : values) distinct.insert(v);
    EXPECT_GE(distinct.size(), 45u);
    // Another --seed sends other requests but stores the same value under each key.
    Config other = cfg;
    other.seed = 99;
    auto other_payloads = make_payloads(other);
    for (const auto& [k, v] : values) EXPECT_EQ(kv_value(*other_payloads, 20, std::stoul(k.substr(4))), v);
}

// What a correct server answers to each request, with a miss for every odd key and a failed reply for
// the third SET; and the outcomes the codec must report for it.
struct Script {
    std::string replies;
    std::vector<Outcome> outcomes;
};

Script answer(ProtocolKind p, const std::vector<Request>& requests) {
    Script s;
    int set_count = 0;
    for (const Request& r : requests) {
        if (r.set && ++set_count == 3) {
            s.replies += p == ProtocolKind::memcache ? "SERVER_ERROR out of memory storing object\r\n"
                                                     : "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
            s.outcomes.push_back(Outcome{.error_reply = true});
        } else if (r.set) {
            s.replies += p == ProtocolKind::memcache ? "STORED\r\n" : "+OK\r\n";
            s.outcomes.push_back(Outcome{.kv = KvResult::stored});
        } else if (std::stoul(r.key.substr(4)) % 2 == 1) {
            s.replies += p == ProtocolKind::memcache ? "END\r\n" : "$-1\r\n";
            s.outcomes.push_back(Outcome{.kv = KvResult::miss});
        } else {
            Config cfg;
            cfg.protocol = p;
            cfg.value_size = 10;
            std::string v(kv_value(*make_payloads(cfg), 10, std::stoul(r.key.substr(4))));
            // memcached adds the CAS unique after the length for "gets"; accept it on "get" too.
            std::string cas = s.outcomes.size() % 3 == 0 ? " 12345" : "";
            s.replies += p == ProtocolKind::memcache ? "VALUE " + r.key + " 0 10" + cas + "\r\n" + v + "\r\nEND\r\n"
                                                     : "$10\r\n" + v + "\r\n";
            s.outcomes.push_back(Outcome{.kv = KvResult::hit});
        }
    }
    return s;
}

bool same(const std::vector<Outcome>& a, const std::vector<Outcome>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].ok() != b[i].ok() || a[i].kv != b[i].kv || a[i].error_reply != b[i].error_reply) return false;
    }
    return true;
}

TEST_P(KvCodecTest, RepliesSplitAtEveryByteGiveTheSameOutcomes) {
    const Config cfg = kv_config(GetParam(), 8, 10, 1, 2);
    auto payloads = make_payloads(cfg);
    std::string sent;
    auto first = make_codec(cfg, payloads, 3);
    for (int i = 0; i < 40; ++i) first->write_request(sent);
    const std::vector<Request> requests = parse_requests(GetParam(), sent);
    const Script script = answer(GetParam(), requests);
    ASSERT_GE(std::count_if(script.outcomes.begin(), script.outcomes.end(),
                            [](const Outcome& o) { return o.kv == KvResult::hit; }),
              3);
    ASSERT_GE(std::count_if(script.outcomes.begin(), script.outcomes.end(),
                            [](const Outcome& o) { return o.kv == KvResult::miss; }),
              2);
    for (size_t cut = 0; cut <= script.replies.size(); ++cut) {
        auto codec = make_codec(cfg, payloads, 3);
        std::string again;
        for (int i = 0; i < 40; ++i) codec->write_request(again);
        ASSERT_EQ(again, sent);
        std::vector<Outcome> done;
        const std::string_view all(script.replies);
        ASSERT_EQ(codec->feed(std::span<const char>(all.data(), cut), done), Fatal::none) << cut;
        ASSERT_EQ(codec->feed(std::span<const char>(all.data() + cut, all.size() - cut), done), Fatal::none) << cut;
        ASSERT_TRUE(same(done, script.outcomes)) << "split at " << cut;
    }
    auto bytewise = make_codec(cfg, payloads, 3);
    for (int i = 0; i < 40; ++i) bytewise->write_request(sent);
    std::vector<Outcome> done;
    for (char ch : script.replies) ASSERT_EQ(bytewise->feed(std::span<const char>(&ch, 1), done), Fatal::none);
    EXPECT_TRUE(same(done, script.outcomes));
}

// One GET of key:0 (value_size 10), answered by reply: the feed's result and outcomes.
Fatal feed_get(ProtocolKind p, const std::string& reply, std::vector<Outcome>& done) {
    Config cfg = kv_config(p, 1, 10, 0, 1);
    auto codec = make_codec(cfg, make_payloads(cfg), 1);
    std::string req;
    codec->write_request(req);
    codec->write_request(req);
    return codec->feed(std::span<const char>(reply.data(), reply.size()), done);
}

std::string value0() {
    Config cfg = kv_config(ProtocolKind::memcache, 1, 10, 0, 1);
    return std::string(kv_value(*make_payloads(cfg), 10, 0));
}

TEST(kqbench_kv, MemcacheWrongValuesErrorRepliesAndGarbage) {
    const std::string v = value0(), p = "VALUE key:0 0 10\r\n";
    std::string flipped = v;
    flipped[4] ^= 1;
    struct Case {
        std::string reply;
        Fatal fatal;
    };
    const Case cases[] = {
        {p + v + "\r\nEND\r\n", Fatal::none},
        {p + flipped + "\r\nEND\r\n", Fatal::verify},
        {"VALUE key:1 0 10\r\n" + v + "\r\nEND\r\n", Fatal::verify},   // another key
        {"VALUE key:0 7 10\r\n" + v + "\r\nEND\r\n", Fatal::verify},   // flags never set
        {"VALUE key:0 0 11\r\n" + v + "x\r\nEND\r\n", Fatal::verify},  // another length
        {p + v + "XY" + "END\r\n", Fatal::parse},                      // no CRLF after the data
        {p + v + "\r\n" + p + v + "\r\nEND\r\n", Fatal::parse},        // two values for one key
        {"STORED\r\n", Fatal::parse},                                  // a SET's reply to a GET
        {"HTTP/1.1 200 OK\r\n", Fatal::parse},
        {"END\n", Fatal::parse},  // LF without CR
        {"VALUE key:0 0 ten\r\n", Fatal::parse},
        {"END\r\nEND\r\nEND\r\n", Fatal::parse},  // a third reply to two requests
        {std::string(5000, 'x'), Fatal::parse},   // no line end in sight
    };
    for (const Case& c : cases) {
        std::vector<Outcome> done;
        EXPECT_EQ(feed_get(ProtocolKind::memcache, c.reply, done), c.fatal) << c.reply;
    }
    // Error replies are failed requests, and the stream goes on.
    for (const char* error :
         {"ERROR\r\n", "CLIENT_ERROR bad command line format\r\n", "SERVER_ERROR out of memory storing object\r\n"}) {
        std::vector<Outcome> done;
        ASSERT_EQ(feed_get(ProtocolKind::memcache, error + p + v + "\r\nEND\r\n", done), Fatal::none) << error;
        ASSERT_EQ(done.size(), 2u);
        EXPECT_FALSE(done[0].ok());
        EXPECT_TRUE(done[1].ok());
        EXPECT_EQ(done[1].kv, KvResult::hit);
    }
    // A SET answered NOT_STORED failed; answered END (a GET's miss) is out of step.
    Config cfg = kv_config(ProtocolKind::memcache, 1, 10, 1, 0);
    auto codec = make_codec(cfg, make_payloads(cfg), 1);
    std::string req;
    codec->write_request(req);
    codec->write_request(req);
    std::vector<Outcome> done;
    const std::string r = "NOT_STORED\r\nEND\r\n";
    EXPECT_EQ(codec->feed(std::span<const char>(r.data(), r.size()), done), Fatal::parse);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_FALSE(done[0].ok());
}

TEST(kqbench_kv, RespWrongValuesErrorRepliesAndGarbage) {
    const std::string v = value0();
    std::string flipped = v;
    flipped[9] ^= 1;
    struct Case {
        std::string reply;
        Fatal fatal;
    };
    const Case cases[] = {
        {"$10\r\n" + v + "\r\n", Fatal::none},
        {"$10\r\n" + flipped + "\r\n", Fatal::verify},
        {"$11\r\n" + v + "x\r\n", Fatal::verify},  // another length
        {"$10\r\n" + v + "\n\n", Fatal::parse},    // no CRLF after the data
        {"+OK\r\n", Fatal::parse},                 // a SET's reply to a GET
        {":1\r\n", Fatal::parse},
        {"*1\r\n$10\r\n" + v + "\r\n", Fatal::parse},
        {"$-1\n", Fatal::parse},
        {"$x\r\n", Fatal::parse},
        {"$-1\r\n$-1\r\n$-1\r\n", Fatal::parse},  // a third reply to two requests
    };
    for (const Case& c : cases) {
        std::vector<Outcome> done;
        EXPECT_EQ(feed_get(ProtocolKind::resp, c.reply, done), c.fatal) << c.reply;
    }
    for (const char* error : {"-ERR unknown command\r\n",
                              "-WRONGTYPE Operation against a key holding the wrong "
                              "kind of value\r\n"}) {
        std::vector<Outcome> done;
        ASSERT_EQ(feed_get(ProtocolKind::resp, error + std::string("$-1\r\n"), done), Fatal::none) << error;
        ASSERT_EQ(done.size(), 2u);
        EXPECT_FALSE(done[0].ok());
        EXPECT_TRUE(done[1].ok());
        EXPECT_EQ(done[1].kv, KvResult::miss);
    }
}

// A new connection forgets the replies the old one still owed.
TEST_P(KvCodecTest, ResetForgetsOutstandingReplies) {
    Config cfg = kv_config(GetParam(), 1, 10, 1, 0);
    auto codec = make_codec(cfg, make_payloads(cfg), 1);
    std::string req;
    codec->write_request(req);
    codec->reset();
    std::vector<Outcome> done;
    const std::string r = GetParam() == ProtocolKind::memcache ? "STORED\r\n" : "+OK\r\n";
    EXPECT_EQ(codec->feed(std::span<const char>(r.data(), r.size()), done), Fatal::parse);
    codec->write_request(req);
    EXPECT_EQ(codec->feed(std::span<const char>(r.data(), r.size()), done), Fatal::none);
    EXPECT_EQ(done.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(kqbench_kv, KvCodecTest, ::testing::Values(ProtocolKind::memcache, ProtocolKind::resp),
                         [](const auto& p) { return std::string(protocol_name(p.param)); });

}  // namespace
