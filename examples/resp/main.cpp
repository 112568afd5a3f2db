// kqresp: a Redis-protocol (RESP2) key-value server on kqserver's acceptor and workers, with the flags,
// signals and exit statuses every server on the library shares (kq/app.hpp) and its own limits.
#include <CLI/CLI.hpp>

#include "kq/app.hpp"
#include "resp_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqresp: a Redis-protocol key-value server on kqserver (strings, lists, expiry)"};
    kq::AppOptions o;
    o.server.listen.port = 6379;
    o.idle_timeout = 0;  // Redis's default: idle clients are never closed
    resp::RespOptions options;
    app.add_option("--max-bulk", options.limits.max_bulk, "Longest argument in bytes (Redis: proto-max-bulk-len)")
        ->check(CLI::Range(size_t{1}, size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--max-request", options.limits.max_request,
                   "Largest request in bytes, all its arguments together; a connection may hold this much")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 34))
        ->capture_default_str();
    app.add_option("--max-args", options.limits.max_args, "Most arguments in one request")
        ->check(CLI::Range(size_t{1}, size_t{1} << 31))
        ->capture_default_str();
    app.add_option("--max-inline", options.limits.max_inline, "Longest inline (non-RESP) request line in bytes")
        ->check(CLI::Range(size_t{16}, size_t{1} << 30))
        ->capture_default_str();
    if (int rc = kq::parse_app_flags(app, argc, argv, o); rc >= 0) return rc;
    o.server.worker.max_input = resp::max_input_for(options.limits);
    return kq::serve(o, std::make_unique<resp::RespProtocol>(options));
}
