// The kvstore session (line framing, one send per received chunk) and the command interpreter.
#include "kv_protocol.hpp"

#include <cstdint>

namespace kvstore {
namespace {

// Why a session stops reading and closes; the replies to the lines before it are sent first.
enum class Stop { none, line_too_long, output_full };
constexpr std::string_view kTooLong = "ERROR line too long\n";
constexpr std::string_view kOutputFull = "ERROR too much output at once\n";
constexpr std::string_view kTimeout = "ERROR timeout\n";

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

// Per-connection state: only the unfinished last line. The worker's bytes are a view into its scratch
// buffer, reused for the next read, so whatever must outlive on_data() is copied into partial_.
class KvSession final : public kq::Session {
public:
    KvSession(ShardedStore& store, const KvOptions& options) : store_(store), options_(options) {}

    // Every complete line is answered into one string, sent with a single send(): a pipelining client
    // gets its replies in order and in as few packets as the socket allows.
    void on_data(std::span<char> bytes, kq::Reply& reply) override {
        std::string out;
        uint64_t answered = 0;
        Stop stop = consume(std::string_view(bytes.data(), bytes.size()), out, answered);
        if (stop != Stop::none) {
            out += stop == Stop::line_too_long ? kTooLong : kOutputFull;
            partial_.clear();  // nothing more will be read: not mid-request any longer
        }
        if (!out.empty()) reply.send(std::string_view(out));  // send(std::string) would be ambiguous
        if (answered > 0) reply.count_requests(answered);
        if (stop != Stop::none) reply.close();  // after the replies above: close() waits until they are written
    }

    // The worker times a line from its first byte (WorkerConfig::request_timeout_ms): a client that
    // trickles a command in, or never ends it, is told and closed.
    bool mid_request() const override { return !partial_.empty(); }
    void on_request_timeout(kq::Reply& reply) override {
        reply.send(kTimeout);
        reply.close();
    }

    // A last line without "\n" is still a command: `printf 'GET k' | kqcat HOST PORT` gets its answer.
    void on_peer_eof(kq::Reply& reply) override {
        if (!partial_.empty()) {
            std::string out;
            execute(partial_, store_, out);
            reply.send(std::string_view(out));
            reply.count_requests();
        }
        reply.close();
    }

private:
    // Runs the complete lines in `in` and keeps an unfinished tail. Stops at a line over max_line
    // (checked before buffering, so a client cannot make the session hold more than max_line bytes), and
    // once the replies exceed max_output: 64 KiB of pipelined GETs of a large value would otherwise
    // queue gigabytes, and the handler API cannot pause a session until its output drains.
    Stop consume(std::string_view in, std::string& out, uint64_t& answered) {
        while (!in.empty()) {
            if (out.size() > options_.max_output) return Stop::output_full;
            size_t nl = in.find('\n');
            std::string_view piece = in.substr(0, nl);
            if (partial_.size() + piece.size() > options_.max_line) return Stop::line_too_long;
            if (nl == std::string_view::npos) {
                partial_.append(piece);
                return Stop::none;
            }
            in.remove_prefix(nl + 1);
            if (partial_.empty()) {
                execute(piece, store_, out);  // the common case: the line is used where it lies
            } else {
                partial_.append(piece);
                execute(partial_, store_, out);
                release_partial();
            }
            ++answered;
        }
        return Stop::none;
    }

    // An idle connection should not keep a large buffer a long line once needed.
    void release_partial() {
        if (partial_.capacity() > 4096) {
            std::string().swap(partial_);
        } else {
            partial_.clear();
        }
    }

    ShardedStore& store_;
    const KvOptions& options_;  // the protocol's, which outlives every session
    std::string partial_;
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

std::unique_ptr<kq::Session> KvProtocol::open() { return std::make_unique<KvSession>(store_, options_); }

}  // namespace kvstore
