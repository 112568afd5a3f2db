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

    void merge(const Stats& o);
    uint64_t error_total() const;
};

struct ServerCpu {
    int pid = 0;
    uint64_t cpu_us = 0;  // utime + stime over the measured window
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
};

nlohmann::json config_to_json(const Config& c);
nlohmann::json to_json(const Report& r);
// Throws std::invalid_argument naming what is wrong.
Report report_from_json(const nlohmann::json& j);
// Runs that happened at the same time (e.g. from several machines): counts and histograms add exactly,
// rates add, the window is the longest. Server CPU is kept only if exactly one run measured it.
Report merge_reports(const std::vector<Report>& runs);

void print_summary(std::ostream& out, const Report& r);
// The percentile spectrum: value at 0, 50, 75, 87.5, ... percent (halving the rest each line) to 100.
void print_spectrum(std::ostream& out, const Histogram& h);

}  // namespace kq::bench
