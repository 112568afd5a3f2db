// Reads utime and stime (fields 14 and 15 of /proc/PID/stat, in clock ticks) and converts them to µs.
#include "kqbench/proc_cpu.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iterator>
#include <string>

namespace kq::bench {

std::optional<uint64_t> parse_proc_stat_cpu_us(std::string_view stat, long ticks_per_s) {
    // Field 2 is "(comm)" and comm may contain anything, so fields are counted from the last ')'.
    size_t paren = stat.rfind(')');
    if (paren == std::string_view::npos || ticks_per_s <= 0) return std::nullopt;
    std::string_view rest = stat.substr(paren + 1);
    uint64_t values[2] = {0, 0};
    int field = 2;  // the field just consumed
    size_t pos = 0;
    while (field < 15) {
        size_t begin = rest.find_first_not_of(' ', pos);
        if (begin == std::string_view::npos) return std::nullopt;
        size_t end = rest.find(' ', begin);
        if (end == std::string_view::npos) end = rest.size();
        ++field;
        if (field == 14 || field == 15) {
            std::string_view token = rest.substr(begin, end - begin);
            auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), values[field - 14]);
            if (ec != std::errc() || p != token.data() + token.size()) return std::nullopt;
        }
        pos = end;
    }
    uint64_t ticks = values[0] + values[1];
    return ticks * 1'000'000 / static_cast<uint64_t>(ticks_per_s);
}

std::optional<uint64_t> process_cpu_us(int pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    if (!in) return std::nullopt;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_proc_stat_cpu_us(text, ::sysconf(_SC_CLK_TCK));
}

}  // namespace kq::bench
