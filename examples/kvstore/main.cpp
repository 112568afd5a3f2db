// kvstore: the key-value protocol served by kqserver's acceptor and workers, with the flags, signals and
// exit statuses every server on the library shares (kq/app.hpp) and its own --max-line, --shards.
#include <algorithm>

#include <CLI/CLI.hpp>

#include "kq/app.hpp"
#include "kv_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kvstore: a line-based in-memory key-value store on kqserver (SET k v, GET k, DEL k)"};
    kq::AppOptions o;
    kvstore::KvOptions kv;
    app.add_option("--max-line", kv.max_line, "Longest command line in bytes; longer ones close the connection")
        ->check(CLI::Range(size_t{16}, size_t{1} << 30))
        ->capture_default_str();
    app.add_option("--shards", kv.shards, "Independently locked parts of the store")
        ->check(CLI::Range(size_t{1}, size_t{1} << 16))
        ->capture_default_str();
    if (int rc = kq::parse_app_flags(app, argc, argv, o); rc >= 0) return rc;
    // The worker holds an unfinished line for the session: enough for the longest one and its "\r\n".
    o.server.worker.max_input = std::max(o.server.worker.max_input, kv.max_line + 2);
    return kq::serve(o, std::make_unique<kvstore::KvProtocol>(kv));
}
