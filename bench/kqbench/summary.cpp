// The human summary (throughput, latency percentiles, errors by kind, server CPU) and the percentile
// spectrum, printed by kqbench after a run and by kqbench merge.
#include <cstdio>
#include <ostream>
#include <string>

#include "kqbench/report.hpp"
#include "kqbench/units.hpp"

namespace kq::bench {
namespace {

std::string latency_line(const Histogram& h) {
    if (h.count() == 0) return "no answered requests";
    std::string s = "mean " + format_latency_us(h.mean());
    const std::pair<const char*, double> points[] = {
        {"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"p99.99", 99.99},
    };
    for (const auto& [name, p] : points) {
        s += "  " + std::string(name) + " " + format_latency_us(static_cast<double>(h.value_at_percentile(p)));
    }
    return s + "  max " + format_latency_us(static_cast<double>(h.max()));
}

std::string errors_line(const Stats& s) {
    // Short names for the summary; the JSON uses error_key().
    static constexpr const char* kNames[kErrorKinds] = {
        "connect refused", "connect timeout", "connect error", "reset",     "closed by server",
        "timeout",         "verify",          "http status",   "bad reply",
    };
    std::string line;
    for (size_t k = 0; k < kErrorKinds; ++k) {
        if (s.errors[k] == 0) continue;
        // memcache/resp failures are error replies (ERROR, SERVER_ERROR, -ERR ...), not HTTP statuses.
        const bool error_reply = static_cast<ErrorKind>(k) == ErrorKind::status && s.status_codes.empty();
        line += (line.empty() ? "" : ", ") + std::string(error_reply ? "error reply" : kNames[k]) + " " +
                format_count(s.errors[k]);
    }
    for (const auto& [code, n] : s.status_codes) line += " [" + std::to_string(code) + " x" + format_count(n) + "]";
    return line.empty() ? "none" : line;
}

std::string requests_line(const Report& r) {
    const Stats& s = r.stats;
    char window[32];
    std::snprintf(window, sizeof window, "%.2fs", r.elapsed_s);
    std::string line = format_count(s.ok) + " ok in " + window + " = " + format_rate(r.requests_per_s) + " req/s (" +
                       format_count(s.sent) + " sent, " + format_count(s.failed) + " failed";
    if (s.unsent > 0)
        line += ", " + format_count(s.unsent) + " scheduled but never sent: the server is slower than --rate";
    return line + ")";
}

// Samples at or below the bucket holding value: the spectrum's count column.
uint64_t count_at_or_below(const Histogram& h, uint64_t value) {
    uint64_t n = 0;
    size_t last = h.index_of(value);
    for (size_t i = 0; i <= last; ++i) n += h.bucket_count_at(i);
    return n;
}

std::string start_line(const Report& r) {
    const StartReport& st = *r.start;
    char buf[200];
    if (r.runs > 1) {
        std::snprintf(buf, sizeof buf,
                      "first sends of the %d runs %.3f ms apart; start skew vs --start-at %+.3f ms (the largest)",
                      r.runs, (st.last_first_send - st.first_send) * 1e3, st.max_skew_s * 1e3);
    } else {
        std::snprintf(buf, sizeof buf, "first send at %.6f: start skew vs --start-at %.6f %+.3f ms (released %+.3f ms)",
                      st.first_send, st.at, st.max_skew_s * 1e3, (st.released - st.at) * 1e3);
    }
    return buf;
}

}  // namespace

void print_summary(std::ostream& out, const Report& r) {
    const Stats& s = r.stats;
    out << "kqbench " << r.target << ": " << r.description << "\n";
    out << "  requests     " << requests_line(r) << "\n";
    out << "  transfer     sent " << format_bytes_per_s(r.bytes_sent_per_s) << ", received "
        << format_bytes_per_s(r.bytes_received_per_s) << "\n";
    if (r.open_loop) {
        out << "  latency      " << latency_line(s.latency) << "   (from each request's intended send time)\n";
        out << "  uncorrected  " << latency_line(s.latency_uncorrected) << "   (from the actual send time)\n";
    } else {
        out << "  latency      " << latency_line(s.latency) << "\n";
    }
    if (r.runs > 1 && !r.run_p99_us.empty() && s.latency.count() > 0) {
        out << "  p99          " << format_latency_us(static_cast<double>(s.latency.value_at_percentile(99)))
            << " over all samples; averaging the " << r.run_p99_us.size() << " runs' p99s would claim "
            << format_latency_us(averaged_p99(r)) << "\n";
    }
    if (r.start) out << "  start        " << start_line(r) << "\n";
    out << "  connections  " << format_count(static_cast<uint64_t>(r.connections)) << " requested, "
        << format_count(s.established) << " established, " << format_count(s.connects) << " connects\n";
    if (s.sets + s.hits + s.misses > 0) {
        const uint64_t gets = s.hits + s.misses;
        char rate[32] = "";
        if (gets > 0)
            std::snprintf(rate, sizeof rate, " (%.1f%% hits)",
                          100.0 * static_cast<double>(s.hits) / static_cast<double>(gets));
        out << "  keys         " << format_count(s.sets) << " sets stored, " << format_count(gets)
            << " gets: " << format_count(s.hits) << " hits, " << format_count(s.misses) << " misses" << rate << "\n";
    }
    out << "  errors       " << errors_line(s) << "\n";
    if (r.server) {
        char buf[128];
        double per = s.ok > 0 ? static_cast<double>(r.server->cpu_us) / static_cast<double>(s.ok) : 0;
        std::snprintf(buf, sizeof buf, "%.2f us CPU per request (pid %d: %.2f s CPU in the measured window)", per,
                      r.server->pid, static_cast<double>(r.server->cpu_us) / 1e6);
        out << "  server       " << buf << "\n";
    }
}

void print_spectrum(std::ostream& out, const Histogram& h) {
    if (h.count() == 0) return;
    out << "  percentile       value        count   1/(1-p)\n";
    const double total = static_cast<double>(h.count());
    auto line = [&](double p) {
        uint64_t v = h.value_at_percentile(p);
        char buf[96];
        std::snprintf(buf, sizeof buf, "  %9.5f%%  %10s  %11s  %8s\n", p,
                      format_latency_us(static_cast<double>(v)).c_str(), format_count(count_at_or_below(h, v)).c_str(),
                      p < 100 ? std::to_string(static_cast<uint64_t>(100 / (100 - p) + 0.5)).c_str() : "inf");
        out << buf;
    };
    line(0);
    // 50, 75, 87.5, ...: each step halves what is left, while the tail still holds at least one sample.
    for (double rest = 50; rest / 100 * total >= 1; rest /= 2) line(100 - rest);
    line(100);
}

}  // namespace kq::bench
