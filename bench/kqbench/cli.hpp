// kqbench's command line: "kqbench [flags] TARGET" runs a benchmark, "kqbench merge [--json OUT] FILE..."
// combines the JSON reports of several runs. Exit status: 0 done, 1 unreachable server or unusable
// input file, 2 bad flags.
#pragma once

#include <cstdint>
#include <string>

#include "kqbench/config.hpp"

namespace CLI {
class App;
}

namespace kq::bench {

struct CliOptions {
    Config cfg;
    std::string json_path;    // --json: also write the report there
    int64_t interval_ns = 0;  // --interval: a line of figures per interval on stderr (0 = off)
};

// Fills out from argv. Returns -1 to go on, or the exit status to return at once (0 after --help,
// 2 after a one-line error on stderr).
int parse_command_line(int argc, char** argv, CliOptions& out);

// Parses argv into app's options: -1 to go on, 0 after --help, 2 after a one-line error on stderr
// (prefixed with prog).
int parse_flags(CLI::App& app, int argc, char** argv, const char* prog);

// The whole program: the benchmark, or merge when argv[1] is "merge".
int kqbench_main(int argc, char** argv);

}  // namespace kq::bench
