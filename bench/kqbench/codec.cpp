// Codecs for echo, upper and raw: fixed-length replies, the first two verified byte for byte.
#include <cstring>
#include <deque>

#include "kqbench/codec.hpp"

namespace kq::bench {
namespace {

// One expected reply: a slice of Payloads::expected, or (raw) just a length.
struct Expect {
    size_t offset = 0, size = 0;
};

// Replies of known lengths, in order. With payloads, every byte is compared with what a correct server
// sends; without (raw), only the length is checked. Bytes beyond the last expected reply are an error:
// a server that sends more than asked is as wrong as one that sends other bytes.
class FixedReplyCodec final : public Codec {
public:
    FixedReplyCodec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t seed)
        : cfg_(cfg), payloads_(std::move(payloads)), rng_(seed) {}

    void write_request(std::string& out) override {
        if (!payloads_) {
            out += cfg_.request;
            expect_.push_back({0, cfg_.reply_size});
            return;
        }
        size_t size = static_cast<size_t>(rng_.between(cfg_.size_min, cfg_.size_max));
        size_t offset = static_cast<size_t>(rng_.next() % Payloads::kOffsets);
        out.append(payloads_->pattern, offset, size);
        expect_.push_back({offset, size});
    }

    Fatal feed(std::span<const char> in, std::vector<Outcome>& done) override {
        while (!in.empty()) {
            if (expect_.empty()) return Fatal::verify;
            Expect& e = expect_.front();
            size_t n = std::min(in.size(), e.size - progress_);
            if (payloads_ && std::memcmp(in.data(), payloads_->expected.data() + e.offset + progress_, n) != 0) {
                return Fatal::verify;
            }
            in = in.subspan(n);
            progress_ += n;
            if (progress_ == e.size) {
                expect_.pop_front();
                progress_ = 0;
                done.push_back(Outcome{});
            }
        }
        return Fatal::none;
    }

    void reset() override {
        expect_.clear();
        progress_ = 0;
    }

private:
    const Config& cfg_;
    std::shared_ptr<const Payloads> payloads_;  // null for raw
    Random rng_;
    std::deque<Expect> expect_;
    size_t progress_ = 0;  // bytes of expect_.front() received
};

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

std::string_view kv_value(const Payloads& payloads, size_t value_size, uint64_t k) {
    const size_t offset = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 52);  // [0, 4096) = kOffsets
    return std::string_view(payloads.pattern).substr(offset, value_size);
}

std::shared_ptr<const Payloads> make_payloads(const Config& cfg) {
    auto p = std::make_shared<Payloads>();
    if (is_key_value(cfg.protocol)) {
        // A fixed seed: a GET must verify values stored by an earlier run (--prefill) with another --seed.
        static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        static_assert(Payloads::kOffsets == 4096, "kv_value's offsets are 12 bits");
        Random rng(0x6B76);
        p->pattern.resize(cfg.value_size + Payloads::kOffsets);
        for (char& c : p->pattern) c = kAlphabet[rng.next() % (sizeof kAlphabet - 1)];
        return p;
    }
    Random rng(cfg.seed ^ 0xBE7C4);
    p->pattern.resize(cfg.size_max + Payloads::kOffsets);
    // upper: mostly lowercase letters (which must change) with digits and punctuation (which must not).
    static constexpr char kUpperAlphabet[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789 .,-ABCZ";
    for (char& c : p->pattern) {
        uint64_t r = rng.next();
        c = cfg.protocol == ProtocolKind::upper ? kUpperAlphabet[r % (sizeof kUpperAlphabet - 1)]
                                                : static_cast<char>(r >> 56);
    }
    p->expected = p->pattern;
    if (cfg.protocol == ProtocolKind::upper) {
        for (char& c : p->expected) c = upper(c);
    }
    return p;
}

std::unique_ptr<Codec> make_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t stream_seed) {
    switch (cfg.protocol) {
    case ProtocolKind::echo:
    case ProtocolKind::upper:
        return std::make_unique<FixedReplyCodec>(cfg, std::move(payloads), stream_seed);
    case ProtocolKind::raw:
        return std::make_unique<FixedReplyCodec>(cfg, nullptr, stream_seed);
    case ProtocolKind::http:
        return make_http_codec(cfg);
    case ProtocolKind::memcache:
        return make_memcache_codec(cfg, std::move(payloads), stream_seed);
    case ProtocolKind::resp:
        return make_resp_codec(cfg, std::move(payloads), stream_seed);
    }
    return nullptr;
}

}  // namespace kq::bench
