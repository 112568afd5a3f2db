// Parsing and printing of the quantities kqbench users type and read: durations, sizes, rates, latencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kq::bench {

// "10s", "500ms", "250us", "2m", "1.5s"; a bare number is seconds. nullopt if malformed, negative, or
// positive but below the 1 ns resolution (it would read as 0).
std::optional<int64_t> parse_duration_ns(std::string_view text);
// "64", "4k", "1m" (binary multiples); nullopt if malformed.
std::optional<uint64_t> parse_bytes(std::string_view text);
// "N" or "MIN-MAX" in bytes; nullopt if malformed or MIN > MAX.
struct SizeRange {
    size_t min = 0, max = 0;
};
std::optional<SizeRange> parse_size_range(std::string_view text);
// "HOST:PORT", "[V6]:PORT" or "http://HOST[:PORT][/PATH]" (port 80 by default).
struct Target {
    std::string host;
    uint16_t port = 0;
    std::string path;  // non-empty only for a URL
    bool url = false;
};
std::optional<Target> parse_target(std::string_view text);

std::string format_latency_us(double us);      // "75us", "1.23ms", "2.50s" (ASCII, so columns align)
std::string format_count(uint64_t n);          // "1,234,567"
std::string format_rate(double per_s);         // "123456.7"
std::string format_bytes_per_s(double bytes);  // "7.51MiB/s"
std::string format_seconds(int64_t ns);        // "10s", "0.5s"

}  // namespace kq::bench
