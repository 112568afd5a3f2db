// Names of protocols and error kinds, and the one-line description of a configuration.
#include "kqbench/config.hpp"

#include <array>

#include "kqbench/units.hpp"

namespace kq::bench {
namespace {

constexpr std::array<std::string_view, 6> kProtocols = {"echo", "upper", "http", "raw", "memcache", "resp"};
constexpr std::array<std::string_view, kErrorKinds> kErrorKeys = {
    "connect_refused", "connect_timeout", "connect_error", "reset", "closed", "timeout", "verify", "status", "parse",
};

}  // namespace

std::string_view protocol_name(ProtocolKind p) { return kProtocols[static_cast<size_t>(p)]; }

bool parse_protocol(std::string_view text, ProtocolKind& out) {
    for (size_t i = 0; i < kProtocols.size(); ++i) {
        if (kProtocols[i] == text) {
            out = static_cast<ProtocolKind>(i);
            return true;
        }
    }
    return false;
}

std::string_view error_key(ErrorKind k) { return kErrorKeys[index(k)]; }

std::vector<RateStage> rate_profile(const Config& c) {
    if (!c.rate_stages.empty()) return c.rate_stages;
    if (c.rate > 0) return {RateStage{c.rate, c.rate, kForever}};
    return {};
}

Config segment_config(const Config& whole) {
    Config c = whole;
    if (whole.segment.count == 1) return c;
    const double share = segment_fraction(whole.connections, whole.segment);
    c.connections = static_cast<int>(segment_share(static_cast<uint64_t>(whole.connections), whole.segment));
    c.requests = segment_share(whole.requests, whole.segment);
    c.rate = whole.rate * share;
    for (RateStage& s : c.rate_stages) s.from *= share, s.to *= share;
    return c;
}

std::string describe(const Config& c) {
    std::string s(protocol_name(c.protocol));
    if (c.protocol == ProtocolKind::echo || c.protocol == ProtocolKind::upper) {
        s += c.size_min == c.size_max ? " " + std::to_string(c.size_min) + " B"
                                      : " " + std::to_string(c.size_min) + "-" + std::to_string(c.size_max) + " B";
    } else if (c.protocol == ProtocolKind::http) {
        s += " GET " + c.path;
    } else if (is_key_value(c.protocol)) {
        s += " " + format_count(c.keys) + (c.keys == 1 ? " key" : " keys") + ", " + std::to_string(c.value_size) +
             " B values, set:get " + std::to_string(c.set_ratio) + ":" + std::to_string(c.get_ratio);
        if (c.prefill) s += ", prefilled";
    } else {
        s += " " + std::to_string(c.request.size()) + " B -> " + std::to_string(c.reply_size) + " B";
    }
    s += ", " + std::to_string(c.threads) + (c.threads == 1 ? " thread, " : " threads, ");
    s += std::to_string(c.connections) + (c.connections == 1 ? " connection" : " connections");
    if (c.reconnect) s += " (new per request)";
    s += ", pipeline " + std::to_string(c.pipeline);
    if (!c.rate_stages.empty()) s += ", open loop " + c.rate_text + " req/s";
    else s += c.rate > 0 ? ", open loop " + format_rate(c.rate) + " req/s" : ", closed loop";
    s += c.requests > 0 ? ", " + format_count(c.requests) + " requests" : ", " + format_seconds(c.duration_ns);
    if (c.warmup_ns > 0) s += " after " + format_seconds(c.warmup_ns) + " warm-up";
    if (c.segment.count > 1) {
        s += ", segment " + std::to_string(c.segment.index) + "/" + std::to_string(c.segment.count) + " (" +
             std::to_string(segment_share(static_cast<uint64_t>(c.connections), c.segment)) + " connections)";
    }
    return s;
}

}  // namespace kq::bench
