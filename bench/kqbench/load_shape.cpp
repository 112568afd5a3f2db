// Rate profiles (parsing and the slot times they give), and the arithmetic of --segment shares.
#include "kqbench/load_shape.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "kqbench/units.hpp"

namespace kq::bench {
namespace {

// A non-negative decimal ("1000", "2.5"): digits and one optional point, no sign or exponent.
std::optional<double> parse_rate(std::string_view text, double max_rate) {
    if (text.empty() || text.find_first_not_of("0123456789.") != std::string_view::npos) return std::nullopt;
    std::string s(text);
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(v) || v < 0 || v > max_rate) return std::nullopt;
    return v;
}

std::string parse_stage(std::string_view text, double max_rate, RateStage& out) {
    const std::string quoted = "'" + std::string(text) + "'";
    if (text.empty()) return "an empty stage";
    const size_t at = text.find('@');
    if (at == std::string_view::npos) return "stage " + quoted + " has no @DURATION";
    std::string_view rates = text.substr(0, at), duration = text.substr(at + 1);
    auto ns = parse_duration_ns(duration);
    if (!ns || *ns <= 0) return "stage " + quoted + ": '" + std::string(duration) + "' is not a duration above 0";
    const size_t dash = rates.find('-', 1);
    auto from = parse_rate(rates.substr(0, dash), max_rate);
    auto to = dash == std::string_view::npos ? from : parse_rate(rates.substr(dash + 1), max_rate);
    if (!from || !to) {
        return "stage " + quoted + ": '" + std::string(rates) + "' is not RATE or FROM-TO (requests/s from 0 to " +
               std::to_string(static_cast<uint64_t>(max_rate)) + ")";
    }
    out = {*from, *to, *ns};
    return "";
}

// Seconds into a stage at which `slots` slots have been offered.
double stage_offset_s(const RateStage& s, double slots) {
    const double d = static_cast<double>(s.duration_ns) / 1e9;
    if (slots <= 0) return 0;  // also a ramp from 0, whose root below would be 0/0
    if (s.from == s.to) return slots / s.from;
    // from*t + a*t^2/2 = slots with a = (to - from) / d; this form of the root stays exact when a -> 0
    // and needs no special case for a ramp down (a < 0) or one from 0.
    const double a = (s.to - s.from) / d;
    const double root = std::sqrt(std::max(0.0, s.from * s.from + 2 * a * slots));
    return std::min(d, 2 * slots / (s.from + root));
}

}  // namespace

double stage_requests(const RateStage& s) { return (s.from + s.to) / 2 * (static_cast<double>(s.duration_ns) / 1e9); }

double offered_between(const std::vector<RateStage>& stages, int64_t from_ns, int64_t to_ns) {
    double total = 0;
    int64_t start = 0;
    for (const RateStage& s : stages) {
        const int64_t end = s.duration_ns == kForever ? kForever : start + s.duration_ns;
        const int64_t a = std::max(from_ns, start), b = std::min(to_ns, end);
        if (a < b) {
            // The rate is linear inside a stage: its mean over [a, b] is the rate at the midpoint.
            const double d = static_cast<double>(s.duration_ns);
            const double mid = (static_cast<double>(a - start) + static_cast<double>(b - start)) / 2;
            const double rate = s.from == s.to ? s.from : s.from + (s.to - s.from) * mid / d;
            total += rate * static_cast<double>(b - a) / 1e9;
        }
        if (end == kForever || end >= to_ns) break;
        start = end;
    }
    return total;
}

RateProfileParse parse_rate_profile(std::string_view text, double max_rate, int64_t max_total_ns) {
    RateProfileParse r;
    if (text.find('@') == std::string_view::npos) {
        auto rate = parse_rate(text, max_rate);
        if (!rate) {
            r.error = "'" + std::string(text) + "' is not a rate (0 to " +
                      std::to_string(static_cast<uint64_t>(max_rate)) + " requests/s) or a list of RATE@DURATION";
        } else {
            r.stages.push_back({*rate, *rate, kForever});
        }
        return r;
    }
    int64_t total = 0;
    double offered = 0;
    for (size_t begin = 0;;) {
        const size_t comma = text.find(',', begin);
        RateStage s;
        r.error = parse_stage(text.substr(begin, comma == std::string_view::npos ? comma : comma - begin), max_rate, s);
        if (!r.error.empty()) break;
        if (s.duration_ns > max_total_ns - total) {
            r.error = "the stages last more than " + format_seconds(max_total_ns);
            break;
        }
        total += s.duration_ns;
        offered += stage_requests(s);
        r.stages.push_back(s);
        if (comma == std::string_view::npos) break;
        begin = comma + 1;
    }
    if (r.error.empty() && offered < 1) r.error = "the stages offer less than one request in all";
    if (!r.error.empty()) r.stages.clear();
    return r;
}

RateSchedule::RateSchedule(std::vector<RateStage> stages, int64_t start_ns, double phase)
    : stages_(std::move(stages)), stage_start_(start_ns), position_(phase) {}

std::optional<int64_t> RateSchedule::next() {
    while (stage_ < stages_.size()) {
        const RateStage& s = stages_[stage_];
        const double into = position_ - stage_base_;
        if (into < stage_requests(s)) {
            position_ += 1;
            return stage_start_ + std::llround(stage_offset_s(s, into) * 1e9);
        }
        stage_base_ += stage_requests(s);
        if (s.duration_ns == kForever) break;
        stage_start_ += s.duration_ns;
        ++stage_;
    }
    stage_ = stages_.size();
    return std::nullopt;
}

std::optional<Segment> parse_segment(std::string_view text) {
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto whole = [](std::string_view s, int& out) {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return !s.empty() && s.front() != '-' && s.front() != '+' && ec == std::errc() && p == s.data() + s.size();
    };
    Segment seg;
    if (!whole(text.substr(0, slash), seg.index) || !whole(text.substr(slash + 1), seg.count)) return std::nullopt;
    if (seg.count < 1 || seg.count > 1'000'000 || seg.index < 1 || seg.index > seg.count) return std::nullopt;
    return seg;
}

uint64_t segment_share(uint64_t total, Segment s) {
    const uint64_t n = static_cast<uint64_t>(s.count), i = static_cast<uint64_t>(s.index - 1);
    return total / n + (i < total % n ? 1 : 0);
}

double segment_fraction(int connections, Segment s) {
    if (connections <= 0) return 0;
    return static_cast<double>(segment_share(static_cast<uint64_t>(connections), s)) / connections;
}

}  // namespace kq::bench
