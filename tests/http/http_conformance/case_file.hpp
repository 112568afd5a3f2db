// The conformance cases: one raw request (or several) per line of cases.txt, what kqserver must answer
// (the same as nginx, or a documented difference, or a known bug and the answer it must give once fixed),
// and the outcome notation both the file and the runner's report use.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kq::conformance {

// What a connection gave back, seen from the case: every status in order (1xx interim ones included),
// except the probe's answer, which is the flag.
struct Outcome {
    std::vector<int> statuses;
    bool probe = false;  // the probe request after the case was answered: the connection stayed usable

    // "400", "100 200 +probe", "200*2500 +probe", "(none)": the notation of cases.txt.
    std::string text() const;
    bool operator==(const Outcome&) const = default;
};

// Parses the notation of Outcome::text(); throws std::invalid_argument on anything else.
Outcome parse_outcome(std::string_view text);

// Whether two outcomes agree the way the suite compares a server with nginx: as many final answers with
// the same status classes (2xx, 4xx, 5xx), as many 1xx answers, and the same probe outcome.
bool same_classes(const Outcome& a, const Outcome& b);

enum class Expectation {
    same,       // kqserver answers as nginx does
    differs,    // kqserver deliberately answers `outcome`, and nginx does not
    known_bug,  // kqserver should answer `outcome` (RFC 9112/9110) but does not yet
};

struct Case {
    std::string name;
    int line = 0;                     // in cases.txt, for messages
    std::vector<std::string> pieces;  // the bytes; more than one where the file marks split points
    bool split_bytes = false;         // also send the bytes to kqserver one per send()
    int requests = 1;                 // requests the bytes hold: the probe is the one after them
    std::set<int> head;               // which of them (1-based) are HEAD: their answers have no body
    Expectation expect = Expectation::same;
    Outcome outcome;     // differs, known_bug: kqserver's exact outcome
    std::string reason;  // differs, known_bug: why, with the RFC section

    std::string bytes() const;  // the pieces joined
    bool split() const { return split_bytes || pieces.size() > 1; }
};

// Reads a case file (the format is described at the top of cases.txt); throws std::runtime_error naming
// the line of the first malformed case.
std::vector<Case> load_cases(const std::string& path);

// One case line without its line number (exposed for the format's own test).
Case parse_case_line(std::string_view line);

// The C-style escapes of cases.txt for printing bytes: \r \n \t \\ \" \xNN.
std::string escape(std::string_view bytes);

}  // namespace kq::conformance
