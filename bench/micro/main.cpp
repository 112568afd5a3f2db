// kq_micro: the micro-benchmarks in one binary (hand-off, poller wait, histogram, HTTP),
// registered in report order; takes every Google Benchmark flag (--benchmark_filter=..., etc.).
#include <sys/resource.h>

#include "micro_util.hpp"

int main(int argc, char** argv) {
    // BM_Poller_Wait/1024 holds 2048 sockets, past the usual soft limit of 1024 descriptors.
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    kq::micro::register_handoff_benchmarks();
    kq::micro::register_handoff_thread_benchmarks();
    kq::micro::register_poller_wait_benchmarks();
    kq::micro::register_histogram_benchmarks();
    kq::micro::register_http_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
