// A bench thread's loop: run the timers (connect ramp and retries, the open-loop schedule, time-outs,
// the end of the run), then wait on its own poller and serve the connections' events in batches.
#include "kqbench/bench_thread.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace kq::bench {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kFlushEvery = 200 * kMs;  // latencies reach the progress line this often
constexpr size_t kBatch = 256;              // events per wait
constexpr size_t kReadBuffer = 256 * 1024;

}  // namespace

BenchThread::BenchThread(RunShared& shared, const ThreadPlan& plan)
    : shared_(shared), cfg_(shared.cfg), plan_(plan), poller_(make_poller(shared.cfg.backend)), buf_(kReadBuffer),
      requests_mode_(shared.cfg.requests > 0), quota_left_(plan.quota) {
    if (timer_.fd() >= 0) poller_->add_readonly(timer_.fd(), &timer_);
    for (int i = 0; i < plan.conns; ++i) {
        auto c = std::make_unique<Conn>();
        c->index = plan.first_conn + i;
        c->codec = make_codec(cfg_, shared.payloads, cfg_.seed * 1'000'003 + static_cast<uint64_t>(c->index));
        conns_.push_back(std::move(c));
    }
}

BenchThread::~BenchThread() = default;

void BenchThread::start() {
    thread_ = std::thread([this] { main(); });
}

void BenchThread::join() {
    if (thread_.joinable()) thread_.join();
}

void BenchThread::take_interval(Histogram& into) {
    std::lock_guard lock(interval_mu_);
    into.merge(interval_shared_);
    interval_shared_.reset();
}

void BenchThread::flush_interval() {
    if (interval_.count() == 0) return;
    {
        std::lock_guard lock(interval_mu_);
        interval_shared_.merge(interval_);
    }
    interval_.reset();
}

// Runs the loop; an exception (a poller that cannot be waited on) ends the whole run with its message.
void BenchThread::main() noexcept {
    try {
        run();
    } catch (const std::exception& e) {
        std::lock_guard lock(shared_.done_mu);
        if (shared_.failure.empty()) shared_.failure = e.what();
        shared_.abort.store(true);
    }
    for (auto& c : conns_) c->fd.reset();
    flush_interval();
    shared_.intervals->hand_over(plan_.index, second_index_, second_, INT64_MAX);
    std::lock_guard lock(shared_.done_mu);
    --shared_.running;
    shared_.done_cv.notify_all();
}

void BenchThread::run() {
    if (cfg_.rate > 0) WakeTimer::tighten_slack();
    released_ = !shared_.wait_for_start;
    setup_connections();
    std::vector<PollEvent> events(kBatch);
    for (;;) {
        int64_t now = now_ns();
        if (shared_.abort.load(std::memory_order_relaxed)) return;
        // --reconnect makes its connections only when it has something to send: none before the start.
        if (!released_ && (cfg_.reconnect || first_tried_ == conns_.size())) {
            park();
            continue;
        }
        int64_t deadline = service(now);
        if (finished(now)) return;
        wait_events(now, deadline, events);
    }
}

// First connects at t0 + index / --connect-rate (all at t0 without a rate); the open-loop schedule
// starts when the ramp ends, each thread offset by a fraction of its interval so they do not fire together.
void BenchThread::setup_connections() {
    double gap = cfg_.connect_rate > 0 ? 1e9 / cfg_.connect_rate : 0;
    for (auto& c : conns_) {
        c->retry_at = shared_.t0 + std::llround(c->index * gap);
        to_idle(*c);
    }
    if (released_) begin_schedule();
    next_flush_ = shared_.t0 + kFlushEvery;
}

// The thread's share of the rate profile from ramp_end, the warm-up at the first stage's starting rate;
// each thread's slots are offset by a fraction of a slot so that the threads do not fire together.
void BenchThread::begin_schedule() {
    std::vector<RateStage> stages = rate_profile(cfg_);
    if (stages.empty() || plan_.share <= 0) return;
    for (RateStage& s : stages) s.from *= plan_.share, s.to *= plan_.share;
    if (cfg_.warmup_ns > 0) stages.insert(stages.begin(), {stages.front().from, stages.front().from, cfg_.warmup_ns});
    // Not staggered across --segment generators: each one's first slot is at the start, so that the start
    // skew measures the start alone.
    const double phase = static_cast<double>(plan_.index) / cfg_.threads;
    schedule_ = RateSchedule(std::move(stages), shared_.ramp_end, phase);
    next_slot_ns_ = schedule_.next().value_or(kNever);
}

