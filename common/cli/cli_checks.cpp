// The flag checks shared by kqserver, kqbench and kqcat (kq/cli_checks.hpp).
#include "kq/cli_checks.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <string>

namespace kq {
namespace {

// "%g" without its exponent for the round numbers used as limits ("86400", "0.001", "1073741824").
std::string number_text(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
}

}  // namespace

CLI::Validator whole_number_check(uint64_t min, uint64_t max) {
    std::string range = std::to_string(min) + ".." + std::to_string(max);
    return CLI::Validator(
        [min, max, range](std::string& text) -> std::string {
            uint64_t v = 0;
            const char* end = text.data() + text.size();
            bool digits =
                !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
            auto [p, ec] = std::from_chars(text.data(), end, v);
            if (!digits || ec != std::errc() || p != end || v < min || v > max)
                return "'" + text + "' is not a whole number in " + range;
            text = std::to_string(v);
            return "";
        },
        range);
}

CLI::Validator real_number_check(double min, double max) {
    std::string range = number_text(min) + ".." + number_text(max);
    return CLI::Validator(
        [min, max, range](std::string& text) -> std::string {
            double v = 0;
            bool ok = CLI::detail::lexical_cast(text, v) && std::isfinite(v) && v >= min && v <= max;
            return ok ? "" : "'" + text + "' is not a number in " + range;
        },
        range);
}

CLI::Validator seconds_check(double max_seconds) {
    max_seconds = std::min(max_seconds, static_cast<double>(INT_MAX / 1000));
    std::string range = "0 or 0.001.." + number_text(max_seconds);
    return CLI::Validator(
        [max_seconds, range](std::string& text) -> std::string {
            double v = -1;
            bool number = CLI::detail::lexical_cast(text, v) && std::isfinite(v);
            if (number && v == 0) return "";
            if (number && v >= 0.001 && v <= max_seconds) return "";
            if (number && v > 0 && v < 0.001)
                return text + " s is below the 1 ms resolution and would mean 0 (never): use 0 or at least 0.001";
            return "'" + text + "' is not " + range + " seconds";
        },
        range);
}

int seconds_to_ms(double seconds) {
    return static_cast<int>(std::max<long long>(seconds > 0 ? 1 : 0, std::llround(seconds * 1000)));
}

const char* version() noexcept { return KQ_VERSION; }

void add_version_flag(CLI::App& app, const std::string& program) {
    app.set_version_flag("--version", program + " " + version(), "Print the program's name and version, then exit")
        ->configurable(false);  // not a key of a --config file
}

}  // namespace kq
