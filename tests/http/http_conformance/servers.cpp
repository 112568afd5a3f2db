// Starting nginx and kqserver for the conformance suite, and waiting (bounded, on events) until each
// listens.
#include "servers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "kq/net.hpp"

namespace kq::conformance {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kStartMs = 20'000;  // to listen, even on a loaded machine or under a sanitizer
constexpr int kBindAttempts = 5;  // nginx is given a port that was free a moment ago; another may take it

int ms_left(Clock::time_point deadline) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return ms > 0 ? static_cast<int>(ms) : 0;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

UniqueFd open_log(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) throw_errno("open " + path);
    return fd;
}

class ChildServer final : public Server {
public:
    ChildServer(std::unique_ptr<ChildProcess> child, uint16_t port, int stop_signal)
        : child_(std::move(child)), stop_signal_(stop_signal) {
        port_ = port;
    }
    int stop() override { return child_->stop(stop_signal_, 15'000); }

private:
    std::unique_ptr<ChildProcess> child_;
    int stop_signal_;
};

// A port nothing listens on right now.
uint16_t free_port() {
    ListenOptions opt;
    opt.port = 0;
    UniqueFd fd = listen_tcp(opt);
    return local_port(fd.get());
}

// Waits until dir/name exists and is not empty, the child exits, or the deadline; true in the first case.
// The file is looked at after the inotify watch is in place and again at each event, so none is missed.
bool wait_for_file(const std::string& dir, const std::string& name, ChildProcess& child, Clock::time_point deadline) {
    UniqueFd in(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!in) throw_errno("inotify_init1");
    if (::inotify_add_watch(in.get(), dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) throw_errno("inotify_add_watch");
    const std::filesystem::path file = std::filesystem::path(dir) / name;
    for (;;) {
        std::error_code ec;
        if (std::filesystem::file_size(file, ec) > 0 && !ec) return true;
        pollfd p[2] = {{in.get(), POLLIN, 0}, {child.pidfd(), POLLIN, 0}};
        if (::poll(p, 2, ms_left(deadline)) == 0 || (p[1].revents & POLLIN)) return false;
        alignas(inotify_event) char events[4096];
        while (::read(in.get(), events, sizeof events) > 0) {}
    }
}

}  // namespace

std::string nginx_config(const std::string& dir, uint16_t port, const Limits& lim) {
    const std::string t = std::to_string(lim.timeout_s) + "s";
    // Every route refuses methods other than GET and HEAD with 405 from inside its location, as kqserver
    // does: a server-level "if" would run before the location's client_max_body_size check and answer an
    // oversized POST with 405 where kqserver says 413.
    const std::string only_get = "if ($request_method !~ ^(GET|HEAD)$) { return 405; } ";
    std::ostringstream c;
    c << "# Written by tests/http_conformance: nginx serving kqserver's routes under kqserver's limits.\n"
      << "worker_processes 1;\nerror_log stderr info;\npid " << dir << "/nginx.pid;\n"
      << "events { worker_connections 1024; }\n"
      << "http {\n  access_log off;\n  default_type text/plain;\n"
      << "  client_body_temp_path " << dir << "/client_body;\n  proxy_temp_path " << dir << "/proxy;\n"
      << "  fastcgi_temp_path " << dir << "/fastcgi;\n  uwsgi_temp_path " << dir << "/uwsgi;\n"
      << "  scgi_temp_path " << dir << "/scgi;\n"
      << "  client_max_body_size " << lim.max_body
      << ";\n"
      // nginx bounds a head by buffers, not by its total: a head that fits in client_header_buffer_size is
      // read in that one buffer; past it, the line being read moves to a large buffer, and a request line
      // that does not fit one is 414, any other line 400. One buffer of kqserver's --max-header takes every
      // head kqserver takes; two large buffers of 1 KiB let a head overrun it by at most about 2 KiB (a
      // head over that is refused by both) and let pipelined heads keep rotating through the buffers.
      << "  client_header_buffer_size " << lim.max_header << ";\n  large_client_header_buffers 2 1k;\n"
      << "  client_header_timeout " << t << ";\n  client_body_timeout " << t
      << ";\n"
      // nginx closes a connection after 1000 requests by default; kqserver serves any number.
      << "  keepalive_timeout " << t << ";\n  keepalive_requests 1000000;\n  send_timeout " << t << ";\n"
      << "  lingering_close on;\n  lingering_timeout " << t << ";\n"
      << "  server {\n    listen 127.0.0.1:" << port << ";\n"
      << "    location = / { " << only_get << "return 200 \"Hello from kqserver\\n\"; }\n"
      << "    location /bytes/ { " << only_get << "return 200 \"xxxxx\"; }\n"
      << "    location / { " << only_get << "return 404; }\n  }\n}\n";
    return c.str();
}

std::unique_ptr<Server> start_nginx(const std::string& binary, const TempDir& dir, const Limits& limits) {
    if (::access(binary.c_str(), X_OK) != 0)
        throw std::runtime_error("no nginx at " + binary +
                                 ": install nginx-light (scripts/install-deps.sh) or set NGINX");
    const std::string conf = dir.path() + "/nginx.conf", log = dir.path() + "/nginx.log";
    for (int attempt = 1;; ++attempt) {
        const uint16_t port = free_port();
        std::ofstream(conf) << nginx_config(dir.path(), port, limits);
        UniqueFd log_fd = open_log(log);
        std::filesystem::remove(dir.path() + "/nginx.pid");
        auto child = std::make_unique<ChildProcess>(
            std::vector<std::string>{binary, "-p", dir.path(), "-c", conf, "-g", "daemon off; master_process off;"}, -1,
            log_fd.get());
        if (wait_for_file(dir.path(), "nginx.pid", *child, Clock::now() + std::chrono::milliseconds(kStartMs)))
            return std::make_unique<ChildServer>(std::move(child), port, SIGTERM);
        child.reset();  // killed if it still runs
        std::string text = read_file(log);
        if (attempt < kBindAttempts && text.find("Address already in use") != std::string::npos) continue;
        throw std::runtime_error("nginx (" + binary + ") did not start:\n" + text);
    }
}

std::unique_ptr<Server> start_kqserver(const std::string& binary, const TempDir& dir, const Limits& lim) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe2");
    UniqueFd out_r(out[0]), out_w(out[1]);
    const std::string log = dir.path() + "/kqserver.log";
    UniqueFd log_fd = open_log(log);
    auto child = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary, "--protocol", "http", "--port", "0", "--workers", "1", "--header-timeout",
                                 std::to_string(lim.timeout_s), "--max-header", std::to_string(lim.max_header),
                                 "--max-body", std::to_string(lim.max_body), "--log-level", "warn"},
        out_w.get(), log_fd.get());
    out_w.reset();  // EOF on out_r once the child closes its stdout or dies
    std::string text;
    const auto deadline = Clock::now() + std::chrono::milliseconds(kStartMs);
    while (text.find('\n') == std::string::npos) {
        pollfd p{out_r.get(), POLLIN, 0};
        if (::poll(&p, 1, ms_left(deadline)) <= 0) break;
        char buf[256];
        ssize_t n = ::read(out_r.get(), buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    size_t colon = text.rfind(':', text.find('\n'));
    if (!text.starts_with("listening ") || colon == std::string::npos)
        throw std::runtime_error("kqserver (" + binary + ") did not start: '" + text + "'\n" + read_file(log));
    auto port = static_cast<uint16_t>(std::stoi(text.substr(colon + 1)));
    return std::make_unique<ChildServer>(std::move(child), port, SIGTERM);
}

}  // namespace kq::conformance
