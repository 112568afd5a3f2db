// --config FILE: the checks CLI11's own reading of the file leaves out (config_file.hpp), and where in the
// file a bad value was set.
#include "config_file.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace kq {
namespace {

// A configuration file is a few dozen lines; anything this big is not one.
constexpr size_t kMaxConfigBytes = 1 << 20;
// A key shown in an error line is cut here, so that one line stays one readable line.
constexpr size_t kMaxShownKey = 64;

std::string_view trimmed(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// The key as it may be printed: cut, and bytes that are not printable ASCII as '?'.
std::string shown(std::string_view key) {
    std::string s(key.substr(0, kMaxShownKey));
    for (char& c : s)
        if (c < 0x20 || c > 0x7e) c = '?';
    return key.size() > kMaxShownKey ? s + "..." : s;
}

bool is_key(std::string_view key) {
    if (key.empty()) return false;
    for (char c : key)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    return true;
}

// The file's text, or an error (missing, unreadable, a directory, too big). Not only regular files:
// --config <(...) is a pipe.
std::string read_config(const std::string& path, std::string& text) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
    if (S_ISDIR(st.st_mode)) return path + ": is a directory";
    std::ifstream in(path, std::ios::binary);
    if (!in) return path + ": " + std::strerror(errno);
    text.resize(kMaxConfigBytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) return path + ": read error";
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) return path + ": larger than 1 MiB";
    return "";
}

// Checks one `key = value` line; "" or the error (without the file and line).
std::string check_key(const CLI::App& app, std::string_view key, int line_no, ConfigFile& file) {
    if (key.size() >= 2 && key.front() == '"' && key.back() == '"') key = key.substr(1, key.size() - 2);
    const CLI::Option* op = is_key(key) ? app.get_option_no_throw("--" + std::string(key)) : nullptr;
    if (op == nullptr) return "unknown key '" + shown(key) + "' (keys are the flags' long names)";
    if (op == app.get_help_ptr() || !op->get_configurable())
        return "'" + std::string(key) + "' cannot be set in a configuration file";
    if (auto [it, added] = file.lines.emplace(op, line_no); !added) {
        return "'" + std::string(key) + "' set again (" + op->get_name() + " was set on line " +
               std::to_string(it->second) + ")";
    }
    return "";
}

// Checks every line of the file's text, as CLI11's ConfigTOML will read it: comments from '#' on, arrays
// in [ ] that may go on over the next lines. "" or the error with its line.
std::string check_lines(const CLI::App& app, const std::string& text, ConfigFile& file) {
    std::istringstream in(text);
    std::string raw;
    for (int line_no = 1; std::getline(in, raw); ++line_no) {
        const std::string_view line = trimmed(raw);
        if (line.empty() || line.front() == '#') continue;
        const std::string at = file.path + " line " + std::to_string(line_no) + ": ";
        if (line.front() == '[') return at + "sections are not used: every line is KEY = VALUE";
        const size_t eq = line.find('=');
        if (eq == std::string_view::npos) return at + "expected KEY = VALUE, got '" + shown(line) + "'";
        if (std::string err = check_key(app, trimmed(line.substr(0, eq)), line_no, file); !err.empty()) return at + err;
        std::string_view value = trimmed(line.substr(eq + 1));
        value = trimmed(value.substr(0, value.find('#')));
        if (value.size() > 1 && value.front() == '[') {  // an array: up to the line that closes it
            while (value.back() != ']' && std::getline(in, raw)) {
                ++line_no;
                value = trimmed(raw);
                value = trimmed(value.substr(0, value.find('#')));
                if (value.empty()) value = " ";
            }
        }
    }
    return "";
}

// CLI11's TOML reader on the text the check read (CLI11 opens the file again, and reads nothing from it).
class CheckedToml final : public CLI::ConfigTOML {
public:
    explicit CheckedToml(const ConfigFile& file) : file_(file) {}
    std::vector<CLI::ConfigItem> from_config(std::istream&) const override {
        std::istringstream in(file_.text);
        return CLI::ConfigTOML::from_config(in);
    }

private:
    const ConfigFile& file_;
};

}  // namespace

CLI::Option* add_config_flag(CLI::App& app, ConfigFile& file) {
    auto* opt = app.set_config("--config", "",
                               "Read flags from this TOML file: one KEY = VALUE per line, KEY a flag's long name "
                               "without the dashes (port = 8080), '#' comments; flags on the command line "
                               "override it. An unknown or repeated key is an error naming its line");
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.config_formatter(std::make_shared<CheckedToml>(file));
    opt->type_name("FILE")->trigger_on_parse()->each([&app, &file](const std::string& path) {
        file.path = path;
        file.lines.clear();
        std::string err = read_config(path, file.text);
        if (err.empty()) err = check_lines(app, file.text, file);
        if (!err.empty()) throw CLI::ValidationError(err);  // CLI11 puts "--config: " before it
    });
    return opt;
}

std::string config_origin(const CLI::App& app, const ConfigFile& file, const std::string& error, int argc,
                          char** argv) {
    if (file.lines.empty() || !error.starts_with("--")) return "";
    const CLI::Option* op = app.get_option_no_throw(error.substr(0, error.find_first_of(":= ")));
    auto it = op == nullptr ? file.lines.end() : file.lines.find(op);
    if (it == file.lines.end()) return "";
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        for (const std::string& name : op->get_lnames()) {
            const std::string flag = "--" + name;
            if (arg == flag || arg.starts_with(flag + "=")) return "";  // the command line's value
        }
    }
    return " (" + file.path + " line " + std::to_string(it->second) + ")";
}

}  // namespace kq
