// Test harness of the RESP session: a fresh protocol with a hand-driven clock, a session opened on a
// recording Conn, and feed() playing the worker (held input offered again, a scratch buffer scribbled
// over after each call so that a session keeping a view into it is caught).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kq/conn_stub.hpp"
#include "resp_protocol.hpp"

namespace resp::test {

// ConnStub counts sends and, with `stalled`, keeps every byte sent unsent (a client that reads nothing).
using RecordingConn = kq::testing::ConnStub;

struct Harness {
    explicit Harness(Limits limits = {}) {
        RespOptions options;
        options.limits = limits;
        options.shards = 4;
        protocol = std::make_unique<RespProtocol>(options, [this] { return now_ms; });
        session = protocol->open(conn);
    }

    // Offers text after the held input, as the worker does; returns what on_data consumed.
    size_t feed(std::string_view text) {
        conn.held.append(text);
        std::vector<char> scratch(conn.held.begin(), conn.held.end());
        const size_t used = session->on_data(scratch, conn);
        max_held = std::max(max_held, conn.held.size());
        if (used <= conn.held.size()) conn.held.erase(0, used);
        std::fill(scratch.begin(), scratch.end(), '#');
        return used;
    }
    // Everything the session sent for the requests in text, fed whole.
    std::string run(std::string_view text) {
        const size_t before = conn.sent.size();
        feed(text);
        return conn.sent.substr(before);
    }

    int64_t now_ms = 1'000'000;
    RecordingConn conn;
    std::unique_ptr<RespProtocol> protocol;
    std::unique_ptr<kq::Session> session;
    size_t max_held = 0;
};

// A multibulk request of the given arguments.
inline std::string mb(const std::vector<std::string>& args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
}

// The output of a fresh session fed text in pieces cut at the given offsets (ascending).
inline std::string run_split(std::string_view text, const std::vector<size_t>& cuts, Limits limits = {}) {
    Harness h(limits);
    size_t from = 0;
    for (size_t cut : cuts) {
        if (h.conn.closed) break;  // the worker calls a closed session no more
        h.feed(text.substr(from, cut - from));
        from = cut;
    }
    if (!h.conn.closed) h.feed(text.substr(from));
    return h.conn.sent + (h.conn.closed ? "<closed>" : "");
}

}  // namespace resp::test
