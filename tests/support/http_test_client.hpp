// A small blocking HTTP/1.1 test client with its own response parser (status line, headers,
// Content-Length body), independent of the server's code so that it checks what goes on the wire.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace kq::test::http {

// One response: status line, headers (names lower-cased), and the Content-Length body.
struct Response {
    int status = 0;  // 0: the connection ended or timed out first; -1: not an HTTP status line
    std::string version;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    std::string header(std::string_view name) const {
        for (const auto& [k, v] : headers) {
            if (k == name) return v;
        }
        return "(absent)";
    }
};

inline std::string request(std::string_view method, std::string_view path, std::string_view extra_headers = "",
                           std::string_view version = "HTTP/1.1") {
    std::string r;
    r.append(method).append(" ").append(path).append(" ").append(version).append("\r\nHost: test\r\n");
    return r.append(extra_headers).append("\r\n");
}

// A blocking connection with a 10 s receive time-out: a missing response fails the test, never hangs it.
class Client : BufferedConn {
public:
    explicit Client(uint16_t port) : BufferedConn(port) {
        timeval tv{10, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        set_nodelay(fd_.get(), true);  // each send() leaves as its own segment (the split-request tests)
    }
    void send(std::string_view s) { send_all(fd_.get(), s.data(), s.size()); }
    Response get(std::string_view path) {
        send(request("GET", path));
        return read();
    }
    // Reads one response; head: it answers a HEAD request, so no body follows whatever its length says.
    Response read(bool head = false);
    // True if the server closed the connection and sent nothing more.
    bool closed_by_server() {
        if (!buf_.empty()) return false;
        char c;
        ssize_t n = ::recv(fd_.get(), &c, 1, 0);
        return n == 0 || (n < 0 && errno == ECONNRESET);
    }
};

inline Response garbled() {
    Response r;
    r.status = -1;
    return r;
}

inline Response Client::read(bool head) {
    Response r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) return r;
    }
    std::string_view text(buf_.data(), end + 2);  // the status line and each header line end in CRLF
    size_t eol = text.find("\r\n");
    std::string_view line = text.substr(0, eol);
    if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') return garbled();
    r.version = line.substr(0, 8);
    int status = std::stoi(std::string(line.substr(9, 3)));
    for (size_t pos = eol + 2; pos < text.size();) {
        size_t next = text.find("\r\n", pos);
        std::string_view h = text.substr(pos, next - pos);
        size_t colon = h.find(':');
        if (colon == std::string_view::npos) return garbled();
        std::string name(h.substr(0, colon));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        r.headers.emplace_back(std::move(name), std::string(value));
        pos = next + 2;
    }
    std::string length = r.header("content-length");
    if (length == "(absent)") return garbled();  // every response of this server has one
    size_t body = head ? 0 : std::stoul(length);
    while (buf_.size() < end + 4 + body) {
        if (!fill()) return Response{};
    }
    r.body = buf_.substr(end + 4, body);
    buf_.erase(0, end + 4 + body);
    r.status = status;
    return r;
}

}  // namespace kq::test::http
