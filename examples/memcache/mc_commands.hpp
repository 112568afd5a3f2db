// The command interpreter behind the memcache session: one command line (and its data block, for storage
// commands) in, the reply appended to a string. Internal to kqmemcache; the session (mc_protocol.cpp) does
// the framing and flow control. Hand-written: no packaged library parses memcached's text protocol.
// Thread rules: any thread; the Shared it is given is thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mc_protocol.hpp"

namespace kqmc {

constexpr size_t kMaxKey = 250;  // memcached's longest key

// A command line split at spaces (only spaces: memcached does not split at tabs). Commands with more
// tokens than fit are malformed anyway, except get's keys, which the session reads from the raw line.
struct Tokens {
    static constexpr size_t kMax = 24;
    std::array<std::string_view, kMax> v{};
    size_t n = 0;
    bool overflow = false;
    explicit Tokens(std::string_view line);
    std::string_view operator[](size_t i) const { return v[i]; }
};

// The next space-separated word of rest (leading spaces skipped); rest keeps what follows it.
std::string_view next_word(std::string_view& rest);

bool parse_u64(std::string_view s, uint64_t& out);
bool parse_u32(std::string_view s, uint32_t& out);
bool parse_i32(std::string_view s, int64_t& out);  // memcached's exptimes and lengths are 32-bit
void append_number(std::string& out, uint64_t n);
void append_signed(std::string& out, int64_t n);

// What one command did to the input.
struct Outcome {
    enum Kind {
        done,       // answered; `data` bytes after the line belonged to it
        need_more,  // a storage command whose data block has not all arrived: consume nothing yet
        retrieve,   // get/gets/gat/gats: the session runs it (see Retrieval)
        quit,       // close the connection
    } kind = done;
    size_t data = 0;     // bytes after the line's "\n" that the command consumed
    size_t swallow = 0;  // further bytes to skip (a data block refused before it arrived)
};

// A parsed get/gets/gat/gats: the session looks the keys up one at a time, so that a huge multi-get can
// pause under flow control between keys.
struct Retrieval {
    bool with_cas = false;
    bool touch = false;
    int64_t exptime = 0;
    std::string_view keys;  // the rest of the line: space-separated keys, each checked to fit kMaxKey
};

// One complete line (without "\r\n"); after: the input that follows its "\n", for a data block.
Outcome execute(std::string_view line, std::string_view after, Shared& shared, std::string& out, Retrieval& get);
// The meta commands (mg ms md ma mn), same contract; cmd is the line's first word.
Outcome execute_meta(const Tokens& t, std::string_view after, Shared& shared, std::string& out);
// Appends one key's VALUE block (or nothing on a miss) for a Retrieval.
void retrieve_one(std::string_view key, const Retrieval& get, Shared& shared, std::string& out);
void append_stats(std::string_view what, Shared& shared, std::string& out);

}  // namespace kqmc
