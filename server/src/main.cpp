// kqserver: the command-line server. Parses flags, starts the server with its signal thread (a clean
// stop on SIGTERM, SIGINT or SIGQUIT), and logs the per-worker summary at exit.
#include <spdlog/spdlog.h>
#include <cstdio>
#include <iostream>

#include "flags.hpp"
#include "kq/http.hpp"
#include "kq/log.hpp"
#include "kq/metrics.hpp"
#include "kq/protocols.hpp"
#include "kq/server.hpp"
#include "signals.hpp"

int main(int argc, char** argv) {
    kq::Options o;
    if (int rc = kq::parse_options(argc, argv, o); rc >= 0) return rc;
    kq::setup_logging(o.log_level);

    kq::SignalThread::block_signals();  // before any thread starts, so all inherit the mask

    std::unique_ptr<kq::Server> server;
    try {
        auto protocol = o.protocol == "http" ? kq::make_http_protocol(o.http) : kq::make_builtin_protocol(o.protocol);
        if (o.block_ms > 0)
            protocol = kq::make_blocking_protocol(std::move(protocol), std::chrono::milliseconds(o.block_ms));
        if (o.offload_ms >= 0)
            protocol = kq::make_offloading_protocol(std::move(protocol), std::chrono::milliseconds(o.offload_ms),
                                                    static_cast<size_t>(o.offload_threads));
        server = std::make_unique<kq::Server>(o.server, std::move(protocol));
    } catch (const std::invalid_argument& e) {
        std::cerr << "kqserver: --backend " << o.backend << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kqserver: " << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<kq::MetricsServer> metrics;
    if (o.metrics_port >= 0) {
        try {
            kq::ListenOptions mo = o.server.listen;
            mo.port = static_cast<uint16_t>(o.metrics_port);
            mo.defer_accept_s = 0;
            metrics = std::make_unique<kq::MetricsServer>(*server, mo);
        } catch (const std::exception& e) {
            std::cerr << "kqserver: --metrics-port " << o.metrics_port << ": " << e.what() << "\n";
            return 1;
        }
    }
    std::printf("listening %s\n", server->address().c_str());
    if (metrics) std::printf("metrics %s\n", metrics->address().c_str());
    std::fflush(stdout);
    spdlog::info(
        "kqserver {}: backend {}, {} workers, accept {}, dispatch {}, handoff {}, protocol {}, batch {}, "
        "defer-accept {} s{}",
        server->address(), kq::backend_name(server->backend()), server->worker_count(), o.accept, o.dispatch, o.handoff,
        o.protocol, o.server.worker.batch, o.server.listen.defer_accept_s,
        o.block_ms > 0      ? fmt::format(", blocking {} ms per read", o.block_ms)
        : o.offload_ms >= 0 ? fmt::format(", offloading {} ms per read to {} threads", o.offload_ms, o.offload_threads)
                            : std::string());

    {
        kq::SignalThread signals(*server);
        if (metrics) metrics->start();
        server->run();
        if (metrics) metrics->stop();
    }
    server->log_summary();
    return 0;
}
