// Logging set-up: stderr sink, compact pattern, level by name.
#include "kq/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace kq {

bool setup_logging(std::string_view level) {
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off") return false;
    static bool installed = false;
    if (!installed) {
        spdlog::set_default_logger(spdlog::stderr_logger_mt("kq"));
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
        installed = true;
    }
    spdlog::set_level(lvl);
    return true;
}

}  // namespace kq
