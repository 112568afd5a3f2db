// libFuzzer target for kqmemcache's session (examples/memcache). The payload goes through one session cut
// into reads at points the input chooses, fed as the worker feeds it (input the session leaves is held and
// offered again, reading pauses and resumes, output drains and on_drained() follows), then EOF. Checks: the
// output is a sequence of well-formed memcached replies (each data block exactly as long as its header
// says); the store stays under its memory cap and the held input under max_input; one call adds a bounded
// amount of output to a client that does not read; requests counted never exceed the lines sent.
//
// Input: byte 0 = options (bit 0: tiny limits (64-byte items, 4 KiB of memory), bit 1: a slow client that
// reads only when the session waits for it, bits 4-7: number of split bytes); then that many split bytes
// (each cuts the payload at byte*len/256); then the payload. A seed "\x00get k\r\n" is one unsplit get.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kq/conn_stub.hpp"
#include "mc_protocol.hpp"

namespace {

[[noreturn]] void violated(const char* what, const std::string& output) {
    std::fprintf(stderr, "fuzz_memcache: invariant violated: %s\noutput (%zu bytes): %.4096s\n", what, output.size(),
                 output.c_str());
    std::abort();
}

class Client final : public kq::testing::ConnStub {
public:
    using ConnStub::send;
    void send(std::span<const char> bytes) override {
        ConnStub::send(bytes);
        if (!closed) unsent_bytes += bytes.size();
    }
};

bool starts(std::string_view line, std::string_view word) {
    return line.size() >= word.size() && line.substr(0, word.size()) == word &&
           (line.size() == word.size() || line[word.size()] == ' ');
}

// The length of a data block announced by a VALUE or VA header, or -1 if the line announces none.
long block_of(std::string_view line) {
    std::vector<std::string_view> words;
    for (size_t i = 0; i < line.size();) {
        size_t end = line.find(' ', i);
        if (end == std::string_view::npos) end = line.size();
        words.push_back(line.substr(i, end - i));
        i = end + 1;
    }
    std::string_view size;
    if (words[0] == "VALUE" && (words.size() == 4 || words.size() == 5)) size = words[3];
    else if (words[0] == "VA" && words.size() >= 2) size = words[1];
    else return -2;  // malformed header
    if (size.empty() || size.size() > 9 || !std::all_of(size.begin(), size.end(), ::isdigit)) return -2;
    return std::stol(std::string(size));
}

// Every reply line starts with one of memcached's reply words (or is an incr/decr number), and every data
// block is as long as announced and ends with "\r\n".
void check_replies(const std::string& out) {
    static const std::string_view words[] = {
        "STORED",       "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "END", "ERROR", "CLIENT_ERROR",
        "SERVER_ERROR", "VERSION",    "STAT",   "RESET",     "HD",      "EN",      "NF", "NS",  "EX",    "MN"};
    std::string_view rest = out;
    while (!rest.empty()) {
        size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) violated("a reply not ended by \\r\\n", out);
        std::string_view line = rest.substr(0, eol);
        rest.remove_prefix(eol + 2);
        if (starts(line, "VALUE") || starts(line, "VA")) {
            long n = block_of(line);
            if (n < 0) violated("a malformed VALUE/VA header", out);
            if (rest.size() < static_cast<size_t>(n) + 2 || rest.substr(static_cast<size_t>(n), 2) != "\r\n")
                violated("a data block of the wrong length", out);
            rest.remove_prefix(static_cast<size_t>(n) + 2);
            continue;
        }
        bool known = !line.empty() && std::all_of(line.begin(), line.end(), ::isdigit);
        for (std::string_view w : words) known = known || starts(line, w);
        if (!known) violated("an unknown reply line", out);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t options = data[0];
    const size_t nsplits = std::min<size_t>(options >> 4, size - 1);
    std::string_view payload(reinterpret_cast<const char*>(data) + 1 + nsplits, size - 1 - nsplits);
    std::vector<size_t> cuts;
    for (size_t i = 0; i < nsplits; ++i) cuts.push_back(data[1 + i] * payload.size() / 256);
    std::sort(cuts.begin(), cuts.end());
    cuts.push_back(payload.size());

    kqmc::MemcacheOptions o;
    o.sweep_interval_ms = 0;
    o.clock = [] { return int64_t{1'700'000'000}; };
    if (options & 1) {
        o.max_item_size = 64;
        o.memory_limit = 4096;
        o.shards = 2;
    }
    const bool slow = options & 2;
    kqmc::Shared shared(o);
    auto session = kqmc::make_session(shared);
    Client conn;
    // Output one call may add while the client reads nothing: the gather batch past low water, plus one
    // value and its header, twice (a pipelined command, then a get's key).
    const size_t bound = conn.low_water + 2 * (64 * 1024 + o.max_item_size + 512);

    auto offer = [&](std::string_view bytes) {
        conn.held.append(bytes);
        std::vector<char> scratch(conn.held.begin(), conn.held.end());
        const size_t before = conn.unsent_bytes;
        size_t used = session->on_data(scratch, conn);
        if (used > scratch.size()) violated("consumed more than offered", conn.sent);
        conn.held.erase(0, used);
        if (conn.unsent_bytes > before + bound && conn.unsent_bytes > bound)
            violated("one call buffered unbounded output", conn.sent);
        if (conn.held.size() > o.max_input()) violated("held input past max_input", conn.sent);
    };
    auto drain = [&] {  // the client reads everything; the worker calls on_drained, then offers held input
        conn.unsent_bytes = 0;
        session->on_drained(conn);
        if (!conn.paused && !conn.closed) offer({});
    };
    size_t from = 0;
    for (size_t cut : cuts) {
        for (int guard = 0; conn.paused && !conn.closed && guard < 100'000; ++guard) drain();
        if (conn.closed) break;
        offer(payload.substr(from, cut - from));
        from = cut;
        if (!slow) drain();
    }
    for (int guard = 0; conn.paused && !conn.closed && guard < 100'000; ++guard) drain();
    if (!conn.closed) session->on_peer_eof(conn);
    for (int guard = 0; !conn.closed && guard < 100'000; ++guard) drain();  // a get finishing after EOF
    if (!conn.closed) violated("the session did not close after the client's EOF", conn.sent);

    if (shared.store.stats().bytes > o.memory_limit) violated("the store is over its memory cap", conn.sent);
    if (conn.requests > static_cast<uint64_t>(std::count(payload.begin(), payload.end(), '\n')))
        violated("more requests counted than lines sent", conn.sent);
    check_replies(conn.sent);
    return 0;
}
