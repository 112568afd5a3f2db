// Prometheus text exposition of the server's counters, and the GET /metrics endpoint's thread.
#include "kq/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <iterator>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace kq {
namespace {

using Out = std::back_insert_iterator<std::string>;

void family(Out out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(out, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One series per worker: value(worker) gives the figure.
template <class F>
void per_worker(Out out, const Server& s, std::string_view name, std::string_view type, std::string_view help, F value) {
    family(out, name, type, help);
    for (size_t i = 0; i < s.worker_count(); ++i) fmt::format_to(out, "{}{{worker=\"{}\"}} {}\n", name, i, value(i));
}

void events_per_wait(Out out, const Server& s) {
    constexpr std::string_view name = "kqserver_worker_events_per_wait";
    family(out, name, "histogram", "Events returned by one poller wait.");
    for (size_t i = 0; i < s.worker_count(); ++i) {
        const auto& st = s.worker(i).stats();
        uint64_t cumulative = 0;
        for (size_t b = 0; b + 1 < EventsPerWait::kBuckets; ++b) {
            cumulative += st.events_per_wait.bucket(b);
            fmt::format_to(out, "{}_bucket{{worker=\"{}\",le=\"{}\"}} {}\n", name, i, EventsPerWait::bucket_bound(b), cumulative);
        }
        uint64_t waits = cumulative + st.events_per_wait.bucket(EventsPerWait::kBuckets - 1);
        fmt::format_to(out, "{}_bucket{{worker=\"{}\",le=\"+Inf\"}} {}\n", name, i, waits);
        fmt::format_to(out, "{}_sum{{worker=\"{}\"}} {}\n{}_count{{worker=\"{}\"}} {}\n", name, i,
                       st.events_per_wait.sum(), name, i, waits);
    }
}

void workers(Out out, const Server& s) {
    auto st = [&s](size_t i) -> const WorkerStats& { return s.worker(i).stats(); };
    per_worker(out, s, "kqserver_worker_connections_active", "gauge", "Open connections owned by the worker.",
               [&](size_t i) { return st(i).accepted.get() - st(i).closed.get(); });
    per_worker(out, s, "kqserver_worker_connections_accepted_total", "counter", "Connections the worker took over.",
               [&](size_t i) { return st(i).accepted.get(); });
    per_worker(out, s, "kqserver_worker_connections_closed_total", "counter", "Connections the worker closed.",
               [&](size_t i) { return st(i).closed.get(); });
    per_worker(out, s, "kqserver_worker_connection_errors_total", "counter", "Connections closed on a socket error.",
               [&](size_t i) { return st(i).errors.get(); });
    per_worker(out, s, "kqserver_worker_read_bytes_total", "counter", "Bytes read from clients.",
               [&](size_t i) { return st(i).bytes_read.get(); });
    per_worker(out, s, "kqserver_worker_written_bytes_total", "counter", "Bytes written to clients.",
               [&](size_t i) { return st(i).bytes_written.get(); });
    per_worker(out, s, "kqserver_worker_requests_total", "counter", "Requests answered (echo/upper: chunks).",
               [&](size_t i) { return st(i).requests.get(); });
    per_worker(out, s, "kqserver_worker_wakeups_total", "counter", "Cross-thread wake-ups received.",
               [&](size_t i) { return st(i).wakeups.get(); });
    per_worker(out, s, "kqserver_worker_handoff_queue_full_total", "counter",
               "Times the acceptor found this worker's hand-off queue full.",
               [&](size_t i) { return s.handoff_full(i); });
    events_per_wait(out, s);
}

void acceptor(Out out, const Server& s) {
    // With --accept reuseport these sum the workers' own listeners.
    auto a = s.accept_totals();
    family(out, "kqserver_acceptor_accepted_total", "counter", "Connections accepted.");
    fmt::format_to(out, "kqserver_acceptor_accepted_total {}\n", a.accepted);
    family(out, "kqserver_acceptor_rejected_total", "counter", "accept4() failures that lost a connection.");
    fmt::format_to(out, "kqserver_acceptor_rejected_total {}\n", a.accept_errors);
    family(out, "kqserver_acceptor_accept_pauses_total", "counter", "Accept pauses on EMFILE/ENFILE/ENOBUFS.");
    fmt::format_to(out, "kqserver_acceptor_accept_pauses_total {}\n", a.accept_pauses);
}

size_t open_fds() {
    size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
        --n;  // the directory stream's own fd
    }
    return n;
}

// Seconds since the epoch at which this process started: boot time + start ticks (Linux /proc).
double start_time_seconds() {
    static const double value = [] {
        std::ifstream stat("/proc/self/stat"), sys("/proc/stat");
        std::string content((std::istreambuf_iterator<char>(stat)), {});
        auto after_comm = content.rfind(')');
        if (after_comm == std::string::npos) return 0.0;
        std::istringstream fields(content.substr(after_comm + 2));
        std::string field;
        for (int i = 3; i <= 22 && fields >> field; ++i) {}  // field 22 is starttime
        double ticks = std::stod(field);
        std::string key;
        double btime = 0;
        while (sys >> key) {
            if (key == "btime") {
                sys >> btime;
                break;
            }
        }
        return btime + ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }();
    return value;
}

void process(Out out) {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    long pages = 0, resident = 0;
    std::ifstream("/proc/self/statm") >> pages >> resident;
    family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
    fmt::format_to(out, "process_cpu_seconds_total {:.6f}\n", cpu);
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fmt::format_to(out, "process_resident_memory_bytes {}\n", resident * ::sysconf(_SC_PAGESIZE));
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    fmt::format_to(out, "process_open_fds {}\n", open_fds());
    family(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    fmt::format_to(out, "process_start_time_seconds {:.2f}\n", start_time_seconds());
}

}  // namespace

std::string render_metrics(const Server& server) {
    std::string text;
    auto out = std::back_inserter(text);
    workers(out, server);
    acceptor(out, server);
    process(out);
    return text;
}

MetricsServer::MetricsServer(const Server& server, const ListenOptions& listen)
    : server_(server), listen_fd_(listen_tcp(listen)), poller_(make_poller(Backend::automatic)),
      port_(local_port(listen_fd_.get())), address_(local_address(listen_fd_.get())) {
    poller_->add_readonly(listen_fd_.get(), this);
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
    start_time_seconds();  // read /proc once now, not on the first scrape
    thread_ = std::thread([this] { run(); });
}

void MetricsServer::stop() noexcept {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    poller_->wake();
    thread_.join();
}

void MetricsServer::run() {
    std::array<PollEvent, 4> events;
    while (!stop_.load(std::memory_order_acquire)) {
        poller_->wait(events, -1);
        for (;;) {  // edge-triggered listening socket: drain the backlog
            int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) break;
            serve_one(UniqueFd(fd));
        }
    }
}

// One scrape at a time, blocking with a 2 s time-out: a slow scraper delays only other scrapes.
void MetricsServer::serve_one(UniqueFd client) {
    timeval tv{2, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
        ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
        if (n <= 0) return;
        request.append(buf, static_cast<size_t>(n));
    }
    bool ok = request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?");
    std::string body = ok ? render_metrics(server_) : "404 Not Found: try GET /metrics\n";
    std::string response = fmt::format(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        ok ? "200 OK" : "404 Not Found", ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
        body.size(), body);
    size_t off = 0;
    while (off < response.size()) {
        ssize_t n = ::send(client.get(), response.data() + off, response.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
    }
}

}  // namespace kq
