// The conformance suite's client side: many raw connections driven at once from one thread (send the
// pieces, read to EOF, a reset or a deadline), and a response parser of its own that turns what came back
// into an Outcome. Used from the test's thread only.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "case_file.hpp"

namespace kq::conformance {

// Sent after every case: if the case left the connection usable, this is answered 200 and the server closes.
inline constexpr std::string_view kProbe = "GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n";

// One connection: its pieces go out in order, each with its own send() (TCP_NODELAY is on, so each
// leaves at once); what comes back is collected until the server closes or resets, or the deadline.
struct Exchange {
    uint16_t port = 0;
    std::vector<std::string> pieces;
    std::string received;
    bool reset = false;      // ECONNRESET on a read or a write
    bool timed_out = false;  // the server neither answered to the end nor closed in time
    int error = 0;           // any other errno that ended it (a failed connect, say)
};

// Runs every exchange, at most `parallel` at a time, each for at most deadline_ms.
void run_exchanges(const std::vector<Exchange*>& exchanges, size_t parallel, int deadline_ms);

// The responses found in a connection's bytes.
struct Responses {
    std::vector<int> statuses;  // in order, 1xx included
    bool malformed = false;     // bytes that are not a response, or a response cut off by the close
};

// head: the final responses (1-based) that answer HEAD requests: a length header but no body.
Responses parse_responses(std::string_view wire, const std::set<int>& head);

// A case's view of one exchange: its outcome (the probe's answer recognised as the final answer after
// the case's `requests` ones, if that one is 2xx) and how the connection ended.
struct Result {
    Outcome outcome;
    bool reset = false, timed_out = false, malformed = false;
    int error = 0;

    bool clean() const { return !timed_out && !malformed && error == 0; }
    std::string text() const;  // the outcome, then "reset", "timeout", "malformed" or the errno if any
};

Result result_of(const Exchange& x, const Case& c);

}  // namespace kq::conformance
