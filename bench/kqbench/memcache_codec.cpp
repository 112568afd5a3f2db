// memcached's ASCII protocol (protocol.txt of memcached 1.6): "set <key> 0 0 <bytes>\r\n<data>\r\n" is
// answered "STORED\r\n"; "get <key>\r\n" is answered "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n"
// when the key is there and "END\r\n" when not. ERROR, CLIENT_ERROR, SERVER_ERROR and (for a set)
// NOT_STORED, EXISTS and NOT_FOUND are failed replies that keep the stream in step; a hit whose key, flags,
// length or bytes differ from what kqbench stores is a verify error; anything else is a parse error.
#include <string>
#include <string_view>

#include "kqbench/kv_codec.hpp"

namespace kq::bench {
namespace {

bool is_error_line(std::string_view line) {
    return line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR");
}

// The next space-separated field of s, removed from it.
std::string_view next_field(std::string_view& s) {
    const size_t end = std::min(s.find(' '), s.size());
    std::string_view f = s.substr(0, end);
    s.remove_prefix(std::min(end + 1, s.size()));
    return f;
}

class MemcacheCodec final : public KvCodec {
public:
    MemcacheCodec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t seed, bool sequential)
        : KvCodec(cfg, std::move(payloads), seed, sequential), size_text_(std::to_string(cfg.value_size)) {}

    void write_request(std::string& out) override {
        const Op op = next_op();
        if (op.set) {
            out += "set ";
            append_key(out, op.key);
            out += " 0 0 ";
            out += size_text_;
            out += "\r\n";
            out += value(op.key);
            out += "\r\n";
        } else {
            out += "get ";
            append_key(out, op.key);
            out += "\r\n";
        }
    }

    void reset() override {
        KvCodec::reset();
        after_value_ = false;
    }

private:
    Fatal on_line(std::string_view line, std::vector<Outcome>& done) override {
        if (after_value_) {  // one key asked, one VALUE: only END may follow
            after_value_ = false;
            if (line != "END") return Fatal::parse;
            finish(done, Outcome{.kv = KvResult::hit});
            return Fatal::none;
        }
        if (is_error_line(line)) {
            finish(done, Outcome{.error_reply = true});
            return Fatal::none;
        }
        if (front().set) {
            if (line == "STORED") {
                finish(done, Outcome{.kv = KvResult::stored});
            } else if (line == "NOT_STORED" || line == "EXISTS" || line == "NOT_FOUND") {
                finish(done, Outcome{.error_reply = true});
            } else {
                return Fatal::parse;
            }
            return Fatal::none;
        }
        if (line == "END") {
            finish(done, Outcome{.kv = KvResult::miss});
            return Fatal::none;
        }
        if (!line.starts_with("VALUE ")) return Fatal::parse;
        return on_value_line(line.substr(6));
    }

    // "<key> <flags> <bytes>[ <cas unique>]"
    Fatal on_value_line(std::string_view rest) {
        const std::string_view key = next_field(rest), flags = next_field(rest), bytes = next_field(rest);
        const std::string_view cas = next_field(rest);
        uint32_t flag_value = 0;
        uint64_t size = 0, cas_value = 0;
        if (!parse_decimal(flags, flag_value) || !parse_decimal(bytes, size) || !rest.empty() ||
            (!cas.empty() && !parse_decimal(cas, cas_value))) {
            return Fatal::parse;
        }
        key_.clear();
        append_key(key_, front().key);
        // Another key's item, flags kqbench never sets or another length: not what was stored.
        if (key != key_ || flag_value != 0 || size != value_size()) return Fatal::verify;
        after_value_ = true;
        start_value();
        return Fatal::none;
    }

    void on_value_end(std::vector<Outcome>&) override {}  // the END line finishes the reply

    std::string size_text_;  // value_size in decimal
    std::string key_;        // scratch: the expected key
    bool after_value_ = false;
};

}  // namespace

std::unique_ptr<Codec> make_memcache_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads,
                                           uint64_t stream_seed, bool sequential) {
    return std::make_unique<MemcacheCodec>(cfg, std::move(payloads), stream_seed, sequential);
}

}  // namespace kq::bench
