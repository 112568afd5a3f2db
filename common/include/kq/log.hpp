// Logging set-up shared by the binaries: one spdlog logger on stderr, level chosen by --log-level,
// lines as text or as one JSON object each (--log-format).
#pragma once

#include <string_view>

namespace kq {

// The accepted --log-level names, for CLI validation.
inline constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
// The accepted --log-format names: text (time, level, message) or json (one object per line: time in
// UTC, level, thread, message; any byte of the message escaped, invalid UTF-8 replaced by U+FFFD).
inline constexpr std::string_view kLogFormats[] = {"text", "json"};
// Sets the default logger to stderr with the given level ("info" etc.) and format ("text" or "json");
// returns false for an unknown name.
bool setup_logging(std::string_view level, std::string_view format = "text");

}  // namespace kq
