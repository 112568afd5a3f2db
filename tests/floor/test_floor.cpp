// Smoke test of one floor reference (bench/floor), so that the measuring sticks never rot: it starts the
// binary in each mode on a free port and checks pipelined HTTP, echo, large exchanges (partial writes),
// a client sending one byte at a time and clients that reset mid-request, after which the server must
// still be alive and answering.
//   test_floor BINARY [EXTRA FLAGS...]   exit 0 pass, 1 fail, 77 skipped (io_uring unavailable)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "floor_common.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what.c_str());
    if (!ok) ++failures;
}

class Server {
public:
    Server(const char* path, const char* mode, const std::vector<const char*>& extra) {
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) floor_ref::die("pipe2");
        err_path_ = "/tmp/test_floor_err_" + std::to_string(::getpid()) + "_" + mode;
        std::vector<const char*> argv{path, "--port", "0", "--threads", "2", "--mode", mode};
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(out[1], 1);
            ::dup2(err, 2);
            ::execv(path, const_cast<char* const*>(argv.data()));
            ::_exit(127);
        }
        ::close(out[1]);
        std::string line;
        char ch;
        pollfd p{out[0], POLLIN, 0};
        while (::poll(&p, 1, 5000) == 1 && ::read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
        ::close(out[0]);
        if (line.rfind("listening 127.0.0.1:", 0) == 0) {
            port_ = std::stoi(line.substr(line.find(':') + 1));
            return;
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        std::ifstream f(err_path_);
        std::string err((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        ::unlink(err_path_.c_str());
        if (err.find("io_uring unavailable") != std::string::npos) {
            std::printf("skipped: %s", err.c_str());
            std::exit(77);
        }
        std::printf("FAIL: %s did not print its listening line (stderr: %s)\n", path, err.c_str());
        std::exit(1);
    }
    ~Server() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        ::unlink(err_path_.c_str());
    }
    bool alive() const { return ::waitpid(pid_, nullptr, WNOHANG) == 0; }
    int port() const { return port_; }

private:
    pid_t pid_ = -1;
    int port_ = 0;
    std::string err_path_;
};

int connect_to(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) floor_ref::die("connect");
    floor_ref::set_nodelay(fd);
    return fd;
}

// Sends `out` in pieces of `piece` bytes while reading, until `expect` bytes came back or 5 s without
// progress: the client reads as it writes, so a large exchange needs the server's partial writes.
std::string exchange(int fd, std::string_view out, size_t expect, size_t piece = 1 << 16) {
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    std::string in;
    char buf[65536];
    size_t sent = 0;
    while (in.size() < expect) {
        pollfd p{fd, static_cast<short>(POLLIN | (sent < out.size() ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, 5000) != 1) break;
        if ((p.revents & POLLOUT) != 0) {
            ssize_t n = ::send(fd, out.data() + sent, std::min(piece, out.size() - sent), MSG_NOSIGNAL);
            if (n > 0) sent += static_cast<size_t>(n);
        }
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            in.append(buf, static_cast<size_t>(n));
        }
    }
    return in;
}

// A client that sends part of a request and then resets the connection (SO_LINGER 0).
void reset_mid_request(int port, std::string_view part) {
    int fd = connect_to(port);
    ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

std::string repeat(std::string_view s, size_t n) {
    std::string r;
    for (size_t i = 0; i < n; ++i) r.append(s);
    return r;
}

void test_http(const char* path, const std::vector<const char*>& extra) {
    Server srv(path, "http", extra);
    const std::string req = "GET / HTTP/1.1\r\nHost: floor\r\n\r\n";
    const auto resp = floor_ref::http_response;
    int fd = connect_to(srv.port());
    check(exchange(fd, req + "GET /b HTTP/1.1\r\nHost: floor\r\n\r\n", 2 * resp.size()) == repeat(resp, 2),
          "http: two pipelined requests, two responses");
    ::close(fd);
    fd = connect_to(srv.port());
    check(exchange(fd, req, resp.size(), 1) == resp, "http: a request sent one byte at a time");
    ::close(fd);
    reset_mid_request(srv.port(), "GET / HTTP/1.1\r\nHo");
    reset_mid_request(srv.port(), req + req + "GET");
    fd = connect_to(srv.port());
    constexpr size_t many = 20000;  // ~1.7 MB of responses: more than socket buffers hold
    check(exchange(fd, repeat(req, many), many * resp.size()) == repeat(resp, many),
          "http: 20000 pipelined requests after two clients reset mid-request");
    ::close(fd);
    check(srv.alive(), "http: the server is still running");
}

void test_echo(const char* path, const std::vector<const char*>& extra) {
    Server srv(path, "echo", extra);
    int fd = connect_to(srv.port());
    check(exchange(fd, "hello floor", 11) == "hello floor", "echo: one message");
    ::close(fd);
    std::string bytes;
    for (int i = 0; i < 200; ++i) bytes += static_cast<char>('a' + i % 26);
    fd = connect_to(srv.port());
    check(exchange(fd, bytes, bytes.size(), 1) == bytes, "echo: 200 bytes sent one at a time");
    ::close(fd);
    reset_mid_request(srv.port(), repeat("x", 100000));
    std::string big;
    for (size_t i = 0; i < (4 << 20); ++i) big += static_cast<char>(i * 7 % 251);
    fd = connect_to(srv.port());
    check(exchange(fd, big, big.size()) == big, "echo: 4 MiB after a client reset mid-stream");
    ::close(fd);
    check(srv.alive(), "echo: the server is still running");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s BINARY [EXTRA FLAGS...]\n", argv[0]);
        return 2;
    }
    std::vector<const char*> extra(argv + 2, argv + argc);
    test_http(argv[1], extra);
    test_echo(argv[1], extra);
    return failures == 0 ? 0 : 1;
}
