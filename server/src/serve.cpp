// serve() (kq/app.hpp): a server binary's life from its parsed flags to its exit status.
#include <spdlog/spdlog.h>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "kq/app.hpp"
#include "kq/log.hpp"
#include "kq/metrics.hpp"
#include "signals.hpp"

namespace kq {

int serve(const AppOptions& o, std::unique_ptr<Protocol> protocol, const ServeHooks& hooks) {
    setup_logging(o.log_level);
    SignalThread::block_signals();  // before any thread starts, so all inherit the mask

    std::unique_ptr<Server> server;
    try {
        server = std::make_unique<Server>(o.server, std::move(protocol));
    } catch (const std::invalid_argument& e) {
        std::cerr << o.program << ": --backend " << o.backend << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << o.program << ": " << e.what() << "\n";
        return 1;
    }
    std::unique_ptr<MetricsServer> metrics;
    if (o.metrics_port >= 0) {
        try {
            ListenOptions mo = o.server.listen;
            mo.port = static_cast<uint16_t>(o.metrics_port);
            mo.defer_accept_s = 0;
            metrics = std::make_unique<MetricsServer>(*server, mo);
        } catch (const std::exception& e) {
            std::cerr << o.program << ": --metrics-port " << o.metrics_port << ": " << e.what() << "\n";
            return 1;
        }
    }
    std::printf("listening %s\n", server->address().c_str());
    if (metrics) std::printf("metrics %s\n", metrics->address().c_str());
    std::fflush(stdout);
    spdlog::info("{} {}: backend {}, {} workers, accept {}, dispatch {}, handoff {}, batch {}, defer-accept {} s{}{}",
                 o.program, server->address(), backend_name(server->backend()), server->worker_count(), o.accept,
                 o.dispatch, o.handoff, o.server.worker.batch, o.server.listen.defer_accept_s,
                 hooks.describe.empty() ? "" : ", ", hooks.describe);
    {
        SignalThread signals(*server);
        if (metrics) metrics->start();
        server->run();
        if (metrics) metrics->stop();
    }
    server->log_summary();
    if (hooks.after_stop) hooks.after_stop(*server);
    return 0;
}

}  // namespace kq
