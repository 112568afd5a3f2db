// Driving raw connections with poll() and parsing HTTP/1.x responses from their bytes.
#include "wire.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "kq/net.hpp"

namespace kq::conformance {
namespace {

using Clock = std::chrono::steady_clock;

struct Active {
    Exchange* x;
    UniqueFd fd;
    Clock::time_point deadline;
    bool connecting = true;
    size_t piece = 0, offset = 0;

    bool sending() const { return connecting || piece < x->pieces.size(); }
};

// One send() of what is left of the current piece. A server that closed early (it answered an error)
// may refuse the rest: that ends the sending, not the reading, which will see its answer and its EOF.
void send_some(Active& a) {
    if (a.connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(a.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            a.x->error = err;
            return;
        }
        a.connecting = false;
        set_nodelay(a.fd.get(), true);
    }
    const std::string& p = a.x->pieces[a.piece];
    ssize_t n = ::send(a.fd.get(), p.data() + a.offset, p.size() - a.offset, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        if (errno == ECONNRESET) a.x->reset = true;
        a.piece = a.x->pieces.size();
        return;
    }
    a.offset += static_cast<size_t>(n);
    if (a.offset == p.size()) ++a.piece, a.offset = 0;
}

// Reads what is there; true once the connection has ended (EOF, reset, error).
bool receive(Active& a) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(a.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            a.x->received.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) return true;
        if (errno == EAGAIN || errno == EINTR) return false;
        if (errno == ECONNRESET) a.x->reset = true;
        else a.x->error = errno;
        return true;
    }
}

// One poll() over the active exchanges: sends, reads, and removes the ones that have ended.
void step(std::vector<Active>& active) {
    std::vector<pollfd> pfds;
    auto wake = Clock::time_point::max();
    for (auto& a : active) {
        short ev = static_cast<short>(POLLIN | (a.sending() ? POLLOUT : 0));
        pfds.push_back({a.fd.get(), ev, 0});
        wake = std::min(wake, a.deadline);
    }
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    ::poll(pfds.data(), pfds.size(), static_cast<int>(std::clamp<int64_t>(wait, 0, 1000)));
    const auto now = Clock::now();
    for (size_t i = 0; i < active.size(); ++i) {
        Active& a = active[i];
        bool done = false;
        if (pfds[i].revents & POLLOUT) send_some(a);
        if (a.x->error != 0) done = true;
        else if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) done = receive(a);
        if (!done && now >= a.deadline) a.x->timed_out = done = true;
        if (done) a.fd.reset();
    }
    std::erase_if(active, [](const Active& a) { return !a.fd; });
}

}  // namespace

void run_exchanges(const std::vector<Exchange*>& exchanges, size_t parallel, int deadline_ms) {
    std::vector<Active> active;
    size_t next = 0;
    while (next < exchanges.size() || !active.empty()) {
        while (active.size() < parallel && next < exchanges.size()) {
            Exchange* x = exchanges[next++];
            auto deadline = Clock::now() + std::chrono::milliseconds(deadline_ms);
            active.push_back(Active{x, connect_tcp("127.0.0.1", x->port, true), deadline});
        }
        step(active);
    }
}

namespace {

// The value of a header in a response head (name matched case-insensitively), or "" if absent.
std::string_view header(std::string_view head, std::string_view name) {
    for (size_t pos = head.find("\r\n"); pos != std::string_view::npos && pos + 2 < head.size();) {
        size_t eol = head.find("\r\n", pos + 2);
        std::string_view line = head.substr(pos + 2, eol - pos - 2);
        pos = eol;
        if (line.size() <= name.size() || line[name.size()] != ':') continue;
        if (!std::equal(name.begin(), name.end(), line.begin(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
            continue;
        std::string_view v = line.substr(name.size() + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
    }
    return {};
}

// Skips a chunked body at the front of s; false if it is incomplete or malformed.
bool skip_chunked(std::string_view& s) {
    for (;;) {
        size_t eol = s.find("\r\n");
        if (eol == std::string_view::npos) return false;
        size_t size = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + eol, size, 16);
        if (ec != std::errc() || end == s.data()) return false;
        s.remove_prefix(eol + 2);
        if (size == 0) break;
        if (s.size() < size + 2 || s.substr(size, 2) != "\r\n") return false;
        s.remove_prefix(size + 2);
    }
    size_t end = s.find("\r\n");  // trailer fields, then an empty line
    while (end != 0 && end != std::string_view::npos) {
        s.remove_prefix(end + 2);
        end = s.find("\r\n");
    }
    if (end == std::string_view::npos) return false;
    s.remove_prefix(2);
    return true;
}

}  // namespace

Responses parse_responses(std::string_view wire, const std::set<int>& head) {
    Responses r;
    int finals = 0;
    while (!wire.empty()) {
        size_t end = wire.find("\r\n\r\n");
        int status = 0;
        if (end == std::string_view::npos || !wire.starts_with("HTTP/1.") || wire.size() < 12 || wire[8] != ' ' ||
            std::from_chars(wire.data() + 9, wire.data() + 12, status).ptr != wire.data() + 12) {
            r.malformed = true;
            return r;
        }
        std::string_view h = wire.substr(0, end + 2);
        wire.remove_prefix(end + 4);
        r.statuses.push_back(status);
        if (status < 200) continue;  // an interim answer: no body, the final one follows
        if (head.contains(++finals) || status == 204 || status == 304) continue;
        if (header(h, "transfer-encoding") == "chunked") {
            if (!skip_chunked(wire)) r.malformed = true;
        } else if (std::string_view cl = header(h, "content-length"); !cl.empty()) {
            size_t len = 0;
            auto [p, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), len);
            if (ec != std::errc() || p != cl.data() + cl.size() || wire.size() < len) r.malformed = true;
            else wire.remove_prefix(len);
        } else {
            wire = {};  // delimited by the close
        }
        if (r.malformed) return r;
    }
    return r;
}

Result result_of(const Exchange& x, const Case& c) {
    Responses resp = parse_responses(x.received, c.head);
    Result r;
    r.reset = x.reset, r.timed_out = x.timed_out, r.error = x.error, r.malformed = resp.malformed;
    // The probe's answer is the final answer after the case's own ones, if it is a success: the bytes of
    // a case that swallowed the probe (an unfinished body, say) are answered in the case's own count.
    int finals = 0;
    for (int s : resp.statuses) {
        if (s >= 200 && finals++ == c.requests && s < 300) {
            r.outcome.probe = true;
            continue;
        }
        r.outcome.statuses.push_back(s);
    }
    return r;
}

std::string Result::text() const {
    std::string t = outcome.text();
    if (reset) t += " reset";
    if (timed_out) t += " timeout";
    if (malformed) t += " malformed";
    if (error != 0) t += std::string(" ") + std::strerror(error);
    return t;
}

}  // namespace kq::conformance
