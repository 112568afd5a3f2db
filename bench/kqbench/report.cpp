// Stats arithmetic, the JSON form of a report (every figure plus both histograms' counts) and the exact
// merge of reports: counts and histogram buckets add, so merged percentiles are those of all samples.
#include "kqbench/report.hpp"

#include "kqbench/interval_series.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kq::bench {
namespace {

using nlohmann::json;

constexpr int kFormat = 1;  // "kqbench_report": bumped on an incompatible layout change
constexpr std::pair<const char*, double> kPercentiles[] = {
    {"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"p99.99", 99.99},
};

json latency_json(const Histogram& h) {
    json j = {{"count", h.count()}, {"mean", h.mean()}, {"min", h.min()}};
    for (const auto& [key, p] : kPercentiles) j[key] = h.value_at_percentile(p);
    j["max"] = h.max();
    j["histogram"] = h.to_json();
    return j;
}

json errors_json(const Stats& s) {
    json j = json::object();
    for (size_t k = 0; k < kErrorKinds; ++k) j[std::string(error_key(static_cast<ErrorKind>(k)))] = s.errors[k];
    j["total"] = s.error_total();
    return j;
}

ErrorCounts errors_from(const json& j) {
    ErrorCounts e{};
    for (size_t k = 0; k < kErrorKinds; ++k) e[k] = j.at(std::string(error_key(static_cast<ErrorKind>(k))));
    return e;
}

Report parse(const json& j) {
    if (j.at("kqbench_report").get<int>() != kFormat) throw std::invalid_argument("unsupported kqbench_report version");
    Report r;
    r.config = j.at("config");
    r.description = j.at("description");
    r.target = j.at("target");
    r.open_loop = j.at("open_loop");
    r.runs = j.at("runs");
    r.elapsed_s = j.at("elapsed_s");
    const json& conn = j.at("connections");
    r.connections = conn.at("requested");
    r.stats.established = conn.at("established");
    r.stats.connects = conn.at("connects");
    const json& req = j.at("requests");
    r.stats.sent = req.at("sent");
    r.stats.ok = req.at("ok");
    r.stats.failed = req.at("failed");
    r.stats.unsent = req.at("unsent");
    r.requests_per_s = req.at("per_s");
    const json& bytes = j.at("bytes");
    r.stats.bytes_sent = bytes.at("sent");
    r.stats.bytes_received = bytes.at("received");
    r.bytes_sent_per_s = bytes.at("sent_per_s");
    r.bytes_received_per_s = bytes.at("received_per_s");
    r.stats.errors = errors_from(j.at("errors"));
    for (const auto& [code, n] : j.at("status_codes").items()) r.stats.status_codes[std::stoi(code)] = n;
    r.stats.latency = Histogram::from_json(j.at("latency_us").at("histogram"));
    r.stats.latency_uncorrected = Histogram::from_json(j.at("latency_uncorrected_us").at("histogram"));
    if (j.contains("kv")) {
        const json& kv = j["kv"];
        r.stats.sets = kv.at("sets");
        r.stats.hits = kv.at("hits");
        r.stats.misses = kv.at("misses");
    }
    if (j.contains("server")) r.server = ServerCpu{j["server"].at("pid"), j["server"].at("cpu_us")};
    if (j.contains("start")) {
        const json& st = j["start"];
        r.start = StartReport{st.at("at"), st.at("released"), st.at("first_send"), st.at("last_first_send"),
                              st.at("max_skew_ms").get<double>() / 1e3};
    }
    if (j.contains("intervals")) r.intervals = j["intervals"];
    if (j.contains("segment")) r.segment = Segment{j["segment"].at("index"), j["segment"].at("count")};
    if (j.contains("merge")) r.run_p99_us = j["merge"].at("p99_us_per_run").get<std::vector<uint64_t>>();
    return r;
}

}  // namespace

void Stats::merge(const Stats& o) {
    sent += o.sent;
    ok += o.ok;
    failed += o.failed;
    unsent += o.unsent;
    bytes_sent += o.bytes_sent;
    bytes_received += o.bytes_received;
    connects += o.connects;
    established += o.established;
    for (size_t k = 0; k < kErrorKinds; ++k) errors[k] += o.errors[k];
    for (const auto& [code, n] : o.status_codes) status_codes[code] += n;
    sets += o.sets;
    hits += o.hits;
    misses += o.misses;
    latency.merge(o.latency);
    latency_uncorrected.merge(o.latency_uncorrected);
    last_done_ns = std::max(last_done_ns, o.last_done_ns);
    first_send_ns = std::min(first_send_ns, o.first_send_ns);
}

uint64_t Stats::error_total() const {
    uint64_t total = 0;
    for (uint64_t n : errors) total += n;
    return total;
}

json config_to_json(const Config& c) {
    json j = {
        {"host", c.host},
        {"port", c.port},
        {"protocol", std::string(protocol_name(c.protocol))},
        {"threads", c.threads},
        {"connections", c.connections},
        {"pipeline", c.pipeline},
        {"duration_s", static_cast<double>(c.duration_ns) / 1e9},
        {"requests", c.requests},
        {"warmup_s", static_cast<double>(c.warmup_ns) / 1e9},
        {"timeout_s", static_cast<double>(c.timeout_ns) / 1e9},
        {"rate", c.rate},
        {"connect_rate", c.connect_rate},
        {"reconnect", c.reconnect},
        {"backend", std::string(backend_name(c.backend))},
    };
    if (!c.rate_stages.empty()) {
        json stages = json::array();
        for (const RateStage& s : c.rate_stages) {
            stages.push_back(
                {{"from", s.from}, {"to", s.to}, {"duration_s", static_cast<double>(s.duration_ns) / 1e9}});
        }
        j["rate"] = c.rate_text;
        j["rate_stages"] = stages;
    }
    if (c.segment.count > 1) j["segments"] = c.segment.count;
    if (c.start_at > 0) j["start_at"] = c.start_at;
    if (c.protocol == ProtocolKind::echo || c.protocol == ProtocolKind::upper) {
        j["size_min"] = c.size_min;
        j["size_max"] = c.size_max;
    } else if (c.protocol == ProtocolKind::http) {
        j["path"] = c.path;
        j["headers"] = c.headers;
    } else if (is_key_value(c.protocol)) {
        j["keys"] = c.keys;
        j["key_prefix"] = c.key_prefix;
        j["value_size"] = c.value_size;
        j["ratio"] = std::to_string(c.set_ratio) + ":" + std::to_string(c.get_ratio);
        j["prefill"] = c.prefill;
    } else {
        j["request_bytes"] = c.request.size();
        j["reply_size"] = c.reply_size;
    }
    return j;
}

json to_json(const Report& r) {
    const Stats& s = r.stats;
    json status = json::object();
    for (const auto& [code, n] : s.status_codes) status[std::to_string(code)] = n;
    json j = {
        {"kqbench_report", kFormat},
        {"target", r.target},
        {"description", r.description},
        {"config", r.config},
        {"open_loop", r.open_loop},
        {"runs", r.runs},
        {"elapsed_s", r.elapsed_s},
        {"connections", {{"requested", r.connections}, {"established", s.established}, {"connects", s.connects}}},
        {"requests",
         {{"sent", s.sent}, {"ok", s.ok}, {"failed", s.failed}, {"unsent", s.unsent}, {"per_s", r.requests_per_s}}},
        {"bytes",
         {{"sent", s.bytes_sent},
          {"received", s.bytes_received},
          {"sent_per_s", r.bytes_sent_per_s},
          {"received_per_s", r.bytes_received_per_s}}},
        {"errors", errors_json(s)},
        {"status_codes", status},
        {"latency_us", latency_json(s.latency)},
        {"latency_uncorrected_us", latency_json(s.latency_uncorrected)},
    };
    if (s.sets + s.hits + s.misses > 0) j["kv"] = {{"sets", s.sets}, {"hits", s.hits}, {"misses", s.misses}};
    if (r.server) {
        double per_request = s.ok > 0 ? static_cast<double>(r.server->cpu_us) / static_cast<double>(s.ok) : 0;
        j["server"] = {{"pid", r.server->pid}, {"cpu_us", r.server->cpu_us}, {"cpu_us_per_request", per_request}};
    }
    if (r.intervals.is_array()) j["intervals"] = r.intervals;
    if (r.segment.count > 1) j["segment"] = {{"index", r.segment.index}, {"count", r.segment.count}};
    if (r.start) {
        const StartReport& st = *r.start;
        j["start"] = {{"at", st.at},
                      {"released", st.released},
                      {"first_send", st.first_send},
                      {"last_first_send", st.last_first_send},
                      {"max_skew_ms", st.max_skew_s * 1e3},
                      {"spread_ms", (st.last_first_send - st.first_send) * 1e3}};
    }
    if (!r.run_p99_us.empty()) j["merge"] = {{"p99_us_per_run", r.run_p99_us}, {"p99_us_averaged", averaged_p99(r)}};
    return j;
}

Report report_from_json(const json& j) {
    try {
        return parse(j);
    } catch (const json::exception& e) {
        throw std::invalid_argument(std::string("not a kqbench report: ") + e.what());
    }
}

double averaged_p99(const Report& r) {
    if (r.run_p99_us.empty()) return 0;
    double sum = 0;
    for (uint64_t p : r.run_p99_us) sum += static_cast<double>(p);
    return sum / static_cast<double>(r.run_p99_us.size());
}

namespace {

// The start of several generators: the earliest and latest first sends, the largest skew from --start-at.
std::optional<StartReport> merge_starts(const std::vector<Report>& runs) {
    std::optional<StartReport> m;
    for (const Report& r : runs) {
        if (!r.start) continue;
        if (!m) {
            m = r.start;
            continue;
        }
        m->at = std::min(m->at, r.start->at);
        m->released = std::min(m->released, r.start->released);
        m->first_send = std::min(m->first_send, r.start->first_send);
        m->last_first_send = std::max(m->last_first_send, r.start->last_first_send);
        if (std::abs(r.start->max_skew_s) > std::abs(m->max_skew_s)) m->max_skew_s = r.start->max_skew_s;
    }
    return m;
}

// Interval i of every run (they started together with --start-at): counts and histograms add.
json merge_intervals(const std::vector<Report>& runs) {
    size_t n = 0;
    for (const Report& r : runs) {
        if (!r.intervals.is_array()) return nullptr;
        n = std::max(n, r.intervals.size());
    }
    json out = json::array();
    for (size_t i = 0; i < n; ++i) {
        Histogram h;
        uint64_t ok = 0, failed = 0;
        double offered = 0, seconds = 1;
        bool has_offered = false;
        for (const Report& r : runs) {
            if (i >= r.intervals.size()) continue;
            const json& iv = r.intervals[i];
            ok += iv.at("ok").get<uint64_t>();
            failed += iv.at("failed").get<uint64_t>();
            h.merge(Histogram::from_json(iv.at("histogram")));
            if (iv.contains("offered")) offered += iv["offered"].get<double>(), has_offered = true;
            if (iv.contains("seconds")) seconds = iv["seconds"];
        }
        json iv = interval_json(static_cast<int64_t>(i), ok, failed, h);
        if (has_offered) iv["offered"] = offered;
        if (seconds < 1) iv["seconds"] = seconds, iv["per_s"] = static_cast<double>(ok) / seconds;
        out.push_back(std::move(iv));
    }
    return out;
}

}  // namespace

Report merge_reports(const std::vector<Report>& runs) {
    if (runs.empty()) throw std::invalid_argument("nothing to merge");
    Report m = runs.front();
    m.run_p99_us.clear();
    for (const Report& r : runs) {
        if (r.run_p99_us.empty()) m.run_p99_us.push_back(r.stats.latency.value_at_percentile(99));
        else m.run_p99_us.insert(m.run_p99_us.end(), r.run_p99_us.begin(), r.run_p99_us.end());
    }
    m.start = merge_starts(runs);
    m.intervals = merge_intervals(runs);
    m.segment = Segment{};
    int with_server = m.server ? 1 : 0;
    bool same_config = true, same_target = true;
    for (size_t i = 1; i < runs.size(); ++i) {
        const Report& r = runs[i];
        m.stats.merge(r.stats);
        m.runs += r.runs;
        m.connections += r.connections;
        m.open_loop = m.open_loop || r.open_loop;
        m.elapsed_s = std::max(m.elapsed_s, r.elapsed_s);
        m.requests_per_s += r.requests_per_s;
        m.bytes_sent_per_s += r.bytes_sent_per_s;
        m.bytes_received_per_s += r.bytes_received_per_s;
        if (r.server) m.server = r.server, ++with_server;
        same_config = same_config && r.config == runs.front().config;
        same_target = same_target && r.target == runs.front().target;
    }
    if (with_server != 1) m.server.reset();  // CPU windows of several runs overlap: not additive
    if (!same_target) m.target = "several targets";
    std::string base = runs.front().description;
    constexpr std::string_view kMerged = " runs merged: ";
    if (size_t at = base.find(kMerged); runs.front().runs > 1 && at != std::string::npos)
        base.erase(0, at + kMerged.size());
    // The segments of one load: the description of the whole, without the first one's segment.
    if (size_t at = base.find(", segment "); at != std::string::npos) base.erase(at);
    m.description =
        std::to_string(m.runs) + std::string(kMerged) + (same_config ? base : std::string("different settings"));
    if (!same_config) m.config = nullptr;
    return m;
}

}  // namespace kq::bench
