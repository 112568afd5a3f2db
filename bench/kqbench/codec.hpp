// The client side of each protocol: a Codec writes requests and parses (and verifies) the replies of one
// connection, in order, however the bytes are split across reads.
// Thread rules: a Codec belongs to one connection and is only used by that connection's bench thread;
// the Payloads it points to are shared read-only by every thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kqbench/config.hpp"

namespace kq::bench {

// One finished reply: status is the HTTP status, 0 for the other protocols.
struct Outcome {
    int status = 0;
    bool ok() const noexcept { return status == 0 || (status >= 200 && status < 300); }
};

// Feeding bytes either works or leaves a stream that can no longer be matched to its requests.
enum class Fatal : uint8_t { none, verify, parse };

// Bytes the echo and upper codecs send: a random pattern (bytes 0-255 for echo, printable ASCII with
// letters for upper) and what a correct server returns for it. Requests are slices at varying offsets.
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