// --start-at: every connection has had its first attempt; wait for the engine's release, then start
// the schedule (open loop) or fill every open connection (closed loop) at once.
void BenchThread::park() {
    {
        std::lock_guard lock(shared_.done_mu);
        ++shared_.parked;
    }
    shared_.done_cv.notify_all();
    shared_.released.wait(false);
    released_ = true;
    if (shared_.abort.load()) return;
    begin_schedule();
    for (auto& c : conns_) {
        if (c->state == Conn::State::open) to_ready(*c);
    }
    fill_ready();
}

// Once the clock has left the current second of the measured window, its figures go to the collector
// (also when nothing completed, so that the collector can close the seconds every thread has passed).
void BenchThread::rotate_interval(int64_t now) {
    if (now < second_end_ || now < shared_.measure_start) return;
    int64_t index = (now - shared_.measure_start) / kIntervalNs;
    // Answers after the end of a --duration window (the replies in flight) count in its last second.
    const int64_t last = cfg_.requests == 0 ? (cfg_.duration_ns - 1) / kIntervalNs : INT64_MAX;
    index = std::min(index, last);
    if (index == second_index_) return;
    shared_.intervals->hand_over(plan_.index, second_index_, second_, index);
    second_.reset();
    second_index_ = index;
    second_end_ = index == last ? kNever : shared_.measure_start + (index + 1) * kIntervalNs;
}

// Runs whatever is due and returns the next time something will be.
int64_t BenchThread::service(int64_t now) {
    stop_at_ = shared_.stop_at.load(std::memory_order_relaxed);
    if (now >= stop_at_ && !stopped_) {
        // Slots that fell due since the last pass are handed out first, so at_stop() counts them unsent.
        if (cfg_.rate > 0) service_schedule(now);
        at_stop(now);
    }
    int64_t deadline = stop_at_ > now ? stop_at_ : kNever;
    if (now >= next_scan_) {
        scan_timeouts(now);
        next_scan_ = now + std::clamp<int64_t>(cfg_.timeout_ns / 10, kMs, 50 * kMs);
    }
    deadline = std::min(deadline, next_scan_);
    if (cfg_.rate > 0) deadline = std::min(deadline, service_schedule(now));
    deadline = std::min(deadline, service_idle(now));
    rotate_interval(now);
    if (now >= next_flush_) {
        flush_interval();
        next_flush_ = now + kFlushEvery;
    }
    return std::min(deadline, next_flush_);
}

// Starts the connects that are due; returns the earliest retry time of those that must still wait.
int64_t BenchThread::service_idle(int64_t now) {
    int64_t next = kNever;
    idle_scratch_.clear();
    idle_scratch_.swap(idle_);  // start_connect() may put a connection straight back on idle_
    for (Conn* c : idle_scratch_) {
        c->in_idle_list = false;
        if (c->state != Conn::State::idle) continue;
        if (wants_connection(*c, now) && c->retry_at <= now && reserve(*c, now)) {
            start_connect(*c, now);
            continue;
        }
        if (wants_connection(*c, now)) next = std::min(next, c->retry_at);
        to_idle(*c);
    }
    return next;
}

