// HTTP/1.1 framing conformance: every case of cases.txt is sent, followed by a probe request, to kqserver
// and to a real nginx configured alike; kqserver must answer as nginx does, or as the case documents
// (a deliberate difference, with the RFC section that justifies it), or is a known bug whose correct
// answer the case records: reported, not failed, until a fix makes it pass and its marker must go.
//   KQSERVER=path   test another kqserver build          NGINX=path   another nginx
//   KQ_CONFORMANCE_VERBOSE=1   one line per case with both servers' results
//   KQ_CONFORMANCE_CASES=path  another case file (a subset, say)
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "case_file.hpp"
#include "servers.hpp"
#include "wire.hpp"

#ifndef KQSERVER_PATH
#error "KQSERVER_PATH must name the kqserver binary (set by tests/CMakeLists.txt)"
#endif
#ifndef KQ_CONFORMANCE_CASES
#error "KQ_CONFORMANCE_CASES must name cases.txt (set by tests/CMakeLists.txt)"
#endif

using namespace kq::conformance;

namespace {

constexpr size_t kParallel = 16;    // connections in flight at once, over both servers
constexpr int kDeadlineMs = 8'000;  // per connection: the servers' 2 s time-outs, several times over
constexpr size_t kMinCases = 160;

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : fallback;
}

// One case's three connections: to nginx, to kqserver, and to kqserver with the bytes split (if asked).
struct CaseRun {
    const Case* c;
    Exchange nginx, kq, kq_split;
};

Exchange to(uint16_t port, std::vector<std::string> pieces) {
    Exchange x;
    x.port = port;
    x.pieces = std::move(pieces);
    return x;
}

std::vector<std::string> split_pieces(const Case& c) {
    std::vector<std::string> pieces;
    if (c.split_bytes) {
        for (char b : c.bytes()) pieces.emplace_back(1, b);
    } else {
        pieces = c.pieces;
    }
    pieces.emplace_back(kProbe);
    return pieces;
}

// Every error answer ends its connection, but 404 and 405: those answer a complete, well-framed request
// whose only fault is what it asks for. Nothing may follow any other 4xx or 5xx.
bool errors_close(const Outcome& o) {
    for (size_t i = 0; i < o.statuses.size(); ++i) {
        const int s = o.statuses[i];
        if (s >= 400 && s != 404 && s != 405 && (i + 1 < o.statuses.size() || o.probe)) return false;
    }
    return true;
}

// The verdict on one case: failure is empty if it holds, else says why not.
struct Verdict {
    Result nginx, kq;
    std::string failure;
    bool known_bug = false;  // it holds as a known bug: kqserver does not give the case's outcome yet
};

Verdict judge(const CaseRun& r) {
    const Case& c = *r.c;
    Verdict v{result_of(r.nginx, c), result_of(r.kq, c), "", false};
    // nginx answers an HTTP/0.9 request in kind, with a bare body: unreadable here, and a difference.
    if (!v.nginx.clean() && !(v.nginx.malformed && c.expect != Expectation::same)) {
        v.failure = "nginx's answer could not be read: " + v.nginx.text();
    } else if (!v.kq.clean()) {
        v.failure = "kqserver's answer could not be read: " + v.kq.text();
    } else if (!errors_close(v.kq.outcome)) {
        v.failure = "kqserver went on after an error answer";
    } else if (Result split = result_of(r.kq_split, c);
               c.split() && (!split.clean() || split.outcome != v.kq.outcome)) {
        v.failure = "sent in pieces, kqserver answered " + split.text() + " instead of " + v.kq.outcome.text();
    } else if (c.expect == Expectation::same) {
        if (!same_classes(v.kq.outcome, v.nginx.outcome)) v.failure = "kqserver differs from nginx";
    } else if (c.expect == Expectation::differs) {
        if (v.kq.outcome != c.outcome) v.failure = "kqserver no longer gives the documented " + c.outcome.text();
        else if (same_classes(v.nginx.outcome, c.outcome)) v.failure = "nginx now agrees: the case is 'same'";
    } else if (v.kq.outcome == c.outcome) {
        v.failure = "fixed: kqserver now answers " + c.outcome.text() + "; remove 'known-bug'";
    } else {
        v.known_bug = true;
    }
    return v;
}

const char* word(Expectation e) {
    switch (e) {
    case Expectation::same:
        return "same";
    case Expectation::differs:
        return "differs";
    case Expectation::known_bug:
        return "known-bug";
    }
    return "?";
}

