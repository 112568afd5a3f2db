// A run's figures: what the bench threads counted (Stats), the report built from them, its JSON form,
// the exact merge of several runs, and the human summary.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kqbench/config.hpp"
#include "kqbench/histogram.hpp"

namespace kq::bench {

// Counted by one bench thread over the measured window (connect errors: over the whole run), then summed.
struct Stats {
    uint64_t sent = 0;    // measured requests written (or attempted) to a socket
    uint64_t ok = 0;      // measured requests answered correctly (2xx for http)
    uint64_t failed = 0;  // measured requests that timed out, failed verification, got a non-2xx
                          // status or were lost with their connection: sent == ok + failed
    uint64_t unsent = 0;  // open loop: measured requests scheduled but not sent before the end
    uint64_t bytes_sent = 0, bytes_received = 0;
    uint64_t connects = 0;     // successful connects, reconnects included
    uint64_t established = 0;  // connection slots that connected at least once
    ErrorCounts errors{};
    std::map<int, uint64_t> status_codes;     // http: non-2xx statuses
    uint64_t sets = 0, hits = 0, misses = 0;  // memcache/resp, answered: SETs stored, GETs found or not
    Histogram latency;                        // µs, from each request's intended send time (open loop) or send time
    Histogram latency_uncorrected;            // µs, from the actual send time (open loop only; else equal to latency)
    int64_t last_done_ns = 0;                 // steady clock of the last measured completion or failure
    int64_t first_send_ns = INT64_MAX;        // steady clock of the first request written (warm-up included)

    void merge(const Stats& o);
    uint64_t error_total() const;
};

struct ServerCpu {
    int pid = 0;
    uint64_t cpu_us = 0;  // utime + stime over the measured window
};

// --start-at: when the generator was to start and when its first request actually left, in Unix time
// (s). For a merge: the earliest and the latest generator's first send, and the skew of the one furthest
// from its start time.
struct StartReport {
    double at = 0;               // --start-at
    double released = 0;         // the threads were released (a merge: the earliest)
    double first_send = 0;       // the first request written (a merge: the earliest generator's)
    double last_first_send = 0;  // the latest generator's first send (a single run: first_send)
    double max_skew_s = 0;       // first_send - at, signed, of the generator furthest from at
};

struct Report {
    nlohmann::json config;    // the settings, as in the JSON file
    std::string description;  // one line, e.g. "echo 64 B, 2 threads, 10 connections, ..."
    std::string target;       // host:port
    bool open_loop = false;
    int runs = 1;          // > 1 for a merge
    double elapsed_s = 0;  // the measured window (for a merge: the longest)
    int connections = 0;   // requested
    Stats stats;
    double requests_per_s = 0;  // ok / elapsed (for a merge: the sum of the runs' rates)
    double bytes_sent_per_s = 0, bytes_received_per_s = 0;
    std::optional<ServerCpu> server;
    std::optional<StartReport> start;
    Segment segment;  // --segment of this run (a merge: 1/1)
    // Per second of the measured window (interval_json(), plus "offered" in open loop); null if none.
    nlohmann::json intervals;
    // A merge: each input run's own p99 (µs, corrected), to show what averaging them would claim.
    std::vector<uint64_t> run_p99_us;
};

nlohmann::json config_to_json(const Config& c);
nlohmann::json to_json(const Report& r);
// Throws std::invalid_argument naming what is wrong.
Report report_from_json(const nlohmann::json& j);
// Runs that happened at the same time (e.g. from several machines): counts and histograms add exactly,
// rates add, the window is the longest. Server CPU is kept only if exactly one run measured it.
Report merge_reports(const std::vector<Report>& runs);

// The mean of run_p99_us: what averaging the runs' p99s would claim (0 if not a merge).
double averaged_p99(const Report& r);

void print_summary(std::ostream& out, const Report& r);
// The percentile spectrum: value at 0, 50, 75, 87.5, ... percent (halving the rest each line) to 100.
void print_spectrum(std::ostream& out, const Histogram& h);

}  // namespace kq::bench