// Open loop: hands out every slot that is due to its connection (as a backlog entry) and sends what the
// connections' pipelines allow. A slot that cannot leave at once keeps its intended time, so the wait
// shows up in the corrected latency.
int64_t BenchThread::service_schedule(int64_t now) {
    touched_.clear();
    while (next_slot_ns_ <= now) {
        if (next_slot_ns_ >= stop_at_) {
            next_slot_ns_ = kNever;
            break;
        }
        bool measured = next_slot_ns_ >= shared_.measure_start;
        if (requests_mode_ && measured) {
            if (quota_left_ == 0) {
                next_slot_ns_ = kNever;
                break;
            }
            --quota_left_;
        }
        if (measured) ++backlog_measured_;
        Conn& c = *conns_[next_slot_ % conns_.size()];
        c.backlog.push_back(next_slot_ns_);
        touched_.push_back(&c);
        ++next_slot_;
        next_slot_ns_ = schedule_.next().value_or(kNever);
    }
    for (Conn* c : touched_) fill(*c, now);
    return next_slot_ns_;
}

void BenchThread::scan_timeouts(int64_t now) {
    for (auto& c : conns_) {
        if (c->state == Conn::State::connecting && now - c->connect_start >= cfg_.timeout_ns) {
            connect_failed(*c, ETIMEDOUT, now);
        } else if (c->state == Conn::State::open && !c->inflight.empty() &&
                   now - c->inflight.front().start_ns >= cfg_.timeout_ns) {
            fail_conn(*c, ErrorKind::timeout, now);
        }
    }
}

// Sending ends: open-loop slots that never left count as unsent; replies in flight may still finish.
void BenchThread::at_stop(int64_t now) {
    (void)now;
    stopped_ = true;
    for (auto& c : conns_) {
        for (int64_t t : c->backlog) stats_.unsent += t >= shared_.measure_start ? 1 : 0;
        c->backlog.clear();
    }
    backlog_measured_ = 0;
    next_slot_ns_ = kNever;
}

bool BenchThread::finished(int64_t now) const {
    if (inflight_ > 0 || reserved_ > 0) return false;
    if (now >= stop_at_) return true;
    return requests_mode_ && measuring(now) && quota_left_ == 0 && backlog_measured_ == 0;
}

bool BenchThread::work_remaining(int64_t now) const {
    if (now >= stop_at_) return false;
    return !(requests_mode_ && measuring(now) && quota_left_ == 0 && backlog_measured_ == 0);
}

bool BenchThread::may_send_closed(int64_t now) const {
    if (now >= stop_at_) return false;
    return !(requests_mode_ && measuring(now) && quota_left_ == 0);
}

// A persistent connection reconnects whenever work remains; with --reconnect it connects only when it
// has a request to send.
bool BenchThread::wants_connection(const Conn& c, int64_t now) const {
    if (!work_remaining(now) || (cfg_.reconnect && !released_)) return false;
    if (!cfg_.reconnect) return true;
    return cfg_.rate > 0 ? !c.backlog.empty() : may_send_closed(now);
}

// With --reconnect and --requests, a connection is opened for one request of the quota: taking it at
// connect time (and giving it back if no request leaves) opens exactly as many connections as requests.
bool BenchThread::reserve(Conn& c, int64_t now) {
    if (!cfg_.reconnect || cfg_.rate > 0 || !requests_mode_ || !measuring(now)) return true;
    if (quota_left_ == 0) return false;
    --quota_left_;
    ++reserved_;
    c.reserved = true;
    return true;
}

void BenchThread::release(Conn& c) {
    if (!std::exchange(c.reserved, false)) return;
    ++quota_left_;
    --reserved_;
}

void BenchThread::wait_events(int64_t now, int64_t deadline, std::vector<PollEvent>& events) {
    int timeout_ms = 0;
    if (deadline > now) {
        if (timer_.fd() >= 0) {
            timer_.arm(deadline);
            timeout_ms = 1000;  // the timer fires first; this only bounds a lost wake-up
        } else {
            timeout_ms = static_cast<int>(std::min<int64_t>((deadline - now + kMs - 1) / kMs, 1000));
        }
    }
    int n = poller_->wait(events, timeout_ms);
    for (int i = 0; i < n; ++i) {
        const PollEvent& ev = events[static_cast<size_t>(i)];
        if (ev.wake) continue;
        if (ev.udata == &timer_) {
            timer_.drain();
            continue;
        }
        on_event(*static_cast<Conn*>(ev.udata), ev);
    }
    fill_ready();
}

}  // namespace kq::bench
