// What the memcache and resp codecs share: the get/set mix over the key space, the values derived from
// the keys, the queue of expected replies, and a reply reader for CRLF-terminated lines and values of a
// known length, either split anywhere across reads. Each protocol says what its lines mean.
// Thread rules: as every Codec, one connection's, used by its bench thread only.
#pragma once

#include <charconv>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kqbench/codec.hpp"

namespace kq::bench {

class KvCodec : public Codec {
public:
    Fatal feed(std::span<const char> in, std::vector<Outcome>& done) final {
        std::string_view s(in.data(), in.size());
        Fatal r = Fatal::none;
        while (!s.empty() && r == Fatal::none) {
            if (expect_.empty()) return Fatal::parse;  // a reply to nothing we asked
            s.remove_prefix(step(s, done, r));
        }
        return r;
    }

    void reset() override {
        expect_.clear();
        state_ = State::line;
        line_.clear();
        remaining_ = 0;
    }

protected:
    struct Op {
        bool set = false;
        uint64_t key = 0;
    };

    KvCodec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t seed, bool sequential)
        : cfg_(cfg), payloads_(std::move(payloads)), rng_(seed), sequential_(sequential) {}

    // The next request's operation, remembered as the next expected reply.
    Op next_op() {
        Op op;
        if (sequential_) {
            op = {true, next_key_++ % cfg_.keys};
        } else {
            op.set = rng_.next() % (uint64_t{cfg_.set_ratio} + cfg_.get_ratio) < cfg_.set_ratio;
            op.key = rng_.next() % cfg_.keys;
        }
        expect_.push_back(op);
        return op;
    }

    void append_key(std::string& out, uint64_t k) const {
        out += cfg_.key_prefix;
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, k);
        out.append(digits, end);
    }
    size_t key_size(uint64_t k) const {
        size_t n = 1;
        for (; k >= 10; k /= 10) ++n;
        return cfg_.key_prefix.size() + n;
    }
    std::string_view value(uint64_t k) const { return kv_value(*payloads_, cfg_.value_size, k); }
    const Op& front() const { return expect_.front(); }
    size_t value_size() const { return cfg_.value_size; }

    // A whole reply line (without its CRLF) for expect_.front(): finish() it, start_value() when the
    // line announces the value, or return why the stream is broken.
    virtual Fatal on_line(std::string_view line, std::vector<Outcome>& done) = 0;
    // The value and its CRLF have arrived (and matched).
    virtual void on_value_end(std::vector<Outcome>& done) = 0;

    void finish(std::vector<Outcome>& done, Outcome o) {
        expect_.pop_front();
        done.push_back(o);
    }
    void start_value() {
        state_ = State::value;
        remaining_ = cfg_.value_size + 2;  // the value, then CRLF
    }

private:
    enum class State { line, value };
    static constexpr size_t kMaxLine = 4096;  // no reply line we expect comes near it

    size_t step(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        if (state_ == State::value) return take_value(s, done, r);
        // A line is read in place when it is whole, else gathered in line_ across reads.
        const void* nl = std::memchr(s.data(), '\n', s.size());
        const size_t used = nl ? static_cast<size_t>(static_cast<const char*>(nl) - s.data()) + 1 : s.size();
        std::string_view line;
        if (line_.empty() && nl) {
            line = s.substr(0, used);
        } else {
            line_.append(s.substr(0, used));
            line = line_;
        }
        if (!nl) {
            if (line_.size() > kMaxLine) r = Fatal::parse;
            return used;
        }
        if (line.size() < 2 || line[line.size() - 2] != '\r') {
            r = Fatal::parse;  // both protocols end every line with CRLF
        } else {
            r = on_line(line.substr(0, line.size() - 2), done);
        }
        line_.clear();
        return used;
    }

    // The value's bytes are compared with what its key holds where they arrive; then its CRLF.
    size_t take_value(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        const size_t n = std::min(s.size(), remaining_);
        const size_t at = cfg_.value_size + 2 - remaining_;  // position in value + CRLF
        const size_t in_value = at < cfg_.value_size ? std::min(n, cfg_.value_size - at) : 0;
        if (in_value > 0 && std::memcmp(s.data(), value(front().key).data() + at, in_value) != 0) {
            r = Fatal::verify;
            return n;
        }
        for (size_t i = in_value; i < n; ++i) {
            if (s[i] != "\r\n"[at + i - cfg_.value_size]) {
                r = Fatal::parse;
                return n;
            }
        }
        remaining_ -= n;
        if (remaining_ == 0) {
            state_ = State::line;
            on_value_end(done);
        }
        return n;
    }

    const Config& cfg_;
    std::shared_ptr<const Payloads> payloads_;
    Random rng_;
    bool sequential_;
    uint64_t next_key_ = 0;
    std::deque<Op> expect_;
    State state_ = State::line;
    std::string line_;
    size_t remaining_ = 0;  // of the value and its CRLF
};

// A decimal number that is all of text (no sign, no spaces).
template <class T>
bool parse_decimal(std::string_view text, T& out) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc() && p == text.data() + text.size();
}

}  // namespace kq::bench
