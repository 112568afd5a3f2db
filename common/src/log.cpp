// Logging set-up: stderr sink, level by name, a compact text pattern or one JSON object per line.
#include "kq/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

namespace kq {
namespace {

// {"time":"2026-12-02T17:24:56.123Z","level":"info","thread":1234,"message":"..."} and a newline. The
// message goes through nlohmann-json, which escapes quotes, backslashes and control bytes and (with
// error_handler_t::replace) turns bytes that are not UTF-8 into U+FFFD, so that no message, whatever a
// client put in it, can break the line or make it unparseable. Logs are rare (start, stop, warnings):
// the allocations here cost nothing that matters.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        nlohmann::ordered_json line;
        line["time"] = utc_time(msg.time);
        const auto level = spdlog::level::to_string_view(msg.level);
        line["level"] = std::string(level.data(), level.size());
        line["thread"] = msg.thread_id;
        line["message"] = std::string(msg.payload.data(), msg.payload.size());
        const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        dest.append(text.data(), text.data() + text.size());
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

private:
    static std::string utc_time(spdlog::log_clock::time_point t) {
        const auto since = t.time_since_epoch();
        const std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since).count();
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char buf[96];  // room for any int in each field, as the compiler checks
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
        return buf;
    }
};

}  // namespace

bool setup_logging(std::string_view level, std::string_view format) {
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off") return false;
    if (format != "text" && format != "json") return false;
    static bool installed = false;
    if (!installed) {
        spdlog::set_default_logger(spdlog::stderr_logger_mt("kq"));
        installed = true;
    }
    if (format == "json") spdlog::set_formatter(std::make_unique<JsonFormatter>());
    else spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(lvl);
    return true;
}

}  // namespace kq
