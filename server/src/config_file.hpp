// --config FILE (kq/app.hpp): every flag of a server binary, its own included, from a TOML file of
// `key = value` lines, the key a flag's long name without its dashes. CLI11 reads the values
// (App::set_config); this file checks the file first, because CLI11 alone says nothing of a repeated key
// (it keeps the first), skips a line shorter than 3 bytes, takes a line without '=' as a flag set to
// true, reads a directory as an empty file, and names an unknown key without its line.
// Thread rules: main thread only, while parsing flags.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>

namespace kq {

// What the check found: where each flag was set in the file, to point at the line of a bad value.
struct ConfigFile {
    std::string path;
    std::map<const CLI::Option*, int> lines;  // the flag -> the line that sets it (1-based)
    std::string text;                         // what was checked, and what CLI11 then reads
};

// Adds --config FILE to app. The file is checked as soon as the flag is parsed, before CLI11 reads
// it: missing or unreadable, a directory, over 1 MiB, a line that is not `key = value`, a
// section, a key that names no flag (or names --config or --help), a flag set twice: a
// CLI::ValidationError, "--config: FILE line N: ..." once CLI11 names the flag. CLI11 then reads the
// text that was checked, not the file again (a pipe, --config <(...), can be read once; a file may
// change meanwhile). Flags given on the command line win over the file.
CLI::Option* add_config_flag(CLI::App& app, ConfigFile& file);

// For an error from app.parse() that begins with a flag's name: " (FILE line N)" when that flag's
// value came from the file (it was set there and not on the command line), else "".
std::string config_origin(const CLI::App& app, const ConfigFile& file, const std::string& error, int argc, char** argv);

}  // namespace kq
