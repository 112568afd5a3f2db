// Prometheus text exposition of the server's counters (the endpoint that serves it: metrics_endpoint.cpp).
#include "kq/metrics.hpp"

#include "kq/acceptor.hpp"
#include "kq/worker.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <fstream>
#include <iterator>
#include <sstream>

namespace kq {
namespace {

using Out = std::back_insert_iterator<std::string>;

void family(Out out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(out, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One series per worker: value(worker) gives the figure.
template <class F>
void per_worker(Out out, const Server& s, std::string_view name, std::string_view type, std::string_view help,
                F value) {
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
            fmt::format_to(out, "{}_bucket{{worker=\"{}\",le=\"{}\"}} {}\n", name, i, EventsPerWait::bucket_bound(b),
                           cumulative);
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

}  // namespace kq
