// The client side of each protocol: a Codec writes requests and parses (and verifies) the replies of one
// connection, in order, however the bytes are split across reads.
// Thread rules: a Codec belongs to one connection and is only used by that connection's bench thread;
// the Payloads it points to are shared read-only by every thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kqbench/config.hpp"

namespace kq::bench {

// What a memcache/resp reply answered: a SET stored, a GET found its key or did not (both correct).
enum class KvResult : uint8_t { none, stored, hit, miss };

// One finished reply: status is the HTTP status, 0 for the other protocols; error_reply is a well-framed
// reply that reports a failure (memcache ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED; RESP -ERR ...).
struct Outcome {
    int status = 0;
    bool error_reply = false;
    KvResult kv = KvResult::none;
    bool ok() const noexcept { return !error_reply && (status == 0 || (status >= 200 && status < 300)); }
};

// Feeding bytes either works or leaves a stream that can no longer be matched to its requests.
enum class Fatal : uint8_t { none, verify, parse };

// Bytes the echo and upper codecs send: a random pattern (bytes 0-255 for echo, printable ASCII with
// letters for upper) and what a correct server returns for it. Requests are slices at varying offsets.
// memcache/resp: the pattern (letters and digits, the same for every seed) that values are sliced from,
// value_size bytes at an offset derived from the key (see kv_value).
struct Payloads {
    std::string pattern, expected;
    static constexpr size_t kOffsets = 4096;  // slices start at [0, kOffsets)
};
std::shared_ptr<const Payloads> make_payloads(const Config& cfg);

class Codec {
public:
    virtual ~Codec() = default;
    // Appends one request to out and remembers what its reply must be.
    virtual void write_request(std::string& out) = 0;
    // Consumes received bytes; appends one Outcome per finished reply to done. After a fatal result the
    // connection must be dropped (the stream can no longer be matched to requests).
    virtual Fatal feed(std::span<const char> in, std::vector<Outcome>& done) = 0;
    // The peer closed: true if that finished a reply whose end is the close (HTTP without a length),
    // which is then appended to done.
    virtual bool feed_eof(std::vector<Outcome>& done) {
        (void)done;
        return false;
    }
    // The server announced it will close after its last reply (HTTP "Connection: close"): send nothing
    // more on this connection.
    virtual bool peer_closing() const { return false; }
    // A new connection: forget the expectations of the old one.
    virtual void reset() = 0;
};

// Per connection; stream_seed makes each connection's sizes and offsets differ yet repeat across runs.
std::unique_ptr<Codec> make_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t stream_seed);
std::unique_ptr<Codec> make_http_codec(const Config& cfg);
// memcache/resp. sequential: SET keys 0, 1, 2 ... in order (the --prefill pass) instead of the random mix.
std::unique_ptr<Codec> make_memcache_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads,
                                           uint64_t stream_seed, bool sequential = false);
std::unique_ptr<Codec> make_resp_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads,
                                       uint64_t stream_seed, bool sequential = false);

// The value stored under key number k: value_size bytes of payloads.pattern, at an offset that depends
// only on k (so every run with the same --value-size agrees, whatever its seed).
std::string_view kv_value(const Payloads& payloads, size_t value_size, uint64_t k);

// xorshift64*: cheap per-connection randomness for sizes and offsets.
class Random {
public:
    explicit Random(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
    uint64_t next() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545F4914F6CDD1Dull;
    }
    // Uniform enough in [lo, hi] for load generation.
    uint64_t between(uint64_t lo, uint64_t hi) noexcept { return lo + (hi == lo ? 0 : next() % (hi - lo + 1)); }

private:
    uint64_t s_;
};

}  // namespace kq::bench