// Judges each case and reports it: a test failure, a KNOWN BUG line, and with verbose a line per case.
struct Tally {
    std::string file;  // the case file, for messages
    size_t same = 0, differs = 0, bugs = 0;

    void add(const CaseRun& r, bool verbose) {
        const Case& c = *r.c;
        Verdict v = judge(r);
        std::string both = "nginx: " + v.nginx.text() + " | kqserver: " + v.kq.text();
        if (!v.failure.empty()) {
            ADD_FAILURE() << file << ":" << c.line << " " << c.name << " (" << word(c.expect) << "): " << v.failure
                          << "\n  " << both << "\n  bytes: \"" << escape(c.bytes()).substr(0, 300) << "\"";
        } else if (v.known_bug) {
            ++bugs;
            std::printf("KNOWN BUG %s: should be %s (%s); %s\n", c.name.c_str(), c.outcome.text().c_str(),
                        c.reason.c_str(), both.c_str());
        } else {
            ++(c.expect == Expectation::same ? same : differs);
        }
        if (verbose && !v.known_bug) {
            const char* verdict = v.failure.empty() ? word(c.expect) : "FAIL";
            std::printf("%-9s %-36s %s\n", verdict, c.name.c_str(), both.c_str());
        }
    }
};

// The case file itself: enough cases, each well formed (load_cases checks names, syntax and reasons),
// and the outcome notation reads back what it writes.
TEST(HttpConformance, CaseFileIsWellFormed) {
    std::vector<Case> cases = load_cases(KQ_CONFORMANCE_CASES);
    EXPECT_GE(cases.size(), kMinCases);
    for (const Case& c : cases) {
        EXPECT_TRUE(c.expect == Expectation::same || errors_close(c.outcome)) << c.name << ": an error must close";
    }
    for (const char* text : {"400", "100 200 +probe", "200*2500 +probe", "(none)", "+probe", "200 404 404"}) {
        EXPECT_EQ(parse_outcome(text).text(), text);
    }
    Case c = parse_case_line(R"(x requests=2 head=2 "A\r\n\x00"*2 / "\"B\"" => differs 200 404 # RFC 9112 §2)");
    EXPECT_EQ(c.pieces, (std::vector<std::string>{std::string("A\r\n\0A\r\n\0", 8), "\"B\""}));
    EXPECT_EQ(c.requests, 2);
    EXPECT_EQ(c.outcome.text(), "200 404");
    EXPECT_THROW(parse_case_line(R"(x "A" => differs 400)"), std::invalid_argument);  // no reason
    EXPECT_THROW(parse_case_line(R"(x "A\q" => same)"), std::invalid_argument);
}

TEST(HttpConformance, KqserverFramesRequestsAsNginxDoesOrAsDocumented) {
    const bool verbose = env_or("KQ_CONFORMANCE_VERBOSE", "0") != "0";
    const std::string file = env_or("KQ_CONFORMANCE_CASES", KQ_CONFORMANCE_CASES);
    std::vector<Case> cases = load_cases(file);
    TempDir dir;
    const Limits limits;
    std::unique_ptr<Server> nginx = start_nginx(env_or("NGINX", "/usr/sbin/nginx"), dir, limits);
    std::unique_ptr<Server> kq = start_kqserver(env_or("KQSERVER", KQSERVER_PATH), dir, limits);

    const auto start = std::chrono::steady_clock::now();
    std::vector<CaseRun> runs(cases.size());
    std::vector<Exchange*> all;
    for (size_t i = 0; i < cases.size(); ++i) {
        CaseRun& r = runs[i];
        r.c = &cases[i];
        // Unsplit, the case and the probe leave in one send(): the server reads them as it pleases.
        const std::string whole = cases[i].bytes() + std::string(kProbe);
        r.nginx = to(nginx->port(), {whole});
        r.kq = to(kq->port(), {whole});
        all.push_back(&r.nginx), all.push_back(&r.kq);
        if (cases[i].split()) r.kq_split = to(kq->port(), split_pieces(cases[i])), all.push_back(&r.kq_split);
    }
    run_exchanges(all, kParallel, kDeadlineMs);

    Tally tally{file};
    for (const CaseRun& r : runs) tally.add(r, verbose);
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("conformance: %zu same as nginx, %zu deliberately different, %zu known bugs, %zu total (%.1f s)\n",
                tally.same, tally.differs, tally.bugs, cases.size(), secs);

    const int st = kq->stop();
    EXPECT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << "kqserver did not exit cleanly: " << st;
    nginx->stop();
}

}  // namespace
