// libFuzzer target for kqresp's session (examples/resp). The payload goes through a fresh session with
// its own keyspace twice: whole, and cut into reads at points the input's first bytes choose, fed as the
// worker feeds them (input the session leaves is held and offered again; while it paused reading, a slow
// client's output drains and on_drained() follows before the next read). Checked: the two outputs are
// the same bytes; the output is a sequence of well-formed RESP2 replies, one per request counted plus
// one protocol error at most, and nothing after a close; what the session leaves unconsumed stays within
// its limits. Hand-written: no packaged RESP fuzzer or reference parser exists to compare with.
//
// Input: byte 0 = limits preset (bit 0: small limits), a slow client (bit 1: output stays unsent until the
// session pauses), number of split bytes (bits 4-7); then that many split bytes (each cuts the payload
// at byte*len/256); then the payload, the bytes a client sent. "\x00PING\r\n" is one unsplit request.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "resp_harness.hpp"

namespace {

[[noreturn]] void violated(const char* what, const std::string& output) {
    std::fprintf(stderr, "fuzz_resp: invariant violated: %s\noutput (%zu bytes): %s\n", what, output.size(),
                 output.substr(0, 2048).c_str());
    std::abort();
}

resp::Limits limits_for(uint8_t options) {
    resp::Limits l;
    if (options & 1) {
        l.max_bulk = 64;
        l.max_args = 8;
        l.max_inline = 64;
        l.max_request = 256;
    }
    return l;
}

// Parses one RESP2 reply at pos; false if malformed or incomplete.
bool reply_at(std::string_view s, size_t& pos, int depth = 0) {
    if (pos >= s.size() || depth > 64) return false;
    const size_t crlf = s.find("\r\n", pos);
    if (crlf == std::string_view::npos) return false;
    const char type = s[pos];
    const std::string_view body = s.substr(pos + 1, crlf - pos - 1);
    pos = crlf + 2;
    if (type == '+' || type == '-') return body.find_first_of("\r\n") == std::string_view::npos;
    int64_t n = 0;
    if (!resp::parse_int64(body, n)) return false;
    if (type == ':') return true;
    if (type == '$') {
        if (n == -1) return true;
        if (n < 0 || s.size() - pos < static_cast<size_t>(n) + 2) return false;
        pos += static_cast<size_t>(n);
        if (s.substr(pos, 2) != "\r\n") return false;
        pos += 2;
        return true;
    }
    if (type != '*' || n < -1) return false;
    for (int64_t i = 0; i < n; ++i)
        if (!reply_at(s, pos, depth + 1)) return false;
    return true;
}

struct Run {
    std::string output;
    uint64_t requests = 0;
    bool closed = false;
};

Run run(std::string_view payload, const std::vector<size_t>& cuts, uint8_t options) {
    const resp::Limits limits = limits_for(options);
    resp::test::Harness h(limits);
    h.conn.stalled = (options & 2) != 0;
    std::vector<size_t> bounds = cuts;
    bounds.push_back(payload.size());
    size_t from = 0;
    for (size_t to : bounds) {
        if (h.conn.closed) break;  // the worker calls a closed session no more
        const std::string_view piece = payload.substr(from, to - from);
        from = to;
        h.feed(piece);
        // The worker takes reads only while not paused: drain as the client reads, offer the held input.
        for (int guard = 0; h.conn.paused && !h.conn.closed; ++guard) {
            if (guard > 100'000) violated("stays paused after draining", h.conn.sent);
            h.conn.unsent_bytes = 0;
            h.session->on_drained(h.conn);
            if (!h.conn.paused) h.feed("");
        }
        // Unconsumed input is a partial request within the limits (a header line, or declared bulks).
        if (!h.conn.closed && h.conn.held.size() > limits.max_request + limits.max_inline + 2)
            violated("held input beyond the limits", h.conn.sent);
        if (h.conn.stalled) h.conn.unsent_bytes = 0;  // the client reads before sending more
    }
    return {h.conn.sent, h.conn.requests, h.conn.closed};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t options = data[0];
    const size_t nsplits = std::min<size_t>(options >> 4, size - 1);
    const std::string_view payload(reinterpret_cast<const char*>(data) + 1 + nsplits, size - 1 - nsplits);
    std::vector<size_t> cuts;
    for (size_t i = 0; i < nsplits; ++i) cuts.push_back(data[1 + i] * payload.size() / 256);
    std::sort(cuts.begin(), cuts.end());

    const Run whole = run(payload, {}, options);
    const Run split = run(payload, cuts, options);
    if (whole.output != split.output) violated("output depends on how the input was cut", split.output);
    if (whole.requests != split.requests || whole.closed != split.closed)
        violated("requests or close depend on the cuts", split.output);

    size_t pos = 0, replies = 0, last = 0;
    while (pos < whole.output.size()) {
        last = pos;
        if (!reply_at(whole.output, pos)) violated("malformed reply", whole.output.substr(last));
        ++replies;
    }
    // One reply per request run, plus the protocol error that closed the connection, if one did.
    const bool protocol_error =
        whole.closed && replies > 0 && std::string_view(whole.output).substr(last).starts_with("-ERR Protocol error: ");
    if (replies != whole.requests + (protocol_error ? 1 : 0)) violated("replies and requests differ", whole.output);
    return 0;
}
