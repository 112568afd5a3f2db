// One bench thread: its own poller, its share of the connections, their requests and its statistics.
// Thread rules: the constructor, start(), join() and stats() (after join) on the engine's thread;
// wake(), progress() and take_interval() from any thread; everything else on the bench thread only.
#pragma once

#include <sys/socket.h>
#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kq/counter.hpp"
#include "kq/fd.hpp"
#include "kq/poller.hpp"
#include "kqbench/codec.hpp"
#include "kqbench/config.hpp"
#include "kqbench/histogram.hpp"
#include "kqbench/interval_series.hpp"
#include "kqbench/report.hpp"
#include "kqbench/wake_timer.hpp"

namespace kq::bench {

constexpr int64_t kNever = INT64_MAX;

// CLOCK_MONOTONIC in ns: the clock WakeTimer arms against and every latency is measured on.
inline int64_t now_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// What every thread of a run shares: settings, the resolved address, the phase times, stop signals.
struct RunShared {
    const Config& cfg;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::shared_ptr<const Payloads> payloads;
    bool progress = false;                 // someone reads take_interval() (the live progress line); set before start()
    int64_t t0 = 0;                        // now_ns() when the run starts (connects begin)
    int64_t ramp_end = 0;                  // every connection's first attempt has started (--connect-rate);
                                           // with --start-at, the release
    int64_t measure_start = 0;             // after the connect ramp and the warm-up
    std::atomic<int64_t> stop_at{kNever};  // no request is sent from here on (duration end or interrupt)
    std::atomic<bool> abort{false};        // give up at once (the server is unreachable)
    std::atomic<int> first_attempts{0};    // connection slots whose first connect finished
    std::atomic<bool> ever_connected{false};
    std::atomic<int> first_errno{0};  // why the first failed connect failed
    // --start-at: each thread parks (parked, under done_mu) once every connection has made its first
    // attempt; the engine sets ramp_end, measure_start and stop_at while all are parked, then sets
    // released (waking them through its futex). With abort set as well, the threads leave instead.
    std::unique_ptr<IntervalCollector> intervals;  // the measured window's per-second figures
    bool wait_for_start = false;
    int parked = 0;
    std::atomic<bool> released{false};
    // Bench threads still running; the engine waits on done_cv. failure: a thread's exception text.
    std::mutex done_mu;
    std::condition_variable done_cv;
    int running = 0;
    std::string failure;

    explicit RunShared(const Config& c) : cfg(c) {}
};

// A request written to a connection, awaiting its reply.
struct InFlight {
    int64_t start_ns;     // sent (or, with --reconnect, its connection started)
    int64_t intended_ns;  // open loop: its slot in the schedule; closed loop: start_ns
    bool measured;
};

struct Conn {
    enum class State { idle, connecting, open };
    int index = 0;  // global, over all threads
    State state = State::idle;
    UniqueFd fd;
    std::unique_ptr<Codec> codec;
    std::string out;
    size_t out_off = 0;
    std::deque<InFlight> inflight;
    std::deque<int64_t> backlog;  // open loop: slots assigned to this connection, not yet sent
    int64_t connect_start = 0;
    int64_t retry_at = 0;
    int64_t backoff_ns = 0;
    bool reserved = false;  // --reconnect --requests: holds one request of the quota while connecting
    bool first_attempt = true;
    bool ever_open = false;
    bool in_idle_list = false;
    bool in_ready_list = false;
};

struct ThreadPlan {
    int index = 0;
    int first_conn = 0, conns = 0;
    uint64_t quota = 0;  // --requests: measured requests this thread sends
    double share = 0;    // open loop: this thread's part of the rates (its connections over all)
};

class BenchThread {
public:
    BenchThread(RunShared& shared, const ThreadPlan& plan);
    ~BenchThread();
    void start();
    void join();
    void wake() noexcept { poller_->wake(); }
    const Stats& stats() const noexcept { return stats_; }

