// kqbench's pieces without a network: flag value parsing, the codecs (replies split at every byte,
// corruption, HTTP framing), /proc/PID/stat parsing, and the JSON report's round trip and exact merge.
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "kqbench/codec.hpp"
#include "kqbench/interval_series.hpp"
#include "kqbench/proc_cpu.hpp"
#include "kqbench/report.hpp"
#include "kqbench/units.hpp"

using namespace kq;
using namespace kq::bench;

namespace {

TEST(kqbench_units, Durations) {
    EXPECT_EQ(parse_duration_ns("10s"), 10'000'000'000);
    EXPECT_EQ(parse_duration_ns("500ms"), 500'000'000);
    EXPECT_EQ(parse_duration_ns("250us"), 250'000);
    EXPECT_EQ(parse_duration_ns("1.5"), 1'500'000'000);
    EXPECT_EQ(parse_duration_ns("2m"), 120'000'000'000);
    EXPECT_EQ(parse_duration_ns("0"), 0);
    EXPECT_EQ(parse_duration_ns("0.001us"), 1);
    // Positive but below the resolution: it would read as 0, "none".
    for (const char* bad : {"", "s", "10x", "-1s", "1..2s", "ms10", "0.0000000001", "0.0004us"})
        EXPECT_FALSE(parse_duration_ns(bad)) << bad;
}

TEST(kqbench_units, SizesAndTargets) {
    auto r = parse_size_range("16-4k");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->min, 16u);
    EXPECT_EQ(r->max, 4096u);
    EXPECT_EQ(parse_size_range("64")->max, 64u);
    EXPECT_FALSE(parse_size_range("9-3"));
    EXPECT_FALSE(parse_size_range("a"));
    auto t = parse_target("[::1]:8080");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->host, "::1");
    EXPECT_EQ(t->port, 8080);
    t = parse_target("http://example.org/x?y");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->port, 80);
    EXPECT_EQ(t->path, "/x?y");
    EXPECT_TRUE(t->url);
    EXPECT_FALSE(parse_target("localhost"));
    EXPECT_FALSE(parse_target("localhost:0"));
    EXPECT_FALSE(parse_target("localhost:70000"));
}

// Feeds text one byte at a time; returns the outcomes, or nullopt on a fatal result.
std::optional<std::vector<Outcome>> feed_bytewise(Codec& codec, std::string_view text) {
    std::vector<Outcome> done;
    for (char ch : text) {
        if (codec.feed(std::span<const char>(&ch, 1), done) != Fatal::none) return std::nullopt;
    }
    return done;
}

TEST(kqbench_codec, EchoRepliesSplitAnywhereAreMatchedAndOneFlippedByteIsCaught) {
    Config cfg;
    cfg.size_min = 1;
    cfg.size_max = 300;
    auto payloads = make_payloads(cfg);
    auto codec = make_codec(cfg, payloads, 7);
    std::string sent;
    for (int i = 0; i < 20; ++i) codec->write_request(sent);
    auto done = feed_bytewise(*codec, sent);
    ASSERT_TRUE(done);
    EXPECT_EQ(done->size(), 20u);
    // Same requests again (same seed), one byte flipped in the middle.
    auto again = make_codec(cfg, payloads, 7);
    std::string second;
    for (int i = 0; i < 20; ++i) again->write_request(second);
    ASSERT_EQ(second, sent);
    second[second.size() / 2] ^= 1;
    EXPECT_FALSE(feed_bytewise(*again, second));
}

TEST(kqbench_codec, ExtraBytesAfterTheLastReplyAreAnError) {
    Config cfg;
    auto codec = make_codec(cfg, make_payloads(cfg), 1);
    std::string sent;
    codec->write_request(sent);
    EXPECT_FALSE(feed_bytewise(*codec, sent + "x"));
}

TEST(kqbench_codec, UpperExpectsUppercaseLetters) {
    Config cfg;
    cfg.protocol = ProtocolKind::upper;
    cfg.size_min = cfg.size_max = 200;
    auto codec = make_codec(cfg, make_payloads(cfg), 3);
    std::string sent;
    codec->write_request(sent);
    ASSERT_NE(sent.find_first_of("abcdefghijklmnopqrstuvwxyz"), std::string::npos);
    std::string upper = sent;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::vector<Outcome> done;
    EXPECT_EQ(codec->feed(std::span<const char>(sent.data(), sent.size()), done), Fatal::verify);
    codec->reset();
    sent.clear();
    codec->write_request(sent);
    upper = sent;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_TRUE(feed_bytewise(*codec, upper));
}

TEST(kqbench_codec, HttpRequestHasHostPathAndHeaders) {
    Config cfg;
    cfg.protocol = ProtocolKind::http;
    cfg.host = "example.org";
    cfg.port = 8080;
    cfg.path = "/a/b";
    cfg.headers = {"X-Test: 1"};
    auto codec = make_codec(cfg, nullptr, 1);
    std::string req;
    codec->write_request(req);
    EXPECT_EQ(req, "GET /a/b HTTP/1.1\r\nHost: example.org:8080\r\nX-Test: 1\r\nUser-Agent: kqbench\r\n\r\n");
}

// Content-Length, chunked (with an extension and a trailer), 100 Continue, 204 without a body, a 503,
// and a body framed by the close; every split of the stream gives the same outcomes.
TEST(kqbench_codec, HttpResponsesAreFramedWhateverTheSplit) {
    Config cfg;
    cfg.protocol = ProtocolKind::http;
    const std::string stream =
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: "
        "y\r\n\r\n"
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
        "HTTP/1.0 200 OK\r\n\r\nbody until close";
    auto codec = make_codec(cfg, nullptr, 1);
    std::string req;
    for (int i = 0; i < 5; ++i) codec->write_request(req);
    auto done = feed_bytewise(*codec, stream);
    ASSERT_TRUE(done);
    ASSERT_EQ(done->size(), 4u);  // the last one ends with the close
    EXPECT_TRUE((*done)[0].ok() && (*done)[1].ok() && (*done)[2].ok());
    EXPECT_EQ((*done)[2].status, 204);
    EXPECT_EQ((*done)[3].status, 503);
    EXPECT_FALSE((*done)[3].ok());
    EXPECT_TRUE(codec->peer_closing());  // HTTP/1.0 without keep-alive
    std::vector<Outcome> last;
    ASSERT_TRUE(codec->feed_eof(last));
    EXPECT_TRUE(last.at(0).ok());
}

TEST(kqbench_codec, HttpGarbageAndUnaskedRepliesAreParseErrors) {
    Config cfg;
    cfg.protocol = ProtocolKind::http;
    auto codec = make_codec(cfg, nullptr, 1);
    std::string req;
    codec->write_request(req);
    EXPECT_FALSE(feed_bytewise(*codec, "SSH-2.0-OpenSSH\r\n\r\n"));
    codec->reset();
    EXPECT_FALSE(feed_bytewise(*codec, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));  // nothing was asked
    codec->write_request(req);
    EXPECT_FALSE(feed_bytewise(*codec, "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"));
}

TEST(kqbench_proc, StatFieldsAreCountedFromTheLastParenthesis) {
    std::string stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
    EXPECT_EQ(parse_proc_stat_cpu_us(stat, 100), 3'000'000u);  // (250 + 50) ticks at 100 Hz
    EXPECT_FALSE(parse_proc_stat_cpu_us("42 (x) S 1 2", 100));
    EXPECT_TRUE(process_cpu_us(static_cast<int>(::getpid())));
    EXPECT_FALSE(process_cpu_us(0));
}

Report sample_report(uint64_t seed, uint64_t n) {
    Report r;
    r.config = {{"protocol", "echo"}};
    r.description = "echo 64 B";
    r.target = "127.0.0.1:1";
    r.connections = 10;
    r.elapsed_s = 2.0 + static_cast<double>(seed);
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> lat(5, 1.5);
    for (uint64_t i = 0; i < n; ++i) {
        uint64_t v = static_cast<uint64_t>(lat(rng));
        r.stats.latency.record(v);
        r.stats.latency_uncorrected.record(v / 2);
    }
    r.stats.sent = n + 3;
    r.stats.ok = n;
    r.stats.failed = 3;
    r.stats.errors[index(ErrorKind::timeout)] = 3;
    r.stats.status_codes[404] = seed;
    r.stats.bytes_sent = r.stats.bytes_received = n * 64;
    r.stats.sets = n / 10, r.stats.hits = n - n / 10 - seed, r.stats.misses = seed;  // memcache/resp
    r.requests_per_s = static_cast<double>(n) / r.elapsed_s;
    return r;
}

TEST(kqbench_report, JsonRoundTripKeepsEveryFigure) {
    Report r = sample_report(1, 5'000);
    Report back = report_from_json(nlohmann::json::parse(to_json(r).dump()));
    EXPECT_EQ(to_json(back), to_json(r));
    EXPECT_EQ(back.stats.hits, r.stats.hits);
    EXPECT_EQ(to_json(r)["kv"]["misses"], 1);
    EXPECT_THROW(report_from_json(nlohmann::json{{"kqbench_report", 1}}), std::invalid_argument);
}

TEST(kqbench_report, MergeEqualsTheCombinedHistogram) {
    Report a = sample_report(1, 20'000), b = sample_report(2, 7'000);
    Report m = merge_reports({report_from_json(to_json(a)), report_from_json(to_json(b))});
    Histogram both = a.stats.latency;
    both.merge(b.stats.latency);
    EXPECT_EQ(m.stats.latency.to_json(), both.to_json());
    for (double p : {50.0, 90.0, 99.0, 99.9, 100.0})
        EXPECT_EQ(m.stats.latency.value_at_percentile(p), both.value_at_percentile(p));
    EXPECT_EQ(m.stats.ok, 27'000u);
    EXPECT_EQ(m.stats.errors[index(ErrorKind::timeout)], 6u);
    EXPECT_EQ(m.stats.status_codes.at(404), 3u);
    EXPECT_EQ(m.stats.sets, 2'000u + 700u);
    EXPECT_EQ(m.stats.misses, 3u);
    EXPECT_EQ(m.stats.hits, a.stats.hits + b.stats.hits);
    EXPECT_EQ(m.runs, 2);
    EXPECT_DOUBLE_EQ(m.requests_per_s, a.requests_per_s + b.requests_per_s);
    EXPECT_DOUBLE_EQ(m.elapsed_s, 4.0);
    // Merging is associative: (a + b) + a == a + (b + a).
    Report left = merge_reports({m, a}), right = merge_reports({a, merge_reports({b, a})});
    EXPECT_EQ(left.stats.latency.to_json(), right.stats.latency.to_json());
    EXPECT_EQ(left.runs, 3);
}

// Two threads hand over seconds at their own pace: a second is summed up only once both have passed it,
// a second with no figures between two others is filled in empty, and the histograms add.
TEST(kqbench_units, IntervalCollectorSumsSecondsOnceEveryThreadPassedThem) {
    IntervalCollector c(2);
    IntervalAcc a;
    a.ok = 3;
    for (uint64_t us : {100, 200, 300}) a.latency.record(us);
    c.hand_over(0, 0, a, 1);  // thread 0 is done with second 0; thread 1 is not
    IntervalAcc b;
    b.ok = 1;
    b.failed = 2;
    b.latency.record(10'000);
    c.hand_over(1, 0, b, 2);  // thread 1 moves on to second 2: nothing in second 1
    c.hand_over(0, 3, a, INT64_MAX);
    c.hand_over(1, -1, IntervalAcc{}, INT64_MAX);
    const nlohmann::json series = c.finish();
    ASSERT_EQ(series.size(), 4u) << series.dump();
    EXPECT_EQ(series[0]["ok"], 4);
    EXPECT_EQ(series[0]["failed"], 2);
    EXPECT_EQ(series[0]["max_us"], 10'000);
    EXPECT_EQ(series[0]["p50_us"], 200);
    EXPECT_EQ(Histogram::from_json(series[0]["histogram"]).count(), 4u);
    EXPECT_EQ(series[1]["ok"], 0);
    EXPECT_EQ(series[2]["ok"], 0);
    EXPECT_EQ(series[3]["ok"], 3);
    EXPECT_EQ(series[3]["t"], 3.0);
}

}  // namespace
