// Parsing and printing of durations, sizes, targets and figures for kqbench's flags and summary.
#include "kqbench/units.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace kq::bench {
namespace {

// Splits "1.5ms" into 1.5 and "ms"; nullopt unless the number part is a finite non-negative decimal.
std::optional<std::pair<double, std::string_view>> number_and_suffix(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    std::string number(text.substr(0, i));
    char* end = nullptr;
    double v = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(v) || v < 0) return std::nullopt;
    return std::make_pair(v, text.substr(i));
}

std::optional<uint64_t> parse_unsigned(std::string_view text) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return std::nullopt;
    return v;
}

}  // namespace

std::optional<int64_t> parse_duration_ns(std::string_view text) {
    auto parsed = number_and_suffix(text);
    if (!parsed) return std::nullopt;
    auto [v, suffix] = *parsed;
    double scale = 0;
    if (suffix.empty() || suffix == "s") scale = 1e9;
    else if (suffix == "ms") scale = 1e6;
    else if (suffix == "us" || suffix == "µs") scale = 1e3;
    else if (suffix == "m" || suffix == "min") scale = 60e9;
    else if (suffix == "h") scale = 3600e9;
    else return std::nullopt;
    double ns = v * scale;
    // Below half a nanosecond a positive duration would round to 0, which the flags read as "none".
    if (ns > 9e18 || (ns > 0 && ns < 0.5)) return std::nullopt;
    return static_cast<int64_t>(std::llround(ns));
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
    uint64_t scale = 1;
    if (!text.empty()) {
        char last = text.back();
        if (last == 'k' || last == 'K') scale = 1024;
        if (last == 'm' || last == 'M') scale = 1024 * 1024;
        if (scale != 1) text.remove_suffix(1);
    }
    auto v = parse_unsigned(text);
    if (!v || *v > (UINT64_MAX / scale)) return std::nullopt;
    return *v * scale;
}

std::optional<SizeRange> parse_size_range(std::string_view text) {
    size_t dash = text.find('-');
    auto lo = parse_bytes(text.substr(0, dash));
    auto hi = dash == std::string_view::npos ? lo : parse_bytes(text.substr(dash + 1));
    if (!lo || !hi || *lo > *hi) return std::nullopt;
    return SizeRange{static_cast<size_t>(*lo), static_cast<size_t>(*hi)};
}

std::optional<Target> parse_target(std::string_view text) {
    Target t;
    constexpr std::string_view kScheme = "http://";
    if (text.substr(0, kScheme.size()) == kScheme) {
        t.url = true;
        t.port = 80;
        text.remove_prefix(kScheme.size());
        size_t slash = text.find('/');
        t.path = slash == std::string_view::npos ? "/" : std::string(text.substr(slash));
        text = text.substr(0, slash);
    }
    size_t colon = text.rfind(':');
    std::string_view host = text;
    if (colon != std::string_view::npos && text.find(']', colon) == std::string_view::npos) {
        auto port = parse_unsigned(text.substr(colon + 1));
        if (!port || *port == 0 || *port > 65535) return std::nullopt;
        t.port = static_cast<uint16_t>(*port);
        host = text.substr(0, colon);
    } else if (!t.url) {
        return std::nullopt;  // a bare host needs a port
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) return std::nullopt;
    t.host = std::string(host);
    return t;
}

std::string format_latency_us(double us) {
    char buf[32];
    if (us < 1000) std::snprintf(buf, sizeof buf, "%.0fus", us);
    else if (us < 1e6) std::snprintf(buf, sizeof buf, "%.2fms", us / 1e3);
    else std::snprintf(buf, sizeof buf, "%.2fs", us / 1e6);
    return buf;
}

std::string format_count(uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string format_rate(double per_s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", per_s);
    return buf;
}

std::string format_bytes_per_s(double bytes) {
    char buf[32];
    if (bytes < 1024) std::snprintf(buf, sizeof buf, "%.0fB/s", bytes);
    else if (bytes < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2fKiB/s", bytes / 1024);
    else if (bytes < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2fMiB/s", bytes / (1024 * 1024));
    else std::snprintf(buf, sizeof buf, "%.2fGiB/s", bytes / (1024.0 * 1024 * 1024));
    return buf;
}

std::string format_seconds(int64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ns) / 1e9);
    return buf;
}

}  // namespace kq::bench
