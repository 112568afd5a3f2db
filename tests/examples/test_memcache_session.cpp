// kqmemcache unit tests: the session driven through the handler API with a recording Conn (no sockets, no
// threads), on a store whose clock the test moves by hand. The expected replies are memcached's: each was
// checked against memcached 1.6.18 answering the same bytes (test_memcache's MatchesRealMemcached does that
// on every run where memcached is installed), or against doc/protocol.txt where noted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kq/conn_stub.hpp"
#include "mc_protocol.hpp"

namespace kqmc {
namespace {

// ConnStub counts sends and, with `stalled`, keeps every byte sent unsent (a client that reads nothing).
using RecordingConn = kq::testing::ConnStub;

// A session on a fresh store whose clock is `now`, fed as the worker feeds it.
struct Server {
    explicit Server(MemcacheOptions o = {}) : shared(with_clock(std::move(o))), session(make_session(shared)) {}
    MemcacheOptions with_clock(MemcacheOptions o) {
        o.clock = [this] { return now; };
        o.sweep_interval_ms = 0;
        return o;
    }
    // Offers text after what the session left unconsumed, through a scratch buffer scribbled over
    // afterwards (a session that kept a view into it would read garbage later); returns what it sent.
    std::string feed(std::string_view text) {
        size_t before = conn.sent.size();
        conn.held.append(text);
        std::vector<char> scratch(conn.held.begin(), conn.held.end());
        size_t used = session->on_data(scratch, conn);
        EXPECT_LE(used, scratch.size());
        conn.held.erase(0, used);
        std::fill(scratch.begin(), scratch.end(), '#');
        return conn.sent.substr(before);
    }
    int64_t now = 1'700'000'000;
    Shared shared;
    std::unique_ptr<kq::Session> session;
    RecordingConn conn;
};

TEST(MemcacheSession, StorageCommands) {
    Server s;
    EXPECT_EQ(s.feed("set k 5 0 3\r\nabc\r\n"), "STORED\r\n");
    EXPECT_EQ(s.feed("get k\r\n"), "VALUE k 5 3\r\nabc\r\nEND\r\n");
    EXPECT_EQ(s.feed("add k 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    EXPECT_EQ(s.feed("add n 0 0 1\r\nx\r\n"), "STORED\r\n");
    EXPECT_EQ(s.feed("replace nope 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    EXPECT_EQ(s.feed("replace k 9 0 2\r\nzz\r\n"), "STORED\r\n");
    EXPECT_EQ(s.feed("append k 1 0 2\r\n12\r\nprepend k 1 0 2\r\nab\r\n"), "STORED\r\nSTORED\r\n");
    EXPECT_EQ(s.feed("get k\r\n"), "VALUE k 9 6\r\nabzz12\r\nEND\r\n");  // append keeps the flags
    EXPECT_EQ(s.feed("append nope 0 0 1\r\nx\r\nprepend nope 0 0 1\r\nx\r\n"), "NOT_STORED\r\nNOT_STORED\r\n");
    EXPECT_EQ(s.feed("set e 0 0 0\r\n\r\nget e\r\n"), "STORED\r\nVALUE e 0 0\r\n\r\nEND\r\n");
    EXPECT_EQ(s.feed("set f 4294967295 0 1\r\nx\r\nget f\r\n"), "STORED\r\nVALUE f 4294967295 1\r\nx\r\nEND\r\n");
}

TEST(MemcacheSession, MultiGetAnswersHitsInOrderAndSkipsMisses) {
    Server s;
    s.feed("set a 0 0 1\r\n1\r\nset b 0 0 2\r\n22\r\n");
    EXPECT_EQ(s.feed("get a nope b a\r\n"), "VALUE a 0 1\r\n1\r\nVALUE b 0 2\r\n22\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
    EXPECT_EQ(s.feed("get  a  \r\n"), "VALUE a 0 1\r\n1\r\nEND\r\n");  // extra spaces are no keys
    EXPECT_EQ(s.feed("get a\n"), "VALUE a 0 1\r\n1\r\nEND\r\n");       // a bare "\n" ends a line too
}

TEST(MemcacheSession, CasConflicts) {
    Server s;
    s.feed("set k 0 0 1\r\nx\r\n");
    std::string gets = s.feed("gets k\r\n");
    ASSERT_TRUE(gets.starts_with("VALUE k 0 1 ")) << gets;
    const std::string cas = gets.substr(12, gets.find("\r\n") - 12);
    EXPECT_EQ(s.feed("cas k 0 0 1 " + cas + "\r\ny\r\n"), "STORED\r\n");
    EXPECT_EQ(s.feed("cas k 0 0 1 " + cas + "\r\nz\r\n"), "EXISTS\r\n");  // the first cas changed it
    EXPECT_EQ(s.feed("get k\r\n"), "VALUE k 0 1\r\ny\r\nEND\r\n");
    EXPECT_EQ(s.feed("cas nope 0 0 1 1\r\nz\r\n"), "NOT_FOUND\r\n");
    EXPECT_EQ(s.feed("cas k 0 0 1 0\r\nz\r\n"), "EXISTS\r\n");  // no item has cas 0
    EXPECT_EQ(s.feed("cas k 0 0 1 abc\r\ny\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    std::string after = s.feed("gets k\r\n");
    EXPECT_NE(after.substr(12, after.find("\r\n") - 12), cas);  // every change draws a new cas
    EXPECT_EQ(s.shared.counters.cas_hits.load(), 1u);
    EXPECT_EQ(s.shared.counters.cas_badval.load(), 2u);
    EXPECT_EQ(s.shared.counters.cas_misses.load(), 1u);
}

TEST(MemcacheSession, DeleteForms) {
    Server s;
    s.feed("set k 0 0 1\r\nx\r\n");
    EXPECT_EQ(s.feed("delete k\r\ndelete k\r\n"), "DELETED\r\nNOT_FOUND\r\n");
    EXPECT_EQ(s.feed("delete k 0\r\n"), "NOT_FOUND\r\n");  // the legacy zero hold time is accepted
    EXPECT_EQ(s.feed("delete k 5\r\n"), "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    EXPECT_EQ(s.feed("delete a b c d\r\ndelete\r\n"), "ERROR\r\nERROR\r\n");
    s.feed("set k 0 0 1\r\nx\r\n");
    EXPECT_EQ(s.feed("delete k 0 noreply\r\nget k\r\n"), "END\r\n");
}

TEST(MemcacheSession, IncrWrapsDecrFloorsAndNonNumbersAreRefused) {
    Server s;
    s.feed("set n 0 0 2\r\n10\r\n");
    EXPECT_EQ(s.feed("incr n 18446744073709551615\r\n"), "9\r\n");  // 10 + (2^64 - 1) wraps to 9
    EXPECT_EQ(s.feed("decr n 100\r\n"), "0\r\n");
    s.feed("set n 0 0 20\r\n18446744073709551615\r\n");
    EXPECT_EQ(s.feed("incr n 2\r\n"), "1\r\n");
    // A shorter result is written in place, padded with spaces to the old length, as memcached does.
    EXPECT_EQ(s.feed("get n\r\n"), "VALUE n 0 20\r\n1                   \r\nEND\r\n");
    s.feed("set n 0 0 3\r\n100\r\n");
    EXPECT_EQ(s.feed("decr n 1\r\nget n\r\nincr n 1000000000000\r\n"),
              "99\r\nVALUE n 0 3\r\n99 \r\nEND\r\n1000000000099\r\n");
    s.feed("set n 0 0 2\r\n 5\r\n");
    EXPECT_EQ(s.feed("incr n 1\r\n"), "6\r\n");  // white space around the digits is allowed
    s.feed("set n 0 0 2\r\n-5\r\nset s 0 0 1\r\nx\r\n");
    const std::string non_numeric = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    EXPECT_EQ(s.feed("incr n 1\r\ndecr s 1\r\n"), non_numeric + non_numeric);
    EXPECT_EQ(s.feed("incr n -1\r\nincr n 18446744073709551616\r\n"),
              "CLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT_EQ(s.feed("incr nope 1\r\ndecr nope 1\r\nincr\r\nincr a\r\n"),
              "NOT_FOUND\r\nNOT_FOUND\r\nERROR\r\nERROR\r\n");
}

TEST(MemcacheSession, ExpiryFollowsMemcachedsRulesWithoutSleeping) {
    Server s;
    s.feed("set rel 0 10 1\r\nx\r\nset abs 0 " + std::to_string(s.now + 100) + " 1\r\nx\r\n");
    s.feed("set neg 0 -1 1\r\nx\r\nset never 0 0 1\r\nx\r\n");
    EXPECT_EQ(s.feed("get neg\r\n"), "END\r\n");  // a negative exptime expires at once
    EXPECT_EQ(s.feed("mg rel t\r\nmg abs t\r\nmg never t\r\n"), "HD t10\r\nHD t100\r\nHD t-1\r\n");
    s.now += 9;
    EXPECT_EQ(s.feed("get rel\r\n"), "VALUE rel 0 1\r\nx\r\nEND\r\n");
    s.now += 1;  // relative exptimes count from the set; the item dies at that second
    EXPECT_EQ(s.feed("get rel abs\r\n"), "VALUE abs 0 1\r\nx\r\nEND\r\n");
    s.now += 90;  // an exptime over 30 days is an absolute unix time
    EXPECT_EQ(s.feed("get abs never\r\n"), "VALUE never 0 1\r\nx\r\nEND\r\n");
    // touch and gat move the deadline.
    s.feed("set t 0 5 1\r\nx\r\n");
    EXPECT_EQ(s.feed("touch t 100\r\ntouch nope 100\r\n"), "TOUCHED\r\nNOT_FOUND\r\n");
    s.now += 50;
    EXPECT_TRUE(s.feed("gats 10 t\r\n").starts_with("VALUE t 0 1 "));
    s.now += 10;
    EXPECT_EQ(s.feed("gat 10 t\r\n"), "END\r\n");
    EXPECT_EQ(s.feed("touch t abc\r\ngat x t\r\n"),
              "CLIENT_ERROR invalid exptime argument\r\nCLIENT_ERROR invalid exptime argument\r\n");
}

TEST(MemcacheSession, SweepDropsExpiredItemsNobodyAsksFor) {
    Server s;
    for (int i = 0; i < 10; ++i)
        s.feed("set k" + std::to_string(i) + " 0 " + std::to_string(i < 4 ? 5 : 0) + " 1\r\nx\r\n");
    EXPECT_EQ(s.shared.store.stats().curr_items, 10u);
    EXPECT_EQ(s.shared.store.sweep(), 0u);
    s.now += 5;
    EXPECT_EQ(s.shared.store.sweep(), 4u);
    EXPECT_EQ(s.shared.store.stats().curr_items, 6u);
}

TEST(MemcacheSession, FlushAllNowAndDelayed) {
    Server s;
    s.feed("set a 0 0 1\r\nx\r\n");
    EXPECT_EQ(s.feed("flush_all\r\nget a\r\n"), "OK\r\nEND\r\n");
    s.feed("set a 0 0 1\r\nx\r\n");
    EXPECT_EQ(s.feed("flush_all 10\r\n"), "OK\r\n");
    s.now += 9;
    EXPECT_EQ(s.feed("get a\r\n"), "VALUE a 0 1\r\nx\r\nEND\r\n");
    s.now += 1;  // from then on everything stored before the deadline is gone, later items are not
    EXPECT_EQ(s.feed("get a\r\n"), "END\r\n");
    s.feed("set b 0 0 1\r\ny\r\n");
    EXPECT_EQ(s.feed("get b\r\n"), "VALUE b 0 1\r\ny\r\nEND\r\n");
    EXPECT_EQ(s.feed("flush_all noreply\r\nflush_all x\r\nflush_all 0 noreply x\r\nget b\r\n"),
              "CLIENT_ERROR invalid exptime argument\r\nERROR\r\nEND\r\n");
}

TEST(MemcacheSession, LruEvictsTheLeastRecentlyUsedUnderTheMemoryCap) {
    MemcacheOptions o;
    o.memory_limit = 10 * 1024;
    o.shards = 1;  // one LRU list: the order is exact
    Server s(o);
    const std::string value(1000, 'v');
    auto set = [&](const std::string& k) { return s.feed("set " + k + " 0 0 1000\r\n" + value + "\r\n"); };
    for (int i = 0; i < 8; ++i) ASSERT_EQ(set("k" + std::to_string(i)), "STORED\r\n");
    EXPECT_EQ(s.shared.store.stats().evictions, 0u);
    s.feed("get k0\r\n");  // k0 is now the most recently used: k1 is next out
    for (int i = 8; i < 12; ++i) ASSERT_EQ(set("k" + std::to_string(i)), "STORED\r\n");
    const StoreStats st = s.shared.store.stats();
    EXPECT_GT(st.evictions, 0u);
    EXPECT_LE(st.bytes, o.memory_limit);
    EXPECT_EQ(st.curr_items + st.evictions, 12u);
    EXPECT_EQ(s.feed("mg k0\r\nmg k1\r\nmg k11\r\n"), "HD\r\nEN\r\nHD\r\n");
    std::string stats = s.feed("stats\r\n");
    EXPECT_NE(stats.find("STAT evictions " + std::to_string(st.evictions) + "\r\n"), std::string::npos) << stats;
    EXPECT_NE(stats.find("STAT limit_maxbytes 10240\r\n"), std::string::npos) << stats;
}

TEST(MemcacheSession, KeyAndItemLimits) {
    MemcacheOptions o;
    o.max_item_size = 100;
    Server s(o);
    const std::string k250(250, 'k'), k251(251, 'k');
    EXPECT_EQ(s.feed("set " + k250 + " 0 0 1\r\nx\r\n"), "STORED\r\n");
    EXPECT_EQ(s.feed("set " + k251 + " 0 0 1\r\nx\r\n"), "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT_EQ(s.feed("get a " + k251 + " b\r\n"), "CLIENT_ERROR bad command line format\r\n");
    EXPECT_EQ(s.feed("mg " + k251 + " v\r\n"), "CLIENT_ERROR bad command line format\r\n");
    // Too large: refused at once, and its data block skipped as it arrives, in pieces.
    EXPECT_EQ(s.feed("set big 0 0 150\r\n" + std::string(60, 'x')), "SERVER_ERROR object too large for cache\r\n");
    EXPECT_TRUE(s.session->mid_request());  // the rest of the refused block is a request still arriving
    EXPECT_EQ(s.feed(std::string(60, 'x')), "");
    EXPECT_EQ(s.feed(std::string(30, 'x') + "\r\nget big\r\n"), "END\r\n");
    EXPECT_EQ(s.feed("set big 0 0 101 noreply\r\n" + std::string(101, 'x') + "\r\nmn\r\n"), "MN\r\n");
    // A set refused for its size drops the old value (memcached does: it must not pass for the new one).
    EXPECT_EQ(s.feed("set k 0 0 1\r\nx\r\nset k 0 0 101\r\n" + std::string(101, 'x') + "\r\nget k\r\n"),
              "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n");
    EXPECT_TRUE(s.conn.held.empty());
    EXPECT_FALSE(s.conn.closed);
}

TEST(MemcacheSession, ALineTooLongIsRefusedBeforeItIsHeld) {
    Server s;
    // Unfinished, past the longest command line: refused now, not once the worker's held input overflows.
    EXPECT_EQ(s.feed("set " + std::string(3000, 'k')), "CLIENT_ERROR line too long\r\n");
    EXPECT_TRUE(s.conn.closed);
    // A get's line may be longer: it carries many keys.
    Server g;
    std::string keys;
    for (int i = 0; i < 500; ++i) keys += " key" + std::to_string(i);
    EXPECT_EQ(g.feed("set key7 0 0 1\r\nx\r\n"), "STORED\r\n");
    EXPECT_EQ(g.feed("get" + keys.substr(0, 1000)), "");
    EXPECT_EQ(g.feed(keys.substr(1000) + "\r\n"), "VALUE key7 0 1\r\nx\r\nEND\r\n");
    EXPECT_FALSE(g.conn.closed);
}

TEST(MemcacheSession, MalformedLines) {
    Server s;
    const std::pair<std::string, std::string> cases[] = {
        {"foo\r\n", "ERROR\r\n"},
        {"GET a\r\n", "ERROR\r\n"},  // commands are lower case
        {"get\r\n", "ERROR\r\n"},
        {"\r\n", "ERROR\r\n"},
        {"set a 0 0\r\n", "ERROR\r\n"},
        {"set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
        {"set a x 0 1\r\nb\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"set a 1 abc 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"set a 0 0 1\r\nab\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},  // "ab\r" was the block
        {"set a 1 0 1 noreply extra\r\nx\r\n", "ERROR\r\nERROR\r\n"},
        {"set\tk 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n"},  // only spaces separate
        {"touch a\r\ngat\r\n", "ERROR\r\nERROR\r\n"},
        {"gat 10\r\n", "END\r\n"},
        {"verbosity\r\nverbosity a\r\nverbosity 1\r\nverbosity 1 noreply\r\n",
         "ERROR\r\nCLIENT_ERROR bad command line format\r\nOK\r\n"},
        {"stats foo\r\n", "ERROR\r\n"},
        {"mg\r\nms\r\nms mk\r\n", "ERROR\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n"},
    };
    for (const auto& [in, want] : cases) EXPECT_EQ(s.feed(in), want) << in;
    EXPECT_FALSE(s.conn.closed);
}

TEST(MemcacheSession, NoreplySilencesAnswersAndErrors) {
    Server s;
    EXPECT_EQ(s.feed("set k 0 0 1 noreply\r\nx\r\nadd k 0 0 1 noreply\r\ny\r\nappend k 0 0 1 noreply\r\nz\r\n"), "");
    EXPECT_EQ(s.feed("set n 0 0 1 noreply\r\n5\r\nincr n 1 noreply\r\ndecr n 2 noreply\r\nincr k abc noreply\r\n"), "");
    EXPECT_EQ(s.feed("touch k 10 noreply\r\ndelete nope noreply\r\nset k 0 0 1 noreply\r\nxy\r\n"), "ERROR\r\n");
    EXPECT_EQ(s.feed("get k n\r\n"), "VALUE k 0 2\r\nxz\r\nVALUE n 0 1\r\n4\r\nEND\r\n");
    EXPECT_EQ(s.feed("set k 0 0 1 junk\r\ny\r\n"), "STORED\r\n");  // only "noreply" is noreply
}

TEST(MemcacheSession, MetaCommands) {
    Server s;
    const std::pair<std::string, std::string> cases[] = {
        {"mn\r\nmn extra\r\n", "MN\r\nMN\r\n"},
        {"ms mk 2 F5 T100\r\nhi\r\n", "HD\r\n"},
        {"mg mk v f t k s Oabc\r\n", "VA 2 f5 t100 kmk s2 Oabc\r\nhi\r\n"},
        {"mg mk\r\nmg missing v\r\nmg missing v q\r\nmg nokey v k Oxy\r\nmg nokey s t\r\n",
         "HD\r\nEN\r\nEN knokey Oxy\r\nEN\r\n"},
        {"ms mk 2 q\r\nhi\r\nms mk 2 MA\r\nyo\r\nms nk 2 MA\r\nyo\r\nms mk 2 MP\r\nXX\r\nmg mk v\r\n",
         "HD\r\nNS\r\nHD\r\nVA 6\r\nXXhiyo\r\n"},
        {"ms mk 2 ME\r\nzz\r\nms mk 2 MR\r\nzz\r\nms nk2 2 MR\r\nzz\r\nms mk 2 MS\r\nqq\r\n",
         "NS\r\nHD\r\nNS\r\nHD\r\n"},
        {"ms mk 2 MX\r\nqq\r\nms mk 2 Z\r\nhi\r\nmg mk zz\r\nmg mk v v\r\n",
         "CLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid "
         "flag\r\nCLIENT_ERROR duplicate flag\r\n"},
        {"ms mk 1 C1\r\nx\r\nms mk 1 C999 q\r\nx\r\nms zz 1 C5 q\r\nx\r\n", "EX\r\nEX\r\nNF\r\n"},
        {"ms zz 3 F-1\r\nabc\r\nms zz 3 Tabc\r\nabc\r\nmn\r\n",
         "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad token in command line format\r\nMN\r\n"},
        {"md mk q\r\nmd mk\r\nmd mk q\r\nmd mk Oab k\r\n", "NF\r\nNF\r\nNF Oab kmk\r\n"},
        {"ma cnt\r\nma cnt N0 J13\r\nma cnt v\r\nma cnt MD D20 v\r\nma cnt q\r\nma cnt v t\r\n",
         "NF\r\nHD\r\nVA 2\r\n14\r\nVA 1\r\n0\r\nVA 1 t-1\r\n2\r\n"},
        {"ma cnt MI D5 v N0 T50 t\r\nma nope q\r\nma cnt MX\r\nma cnt Dabc\r\nmd cnt x\r\n",
         "VA 1 t50\r\n7\r\nNF\r\nCLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate "
         "flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"},
        {"ms zz 1\r\nx\r\nma zz\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
        {"ms hq 1\r\nx\r\nmg hq q\r\nmg hq q k\r\n", "HD\r\nHD\r\nHD khq\r\n"},  // q hides only a miss
        // protocol.txt: in append mode, N creates the item on a miss (memcached 1.6.18 predates it).
        {"ms viv 3 MA N0\r\nabc\r\nmg viv v\r\n", "HD\r\nVA 3\r\nabc\r\n"},
    };
    for (const auto& [in, want] : cases) EXPECT_EQ(s.feed(in), want) << in;
}

TEST(MemcacheSession, MetaCasTokensMatchClassicOnes) {
    Server s;
    std::string hd = s.feed("ms k 1 c\r\nx\r\n");
    ASSERT_TRUE(hd.starts_with("HD c")) << hd;
    const std::string cas = hd.substr(4, hd.size() - 6);
    EXPECT_EQ(s.feed("gets k\r\n"), "VALUE k 0 1 " + cas + "\r\nx\r\nEND\r\n");
    EXPECT_EQ(s.feed("md k C" + cas + "0\r\nmd k q C" + cas + "\r\nmg k\r\n"), "EX\r\nEN\r\n");
}

TEST(MemcacheSession, VersionStatsAndQuit) {
    Server s;
    EXPECT_TRUE(s.feed("version\r\n").starts_with("VERSION 1.6"));
    s.feed("set a 0 0 1\r\nx\r\nget a b\r\n");
    std::string stats = s.feed("stats\r\n");
    for (std::string_view line :
         {"STAT cmd_get 2\r\n", "STAT cmd_set 1\r\n", "STAT get_hits 1\r\n", "STAT get_misses 1\r\n",
          "STAT curr_items 1\r\n", "STAT curr_connections 1\r\n", "STAT time 1700000000\r\n", "STAT evictions 0\r\n"})
        EXPECT_NE(stats.find(line), std::string::npos) << line << " in\n" << stats;
    EXPECT_TRUE(stats.starts_with("STAT pid ") && stats.ends_with("END\r\n"));
    EXPECT_EQ(s.feed("stats reset\r\n"), "RESET\r\n");
    EXPECT_NE(s.feed("stats\r\n").find("STAT cmd_get 0\r\n"), std::string::npos);
    EXPECT_EQ(s.feed("quit\r\nget a\r\n"), "");
    EXPECT_TRUE(s.conn.closed);
    EXPECT_FALSE(s.session->input_may_follow());  // the client asked to close: no lingering
}

// A script touching every framing path; its answer must not depend on how TCP splits it.
const std::string kScript =
    "set a 1 0 5\r\nhello\r\nget a b\r\ngets a\r\nappend a 0 0 3 noreply\r\n!!!\r\nset big 0 0 70\r\n" +
    std::string(70, 'x') + "\r\nset n 0 0 2\r\n41\r\nincr n 1\r\ndelete b\r\nms m 3 T0 F2\r\nabc\r\nmg m v f k\r\n" +
    "ma n v\r\nmd m q\r\nmn\r\nfoo bar\r\nset bad 0 0 2\r\nabcd\r\ntouch a 0\r\nset huge 0 0 200\r\n" +
    std::string(200, 'y') + "\r\nget a n big\n";

std::string run_split(const std::vector<size_t>& cuts) {
    MemcacheOptions o;
    o.max_item_size = 100;
    Server s(o);
    size_t from = 0;
    for (size_t cut : cuts) {
        s.feed(std::string_view(kScript).substr(from, cut - from));
        from = cut;
    }
    s.feed(std::string_view(kScript).substr(from));
    EXPECT_TRUE(s.conn.held.empty());
    EXPECT_EQ(s.conn.requests, 19u);
    return s.conn.sent;
}

TEST(MemcacheSession, EverySplitGivesTheSameAnswer) {
    const std::string whole = run_split({});
    EXPECT_NE(whole.find("SERVER_ERROR object too large for cache\r\n"), std::string::npos);
    EXPECT_NE(whole.find("CLIENT_ERROR bad data chunk\r\n"), std::string::npos);
    EXPECT_TRUE(whole.ends_with("VALUE a 1 8\r\nhello!!!\r\nVALUE n 0 2\r\n43\r\nVALUE big 0 70\r\n" +
                                std::string(70, 'x') + "\r\nEND\r\n"))
        << whole;
    for (size_t cut = 1; cut < kScript.size(); ++cut) ASSERT_EQ(run_split({cut}), whole) << "split at " << cut;
    std::vector<size_t> every_byte;
    for (size_t i = 1; i < kScript.size(); ++i) every_byte.push_back(i);
    EXPECT_EQ(run_split(every_byte), whole);
}

TEST(MemcacheSession, PipelinedCommandsGetOneSend) {
    Server s;
    std::string in, want;
    for (int i = 0; i < 100; ++i) {
        in += "set k" + std::to_string(i) + " 0 0 1\r\nx\r\nget k" + std::to_string(i) + "\r\n";
        want += "STORED\r\nVALUE k" + std::to_string(i) + " 0 1\r\nx\r\nEND\r\n";
    }
    EXPECT_EQ(s.feed(in), want);
    EXPECT_EQ(s.conn.sends, 1);
    EXPECT_EQ(s.conn.requests, 200u);
}

TEST(MemcacheSession, AHugeMultiGetToAClientThatDoesNotReadStaysBounded) {
    Server s;
    const std::string value(100 * 1024, 'v');
    s.feed("set v 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n");
    std::string get = "get";
    for (int i = 0; i < 1000; ++i) get += " v";  // 100 MB of answer asked in one line
    s.conn.sent.clear();
    s.conn.stalled = true;
    s.feed(get + "\r\nmn\r\n");
    EXPECT_TRUE(s.conn.paused);
    // The get has all arrived: only its answer waits, which the request time-out must not cut short.
    EXPECT_FALSE(s.session->mid_request());
    EXPECT_EQ(s.conn.held, "mn\r\n");  // the next command waits behind the get
    // Unsent output stays near low water: one batch past it, not 100 MB.
    EXPECT_LT(s.conn.unsent_bytes, s.conn.low_water + 2 * (64 * 1024 + value.size()));
    size_t rounds = 0;
    while (s.conn.paused && rounds++ < 10'000) {
        s.conn.unsent_bytes = 0;  // the client read everything
        s.session->on_drained(s.conn);
        if (!s.conn.paused) s.feed("");  // the worker offers the held input again
        EXPECT_LT(s.conn.unsent_bytes, s.conn.low_water + 2 * (64 * 1024 + value.size()));
    }
    EXPECT_FALSE(s.conn.paused);
    EXPECT_EQ(std::count(s.conn.sent.begin(), s.conn.sent.end(), '\n'), 1000 * 2 + 2);
    EXPECT_TRUE(s.conn.sent.ends_with("\r\nEND\r\nMN\r\n"));
    EXPECT_GT(rounds, 100u);
}

}  // namespace
}  // namespace kqmc
