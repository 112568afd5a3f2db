// kqserver's own flags (CLI11), beside the shared ones of kq/app.hpp: definitions with help, defaults
// and checks (the rules of kq/cli_checks.hpp).
#include "flags.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

#include "kq/cli_checks.hpp"
#include "kq/protocols.hpp"

namespace kq {
namespace {

std::string joined(std::span<const std::string_view> names) {
    std::string s;
    for (auto n : names) s += (s.empty() ? "" : "|") + std::string(n);
    return s;
}

void add_protocol_flags(CLI::App& app, Options& o) {
    auto protocols = builtin_protocol_names();
    app.add_option("--protocol", o.protocol, "Protocol: " + joined(protocols))
        ->check(CLI::IsMember(std::vector<std::string>(protocols.begin(), protocols.end())))
        ->each([&o](const std::string& p) { o.app.defer_accept_auto_s = p == "http" ? 1 : 0; })
        ->capture_default_str();
    app.add_option("--block-ms", o.block_ms,
                   "Demonstration only: the handler sleeps this many ms per read before answering (as a "
                   "handler calling sleep() would), stalling every connection on its worker; 0 = off")
        ->check(whole_number_check(0, 60'000))
        ->capture_default_str();
    auto* offload = app.add_option("--offload-ms", o.offload_ms,
                                   "Demonstration only: the same sleep per read as --block-ms, done on a thread pool "
                                   "(kq::OffloadPool) while the connection waits: its worker serves the others "
                                   "meanwhile. 0 = offloaded without sleeping (the cost of the round trip); off "
                                   "unless given")
                        ->check(whole_number_check(0, 60'000));
    app.add_option("--offload-threads", o.offload_threads,
                   "Threads of the --offload-ms pool: sleeps and blocking calls need threads, not cores (each "
                   "runs one job at a time)")
        ->check(whole_number_check(1, 4096))
        ->capture_default_str();
    offload->excludes(app.get_option("--block-ms"));
    app.add_option("--max-header", o.http.max_header,
                   "http: largest request head (request line + fields) in bytes: 431 above it, 414 if the request line "
                   "alone is longer")
        ->check(whole_number_check(256, 1 << 20))
        ->capture_default_str();
    app.add_option("--max-body", o.http.max_body, "http: largest request body in bytes, read and discarded (413 above)")
        ->check(whole_number_check(0, uint64_t{1} << 40))
        ->capture_default_str();
    app.add_option("--access-log", o.access_log,
                   "http: append a Common Log Format line per answered request (peer, time in UTC, request-line, "
                   "status, body bytes) to this file, '-' = stdout; written by a thread of its own, so a slow "
                   "disk never stalls a worker (lines are dropped, and counted, when it falls behind). Off "
                   "unless given")
        ->type_name("FILE");
}

}  // namespace

int parse_options(int argc, char** argv, Options& out) {
    CLI::App app{
        "kqserver: multi-threaded edge-triggered TCP server (acceptor thread + N workers, each with "
        "its own kqueue/epoll)"};
    add_protocol_flags(app, out);
    if (int rc = parse_app_flags(app, argc, argv, out.app); rc >= 0) return rc;
    if (!out.access_log.empty()) {
        if (out.protocol != "http") {
            std::cerr << out.app.program << ": --access-log needs --protocol http (see --help)\n";
            return 2;
        }
        try {
            out.http.access_log = open_access_log(out.access_log);
        } catch (const std::exception& e) {
            std::cerr << out.app.program << ": --access-log: " << e.what() << " (see --help)\n";
            return 2;
        }
    }
    return -1;
}

}  // namespace kq
