// kqproxy: a TCP proxy on kqserver's acceptor and workers, with the flags, signals and exit statuses
// every server on the library shares (kq/app.hpp) and its own --upstream (a backend server: --backend
// is the event backend, as in every server) and --connect-timeout.
#include <CLI/CLI.hpp>
#include <iostream>

#include "kq/app.hpp"
#include "proxy.hpp"

int main(int argc, char** argv) {
    CLI::App app{"kqproxy: a TCP proxy on kqserver; each client is forwarded to one backend, round-robin"};
    kq::AppOptions o;
    std::vector<std::string> backends;
    int connect_timeout_ms = 1000;
    app.add_option("--upstream", backends,
                   "A backend as HOST:PORT or [IPV6]:PORT, HOST resolved at startup; repeat it for several "
                   "(clients are spread round-robin, one that fails to connect is skipped)")
        ->required()
        ->take_all();
    app.add_option("--connect-timeout", connect_timeout_ms,
                   "Milliseconds a backend has to accept the connection before the next one is tried")
        ->check(CLI::Range(1, 3'600'000))
        ->capture_default_str();
    if (int rc = kq::parse_app_flags(app, argc, argv, o); rc >= 0) return rc;
    kqproxy::ProxyOptions options;
    try {
        for (const auto& b : backends) options.backends.push_back(kqproxy::resolve_backend(b));
    } catch (const std::invalid_argument& e) {
        std::cerr << o.program << ": " << e.what() << " (see --help)\n";
        return 2;
    }
    options.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);

    auto protocol = std::make_unique<kqproxy::ProxyProtocol>(std::move(options));
    kqproxy::ProxyProtocol* proxy = protocol.get();  // owned by the server until after_stop returns
    kq::ServeHooks hooks;
    hooks.describe = std::to_string(backends.size()) + " backends";
    hooks.after_stop = [proxy](kq::Server&) {
        auto& s = proxy->stats();
        std::cerr << "kqproxy: " << s.forwarded.load() << " clients forwarded, " << s.retries.load()
                  << " backend connects failed, " << s.unavailable.load() << " clients found no backend\n";
    };
    return kq::serve(o, std::move(protocol), hooks);
}
