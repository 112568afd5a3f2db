// HTTP/1.1 client codec: keep-alive GET requests with a Host header; responses framed by Content-Length,
// chunked transfer coding or the connection's close, parsed incrementally across reads.
#include <algorithm>
#include <charconv>
#include <string_view>

#include "kqbench/codec.hpp"

namespace kq::bench {
namespace {

constexpr size_t kMaxHead = 64 * 1024;  // a longer status line + headers is taken as a broken server

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

bool icontains(std::string_view hay, std::string_view needle) {
    for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        if (iequals(hay.substr(i, needle.size()), needle)) return true;
    }
    return false;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// What a response head says about the body that follows it.
struct Head {
    int status = 0;
    bool chunked = false;
    bool has_length = false;
    bool close = false;  // "Connection: close", or HTTP/1.0 without keep-alive
    uint64_t length = 0;
};

// Parses "HTTP/1.x SSS reason\r\nName: value\r\n...\r\n" (without the final empty line); false if malformed.
bool parse_head(std::string_view text, Head& h) {
    size_t eol = text.find("\r\n");
    std::string_view line = text.substr(0, eol);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return false;
    auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, h.status);
    if (ec != std::errc() || p != line.data() + 12 || h.status < 100) return false;
    bool http10 = line[7] == '0', keep_alive = false;
    while (eol != std::string_view::npos) {
        text.remove_prefix(eol + 2);
        eol = text.find("\r\n");
        line = text.substr(0, eol);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
        if (iequals(name, "transfer-encoding") && icontains(value, "chunked")) h.chunked = true;
        if (iequals(name, "content-length")) {
            auto [q, err] = std::from_chars(value.data(), value.data() + value.size(), h.length);
            if (err != std::errc() || q != value.data() + value.size()) return false;
            h.has_length = true;
        }
        if (iequals(name, "connection")) {
            h.close = h.close || icontains(value, "close");
            keep_alive = keep_alive || icontains(value, "keep-alive");
        }
    }
    h.close = h.close || (http10 && !keep_alive);
    return true;
}

class HttpCodec final : public Codec {
public:
    explicit HttpCodec(const Config& cfg) {
        request_ = "GET " + cfg.path + " HTTP/1.1\r\nHost: " + host_header(cfg) + "\r\n";
        bool agent = false;
        for (const auto& h : cfg.headers) {
            request_ += h + "\r\n";
            agent = agent || iequals(h.substr(0, h.find(':')), "user-agent");
        }
        if (!agent) request_ += "User-Agent: kqbench\r\n";
        request_ += "\r\n";
    }

    void write_request(std::string& out) override {
        out += request_;
        ++pending_;
    }

    Fatal feed(std::span<const char> in, std::vector<Outcome>& done) override {
        Fatal r = Fatal::none;
        std::string_view s(in.data(), in.size());
        while (!s.empty() && r == Fatal::none) {
            if (pending_ == 0) return Fatal::parse;
            size_t used = step(s, done, r);
            s.remove_prefix(used);
        }
        return r;
    }

    bool feed_eof(std::vector<Outcome>& done) override {
        if (state_ != State::until_close || pending_ == 0) return false;
        finish(done, last_status_);
        return true;
    }

    bool peer_closing() const override { return closing_; }

    void reset() override {
        closing_ = false;
        pending_ = 0;
        state_ = State::head;
        head_.clear();
        line_.clear();
    }

private:
    enum class State { head, body, chunk_size, chunk_data, chunk_crlf, trailer, until_close };

    static std::string host_header(const Config& cfg) {
        std::string host = cfg.host.find(':') != std::string::npos ? "[" + cfg.host + "]" : cfg.host;
        return cfg.port == 80 ? host : host + ":" + std::to_string(cfg.port);
    }

    // Consumes a prefix of s in the current state; returns how many bytes it used.
    size_t step(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        switch (state_) {
            case State::head: return take_head(s, done, r);
            case State::body:
            case State::chunk_data: {
                size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, s.size()));
                remaining_ -= n;
                if (remaining_ == 0) {
                    if (state_ == State::body) finish(done, last_status_);
                    else state_ = State::chunk_crlf, remaining_ = 2;
                }
                return n;
            }
            case State::chunk_crlf: {
                size_t n = std::min<size_t>(remaining_, s.size());
                if (s.substr(0, n) != std::string_view("\r\n").substr(2 - remaining_, n)) r = Fatal::parse;
                remaining_ -= n;
                if (remaining_ == 0) state_ = State::chunk_size;
                return n;
            }
            case State::chunk_size:
            case State::trailer: return take_line(s, done, r);
            case State::until_close: return s.size();
        }
        return s.size();
    }

    size_t take_head(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        size_t old = head_.size();
        head_.append(s.substr(0, std::min(s.size(), kMaxHead)));
        size_t end = head_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
        if (end == std::string::npos) {
            if (head_.size() >= kMaxHead) r = Fatal::parse;
            return s.size();
        }
        size_t used = end + 4 - old;
        Head h;
        if (!parse_head(std::string_view(head_).substr(0, end + 2), h)) {
            r = Fatal::parse;
            return used;
        }
        head_.clear();
        last_status_ = h.status;
        if (h.status < 200) return used;  // 100 Continue and friends: the real response follows
        closing_ = closing_ || h.close;
        if (h.status == 204 || h.status == 304 || (h.has_length && h.length == 0 && !h.chunked)) {
            finish(done, h.status);
        } else if (h.chunked) {
            state_ = State::chunk_size;
        } else if (h.has_length) {
            state_ = State::body, remaining_ = h.length;
        } else {
            state_ = State::until_close;
        }
        return used;
    }

    // A chunk-size line or a trailer line, buffered until its CRLF.
    size_t take_line(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        size_t eol = s.find('\n');
        size_t used = eol == std::string_view::npos ? s.size() : eol + 1;
        line_.append(s.substr(0, used));
        if (line_.size() > kMaxHead) r = Fatal::parse;
        if (eol == std::string_view::npos) return used;
        std::string_view line = trim(std::string_view(line_).substr(0, line_.size() - 1));
        if (state_ == State::trailer) {
            if (line.empty()) finish(done, last_status_);
        } else {
            uint64_t size = 0;
            auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
            bool ext_ok = p == line.data() + line.size() || *p == ';' || *p == ' ';
            if (ec != std::errc() || !ext_ok) r = Fatal::parse;
            if (size == 0) state_ = State::trailer;
            else state_ = State::chunk_data, remaining_ = size;
        }
        line_.clear();
        return used;
    }

    void finish(std::vector<Outcome>& done, int status) {
        done.push_back(Outcome{status});
        --pending_;
        state_ = State::head;
    }

    std::string request_;
    uint64_t pending_ = 0;  // requests whose response has not finished
    State state_ = State::head;
    std::string head_, line_;
    uint64_t remaining_ = 0;
    int last_status_ = 0;
    bool closing_ = false;
};

}  // namespace

std::unique_ptr<Codec> make_http_codec(const Config& cfg) { return std::make_unique<HttpCodec>(cfg); }

}  // namespace kq::bench
