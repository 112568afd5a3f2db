// kqserver's command line: every flag with its help, default and check, and the conversion of what was
// typed into a ServerConfig. A bad value is one line on stderr naming the flag, and exit status 2.
#pragma once

#include <string>

#include "kq/http.hpp"
#include "kq/server.hpp"

namespace kq {

struct Options {
    ServerConfig server;
    std::string protocol = "echo";
    std::string backend = "auto";
    std::string dispatch = "round-robin";
    std::string handoff = "queue";
    std::string accept = "acceptor";
    int block_ms = 0;
    int offload_ms = -1;  // -1 = off; 0 = offloaded without a sleep (the round trip alone)
    int offload_threads = 16;
    std::string defer_accept = "auto";
    std::string log_level = "info";
    HttpOptions http;
    int metrics_port = -1;                                                          // -1 = no metrics endpoint
    double idle_timeout = 60, header_timeout = 10, drain_timeout = 10, linger = 2;  // seconds
};

// Parses argv into out. Returns -1 to go on, or the exit status to return at once: 0 after --help,
// 2 after a one-line error on stderr.
int parse_options(int argc, char** argv, Options& out);

}  // namespace kq
