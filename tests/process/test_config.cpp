// --config FILE: every flag from a TOML file, the command line winning, the shipped example accepted as
// it is and naming every flag, a program's own flags from the file too (kqproxy, kqmemcache), and every
// kind of bad file refused with one line that names the key or the problem and its line, exit status 2.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#if !defined(KQSERVER_PATH) || !defined(KQPROXY_PATH) || !defined(KQMEMCACHE_PATH) || !defined(KQ_EXAMPLE_CONFIG)
#error "KQSERVER_PATH, KQPROXY_PATH, KQMEMCACHE_PATH and KQ_EXAMPLE_CONFIG must be set (tests/process/CMakeLists.txt)"
#endif
#include "child_process.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

struct Exit {
    int status = -1;  // waitpid status, -1 if still running after the wait
    std::string err;
};

Exit run_to_exit(const char* program, std::vector<std::string> args, int timeout_ms = 10'000) {
    ChildProcess p(program, std::move(args));
    Exit r;
    r.status = p.wait_exit(timeout_ms);
    r.err = p.log();
    return r;
}

bool exited_with(const Exit& r, int code) {
    return r.status != -1 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == code;
}

// GET / over a fresh connection: the status line.
std::string http_status_line(uint16_t port) {
    UniqueFd c = connect_with_read_timeout(port);
    send_all(c.get(), std::string("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const std::string reply = recv_until_eof(c.get());
    return reply.substr(0, reply.find("\r\n"));
}

// The shipped example, exactly as installed: kqserver starts with it (only the port moved to a free
// one, on the command line) and serves what it says (protocol http).
TEST(Config, ShippedExampleIsAcceptedAsItIs) {
    ServerProcess p({"--config", KQ_EXAMPLE_CONFIG, "--port", "0"});
    EXPECT_EQ(http_status_line(p.port()), "HTTP/1.1 200 OK");
    expect_clean_exit(p);
    const std::string log = p.log();
    EXPECT_NE(log.find("protocol http"), std::string::npos) << log;
    EXPECT_NE(log.find("batch 256"), std::string::npos) << log;
}

// Every flag `kqserver --help` lists (but --help and --config) is a key of the example, set or
// commented out: a new flag without its line in the example fails here.
TEST(Config, ShippedExampleNamesEveryFlag) {
    ChildProcess help(KQSERVER_PATH, {"--help"});
    std::string text;
    while (auto line = help.wait_line("", 10'000)) text += *line + "\n";
    ASSERT_TRUE(exited_with({help.wait_exit(10'000), ""}, 0));
    std::ifstream in(KQ_EXAMPLE_CONFIG);
    std::set<std::string> keys;
    const std::regex key_line(R"(^#? *([a-z0-9-]+) *=.*)");
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, key_line)) keys.insert(m[1]);
    }
    const std::regex flag(R"(--([a-z0-9-]+))");
    size_t flags = 0;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("  -")) continue;  // an option's line, not its help text or the footer
        const std::string names = line.substr(0, line.find("  ", 2));
        bool found = false, skip = false;
        std::string first;
        for (std::sregex_iterator it(names.begin(), names.end(), flag), end; it != end; ++it) {
            const std::string name = (*it)[1];
            if (first.empty()) first = name;
            skip = skip || name == "help" || name == "config" || name == "version";
            found = found || keys.count(name) > 0;
        }
        if (first.empty() || skip) continue;
        ++flags;
        EXPECT_TRUE(found) << "--" << first << " has no line in " << KQ_EXAMPLE_CONFIG;
    }
    EXPECT_GT(flags, 25u) << "the flags were not found in --help:\n" << text;
}

// Values from the file apply (the protocol, and what it implies: --defer-accept auto is 1 s for http),
// and a flag on the command line wins over the file.
TEST(Config, FileAppliesAndTheCommandLineWins) {
    TempDir dir;
    const std::string file = dir.write("k.toml",
                                       "# a comment\r\n"
                                       "protocol = \"http\"\r\n"
                                       "\r\n"
                                       "  batch=7   # a comment after the value\r\n"
                                       "workers = 1\r\n"
                                       "\"log-level\" = info\r\n"
                                       "header-timeout = 3\r\n");
    ServerProcess p({"--config", file, "--port", "0", "--batch", "9"});
    EXPECT_EQ(http_status_line(p.port()), "HTTP/1.1 200 OK");
    expect_clean_exit(p);
    const std::string log = p.log();
    EXPECT_NE(log.find("1 workers"), std::string::npos) << log;
    EXPECT_NE(log.find("batch 9,"), std::string::npos) << log;
    EXPECT_NE(log.find("defer-accept 1 s"), std::string::npos) << log;
}

// A pipe (--config <(...)) is read once: what was checked is what applies.
TEST(Config, APipeIsReadOnce) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd r(fds[0]), w(fds[1]);
    const std::string text = "workers = 1\nbatch = 5\n";
    ASSERT_EQ(::write(w.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
    w.reset();
    ChildProcess p(KQSERVER_PATH, {"--config", "/dev/fd/3", "--port", "0"}, 0, {r.get()});
    ASSERT_TRUE(p.wait_line("listening ", 20'000)) << p.log();
    expect_clean_exit(p);
    EXPECT_NE(p.log().find("1 workers"), std::string::npos) << p.log();
    EXPECT_NE(p.log().find("batch 5,"), std::string::npos) << p.log();
}

// An empty file is a configuration with nothing in it: the defaults.
TEST(Config, EmptyFileMeansTheDefaults) {
    TempDir dir;
    ServerProcess p({"--config", dir.write("empty.toml", ""), "--port", "0", "--workers", "1"});
    UniqueFd c = connect_with_read_timeout(p.port());
    send_all(c.get(), std::string("ping"));
    EXPECT_EQ(recv_exact(c.get(), 4), "ping");  // echo, the default protocol
    c.reset();
    expect_clean_exit(p);
}

struct BadFile {
    std::string name;                   // for the failure message
    std::string text;                   // the file's content
    std::vector<std::string> expected;  // what the error line must contain
};

std::vector<BadFile> bad_files() {
    return {
        {"unknown key", "port = 0\n# comment\nprot = \"http\"\n", {"line 3", "unknown key 'prot'"}},
        {"repeated key", "port = 0\nbatch = 1\nport = 1\n", {"line 3", "'port' set again", "line 1"}},
        {"repeated through its other name", "request-timeout = 1\nheader-timeout = 2\n", {"line 2", "line 1"}},
        {"wrong type", "port = 0\nworkers = \"many\"\n", {"--workers", "line 2"}},
        {"NaN duration", "\n\nidle-timeout = nan\n", {"--idle-timeout", "line 3"}},
        {"negative count", "max-connections = -1\n", {"--max-connections", "line 1"}},
        {"not one of", "dispatch = random\n", {"--dispatch", "line 1"}},
        {"two values for one", "batch = [1, 2]\n", {"--batch", "line 1"}},
        {"no equals sign", "port 8080\n", {"line 1", "expected KEY = VALUE"}},
        {"a short line CLI11 would skip", "ab\n", {"line 1", "expected KEY = VALUE"}},
        {"a section", "[server]\nport = 1\n", {"line 1", "sections"}},
        {"a dotted key", "server.port = 1\n", {"line 1", "unknown key 'server.port'"}},
        {"config in config", "config = \"other.toml\"\n", {"line 1", "'config' cannot be set"}},
        {"help in config", "help = true\n", {"line 1", "'help' cannot be set"}},
        {"version in config", "version = true\n", {"line 1", "'version' cannot be set"}},
        {"a kqserver flag that is not an option", "--port = 1\n", {"line 1", "unknown key"}},
        {"cross-flag check", "low-water = 5000\nhigh-water = 4096\n", {"--low-water", "--high-water"}},
        {"excluded pair", "offload-ms = 1\nblock-ms = 1\n", {"--offload-ms"}},
        {"binary",
         std::string("\x7f"
                     "ELF\x02\x01\x01\0\0\0=\xff\n",
                     14),
         {"line 1", "unknown key"}},
        {"huge key", "port = 0\n" + std::string(200'000, 'k') + " = 1\n", {"line 2", "unknown key 'kkk", "..."}},
        {"huge value", "batch = " + std::string(500'000, '9') + "\n", {"--batch", "...", "line 1"}},
    };
}

// (--port 0 on the command line keeps a file that is wrongly taken from binding a fixed port; so no
// case puts its bad value in port, which the command line's would override.)
TEST(Config, BadFilesExitTwoWithOneLineNamingKeyAndLine) {
    TempDir dir;
    int i = 0;
    for (const BadFile& b : bad_files()) {
        const std::string file = dir.write("bad" + std::to_string(i++) + ".toml", b.text);
        const Exit r = run_to_exit(KQSERVER_PATH, {"--config", file, "--port", "0"});
        EXPECT_TRUE(exited_with(r, 2)) << b.name << ": status " << r.status << ", stderr: " << r.err;
        EXPECT_EQ(count(r.err, "\n"), 1u) << b.name << ": " << r.err;
        EXPECT_LT(r.err.size(), 1000u) << b.name << ": the line is not readable";
        for (const std::string& e : b.expected)
            EXPECT_NE(r.err.find(e), std::string::npos) << b.name << ": no '" << e << "' in: " << r.err;
    }
}

// Files that are not configurations at all: each one line naming --config and the problem, exit 2.
TEST(Config, MissingDirectoryOrTooLargeFileExitTwo) {
    TempDir dir;
    const std::string big = dir.write("big.toml", std::string((1 << 20) + 1, '#'));
    const std::vector<std::pair<std::string, std::string>> cases = {
        {dir.path() + "/missing.toml", "No such file or directory"},
        {dir.path(), "is a directory"},
        {big, "larger than 1 MiB"},
    };
    for (const auto& [path, expected] : cases) {
        const Exit r = run_to_exit(KQSERVER_PATH, {"--config", path, "--port", "0"});
        EXPECT_TRUE(exited_with(r, 2)) << path << ": status " << r.status << ", stderr: " << r.err;
        EXPECT_EQ(count(r.err, "\n"), 1u) << path << ": " << r.err;
        EXPECT_NE(r.err.find("--config"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(expected), std::string::npos) << path << ": " << r.err;
    }
}

// A bad value given on the command line is the command line's: the error names no line of the file.
TEST(Config, CommandLineErrorIsNotBlamedOnTheFile) {
    TempDir dir;
    const std::string file = dir.write("k.toml", "workers = 1\n");
    const Exit r = run_to_exit(KQSERVER_PATH, {"--config", file, "--workers", "-1"});
    EXPECT_TRUE(exited_with(r, 2)) << r.err;
    EXPECT_NE(r.err.find("--workers"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("line"), std::string::npos) << r.err;
}

// kqproxy's own flags from the file: --upstream is required and repeatable (an array), and the proxy
// forwards to what the file named.
TEST(Config, KqproxyTakesItsOwnFlagsFromTheFile) {
    ServerProcess backend({"--port", "0", "--workers", "1"});
    TempDir dir;
    const std::string up = "\"127.0.0.1:" + std::to_string(backend.port()) + "\"";
    const std::string file = dir.write(
        "proxy.toml", "port = 0\nworkers = 1\nupstream = [" + up + ",\n  " + up + "]\nconnect-timeout = 500\n");
    ChildProcess proxy(KQPROXY_PATH, {"--config", file});
    const auto address = proxy.wait_line("listening ", 20'000);
    ASSERT_TRUE(address) << proxy.log();
    UniqueFd c = connect_with_read_timeout(static_cast<uint16_t>(std::stoi(address->substr(address->rfind(':') + 1))));
    send_all(c.get(), std::string("through"));
    EXPECT_EQ(recv_exact(c.get(), 7), "through");
    c.reset();
    expect_clean_exit(proxy);
    EXPECT_NE(proxy.log().find("2 backends"), std::string::npos) << proxy.log();
    expect_clean_exit(backend);
    // kqserver's own flags are not kqproxy's: the same file with one is refused.
    const Exit r =
        run_to_exit(KQPROXY_PATH, {"--config", dir.write("p2.toml", "upstream = [" + up + "]\nmax-body = 1\n")});
    EXPECT_TRUE(exited_with(r, 2)) << r.err;
    EXPECT_NE(r.err.find("unknown key 'max-body'"), std::string::npos) << r.err;
}

TEST(Config, KqmemcacheTakesItsOwnFlagsFromTheFile) {
    TempDir dir;
    const std::string file = dir.write("mc.toml", "port = 0\nworkers = 1\nmemory-limit = 3\n");
    ChildProcess mc(KQMEMCACHE_PATH, {"--config", file});
    ASSERT_TRUE(mc.wait_line("listening ", 20'000)) << mc.log();
    expect_clean_exit(mc);
    EXPECT_NE(mc.log().find("memory limit 3 MiB"), std::string::npos) << mc.log();
    const Exit r = run_to_exit(KQMEMCACHE_PATH, {"--config", dir.write("mc2.toml", "port = 0\nmemory-limit = x\n")});
    EXPECT_TRUE(exited_with(r, 2)) << r.err;
    EXPECT_NE(r.err.find("--memory-limit"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
}

}  // namespace
