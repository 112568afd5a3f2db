// HTTP/1.1 client codec: keep-alive GET requests with a Host header; responses framed by Content-Length,
// chunked transfer coding or the connection's close, parsed incrementally across reads.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "kqbench/codec.hpp"

namespace kq::bench {
namespace {

constexpr size_t kMaxHead = 64 * 1024;  // a longer status line + headers is taken as a broken server

constexpr uint64_t kOnes = 0x0101010101010101ull;

// 0x20 in each byte of w (ASCII) that is a lowercase letter: adding 0x80 - 'a' sets a byte's top bit from
// 'a' up, adding 0x80 - 'z' - 1 from past 'z'; no byte carries into the next below 0x80.
constexpr uint64_t letter_bits(uint64_t w) {
    return ((w + kOnes * (0x80 - 'a')) & ~(w + kOnes * (0x80 - 'z' - 1)) & kOnes * 0x80) >> 2;
}

// One word of a against one of lower: bit 0x20 is folded in only where lower has a letter (so that
// '\r' | 0x20 never passes for '-').
bool iequals_at(const char* a, const char* lower) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, lower, 8);
    return (x | letter_bits(y)) == y;
}

// a equals lower, a lowercase ASCII literal, ignoring case; eight bytes at a time, the last word
// overlapping the one before it rather than a byte loop.
bool iequals(std::string_view a, std::string_view lower) {
    const size_t n = a.size();
    if (n != lower.size()) return false;
    if (n < 8) {
        for (size_t i = 0; i < n; ++i) {
            const auto x = static_cast<uint64_t>(static_cast<unsigned char>(a[i]));
            const auto y = static_cast<uint64_t>(static_cast<unsigned char>(lower[i]));
            if ((x | letter_bits(y)) != y) return false;
        }
        return true;
    }
    for (size_t i = 0; i + 8 < n; i += 8) {
        if (!iequals_at(a.data() + i, lower.data() + i)) return false;
    }
    return iequals_at(a.data() + n - 8, lower.data() + n - 8);
}

bool istarts_with(std::string_view a, std::string_view lower) {
    return a.size() >= lower.size() && iequals(a.substr(0, lower.size()), lower);
}

bool icontains(std::string_view hay, std::string_view lower) {
    for (size_t i = 0; i + lower.size() <= hay.size(); ++i) {
        if (iequals(hay.substr(i, lower.size()), lower)) return true;
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
    bool http10 = false;
    bool keep_alive = false;  // "Connection: keep-alive" (matters for HTTP/1.0 only)
    bool chunked = false;
    bool has_length = false;
    bool close = false;  // "Connection: close", or HTTP/1.0 without keep-alive
    uint64_t length = 0;
};

// "HTTP/1.x SSS reason" (without its line end); false if malformed.
bool parse_status_line(std::string_view line, Head& h) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return false;
    auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, h.status);
    if (ec != std::errc() || p != line.data() + 12 || h.status < 100) return false;
    h.http10 = line[7] == '0';
    return true;
}

// One "Name: value" line (without its line end); false if malformed. Only the three fields that frame the
// body are read; the first letter rules the others out (Date, Server) at the cost of one comparison.
bool parse_field(std::string_view line, Head& h) {
    const char first = line.empty() ? '\0' : static_cast<char>(line[0] | 0x20);
    if (first == 'c' && istarts_with(line, "content-length:")) {
        std::string_view value = trim(line.substr(15));
        auto [q, err] = std::from_chars(value.data(), value.data() + value.size(), h.length);
        if (err != std::errc() || q != value.data() + value.size()) return false;
        h.has_length = true;
    } else if (first == 'c' && istarts_with(line, "connection:")) {
        // One token is the common case; a list ("keep-alive, Upgrade") is searched.
        std::string_view value = trim(line.substr(11));
        const bool one = value.find(',') == std::string_view::npos;
        h.close = h.close || (one ? iequals(value, "close") : icontains(value, "close"));
        h.keep_alive = h.keep_alive || (one ? iequals(value, "keep-alive") : icontains(value, "keep-alive"));
    } else if (first == 't' && istarts_with(line, "transfer-encoding:")) {
        h.chunked = h.chunked || icontains(line.substr(18), "chunked");
    }
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
        head_ = Head{};
        head_bytes_ = 0;
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
        case State::head:
            return take_head(s, done, r);
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
        case State::trailer:
            return take_line(s, done, r);
        case State::until_close:
            return s.size();
        }
        return s.size();
    }

    // The next line of s, up to its '\n' (which is dropped, with a '\r' before it): read in place when
    // it is whole, else gathered in line_ across reads (the caller clears line_ once it used the line).
    size_t next_line(std::string_view s, std::string_view& line, bool& complete, Fatal& r) {
        const void* nl = std::memchr(s.data(), '\n', s.size());
        complete = nl != nullptr;
        const size_t used = complete ? static_cast<size_t>(static_cast<const char*>(nl) - s.data()) + 1 : s.size();
        if (line_.empty() && complete) {
            line = s.substr(0, used - 1);
        } else {
            line_.append(s.substr(0, used));
            if (line_.size() > kMaxHead) r = Fatal::parse, complete = false;
            line = std::string_view(line_).substr(0, line_.size() - (complete ? 1 : 0));
        }
        if (complete && !line.empty() && line.back() == '\r') line.remove_suffix(1);
        return used;
    }

    // The head is parsed a line at a time as it arrives, so a reply's bytes are scanned once, not copied.
    // Returns at the head's end: what follows is a body or, for the feed loop to check, the next reply.
    size_t take_head(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        size_t used = 0;
        while (used < s.size()) {
            std::string_view line;
            bool complete = false;
            const size_t n = next_line(s.substr(used), line, complete, r);
            used += n;
            head_bytes_ += n;
            if (head_bytes_ > kMaxHead) r = Fatal::parse;
            if (!complete || r != Fatal::none) break;
            const bool end = head_.status != 0 && line.empty();
            const bool ok = head_.status == 0 ? parse_status_line(line, head_) : end || parse_field(line, head_);
            line_.clear();
            if (!ok) r = Fatal::parse;
            if (end) end_head(done);
            if (end || !ok) break;
        }
        return used;
    }

    void end_head(std::vector<Outcome>& done) {
        const Head h = head_;
        head_ = Head{};
        head_bytes_ = 0;
        last_status_ = h.status;
        if (h.status < 200) return;  // 100 Continue and friends: the real response follows
        closing_ = closing_ || h.close || (h.http10 && !h.keep_alive);
        if (h.status == 204 || h.status == 304 || (h.has_length && h.length == 0 && !h.chunked)) {
            finish(done, h.status);
        } else if (h.chunked) {
            state_ = State::chunk_size;
        } else if (h.has_length) {
            state_ = State::body, remaining_ = h.length;
        } else {
            state_ = State::until_close;
        }
    }

    // A chunk-size line or a trailer line.
    size_t take_line(std::string_view s, std::vector<Outcome>& done, Fatal& r) {
        std::string_view line;
        bool complete = false;
        const size_t used = next_line(s, line, complete, r);
        if (!complete) return used;
        line = trim(line);
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
    Head head_;              // the head being parsed
    size_t head_bytes_ = 0;  // its bytes so far
    std::string line_;       // a line split across reads
    uint64_t remaining_ = 0;
    int last_status_ = 0;
    bool closing_ = false;
};

}  // namespace

std::unique_ptr<Codec> make_http_codec(const Config& cfg) { return std::make_unique<HttpCodec>(cfg); }

}  // namespace kq::bench
