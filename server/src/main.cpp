// kqserver: the command-line server. Parses flags and serves the chosen built-in protocol until a
// signal stops it (kq/app.hpp: the same life every server on the library has).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "flags.hpp"
#include "kq/app.hpp"
#include "kq/protocols.hpp"

int main(int argc, char** argv) {
    kq::Options o;
    if (int rc = kq::parse_options(argc, argv, o); rc >= 0) return rc;
    auto protocol = o.protocol == "http" ? kq::make_http_protocol(o.http) : kq::make_builtin_protocol(o.protocol);
    if (o.block_ms > 0)
        protocol = kq::make_blocking_protocol(std::move(protocol), std::chrono::milliseconds(o.block_ms));
    if (o.offload_ms >= 0)
        protocol = kq::make_offloading_protocol(std::move(protocol), std::chrono::milliseconds(o.offload_ms),
                                                static_cast<size_t>(o.offload_threads));
    kq::ServeHooks hooks;
    hooks.describe = "protocol " + o.protocol;
    if (o.block_ms > 0) hooks.describe += fmt::format(", blocking {} ms per read", o.block_ms);
    if (o.offload_ms >= 0)
        hooks.describe += fmt::format(", offloading {} ms per read to {} threads", o.offload_ms, o.offload_threads);
    if (o.http.access_log) {
        hooks.describe += ", access log " + o.access_log;
        hooks.after_stop = [log = o.http.access_log](kq::Server&) {
            if (uint64_t n = kq::access_log_dropped(*log); n > 0)
                spdlog::warn("access log: {} lines dropped (its writer fell behind)", n);
        };
    }
    return kq::serve(o.app, std::move(protocol), hooks);
}
