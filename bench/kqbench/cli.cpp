// kqbench's flags (CLI11): definitions with help and defaults, then the checks that need several flags
// at once. Every mistake ends in one line on stderr and exit status 2.
#include "kqbench/cli.hpp"

#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "kq/cli_checks.hpp"
#include "kqbench/proc_cpu.hpp"
#include "kqbench/units.hpp"

namespace kq::bench {
namespace {

// Flags as typed, where they need parsing or cross-checking before they become a Config.
struct Typed {
    std::string target;
    std::string duration = "10s", warmup = "0s", timeout = "2s", size = "64", interval = "0s";
    std::string protocol = "echo", backend = "auto", path, request_file, ratio = "1:10";
    std::string rate = "0", segment = "1/1", start_at;
    uint64_t reply_size = 0;
};

// The longest duration, ramp-up and open-loop interval taken: the run's deadlines are the start time
// plus the ramp-up, the warm-up and the duration in int64 nanoseconds, which this keeps far from overflow.
constexpr double kMaxSeconds = 10 * 365 * 86400.0;

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

CLI::Validator duration_check() {
    return CLI::Validator(
        [](std::string& s) {
            auto ns = parse_duration_ns(s);
            if (ns && static_cast<double>(*ns) <= kMaxSeconds * 1e9) return std::string();
            return "'" + s + "' is not 0 or a duration from 1 ns to 10 years (10s, 500ms, 2m)";
        },
        "DURATION");
}

CLI::Validator size_check() {
    return CLI::Validator(
        [](std::string& s) { return parse_size_range(s) ? std::string() : "'" + s + "' is not N or MIN-MAX bytes"; },
        "BYTES");
}

void add_run_flags(CLI::App& app, Typed& t, Config& c) {
    app.add_option("-t,--threads", c.threads, "Bench threads, each with its own poller (at most one per connection)")
        ->check(whole_number_check(1, 4096))
        ->capture_default_str();
    app.add_option("-c,--connections", c.connections,
                   "Connections, spread over the threads; every one is made, and failed attempts are counted by reason")
        ->check(whole_number_check(1, 10'000'000))
        ->capture_default_str();
    auto* duration = app.add_option("-d,--duration", t.duration, "How long to measure: 10s, 500ms, 2m ...")
                         ->check(duration_check())
                         ->capture_default_str();
    app.add_option("-n,--requests", c.requests,
                   "Measure exactly N requests (sent and answered or failed) instead of a duration")
        ->check(whole_number_check(1, 1'000'000'000'000))
        ->excludes(duration);
    app.add_option("--warmup", t.warmup, "Run this long before measuring; nothing in it counts")
        ->check(duration_check())
        ->capture_default_str();
    app.add_option("--pipeline", c.pipeline, "Requests in flight per connection")
        ->check(whole_number_check(1, 65536))
        ->capture_default_str();
    app.add_option("--rate", t.rate,
                   "Open loop: total requests/s over all connections, each timed from its intended send time "
                   "(coordinated-omission corrected; the uncorrected figure is shown too). 0 = closed loop. "
                   "Or stages RATE@D,FROM-TO@D,... (steps and linear ramps, e.g. 1000@5s,1000-5000@10s), "
                   "which set the duration")
        ->capture_default_str();
    app.add_option("--segment", t.segment,
                   "I/N: this generator is number I (1 to N) of N running the same flags on several hosts; it "
                   "makes its share of --connections (the first C mod N take one more), of --requests and of the "
                   "rates, so the N together offer exactly the load asked")
        ->capture_default_str();
    app.add_option("--start-at", t.start_at,
                   "Unix time (s, fractional allowed) or +SECONDS from now: make every connection first, then "
                   "send the first request at that time (generators on several hosts start together; their "
                   "clocks must be synchronised)");
    app.add_option(
           "--timeout", t.timeout,
           "Per request and per connect attempt; a late request counts as an error and its connection is replaced")
        ->check(duration_check())
        ->capture_default_str();
    app.add_option("--connect-rate", c.connect_rate,
                   "Open connections at this many per second (ramp-up, not measured); 0 = all at once")
        ->check(real_number_check(0, 1e9))
        ->capture_default_str();
    app.add_flag("--reconnect", c.reconnect,
                 "A new connection for every request (measures the accept path); latency then includes the connect");
}

void add_protocol_flags(CLI::App& app, Typed& t, Config& c) {
    app.add_option("-p,--protocol", t.protocol,
                   "echo: replies must equal the request; upper: its ASCII uppercase; http: GET with keep-alive, "
                   "non-2xx are errors; raw: --request-file bytes, --reply-size bytes back; memcache: memcached's "
                   "ASCII get/set; resp: Redis GET/SET (RESP2). memcache/resp: a GET's value is verified, a miss "
                   "is not an error, an error reply is")
        ->check(CLI::IsMember({"echo", "upper", "http", "raw", "memcache", "resp"}))
        ->capture_default_str();
    app.add_option("-s,--size", t.size, "echo/upper request bytes: N or MIN-MAX (uniform); k and m multiply by 1024")
        ->check(size_check())
        ->capture_default_str();
    app.add_option("--path", t.path, "http: the request path (default: the target URL's, else /)");
    app.add_option("-H,--header", c.headers, "http: an extra request header 'Name: value' (repeatable)");
    app.add_option("--request-file", t.request_file, "raw: send this file's bytes as every request")
        ->check(CLI::ExistingFile);
    app.add_option("--reply-size", t.reply_size,
                   "raw: bytes the server answers per request (default: the request's size)")
        ->check(whole_number_check(1, uint64_t{1} << 32));
    app.add_option("--keys", c.keys, "memcache/resp: the key space; each request's key is uniform in it")
        ->check(whole_number_check(1, 1'000'000'000'000))
        ->capture_default_str();
    app.add_option("--key-prefix", c.key_prefix,
                   "memcache/resp: keys are this prefix and a number from 0 to --keys - 1 (printable ASCII, no "
                   "spaces, at most 200 bytes)")
        ->capture_default_str();
    app.add_option("--value-size", c.value_size,
                   "memcache/resp: bytes of each value; its content derives from the key, so GETs are verified")
        ->check(whole_number_check(1, 1u << 20))
        ->capture_default_str();
    app.add_option("--ratio", t.ratio,
                   "memcache/resp: SET:GET, the odds of each per request (memtier's syntax); 1:0 sets only, 0:1 "
                   "gets only")
        ->capture_default_str();
    app.add_flag("--prefill", c.prefill,
                 "memcache/resp: before the run, SET every key once over one connection (not measured), so GETs "
                 "hit");
}

void add_output_flags(CLI::App& app, Typed& t, Config& c, std::string& json) {
    app.add_option("--json", json,
                   "Also write every figure and both latency histograms to this file (for kqbench merge)");
    app.add_option("--interval", t.interval,
                   "Every D, print one line on stderr (terminal or not) with that interval's req/s, p50/p99/max "
                   "latency (open loop: corrected) and the errors so far, ramp-up and warm-up included; 0 = off")
        ->check(duration_check());
    app.add_option("--server-pid", c.server_pid,
                   "Report this process's CPU time per request over the measured window (from /proc/PID/stat)")
        ->check(whole_number_check(1, 1 << 30));
    app.add_option("--backend", t.backend, "Event backend: auto|epoll|kqueue (those built into this binary)")
        ->check(CLI::IsMember({"auto", "epoll", "kqueue"}))
        ->capture_default_str();
    app.add_option("--seed", c.seed, "Seed of the request bytes and sizes (runs with one seed send the same bytes)")
        ->capture_default_str();
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "SET:GET", two decimal whole numbers, not both 0.
bool parse_ratio(std::string_view text, uint32_t& set, uint32_t& get) {
    const size_t colon = text.find(':');
    if (colon == std::string_view::npos) return false;
    auto whole = [](std::string_view s, uint32_t& out) {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return !s.empty() && ec == std::errc() && p == s.data() + s.size() && out <= 1'000'000;
    };
    return whole(text.substr(0, colon), set) && whole(text.substr(colon + 1), get) && set + get > 0;
}

std::string kv_config(const Typed& t, Config& c) {
    if (!parse_ratio(t.ratio, c.set_ratio, c.get_ratio)) {
        return "--ratio '" + t.ratio + "' is not SET:GET (whole numbers up to 1000000, not both 0)";
    }
    if (c.key_prefix.size() > 200) return "--key-prefix is longer than 200 bytes";
    for (char ch : c.key_prefix) {
        if (ch <= ' ' || ch > '~') return "--key-prefix must be printable ASCII without spaces";
    }
    return "";
}

// Checks that span several flags; returns an error message or "".
std::string protocol_config(const CLI::App& app, Typed& t, Config& c) {
    parse_protocol(t.protocol, c.protocol);
    bool payload = c.protocol == ProtocolKind::echo || c.protocol == ProtocolKind::upper;
    if (app.count("--size") && !payload) return "--size applies to --protocol echo and upper";
    if ((app.count("--path") || app.count("--header")) && c.protocol != ProtocolKind::http) {
        return "--path and --header apply to --protocol http";
    }
    if ((app.count("--request-file") || app.count("--reply-size")) && c.protocol != ProtocolKind::raw) {
        return "--request-file and --reply-size apply to --protocol raw";
    }
    if ((app.count("--keys") || app.count("--key-prefix") || app.count("--value-size") || app.count("--ratio") ||
         app.count("--prefill")) &&
        !is_key_value(c.protocol)) {
        return "--keys, --key-prefix, --value-size, --ratio and --prefill apply to --protocol memcache and resp";
    }
    if (std::string err = kv_config(t, c); !err.empty()) return err;
    auto range = parse_size_range(t.size);
    if (range->min == 0 || range->max > (64u << 20)) return "--size must be within 1 B .. 64 MiB";
    c.size_min = range->min, c.size_max = range->max;
    if (!t.path.empty()) c.path = t.path;
    if (c.path.empty() || c.path.front() != '/') return "--path must start with '/'";
    for (const auto& h : c.headers) {
        if (h.find(':') == std::string::npos || h.find_first_of("\r\n") != std::string::npos) {
            return "--header '" + h + "' is not 'Name: value'";
        }
    }
    if (c.protocol == ProtocolKind::raw) {
        if (t.request_file.empty()) return "--protocol raw needs --request-file";
        c.request = read_file(t.request_file);
        if (c.request.empty()) return "--request-file " + t.request_file + " is empty";
        c.reply_size = t.reply_size > 0 ? t.reply_size : c.request.size();
    }
    return "";
}

// --rate: a constant or a profile of stages, which sets the duration.
std::string rate_config(const CLI::App& app, const Typed& t, Config& c) {
    RateProfileParse p = parse_rate_profile(t.rate, 1e9, static_cast<int64_t>(kMaxSeconds * 1e9));
    if (!p.error.empty()) return "--rate '" + t.rate + "': " + p.error;
    if (p.stages.size() == 1 && p.stages[0].duration_ns == kForever) {
        c.rate = p.stages[0].from;
        return "";
    }
    if (app.count("--duration") || c.requests > 0) return "--rate stages set the run's length: drop -d and -n";
    c.rate_stages = p.stages;
    c.rate_text = t.rate;
    c.duration_ns = 0;
    c.rate = 0;
    for (const RateStage& s : p.stages) {
        c.duration_ns += s.duration_ns;
        c.rate = std::max({c.rate, s.from, s.to});
    }
    return "";
}

// --segment and --start-at: several generators offering one load together.
std::string cluster_config(const Typed& t, Config& c) {
    auto seg = parse_segment(t.segment);
    if (!seg) return "--segment '" + t.segment + "' is not I/N with 1 <= I <= N <= 1000000";
    c.segment = *seg;
    if (static_cast<uint64_t>(c.connections) < static_cast<uint64_t>(seg->count)) {
        return "--segment " + t.segment + ": " + std::to_string(c.connections) + " connections cannot give each of " +
               std::to_string(seg->count) + " segments one";
    }
    if (c.requests > 0 && c.requests < static_cast<uint64_t>(seg->count)) {
        return "--segment " + t.segment + ": " + std::to_string(c.requests) + " requests cannot give each of " +
               std::to_string(seg->count) + " segments one";
    }
    if (t.start_at.empty()) return "";
    timespec now;
    ::clock_gettime(CLOCK_REALTIME, &now);
    const double epoch = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
    const bool relative = t.start_at.front() == '+';
    auto secs = parse_duration_ns(relative ? std::string_view(t.start_at).substr(1) : std::string_view(t.start_at));
    if (!secs || t.start_at.find_first_not_of("+0123456789.") != std::string::npos) {
        return "--start-at '" + t.start_at + "' is not a Unix time in seconds or +SECONDS";
    }
    c.start_at = (relative ? epoch : 0) + static_cast<double>(*secs) / 1e9;
    if (c.start_at <= epoch) {
        return "--start-at " + t.start_at + " is " + number(epoch - c.start_at) +
               " s in the past (give a time ahead, or +SECONDS)";
    }
    if (c.start_at > epoch + 86400) return "--start-at " + t.start_at + " is more than a day ahead";
    return "";
}

std::string to_config(const CLI::App& app, Typed& t, Config& c) {
    auto target = parse_target(t.target);
    if (!target) return "target '" + t.target + "' is not HOST:PORT or http://HOST[:PORT]/PATH";
    c.host = target->host, c.port = target->port;
    if (target->url) {
        if (!app.count("--protocol")) t.protocol = "http";
        c.path = target->path;
    }
    c.duration_ns = *parse_duration_ns(t.duration);
    c.warmup_ns = *parse_duration_ns(t.warmup);
    c.timeout_ns = *parse_duration_ns(t.timeout);
    if (c.duration_ns <= 0 && c.requests == 0) return "--duration must be more than 0";
    if (c.timeout_ns <= 0) return "--timeout must be more than 0";
    if (c.reconnect && c.pipeline > 1) return "--reconnect sends one request per connection: drop --pipeline";
    if (std::string err = rate_config(app, t, c); !err.empty()) return err;
    if (std::string err = cluster_config(t, c); !err.empty()) return err;
    // Each connection's open-loop interval is connections / rate seconds, the ramp-up connections /
    // connect-rate: both are kept in int64 nanoseconds.
    if (c.rate_stages.empty() && c.rate > 0 && c.connections / c.rate > kMaxSeconds) {
        return "--rate " + number(c.rate) + " gives each of the " + std::to_string(c.connections) +
               " connections less than one request per 10 years";
    }
    if (c.connect_rate > 0 && c.connections / c.connect_rate > kMaxSeconds) {
        return "--connect-rate " + number(c.connect_rate) + " would take more than 10 years to open " +
               std::to_string(c.connections) + " connections";
    }
    parse_backend(t.backend, c.backend);
    if (c.server_pid > 0 && !process_cpu_us(c.server_pid)) {
        return "--server-pid " + std::to_string(c.server_pid) + ": no such process (or /proc unreadable)";
    }
    return protocol_config(app, t, c);
}

}  // namespace

int parse_flags(CLI::App& app, int argc, char** argv, const char* prog) {
    add_version_flag(app, prog);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {  // --help, --version
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << prog << ": " << e.what() << " (see --help)\n";
        return 2;
    }
    return -1;
}

int parse_command_line(int argc, char** argv, CliOptions& out) {
    CLI::App app{
        "kqbench: load generator for TCP and HTTP servers, memcached and Redis. Closed loop (--pipeline requests in "
        "flight per "
        "connection) or open loop (--rate, coordinated-omission corrected); every reply verified.\n"
        "Also: kqbench merge [--json OUT] A.json B.json ... combines runs exactly.",
        "kqbench"};
    app.footer(
        "Exit status: 0 done (errors are in the report), 1 server unreachable or a file unwritable, 2 bad flags.\n"
        "On a terminal a progress line (elapsed, req/s, p99, errors) is updated each second on stderr.\n"
        "Ctrl-C stops sending, waits for the replies in flight and reports the window so far.");
    Typed t;
    app.add_option("target", t.target, "HOST:PORT, [IPv6]:PORT, or http://HOST[:PORT][/PATH] (implies --protocol http)")
        ->required();
    add_run_flags(app, t, out.cfg);
    add_protocol_flags(app, t, out.cfg);
    add_output_flags(app, t, out.cfg, out.json_path);
    if (int rc = parse_flags(app, argc, argv, "kqbench"); rc >= 0) return rc;
    if (std::string err = to_config(app, t, out.cfg); !err.empty()) {
        std::cerr << "kqbench: " << err << " (see --help)\n";
        return 2;
    }
    out.interval_ns = *parse_duration_ns(t.interval);
    return -1;
}

}  // namespace kq::bench
