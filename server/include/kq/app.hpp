// A server binary's command line and life, shared by kqserver and every server built on the library
// (examples/memcache, examples/resp, examples/proxy): the same flags with the same meaning, the same
// "listening HOST:PORT" line, the same signals and exit statuses. A main() is then a few lines:
//
//     CLI::App app{"myserver: what it does"};
//     kq::AppOptions o;
//     o.server.listen.port = 7000;                       // a default of your own
//     app.add_option("--my-limit", my_limit, "...");     // flags of your own
//     if (int rc = kq::parse_app_flags(app, argc, argv, o); rc >= 0) return rc;
//     return kq::serve(o, std::make_unique<MyProtocol>(my_limit));
//
// Needs CLI11 (libcli11-dev) in the program that includes it: link kqserver::app, not only kqserver::kqserver.
// Thread rules: main thread only, before any other thread starts (serve() blocks the signals it takes
// so that every thread started later inherits the mask).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kq/handler.hpp"
#include "kq/server.hpp"

namespace kq {

// What the shared flags set. server holds the defaults a program may change before parsing (its port,
// its timeouts); the strings and seconds become server's fields once the flags are parsed.
struct AppOptions {
    std::string program = "kqserver";  // the name in error lines and the start line; parse_app_flags sets it
    ServerConfig server;
    std::string backend = "auto";
    std::string dispatch = "round-robin";
    std::string handoff = "queue";
    std::string accept = "acceptor";
    std::string defer_accept = "auto";
    int defer_accept_auto_s = 0;  // what --defer-accept auto means: 0, or 1 where clients speak first (HTTP)
    std::string log_level = "info";
    std::string log_format = "text";                                                 // text | json (kq/log.hpp)
    int metrics_port = -1;                                                           // -1 = no metrics endpoint
    double idle_timeout = 60, request_timeout = 10, drain_timeout = 10, linger = 2;  // seconds
    double drain_delay = 0;       // seconds of serving on after the first stop signal, /ready already 503
    int drain_delay_ms = 0;       // drain_delay, set by apply_server_flags
    double upgrade_timeout = 30;  // seconds the process SIGUSR2 starts may take to be ready
    // What SIGUSR2 starts again (set by parse_app_flags; exe empty: SIGUSR2 is ignored): the binary's
    // path as resolved at start, and the whole command line.
    std::string exe;
    std::vector<std::string> argv;
};

// Adds the shared flags to app: --host --port --workers --backend --dispatch --handoff --accept --batch
// --defer-accept --backlog --tcp-nodelay --metrics-port --log-level --log-format --max-connections
// --idle-timeout --request-timeout (also --header-timeout) --drain-timeout --drain-delay --linger
// --high-water --low-water.
void add_server_flags(CLI::App& app, AppOptions& o);

// After app.parse(): the checks that span flags, and the strings and seconds turned into o.server.
// "" or the error line (without the program name).
std::string apply_server_flags(AppOptions& o);

// add_server_flags, --config FILE (every flag of app, the program's own included, from a TOML file;
// the command line wins), the signals' and exit statuses' footer, app.parse and apply_server_flags. Returns -1
// to go on, or the exit status to return at once: 0 after --help, 2 after one line on stderr naming
// the bad flag. The program name is taken from argv[0]'s last component. On -1 it has also blocked the
// signals serve() takes, in the calling thread: threads started from then on (a protocol's pool, built
// before serve()) inherit the mask, so no stop signal can land in them and kill the process.
int parse_app_flags(CLI::App& app, int argc, char** argv, AppOptions& o);

// What a program adds to serve()'s life: a phrase for the start line ("protocol memcache"), and a call
// after the server stopped, before it is destroyed (a final report of the protocol's own counters).
struct ServeHooks {
    std::string describe;
    std::function<void(Server&)> after_stop;
};

// Sets up logging (--log-level and --log-format, to stderr), blocks the signals, builds the Server (on the listening
// socket handed in by socket activation when LISTEN_FDS/LISTEN_PID name this process, and the metrics
// endpoint on the one named "metrics" by LISTEN_FDNAMES, if any), starts the metrics endpoint if asked,
// prints "listening HOST:PORT" (and "metrics HOST:PORT") on stdout, logs one start line, notifies
// READY=1 to $NOTIFY_SOCKET (systemd Type=notify; STATUS= every few seconds), and runs until SIGTERM,
// SIGINT or SIGQUIT: at once /ready answers 503 and STOPPING=1 is notified, the server serves on for
// --drain-delay, then stops accepting and drains (a second signal stops at once).
// SIGUSR2 upgrades without downtime: it starts o.exe with o.argv, handing it the listening sockets
// (LISTEN_FDS), and once that process says it is ready (within --upgrade-timeout, or it is killed and
// this one serves on), notifies MAINPID= of it, stops accepting and drains; the new process inherits
// nothing else. SIGUSR1 logs the per-worker summary so far; SIGHUP is logged and ignored. Logs the
// summary at exit. Returns the exit status: 0 after a stop, 1 when the server cannot start (an inherited
// socket that is not a listening TCP socket included), 2 when --backend names one that is not available.
int serve(const AppOptions& o, std::unique_ptr<Protocol> protocol, const ServeHooks& hooks = {});

}  // namespace kq
