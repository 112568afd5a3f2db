// Checks for the numbers users type into the binaries' flags (kqserver, kqbench, kqcat), as CLI11
// validators, so each rule is written once. CLI::Range is not enough on its own: CLI11 reads unsigned
// options with strtoull, which takes "-1" as 2^64-1 and saturates an overflow without a word, reads
// integers in base 0 ("010" is 8, "0x10" 16), and Range lets NaN through, since every comparison with
// NaN is false. Durations must be 0 or at least the 1 ms the server keeps them in: a smaller value
// would round to 0, which means "never".
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace kq {

// A whole number in decimal digits only, from min to max. The text is rewritten to its plain decimal
// form, so that CLI11's own conversion afterwards reads the value that was checked.
CLI::Validator whole_number_check(uint64_t min, uint64_t max);

// A finite real number from min to max.
CLI::Validator real_number_check(double min, double max);

// Seconds: 0 (the flag's "off" or "never"), or from 0.001 up to max_seconds, which is capped so that
// the value in milliseconds fits an int.
CLI::Validator seconds_check(double max_seconds);
// A value seconds_check() accepted, in whole milliseconds (the nearest; at least 1 unless 0).
int seconds_to_ms(double seconds);

// The project's version ("0.1.0", from CMake's project()).
const char* version() noexcept;
// Adds --version, which prints "<program> <version>" on stdout and exits 0. CLI11 raises it as
// CLI::CallForVersion, a CLI::Success like --help: catch CLI::Success (not only CLI::CallForHelp) and
// return app.exit(e), or the version would be reported as a bad flag.
void add_version_flag(CLI::App& app, const std::string& program);

}  // namespace kq
