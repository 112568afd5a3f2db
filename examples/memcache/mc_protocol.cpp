// The memcache session: framing (command lines, data blocks, refused blocks skipped as they arrive),
// pipelined replies gathered into one send, and flow control that pauses a large multi-get between keys.
// Hand-written: no packaged library serves memcached's protocol (see mc_protocol.hpp).
#include "mc_protocol.hpp"

#include <chrono>

#include "mc_commands.hpp"

namespace kqmc {
namespace {

// Replies are gathered up to this much, then sent; past it the session checks the connection's output.
constexpr size_t kSendBatch = 64 * 1024;

bool is_retrieval_line(std::string_view line) {
    for (std::string_view cmd : {"get ", "gets ", "gat ", "gats "})
        if (line.starts_with(cmd)) return true;
    return false;
}

// The worker holds any unfinished command (on_data returns only what finished commands used), so the
// session's own state is small: bytes still to skip, and the keys left of a multi-get paused by flow
// control (a copy of part of one line, bounded by max_get_line).
class MemcacheSession final : public kq::Session {
public:
    explicit MemcacheSession(Shared& shared) : sh_(shared) {
        sh_.counters.add(sh_.counters.curr_connections);
        sh_.counters.add(sh_.counters.total_connections);
    }
    ~MemcacheSession() override { sh_.counters.curr_connections.fetch_sub(1, std::memory_order_relaxed); }

    size_t on_data(std::span<char> bytes, kq::Conn& conn) override {
        const std::string_view in(bytes.data(), bytes.size());
        std::string out;
        uint64_t answered = 0;
        size_t used = 0;
        bool close = false;
        while (used < in.size() && !close) {
            if (skip_ > 0) {  // a refused data block, dropped as it arrives
                size_t n = std::min(skip_, in.size() - used);
                used += n;
                skip_ -= n;
                continue;
            }
            if (out.size() >= kSendBatch && !flush(out, conn)) break;
            const size_t nl = in.find('\n', used);
            const std::string_view rest = in.substr(used, nl == std::string_view::npos ? in.size() - used : nl - used);
            if (too_long(rest)) {  // checked before waiting for more: held input stays bounded
                out += "CLIENT_ERROR line too long\r\n";
                close = true;
                used = in.size();
                break;
            }
            if (nl == std::string_view::npos) break;  // an unfinished line: the worker holds it
            std::string_view line = rest;
            if (line.ends_with('\r')) line.remove_suffix(1);
            Retrieval get;
            Outcome o = execute(line, in.substr(nl + 1), sh_, out, get);
            if (o.kind == Outcome::need_more) break;  // the data block is still arriving
            used = nl + 1 + o.data;
            skip_ = o.swallow;
            ++answered;
            if (o.kind == Outcome::quit) {
                quit_ = true;
                close = true;
            } else if (o.kind == Outcome::retrieve && !start_retrieval(get, out, conn)) {
                break;  // paused mid-get: the rest waits for on_drained
            }
        }
        if (!out.empty()) conn.send(std::string_view(out));
        if (answered > 0) conn.count_requests(answered);
        if (close) conn.close();  // after the replies above: close() waits until they are written
        return used;
    }

    // The output drained: go on with a paused multi-get, then with the held commands.
    void on_drained(kq::Conn& conn) override {
        if (!pending_keys_.empty() || pending_end_) {
            std::string out;
            bool done = continue_retrieval(out, conn);
            if (!out.empty()) conn.send(std::string_view(out));
            if (!done) return;
        }
        if (eof_) return conn.close();
        conn.resume_reading();
    }

    void on_peer_eof(kq::Conn& conn) override {
        if (pending_end_) {
            eof_ = true;  // finish the multi-get first
            return;
        }
        conn.close();
    }

    // A refused data block still arriving is a request under way. A multi-get waiting for its client to
    // read is not: its request has all arrived, and the request time-out (aimed at clients that send
    // slowly) must not cut an answer short because the client reads slowly.
    bool mid_request() const override { return skip_ > 0; }
    bool input_may_follow() const override { return !quit_; }

private:
    bool too_long(std::string_view rest) const {
        if (rest.size() <= sh_.options.max_line) return false;
        return !is_retrieval_line(rest) || rest.size() > sh_.options.max_get_line;
    }

    // Sends what is gathered; false when the client's output is congested (reading is then paused).
    static bool flush(std::string& out, kq::Conn& conn) {
        conn.send(std::string_view(out));
        out.clear();
        if (!conn.congested()) return true;
        conn.pause_reading();
        return false;
    }

    bool start_retrieval(const Retrieval& get, std::string& out, kq::Conn& conn) {
        get_ = get;
        pending_keys_.assign(get.keys);  // a copy: the line belongs to the worker once on_data returns
        pending_end_ = true;
        if (continue_retrieval(out, conn)) return true;
        conn.pause_reading();
        return false;
    }

    // Looks keys up until done (then appends END and returns true) or the output is congested.
    bool continue_retrieval(std::string& out, kq::Conn& conn) {
        std::string_view rest = pending_keys_;
        get_.keys = {};  // it pointed into the worker's buffer: the keys live in pending_keys_ now
        for (std::string_view key; !(key = next_word(rest)).empty();) {
            retrieve_one(key, get_, sh_, out);
            if (out.size() >= kSendBatch) {
                conn.send(std::string_view(out));
                out.clear();
                if (conn.congested()) {
                    pending_keys_.erase(0, pending_keys_.size() - rest.size());
                    return false;
                }
            }
        }
        out += "END\r\n";
        pending_keys_.clear();
        pending_end_ = false;
        return true;
    }

    Shared& sh_;
    size_t skip_ = 0;
    Retrieval get_;
    std::string pending_keys_;
    bool pending_end_ = false;  // a retrieval is under way (its keys may all be done but END not sent)
    bool quit_ = false;
    bool eof_ = false;
};

}  // namespace

Shared::Shared(MemcacheOptions o)
    : options(std::move(o)),
      store(StoreOptions{options.memory_limit, options.max_item_size, options.shards, options.clock}),
      started(store.now()) {}

MemcacheProtocol::MemcacheProtocol(MemcacheOptions options) : shared_(std::move(options)) {
    if (shared_.options.sweep_interval_ms > 0) sweeper_ = std::thread([this] { sweep_loop(); });
}

MemcacheProtocol::~MemcacheProtocol() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
}

void MemcacheProtocol::sweep_loop() {
    const auto period = std::chrono::milliseconds(shared_.options.sweep_interval_ms);
    std::unique_lock lock(mu_);
    while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
        lock.unlock();
        shared_.store.sweep();
        lock.lock();
    }
}

std::unique_ptr<kq::Session> MemcacheProtocol::open(kq::Conn&) { return make_session(shared_); }

std::unique_ptr<kq::Session> make_session(Shared& shared) { return std::make_unique<MemcacheSession>(shared); }

}  // namespace kqmc
