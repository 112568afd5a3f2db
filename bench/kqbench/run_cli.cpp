// kqbench's program flow: run a benchmark (progress line on a terminal, Ctrl-C ends the run early with a
// report of the window so far) or merge reports; print the summary and spectrum, write the JSON.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "kqbench/cli.hpp"
#include "kqbench/engine.hpp"
#include "kqbench/units.hpp"

namespace kq::bench {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

// The first Ctrl-C ends the run gracefully; SA_RESETHAND makes a second one kill as usual.
void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted.store(true); };
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

void print_progress(const ProgressSample& s) {
    char line[160];
    if (s.elapsed_s < 0) {
        std::snprintf(line, sizeof line, "warming up, %.1fs to go  %s req/s  errors %s", -s.elapsed_s,
                      format_rate(s.requests_per_s).c_str(), format_count(s.errors).c_str());
    } else {
        std::snprintf(line, sizeof line, "%6.1fs  %s req/s  p99 %s  errors %s", s.elapsed_s,
                      format_rate(s.requests_per_s).c_str(), format_latency_us(static_cast<double>(s.p99_us)).c_str(),
                      format_count(s.errors).c_str());
    }
    std::fprintf(stderr, "\r\033[K%s", line);
    std::fflush(stderr);
}

// --interval: one self-describing line per interval, for scripts (a soak's per-minute p99).
void print_interval(const ProgressSample& s) {
    std::fprintf(stderr, "interval t=%.1fs req/s=%.1f p50_us=%llu p99_us=%llu max_us=%llu errors=%llu\n", s.elapsed_s,
                 s.requests_per_s, static_cast<unsigned long long>(s.p50_us), static_cast<unsigned long long>(s.p99_us),
                 static_cast<unsigned long long>(s.max_us), static_cast<unsigned long long>(s.errors));
    std::fflush(stderr);
}

bool write_json(const std::string& path, const Report& r) {
    std::ofstream out(path, std::ios::trunc);
    out << to_json(r).dump(1) << "\n";
    out.close();
    if (!out) std::cerr << "kqbench: cannot write --json " << path << "\n";
    return static_cast<bool>(out);
}

void print_report(const Report& r) {
    print_summary(std::cout, r);
    if (r.stats.latency.count() > 0) {
        std::cout << "latency spectrum" << (r.open_loop ? " (corrected)" : "") << ":\n";
        print_spectrum(std::cout, r.stats.latency);
    }
    std::cout.flush();
}

int run_main(int argc, char** argv) {
    CliOptions opt;
    if (int rc = parse_command_line(argc, argv, opt); rc >= 0) return rc;
    install_interrupt_handler();
    RunHooks hooks;
    hooks.interrupt = &g_interrupted;
    const bool live = opt.interval_ns == 0 && ::isatty(STDERR_FILENO) == 1;
    if (live) hooks.on_progress = print_progress;
    if (opt.interval_ns > 0) {
        hooks.on_progress = print_interval;
        hooks.progress_every_ns = opt.interval_ns;
    }
    RunResult result;
    try {
        result = run_bench(opt.cfg, hooks);
    } catch (const std::exception& e) {
        if (live) std::fprintf(stderr, "\r\033[K");
        std::cerr << "kqbench: " << e.what() << "\n";
        return 1;
    }
    if (live) std::fprintf(stderr, "\r\033[K");
    if (result.unreachable) {
        std::cerr << "kqbench: " << result.error << "\n";
        return 1;
    }
    if (opt.cfg.start_at > 0 && !result.report.start) {
        std::cerr << "kqbench: interrupted before --start-at: nothing was sent\n";
        return 0;
    }
    print_report(result.report);
    if (!opt.json_path.empty() && !write_json(opt.json_path, result.report)) return 1;
    return 0;
}

int merge_main(int argc, char** argv) {
    CLI::App app{
        "kqbench merge: combine JSON reports of runs made at the same time (e.g. from several machines). "
        "Counts and histogram buckets add exactly, rates add, the window is the longest.",
        "kqbench merge"};
    std::vector<std::string> files;
    std::string json_path;
    app.add_option("files", files, "Reports written by kqbench --json")->required()->check(CLI::ExistingFile);
    app.add_option("--json", json_path, "Write the merged report to this file");
    if (int rc = parse_flags(app, argc, argv, "kqbench merge"); rc >= 0) return rc;
    std::vector<Report> runs;
    for (const auto& f : files) {
        try {
            std::ifstream in(f);
            runs.push_back(report_from_json(nlohmann::json::parse(in)));
        } catch (const std::exception& e) {
            std::cerr << "kqbench merge: " << f << ": " << e.what() << "\n";
            return 1;
        }
    }
    Report merged = merge_reports(runs);
    print_report(merged);
    if (!json_path.empty() && !write_json(json_path, merged)) return 1;
    return 0;
}

}  // namespace

int kqbench_main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "merge") return merge_main(argc - 1, argv + 1);
    return run_main(argc, argv);
}

}  // namespace kq::bench
