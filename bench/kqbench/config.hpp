// kqbench's settings (one struct, filled by the command line or by tests) and its error kinds.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kq/poller.hpp"
#include "kqbench/load_shape.hpp"

namespace kq::bench {

enum class ProtocolKind { echo, upper, http, raw, memcache, resp };

std::string_view protocol_name(ProtocolKind p);
// Parses "echo", "upper", "http", "raw", "memcache" or "resp"; returns false for anything else.
bool parse_protocol(std::string_view text, ProtocolKind& out);
// memcache and resp: key-value stores driven with a get/set mix over a key space.
inline bool is_key_value(ProtocolKind p) { return p == ProtocolKind::memcache || p == ProtocolKind::resp; }

struct Config {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    int threads = 2;
    int connections = 10;
    int pipeline = 1;  // requests in flight per connection
    int64_t duration_ns = 10'000'000'000;
    uint64_t requests = 0;               // > 0: exactly this many measured requests instead of a duration
    int64_t warmup_ns = 0;               // after the connect ramp, before measuring
    int64_t timeout_ns = 2'000'000'000;  // per request and per connect attempt
    double rate = 0;                     // > 0: open loop, total requests per second over all connections
    // Open loop with stages (--rate R@D,A-B@D): the profile, whose durations add up to duration_ns; rate
    // then holds its peak. Empty: a constant `rate`.
    std::vector<RateStage> rate_stages;
    std::string rate_text;    // --rate as typed, for the description
    double connect_rate = 0;  // > 0: new connections per second during the ramp-up
    bool reconnect = false;   // a new connection for every request
    ProtocolKind protocol = ProtocolKind::echo;
    size_t size_min = 64, size_max = 64;  // echo/upper payload bytes, uniform in [min, max]
    std::string path = "/";               // http
    std::vector<std::string> headers;     // http, "Name: value"
    std::string request;                  // raw: the bytes sent as each request
    size_t reply_size = 0;                // raw: bytes expected back per request
    // memcache/resp: keys key_prefix + 0 .. keys-1, each request's key uniform; values of value_size bytes
    // derived from the key (so a GET reply is verified); SET or GET drawn per request in the ratio
    // set_ratio:get_ratio; prefill: SET every key once before the run starts.
    uint64_t keys = 10'000;
    std::string key_prefix = "key:";
    size_t value_size = 32;
    uint32_t set_ratio = 1, get_ratio = 10;
    bool prefill = false;
    int server_pid = 0;  // > 0: report that process's CPU time per request
    Backend backend = Backend::automatic;
    uint64_t seed = 1;  // payloads and sizes are pseudo-random but repeatable
    // connections, requests and the rates above are the whole load; this generator runs segment's share.
    Segment segment;
    // > 0: Unix time (CLOCK_REALTIME, s) of the first send. Every connection is made first, then the bench
    // threads wait and are released together at that time.
    double start_at = 0;
};

// Things that go wrong, counted per occurrence. connect_*: a connection attempt failed (counted over the
// whole run, ramp-up and warm-up included). reset: a connection was reset; closed: the server closed one
// with requests outstanding (each of those requests also counts as failed). timeout, verify, status,
// parse: one request each. All but connect_* count inside the measured window only.
enum class ErrorKind : uint8_t {
    connect_refused,
    connect_timeout,
    connect_error,
    reset,
    closed,
    timeout,
    verify,
    status,
    parse,
};
inline constexpr size_t kErrorKinds = 9;
using ErrorCounts = std::array<uint64_t, kErrorKinds>;

// The JSON key of each kind ("connect_refused", ...).
std::string_view error_key(ErrorKind k);
inline constexpr size_t index(ErrorKind k) { return static_cast<size_t>(k); }

// The open-loop profile over the whole measured window: rate_stages, or one endless stage of `rate`
// (empty in closed loop).
std::vector<RateStage> rate_profile(const Config& c);
// This generator's part of the load (--segment): its connections, requests and rates.
Config segment_config(const Config& whole);

// One line describing a configuration, e.g. "echo 64 B, 2 threads, 10 connections, pipeline 1, closed loop".
std::string describe(const Config& c);

}  // namespace kq::bench
