// kqserver's command line: the flags every server shares (kq/app.hpp) and kqserver's own (the protocol,
// the blocking and offloading demonstrations, the HTTP limits). A bad value is one line on stderr naming
// the flag, and exit status 2.
#pragma once

#include <string>

#include "kq/app.hpp"
#include "kq/http.hpp"

namespace kq {

struct Options {
    AppOptions app;
    std::string protocol = "echo";
    int block_ms = 0;
    int offload_ms = -1;  // -1 = off; 0 = offloaded without a sleep (the round trip alone)
    int offload_threads = 16;
    HttpOptions http;
    std::string access_log;  // --access-log: a path, "-" (stdout) or "" (off); opened into http.access_log
};

// Parses argv into out (and opens --access-log). Returns -1 to go on, or the exit status to return at
// once: 0 after --help, 2 after a one-line error on stderr.
int parse_options(int argc, char** argv, Options& out);

}  // namespace kq
