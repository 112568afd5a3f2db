// The kvstore session (line framing, one send per received chunk) and the command interpreter.
#include "kv_protocol.hpp"

#include <cstdint>

namespace kvstore {
namespace {

constexpr std::string_view kTooLong = "ERROR line too long\n";
constexpr std::string_view kTimeout = "ERROR timeout\n";
// Replies are gathered up to this much, then sent; past it the session checks the connection's output.
constexpr size_t kSendBatch = 64 * 1024;

// Splits off the next space-separated word of rest; leading spaces are skipped, and rest keeps whatever
// follows the word, starting with the space that ended it.
std::string_view take_word(std::string_view& rest) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) start = rest.size();
    size_t end = rest.find(' ', start);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view word = rest.substr(start, end - start);
    rest.remove_prefix(end);
    return word;
}

bool is_command(std::string_view word, std::string_view upper) {
    if (word.size() != upper.size()) return false;
    for (size_t i = 0; i < word.size(); ++i) {
        char c = word[i];
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (c != upper[i]) return false;
    }
    return true;
}

// "key" alone, trailing spaces allowed: what GET and DEL take.
bool single_key(std::string_view rest, std::string_view& key) {
    key = take_word(rest);
    return !key.empty() && rest.find_first_not_of(' ') == std::string_view::npos;
}

void run_set(std::string_view rest, ShardedStore& store, std::string& out) {
    std::string_view key = take_word(rest);
    if (key.empty() || rest.empty()) {
        out += "ERROR usage: SET key value\n";
        return;
    }
    store.set(key, rest.substr(1));  // the value starts after exactly one space: "SET k  v" stores " v"
    out += "OK\n";
}

void run_get(std::string_view rest, ShardedStore& store, std::string& out) {
    std::string_view key;
    if (!single_key(rest, key)) {
        out += "ERROR usage: GET key\n";
        return;
    }
    size_t mark = out.size();
    out += "VALUE ";
    if (store.get_into(key, out)) {
        out += '\n';
    } else {
        out.resize(mark);
        out += "NOT_FOUND\n";
    }
}

void run_del(std::string_view rest, ShardedStore& store, std::string& out) {
    std::string_view key;
    if (!single_key(rest, key)) {
        out += "ERROR usage: DEL key\n";
        return;
    }
    out += store.erase(key) ? "DELETED\n" : "NOT_FOUND\n";
}

// The worker holds an unfinished last line (on_data returns only what complete lines used), so the
// session keeps no buffer of its own: its state is one flag. Replies flow under control: once the
// client's unread output passes the worker's low water, the session stops taking lines and pauses
// reading until the output drains (on_drained), so a client pipelining GETs of a large value never
// makes the server hold more than about high water for it, however many it asks for.
class KvSession final : public kq::Session {
public:
    KvSession(ShardedStore& store, const KvOptions& options) : store_(store), options_(options) {}

    // Every complete line is answered into one string, sent with as few send() calls as the output allows.
    size_t on_data(std::span<char> bytes, kq::Conn& conn) override {
        const std::string_view in(bytes.data(), bytes.size());
        std::string out;
        uint64_t answered = 0;
        size_t used = 0;
        bool too_long = false;
        while (used < in.size()) {
            if (out.size() >= kSendBatch) {
                conn.send(std::string_view(out));
                out.clear();
                if (conn.congested()) {  // the rest waits, held by the worker, until the client reads
                    conn.pause_reading();
                    break;
                }
            }
            const size_t nl = in.find('\n', used);
            const size_t length = (nl == std::string_view::npos ? in.size() : nl) - used;
            if (length > options_.max_line) {  // checked before waiting for the rest: held input stays bounded
                too_long = true;
                break;
            }
            if (nl == std::string_view::npos) break;  // an unfinished line: the worker holds it
            execute(in.substr(used, length), store_, out);
            ++answered;
            used = nl + 1;
        }
        if (too_long) out += kTooLong;
        if (!out.empty()) conn.send(std::string_view(out));  // send(std::string) would be ambiguous
        if (answered > 0) conn.count_requests(answered);
        if (too_long) {
            conn.close();  // after the replies above: close() waits until they are written
            return in.size();
        }
        return used;
    }

    // The output drained: take the held lines again.
    void on_drained(kq::Conn& conn) override { conn.resume_reading(); }

    // An unfinished line is held input, which the worker times from its first byte
    // (WorkerConfig::request_timeout_ms): a client that trickles a command in, or never ends it, is told.
    void on_request_timeout(kq::Conn& conn) override {
        conn.send(kTimeout);
        conn.close();
    }

    // A last line without "\n" is still a command: `printf 'GET k' | kqcat HOST PORT` gets its answer.
    void on_peer_eof(kq::Conn& conn) override {
        std::span<char> rest = conn.held_input();
        if (!rest.empty()) {
            std::string out;
            execute(std::string_view(rest.data(), rest.size()), store_, out);
            conn.send(std::string_view(out));
            conn.count_requests();
        }
        conn.close();
    }

private:
    ShardedStore& store_;
    const KvOptions& options_;  // the protocol's, which outlives every session
};

}  // namespace

void execute(std::string_view line, ShardedStore& store, std::string& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view rest = line;
    std::string_view command = take_word(rest);
    if (command.empty()) {
        out += "ERROR empty command\n";
    } else if (is_command(command, "SET")) {
        run_set(rest, store, out);
    } else if (is_command(command, "GET")) {
        run_get(rest, store, out);
    } else if (is_command(command, "DEL")) {
        run_del(rest, store, out);
    } else {
        out += "ERROR unknown command\n";
    }
}

KvProtocol::KvProtocol(KvOptions options) : options_(options), store_(options.shards) {}

std::unique_ptr<kq::Session> KvProtocol::open(kq::Conn&) { return std::make_unique<KvSession>(store_, options_); }

}  // namespace kvstore
