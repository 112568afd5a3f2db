// The shape of the offered load: an open-loop rate profile (steps and linear ramps), the intended send
// times it gives one schedule, and one generator's share of the load when several run it together
// (--segment I/N). Pure arithmetic: no clocks, no threads; any thread may call it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kq::bench {

// One stage of an open-loop profile: the rate goes linearly from `from` to `to` requests/s over
// duration_ns (from == to: a step). kForever: the stage never ends (a plain --rate R).
struct RateStage {
    double from = 0, to = 0;
    int64_t duration_ns = 0;
};
inline constexpr int64_t kForever = INT64_MAX;

// Requests offered by a stage: the integral of its rate.
double stage_requests(const RateStage& s);

// Requests the profile offers from from_ns to to_ns after its start: the integral of its rate.
double offered_between(const std::vector<RateStage>& stages, int64_t from_ns, int64_t to_ns);

// "--rate" text: "R" (a constant rate, duration from -d) or a list "R@D,A-B@D,..." (a step of R
// requests/s for D, a ramp from A to B over D). Rates are non-negative decimals up to max_rate; every
// D is more than 0, and their sum at most max_total_ns. Returns the stages (one of duration kForever for
// "R"), or an error message that names the bad part.
struct RateProfileParse {
    std::vector<RateStage> stages;
    std::string error;
};
RateProfileParse parse_rate_profile(std::string_view text, double max_rate, int64_t max_total_ns);

// Intended send times of one schedule. Slot k is due when the integral of the rate since start reaches
// k + phase (phase in [0, 1) staggers schedules that run side by side): for a step of rate r that is
// every 1/r s, for a ramp the root of the quadratic. Over a finite profile the number of slots is
// ceil(integral - phase): the count the rate promises, no more and no fewer.
class RateSchedule {
public:
    RateSchedule() = default;
    RateSchedule(std::vector<RateStage> stages, int64_t start_ns, double phase);
    // The next slot's intended time (ns, on start_ns's clock), or nullopt when the profile is over.
    std::optional<int64_t> next();

private:
    std::vector<RateStage> stages_;
    size_t stage_ = 0;
    int64_t stage_start_ = 0;
    double stage_base_ = 0;  // slots offered before the current stage
    double position_ = 0;    // the next slot, in slots since start
};

// --segment I/N: generator I (1-based) of N. Connections split like the engine's threads (the first
// C mod N segments take one more); --requests likewise; every rate is scaled by the segment's share of
// the connections, so each connection runs the same schedule whichever generator holds it.
struct Segment {
    int index = 1, count = 1;
};
// "I/N" with 1 <= I <= N <= 1,000,000; nullopt otherwise.
std::optional<Segment> parse_segment(std::string_view text);
// The share of `total` items given to segment s.
uint64_t segment_share(uint64_t total, Segment s);
// The fraction of the whole load segment s offers: its connections over all connections.
double segment_fraction(int connections, Segment s);

}  // namespace kq::bench