    // Any thread: running totals for the progress line, and the latencies recorded since the last call.
    uint64_t ok_so_far() const noexcept { return ok_progress_.get(); }
    uint64_t errors_so_far() const noexcept { return errors_progress_.get(); }
    void take_interval(Histogram& into);

private:
    // Loop and timers (bench_thread.cpp).
    void main() noexcept;
    void run();
    void setup_connections();
    void begin_schedule();
    void park();
    int64_t service(int64_t now);
    int64_t service_idle(int64_t now);
    int64_t service_schedule(int64_t now);
    void scan_timeouts(int64_t now);
    void at_stop(int64_t now);
    bool finished(int64_t now) const;
    bool work_remaining(int64_t now) const;
    bool may_send_closed(int64_t now) const;
    bool wants_connection(const Conn& c, int64_t now) const;
    void wait_events(int64_t now, int64_t deadline, std::vector<PollEvent>& events);
    void flush_interval();
    void rotate_interval(int64_t now);

    // Connections (bench_conn.cpp).
    void start_connect(Conn& c, int64_t now);
    void on_connected(Conn& c, int64_t now);
    void connect_failed(Conn& c, int err, int64_t now);
    void first_attempt_done(Conn& c, bool connected, int err);
    void on_event(Conn& c, const PollEvent& ev);
    void read_all(Conn& c, bool eof_hint);
    void on_eof(Conn& c, int64_t now);
    void complete(Conn& c, Outcome o, int64_t now);
    void fill(Conn& c, int64_t now);
    void to_ready(Conn& c);
    void fill_ready();
    void send_one(Conn& c, int64_t intended, int64_t now);
    void flush(Conn& c, int64_t now);
    void fail_conn(Conn& c, ErrorKind kind, int64_t now);
    void count_error(ErrorKind kind, int64_t now);
    void requeue(Conn& c);
    void close_conn(Conn& c, int64_t now, int64_t retry_at);
    void to_idle(Conn& c);
    bool reserve(Conn& c, int64_t now);
    void release(Conn& c);
    bool measuring(int64_t now) const { return now >= shared_.measure_start; }

    RunShared& shared_;
    const Config& cfg_;
    ThreadPlan plan_;
    std::unique_ptr<Poller> poller_;
    WakeTimer timer_;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::vector<Conn*> idle_;  // idle connections, each waiting to (re)connect
    std::vector<Conn*> idle_scratch_;
    std::vector<Conn*> touched_;  // open loop: connections given a slot in this pass
    std::vector<Conn*> ready_;    // read from in this batch of events: their next requests leave after it
    std::vector<Outcome> done_;   // scratch for Codec::feed
    std::vector<char> buf_;       // scratch for reads
    std::thread thread_;

    bool requests_mode_;
    uint64_t quota_left_;
    uint64_t reserved_ = 0;          // connections holding a reservation (Conn::reserved)
    int64_t stop_at_ = kNever;       // this thread's copy of shared_.stop_at
    bool stopped_ = false;           // at_stop() ran
    uint64_t inflight_ = 0;          // over all connections
    uint64_t backlog_measured_ = 0;  // open loop, requests mode: measured slots not yet sent
    bool released_ = true;           // may send (false while waiting for --start-at)
    size_t first_tried_ = 0;         // connections whose first connect attempt has finished
    // Open loop schedule: slot k is due at the schedule's k-th time, on connection k mod conns.
    RateSchedule schedule_;
    uint64_t next_slot_ = 0;
    int64_t next_slot_ns_ = kNever;
    int64_t next_scan_ = 0, next_flush_ = 0;

    Stats stats_;
    IntervalAcc second_;  // the measured window's current interval (IntervalCollector)
    int64_t second_index_ = -1;
    int64_t second_end_ = INT64_MIN;
    Histogram interval_;  // latencies since the last flush (thread-local)
    std::mutex interval_mu_;
    Histogram interval_shared_;  // guarded by interval_mu_
    Counter ok_progress_, errors_progress_;
};

}  // namespace kq::bench
