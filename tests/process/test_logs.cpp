// What kqserver writes about itself and its clients: --log-format json (every stderr line one JSON object
// that parses, whatever bytes a message holds) and --access-log (one Common Log Format line per answered
// request, hostile request-lines escaped so that they cannot forge or break a line).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#ifndef KQSERVER_PATH
#error "KQSERVER_PATH must name the kqserver binary (set by tests/process/CMakeLists.txt)"
#endif
#include "child_process.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Waits (polling the child's stderr, up to 10 s) until it holds `what`.
bool log_shows(const ChildProcess& p, std::string_view what) {
    const auto start = std::chrono::steady_clock::now();
    while (p.log().find(what) == std::string::npos) {
        if (ms_since(start) > 10'000) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// The start line names the access log's path, so a path made of quotes, backslashes, a newline, a tab, a
// control byte and a byte that is not UTF-8 is a hostile log message: every stderr line must still be
// one JSON object with time, level, thread and message, and the message must come back as it was (the
// invalid byte as U+FFFD).
TEST(JsonLogs, EveryLineParsesWhateverTheMessageHolds) {
    TempDir dir;
    const std::string name =
        "a\"b\\c\nd\te\x01"
        "f\xff"
        "g";
    const std::string path = dir.path() + "/" + name;
    ChildProcess p(KQSERVER_PATH, {"--log-format", "json", "--port", "0", "--workers", "1", "--protocol", "http",
                                   "--access-log", path});
    ASSERT_TRUE(p.wait_line("listening ", 20'000)) << p.log();
    ASSERT_EQ(::kill(p.pid(), SIGUSR1), 0);  // the per-worker summary: more lines
    ASSERT_TRUE(log_shows(p, "worker 0")) << p.log();
    expect_clean_exit(p);
    const auto lines = lines_of(p.log());
    ASSERT_GE(lines.size(), 3u) << p.log();
    bool start_seen = false;
    for (const std::string& line : lines) {
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
        ASSERT_TRUE(j.is_object()) << line;
        EXPECT_TRUE(j["time"].is_string() && j["level"].is_string() && j["thread"].is_number_unsigned() &&
                    j["message"].is_string())
            << line;
        EXPECT_TRUE(
            std::regex_match(j["time"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
            << line;
        const std::string message = j["message"];
        if (message.find("access log") != std::string::npos) {
            start_seen = true;
            EXPECT_EQ(j["level"], "info");
            const std::string expected = dir.path() +
                                         "/a\"b\\c\nd\te\x01"
                                         "f\xEF\xBF\xBD"
                                         "g";
            EXPECT_NE(message.find(expected), std::string::npos) << line;
        }
    }
    EXPECT_TRUE(start_seen) << p.log();
}

TEST(JsonLogs, TextIsTheDefaultAndABadFormatIsRefused) {
    {
        ServerProcess p({"--port", "0", "--workers", "1"});
        expect_clean_exit(p);
        const auto lines = lines_of(p.log());
        ASSERT_FALSE(lines.empty());
        EXPECT_TRUE(std::regex_search(lines[0], std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} .*info)")))
            << lines[0];
    }
    ChildProcess p(KQSERVER_PATH, {"--log-format", "xml"});
    const int st = p.wait_exit(10'000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2) << st;
    EXPECT_EQ(count(p.log(), "\n"), 1u) << p.log();
    EXPECT_NE(p.log().find("--log-format"), std::string::npos) << p.log();
}

// Sends raw bytes on a new connection and reads until the server closes it (every answer below closes).
std::string exchange(uint16_t port, const std::string& request) {
    UniqueFd c = connect_with_read_timeout(port);
    send_all(c.get(), request);
    return recv_until_eof(c.get());
}

struct Logged {
    std::string request;  // bytes sent
    std::string line;     // the request-line as logged between the quotes
    std::string status;
    std::string bytes;
};

// Each request on a connection of its own, one worker: the lines come in this order. Control bytes,
// quotes and backslashes are \xHH; a request refused before its head was complete logs what arrived
// of its first line; bytes are the body's ("-" for none).
std::vector<Logged> logged_requests() {
    const std::string host = "Host: x\r\nConnection: close\r\n";
    return {
        {"GET / HTTP/1.1\r\n" + host + "\r\n", "GET / HTTP/1.1", "200", "20"},
        {"HEAD /bytes/10 HTTP/1.1\r\n" + host + "\r\n", "HEAD /bytes/10 HTTP/1.1", "200", "-"},
        {"GET /bytes/100000 HTTP/1.1\r\n" + host + "\r\n", "GET /bytes/100000 HTTP/1.1", "200", "100000"},
        {"\r\nGET /a\"b\\c?q=\"x HTTP/1.0\r\n\r\n", "GET /a\\x22b\\x5Cc?q=\\x22x HTTP/1.0", "404", ""},
        {"GET /\x01\x7f\" 200 1 HTTP/1.1\r\n" + host + "\r\n", "GET /\\x01\\x7F\\x22 200 1 HTTP/1.1", "400", ""},
        {"GET /x\ry HTTP/1.1\r\n" + host + "\r\n", "GET /x\\x0Dy HTTP/1.1", "400", ""},
        {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
         "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03", "400", ""},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", "POST / HTTP/1.1", "413", ""},
        {"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "POST /c HTTP/1.1", "400", ""},
        {"GET /slow HTT", "GET /slow HTT", "408", ""},
    };
}

// The line of one request: `127.0.0.1 - - [02/Dec/2026:17:24:56 +0000] "..." STATUS BYTES`.
const std::regex kCommonLogLine(
    R"re(^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(.*)" (\d{3}) (\d+|-)$)re");

TEST(AccessLog, OneEscapedCommonLogFormatLinePerAnswer) {
    TempDir dir;
    const std::string path = dir.path() + "/access.log";
    ServerProcess p({"--protocol", "http", "--workers", "1", "--port", "0", "--access-log", path, "--max-body", "1000",
                     "--request-timeout", "0.3"});
    const auto requests = logged_requests();
    for (const Logged& r : requests) {
        const std::string reply = exchange(p.port(), r.request);
        EXPECT_TRUE(reply.starts_with("HTTP/1.1 " + r.status)) << r.line << ": " << reply.substr(0, 40);
    }
    // Pipelined, on one connection: three lines.
    exchange(p.port(),
             "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\n"
             "Host: x\r\nConnection: close\r\n\r\n");
    expect_clean_exit(p);  // the log is flushed when the server stops
    const std::string text = read_file(path);
    const auto lines = lines_of(text);
    ASSERT_EQ(lines.size(), requests.size() + 3) << text;
    for (size_t i = 0; i < lines.size(); ++i) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(lines[i], m, kCommonLogLine)) << lines[i];
        for (char c : lines[i]) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "a raw byte in: " << lines[i];
        if (i >= requests.size()) {
            EXPECT_EQ(m[1], "GET /p" + std::to_string(i - requests.size() + 1) + " HTTP/1.1");
            EXPECT_EQ(m[2], "404");
            continue;
        }
        const Logged& r = requests[i];
        EXPECT_EQ(m[1], r.line) << lines[i];
        EXPECT_EQ(m[2], r.status) << lines[i];
        if (!r.bytes.empty()) EXPECT_EQ(m[3], r.bytes) << lines[i];
        else EXPECT_NE(m[3], "-") << "an error answer has a body: " << lines[i];
    }
}

// A log that cannot be written (a FIFO nobody reads: the writer thread blocks in write() once the pipe
// is full, as on a stalled disk) must not stall the worker: every request is still answered, the lines
// the queue cannot hold are dropped and counted, and once the FIFO is read again the server exits 0.
TEST(AccessLog, AStalledLogNeverStallsTheWorker) {
    TempDir dir;
    const std::string fifo = dir.path() + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    UniqueFd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));  // so the server's open returns
    ASSERT_TRUE(reader);
    ServerProcess p({"--protocol", "http", "--workers", "1", "--port", "0", "--access-log", fifo});
    constexpr int kRounds = 200, kPipelined = 100;  // 20,000 lines: far more than pipe and queue hold
    std::string batch;
    for (int i = 0; i < kPipelined; ++i) batch += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    UniqueFd c = connect_with_read_timeout(p.port());  // a worker blocked on the log fails the reads
    for (int round = 0; round < kRounds; ++round) {
        send_all(c.get(), batch);
        std::string got;
        while (count(got, "HTTP/1.1 200") < kPipelined || !got.ends_with("kqserver\n")) {
            char buf[65536];
            const ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            ASSERT_GT(n, 0) << "round " << round << ": no answer (the worker is stalled?)";
            got.append(buf, static_cast<size_t>(n));
        }
    }
    c.reset();
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    // The server writes what its queue still holds before it exits: read the FIFO to its end (EOF once
    // the server has exited and closed it).
    std::string text;
    for (;;) {
        pollfd pfd{reader.get(), POLLIN, 0};
        ASSERT_GT(::poll(&pfd, 1, 20'000), 0) << "the server did not finish writing its log";
        char buf[65536];
        const ssize_t n = ::read(reader.get(), buf, sizeof buf);
        if (n == 0) break;
        if (n > 0) text.append(buf, static_cast<size_t>(n));
    }
    const int st = p.wait_exit(20'000);
    ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << " " << p.log();
    const size_t lines = count(text, "\n");
    const int64_t dropped = summary_value(p.log(), "access log: ");
    EXPECT_LT(lines, static_cast<size_t>(kRounds * kPipelined)) << "nothing was dropped: the test stalled nothing";
    EXPECT_GT(dropped, 0) << p.log();
    // Dropped counts every message lost, the writer's flush requests among them.
    EXPECT_GE(static_cast<int64_t>(lines) + dropped, kRounds * kPipelined) << lines << " + " << dropped;
    for (const std::string& line : lines_of(text)) ASSERT_TRUE(std::regex_match(line, kCommonLogLine)) << line;
}

// "-" is stdout: the lines follow the "listening" line there.
TEST(AccessLog, DashIsStdout) {
    ServerProcess p({"--protocol", "http", "--workers", "1", "--port", "0", "--access-log", "-"});
    exchange(p.port(), "GET /to-stdout HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto line = p.wait_line("127.0.0.1 - - ", 10'000);  // flushed within a second
    ASSERT_TRUE(line) << p.log();
    EXPECT_NE(line->find("\"GET /to-stdout HTTP/1.1\" 404 "), std::string::npos) << *line;
    expect_clean_exit(p);
}

TEST(AccessLog, RefusedWithoutHttpOrWhereItCannotBeWritten) {
    TempDir dir;
    const std::string file = dir.path() + "/regular";
    std::ofstream(file) << "x";
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--access-log", dir.path() + "/a.log"},
          // (spdlog creates missing directories: under a regular file it cannot)
          std::vector<std::string>{"--protocol", "http", "--access-log", file + "/a.log"},
          std::vector<std::string>{"--protocol", "http", "--access-log", dir.path()}}) {
        ChildProcess p(KQSERVER_PATH, args);
        const int st = p.wait_exit(10'000);
        EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2) << args.back() << ": " << st << " " << p.log();
        EXPECT_EQ(count(p.log(), "\n"), 1u) << p.log();
        EXPECT_NE(p.log().find("--access-log"), std::string::npos) << p.log();
    }
}

}  // namespace
