// kqmemcache: a memcached-compatible server on kqserver's acceptor and workers, with the flags, signals
// and exit statuses every server on the library shares (kq/app.hpp) and its own cache limits.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <thread>

#include "kq/app.hpp"
#include "mc_protocol.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqmemcache: a memcached-compatible cache (text and meta protocol) on kqserver"};
    kq::AppOptions o;
    o.server.listen.port = 11211;
    o.idle_timeout = 0;  // memcached keeps idle clients: connection pools stay open for hours
    size_t memory_mb = 64;
    size_t max_item = size_t{1} << 20;
    app.add_option("--memory-limit", memory_mb, "Megabytes of items kept; least recently used ones are evicted")
        ->check(CLI::Range(size_t{1}, size_t{1} << 20))
        ->capture_default_str();
    app.add_option("--max-item-size", max_item, "Largest value in bytes; larger ones are refused")
        ->check(CLI::Range(size_t{1}, size_t{1} << 30))
        ->capture_default_str();
    if (int rc = kq::parse_app_flags(app, argc, argv, o); rc >= 0) return rc;
    kqmc::MemcacheOptions options;
    options.memory_limit = memory_mb << 20;
    options.max_item_size = max_item;
    options.workers = o.server.workers > 0 ? o.server.workers : static_cast<int>(std::thread::hardware_concurrency());
    // The worker holds an unfinished command for the session: a line and its whole data block.
    o.server.worker.max_input = std::max(o.server.worker.max_input, options.max_input());
    kq::ServeHooks hooks;
    hooks.describe = "memory limit " + std::to_string(memory_mb) + " MiB";
    return kq::serve(o, std::make_unique<kqmc::MemcacheProtocol>(options), hooks);
}
