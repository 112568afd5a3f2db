// The engine: resolves the target once, splits connections, requests and rate over the threads, starts
// them, supervises (progress, interrupt, unreachable server, server CPU samples) and sums the figures.
#include "kqbench/engine.hpp"

#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "kq/fd.hpp"
#include "kqbench/bench_thread.hpp"
#include "kqbench/proc_cpu.hpp"

namespace kq::bench {
namespace {

using Threads = std::vector<std::unique_ptr<BenchThread>>;

// When the engine released the threads, on both clocks: the steady clock's times convert to Unix time.
struct StartInfo {
    double released = 0;  // Unix time, s
    int64_t released_mono_ns = 0;
};

double epoch_now() {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

timespec epoch_timespec(double t) {
    timespec ts;
    ts.tv_sec = static_cast<time_t>(t);
    ts.tv_nsec = std::clamp<long>(std::lround((t - static_cast<double>(ts.tv_sec)) * 1e9), 0, 999'999'999);
    return ts;
}

StartReport start_report(double at, const StartInfo& info, const Stats& stats) {
    StartReport r;
    r.at = at;
    r.released = info.released;
    if (stats.first_send_ns != INT64_MAX) {
        r.first_send = info.released + static_cast<double>(stats.first_send_ns - info.released_mono_ns) / 1e9;
    } else {
        r.first_send = info.released;  // nothing was sent: the release is the best bound
    }
    r.last_first_send = r.first_send;
    r.max_skew_s = r.first_send - at;
    return r;
}

void resolve(RunShared& s) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(s.cfg.port);
    int rc = ::getaddrinfo(s.cfg.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("cannot resolve '" + s.cfg.host + "': " + ::gai_strerror(rc));
    std::memcpy(&s.addr, res->ai_addr, res->ai_addrlen);
    s.addr_len = res->ai_addrlen;
    ::freeaddrinfo(res);
}

std::string endpoint(const Config& cfg) {
    bool v6 = cfg.host.find(':') != std::string::npos;
    return (v6 ? "[" + cfg.host + "]" : cfg.host) + ":" + std::to_string(cfg.port);
}

// --prefill: before the run, one blocking connection SETs every key once, a batch of them in flight at a
// time, so that the run's GETs hit. Any failure ends the program (the run would measure something else).
void prefill(const RunShared& s) {
    const Config& cfg = s.cfg;
    auto fail = [&](const std::string& why) { throw std::runtime_error("prefill of " + endpoint(cfg) + ": " + why); };
    UniqueFd fd(::socket(s.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail(std::strerror(errno));
    timeval tv{static_cast<time_t>(cfg.timeout_ns / 1'000'000'000),
               static_cast<suseconds_t>(cfg.timeout_ns % 1'000'000'000 / 1000)};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&s.addr), s.addr_len) != 0) {
        fail(std::string("cannot connect: ") + std::strerror(errno));
    }
    auto codec = cfg.protocol == ProtocolKind::memcache ? make_memcache_codec(cfg, s.payloads, 0, true)
                                                        : make_resp_codec(cfg, s.payloads, 0, true);
    // Up to 256 SETs in flight, fewer for large values (at most ~4 MiB of requests buffered).
    const uint64_t per_batch = std::clamp<uint64_t>((4u << 20) / (cfg.value_size + 100), 1, 256);
    std::string out;
    std::vector<Outcome> done;
    std::vector<char> buf(64 * 1024);
    for (uint64_t key = 0; key < cfg.keys;) {
        const uint64_t batch = std::min(per_batch, cfg.keys - key);
        out.clear();
        for (uint64_t i = 0; i < batch; ++i) codec->write_request(out);
        for (size_t sent = 0; sent < out.size();) {
            ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(errno == EAGAIN ? std::string("send timed out") : std::strerror(errno));
            sent += static_cast<size_t>(n);
        }
        done.clear();
        while (done.size() < batch) {
            ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(errno == EAGAIN ? std::string("no reply within --timeout") : std::strerror(errno));
            if (n == 0) fail("the server closed the connection");
            if (codec->feed(std::span<const char>(buf.data(), static_cast<size_t>(n)), done) != Fatal::none) {
                fail("a reply to SET was not understood");
            }
        }
        for (uint64_t i = 0; i < batch; ++i) {
            if (!done[i].ok()) fail("the server refused to store key " + cfg.key_prefix + std::to_string(key + i));
        }
        key += batch;
    }
}

// Each connection is a descriptor (two pollers' and timers' per thread, stdio and slack besides): raise
// the soft limit toward the hard one rather than fail connects with EMFILE in the middle of a run.
void ensure_fd_limit(const Config& cfg) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t need = static_cast<rlim_t>(cfg.connections) + 4 * static_cast<rlim_t>(cfg.threads) + 64;
    if (lim.rlim_cur >= need) return;
    lim.rlim_cur = std::min(need, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < need) {
        throw std::runtime_error(std::to_string(cfg.connections) + " connections need " + std::to_string(need) +
                                 " file descriptors; the limit is " + std::to_string(lim.rlim_max) + " (ulimit -n)");
    }
}

// Every connection is placed (the first C mod T threads take one more), requests likewise; each thread's
// rate is its share of the connections, so every connection runs the same schedule.
std::vector<ThreadPlan> make_plans(const Config& cfg) {
    std::vector<ThreadPlan> plans;
    const int t_count = cfg.threads, c_count = cfg.connections;
    const uint64_t t64 = static_cast<uint64_t>(t_count);
    int first = 0;
    for (int t = 0; t < t_count; ++t) {
        ThreadPlan p;
        p.index = t;
        p.first_conn = first;
        p.conns = c_count / t_count + (t < c_count % t_count ? 1 : 0);
        p.quota = cfg.requests / t64 + (static_cast<uint64_t>(t) < cfg.requests % t64 ? 1 : 0);
        p.share = static_cast<double>(p.conns) / c_count;
        first += p.conns;
        plans.push_back(p);
    }
    return plans;
}

class Supervisor {
public:
    Supervisor(RunShared& shared, Threads& threads, const RunHooks& hooks)
        : shared_(shared), threads_(threads), hooks_(hooks), next_progress_(shared.t0 + hooks.progress_every_ns),
          last_progress_(shared.t0) {}

    // Returns when every bench thread has finished.
    void run() {
        for (;;) {
            int64_t now = now_ns();
            sample_cpu(now);
            if (!stopping_ && hooks_.interrupt && hooks_.interrupt->load()) {
                stopping_ = true;
                shared_.stop_at.store(std::min(shared_.stop_at.load(), now));
                wake_all();
            }
            if (!aborting_ && shared_.abort.load()) {
                aborting_ = true;
                wake_all();
            }
            if (hooks_.on_progress && now >= next_progress_) progress(now);
            std::unique_lock lock(shared_.done_mu);
            if (shared_.done_cv.wait_for(lock, std::chrono::nanoseconds(next_wait(now)),
                                         [&] { return shared_.running == 0; })) {
                return;
            }
        }
    }

    std::optional<uint64_t> cpu_start() const { return cpu_start_; }

private:
    // The server's CPU clock is read when the measured window opens and again at the end.
    void sample_cpu(int64_t now) {
        if (shared_.cfg.server_pid <= 0 || cpu_sampled_ || now < shared_.measure_start) return;
        cpu_sampled_ = true;
        cpu_start_ = process_cpu_us(shared_.cfg.server_pid);
    }

    int64_t next_wait(int64_t now) const {
        int64_t wait = 100'000'000;  // interrupts are polled this often
        if (hooks_.on_progress) wait = std::min(wait, next_progress_ - now);
        if (shared_.cfg.server_pid > 0 && !cpu_sampled_) wait = std::min(wait, shared_.measure_start - now);
        return std::max<int64_t>(wait, 0);
    }

    void progress(int64_t now) {
        ProgressSample s;
        Histogram interval;
        uint64_t ok = 0;
        for (auto& t : threads_) {
            t->take_interval(interval);
            ok += t->ok_so_far();
            s.errors += t->errors_so_far();
        }
        double dt = static_cast<double>(now - last_progress_) / 1e9;
        s.elapsed_s = static_cast<double>(now - shared_.measure_start) / 1e9;
        s.requests_per_s = dt > 0 ? static_cast<double>(ok - last_ok_) / dt : 0;
        s.p50_us = interval.value_at_percentile(50);
        s.p99_us = interval.value_at_percentile(99);
        s.max_us = interval.max();
        last_ok_ = ok;
        last_progress_ = now;
        next_progress_ += hooks_.progress_every_ns;
        hooks_.on_progress(s);
    }

    void wake_all() {
        for (auto& t : threads_) t->wake();
    }

    RunShared& shared_;
    Threads& threads_;
    const RunHooks& hooks_;
    int64_t next_progress_;
    int64_t last_progress_;
    uint64_t last_ok_ = 0;
    bool stopping_ = false, aborting_ = false, cpu_sampled_ = false;
    std::optional<uint64_t> cpu_start_;
};

// --start-at: waits until every bench thread has parked with its connections made, sleeps until the
// start time on CLOCK_REALTIME (the clock that NTP or PTP keeps equal across the load hosts; an absolute
// sleep also follows a clock step or slew that happens during the wait), then releases the threads
// together. Returns false, with the threads released to leave, on an interrupt or abort before the start.
bool await_start(RunShared& shared, size_t threads, const RunHooks& hooks, StartInfo& info) {
    const Config& cfg = shared.cfg;
    auto stopped = [&] { return shared.abort.load() || (hooks.interrupt != nullptr && hooks.interrupt->load()); };
    bool all_parked = false;
    {
        std::unique_lock lock(shared.done_mu);
        for (;;) {
            all_parked = shared.parked == static_cast<int>(threads);
            if (all_parked || stopped() || shared.running == 0) break;
            shared.done_cv.wait_for(lock, std::chrono::milliseconds(100));  // also polls the interrupt
        }
    }
    const timespec target = epoch_timespec(cfg.start_at);
    for (timespec now{}; all_parked && !stopped();) {
        ::clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > target.tv_sec || (now.tv_sec == target.tv_sec && now.tv_nsec >= target.tv_nsec)) break;
        // In slices of at most 100 ms, so that Ctrl-C is seen; the last slice ends at the target itself.
        timespec wake = now;
        wake.tv_nsec += 100'000'000;
        if (wake.tv_nsec >= 1'000'000'000) wake.tv_sec += 1, wake.tv_nsec -= 1'000'000'000;
        if (wake.tv_sec > target.tv_sec || (wake.tv_sec == target.tv_sec && wake.tv_nsec > target.tv_nsec)) {
            wake = target;
        }
        ::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &wake, nullptr);
    }
    const bool go = all_parked && !stopped();
    if (go) {
        // Every thread is parked: these plain fields are published by the release store below.
        const int64_t mono = now_ns();
        info.released = epoch_now();
        info.released_mono_ns = mono;
        shared.ramp_end = mono;
        shared.measure_start = mono + cfg.warmup_ns;
        if (cfg.requests == 0) shared.stop_at.store(shared.measure_start + cfg.duration_ns);
    } else {
        shared.abort.store(true);
    }
    shared.released.store(true);
    shared.released.notify_all();
    return go;
}

// The measured window ends at the duration's end (or the interrupt), or at the last answer if later;
// with --requests, at the last answer.
Report build_report(const Config& whole, const Config& cfg, RunShared& shared, const Threads& threads) {
    Report r;
    r.config = config_to_json(whole);
    r.description = describe(whole);
    r.target = endpoint(cfg);
    r.open_loop = cfg.rate > 0;
    r.connections = cfg.connections;
    r.segment = whole.segment;
    r.intervals = shared.intervals->finish();
    // Open loop: what the schedule offered in each interval (this generator's share of the profile).
    const std::vector<RateStage> profile = rate_profile(cfg);
    for (auto& iv : r.intervals) {
        const int64_t from = static_cast<int64_t>(std::llround(iv["t"].get<double>() * 1e9));
        // A --duration that is not whole seconds ends in a shorter interval.
        const int64_t length = cfg.requests == 0 ? std::min(kIntervalNs, cfg.duration_ns - from) : kIntervalNs;
        if (length > 0 && length < kIntervalNs) {
            iv["per_s"] = iv["ok"].get<double>() / (static_cast<double>(length) / 1e9);
            iv["seconds"] = static_cast<double>(length) / 1e9;
        }
        if (!profile.empty()) iv["offered"] = offered_between(profile, from, from + length);
    }
    for (const auto& t : threads) r.stats.merge(t->stats());
    if (!r.open_loop) r.stats.latency_uncorrected = r.stats.latency;
    int64_t stop = shared.stop_at.load();
    int64_t end = std::max(stop == kNever ? 0 : stop, r.stats.last_done_ns);
    if (end <= shared.measure_start) end = now_ns();
    r.elapsed_s = std::max(static_cast<double>(end - shared.measure_start) / 1e9, 1e-9);
    r.requests_per_s = static_cast<double>(r.stats.ok) / r.elapsed_s;
    r.bytes_sent_per_s = static_cast<double>(r.stats.bytes_sent) / r.elapsed_s;
    r.bytes_received_per_s = static_cast<double>(r.stats.bytes_received) / r.elapsed_s;
    return r;
}

std::string unreachable_message(const Config& cfg, const RunShared& shared) {
    int err = shared.first_errno.load();
    std::string why = err == ETIMEDOUT ? "connect timed out" : std::strerror(err);
    for (auto& ch : why) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return "cannot connect to " + endpoint(cfg) + ": " + why + " (all " + std::to_string(cfg.connections) +
           " connections failed)";
}

}  // namespace

RunResult run_bench(const Config& whole_in, const RunHooks& hooks) {
    Config whole = whole_in;
    whole.threads = std::clamp(whole.threads, 1, std::max(whole.connections, 1));
    if (!whole.rate_stages.empty()) {
        whole.duration_ns = 0;
        for (const RateStage& s : whole.rate_stages) whole.duration_ns += s.duration_ns;
    }
    Config cfg = segment_config(whole);
    cfg.threads = std::clamp(cfg.threads, 1, std::max(cfg.connections, 1));
    ensure_fd_limit(cfg);
    RunShared shared(cfg);
    shared.progress = static_cast<bool>(hooks.on_progress);
    resolve(shared);
    if (cfg.protocol != ProtocolKind::http && cfg.protocol != ProtocolKind::raw) shared.payloads = make_payloads(cfg);
    if (cfg.prefill && is_key_value(cfg.protocol)) prefill(shared);
    Threads threads;
    for (const ThreadPlan& p : make_plans(cfg)) threads.push_back(std::make_unique<BenchThread>(shared, p));

    shared.t0 = now_ns();
    shared.wait_for_start = cfg.start_at > 0;
    if (shared.wait_for_start) {
        shared.ramp_end = shared.measure_start = kNever;  // until the release
    } else {
        int64_t ramp = cfg.connect_rate > 0 ? static_cast<int64_t>(cfg.connections / cfg.connect_rate * 1e9) : 0;
        shared.ramp_end = shared.t0 + ramp;
        shared.measure_start = shared.ramp_end + cfg.warmup_ns;
        if (cfg.requests == 0) shared.stop_at.store(shared.measure_start + cfg.duration_ns);
    }
    shared.running = static_cast<int>(threads.size());
    shared.intervals = std::make_unique<IntervalCollector>(static_cast<int>(threads.size()));
    for (auto& t : threads) t->start();
    StartInfo start_info;
    const bool started = !shared.wait_for_start || await_start(shared, threads.size(), hooks, start_info);
    Supervisor supervisor(shared, threads, hooks);
    supervisor.run();
    for (auto& t : threads) t->join();
    if (!shared.failure.empty()) throw std::runtime_error(shared.failure);

    RunResult result;
    result.report = build_report(whole, cfg, shared, threads);
    if (shared.wait_for_start && started)
        result.report.start = start_report(cfg.start_at, start_info, result.report.stats);
    if (auto start = supervisor.cpu_start()) {
        if (auto end = process_cpu_us(cfg.server_pid)) result.report.server = ServerCpu{cfg.server_pid, *end - *start};
    }
    if (shared.abort.load() && !shared.ever_connected.load()) {
        result.unreachable = true;
        result.error = unreachable_message(cfg, shared);
    }
    return result;
}

}  // namespace kq::bench
