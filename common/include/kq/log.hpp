// Logging set-up shared by the binaries: one spdlog logger on stderr, level chosen by --log-level.
#pragma once

#include <string_view>

namespace kq {

// The accepted --log-level names, for CLI validation.
inline constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
// Sets the default logger to stderr with the given level ("info" etc.); returns false for an unknown name.
bool setup_logging(std::string_view level);

}  // namespace kq
