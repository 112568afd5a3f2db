// Redis's RESP2 (redis.io/docs/reference/protocol-spec): commands are arrays of bulk strings,
// "*3\r\n$3\r\nSET\r\n$<n>\r\n<key>\r\n$<n>\r\n<value>\r\n" answered "+OK\r\n", and
// "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n" answered by the bulk string "$<n>\r\n<value>\r\n" or the null bulk
// string "$-1\r\n" when the key is missing. An error reply ("-ERR ...", "-WRONGTYPE ...", "-OOM ...") is
// a failed reply that keeps the stream in step; a value of another length or other bytes than kqbench
// stores is a verify error; any other reply is a parse error.
#include <string>
#include <string_view>

#include "kqbench/kv_codec.hpp"

namespace kq::bench {
namespace {

class RespCodec final : public KvCodec {
public:
    RespCodec(const Config& cfg, std::shared_ptr<const Payloads> payloads, uint64_t seed, bool sequential)
        : KvCodec(cfg, std::move(payloads), seed, sequential), size_text_(std::to_string(cfg.value_size)) {}

    void write_request(std::string& out) override {
        const Op op = next_op();
        out += op.set ? "*3\r\n$3\r\nSET\r\n$" : "*2\r\n$3\r\nGET\r\n$";
        out += std::to_string(key_size(op.key));
        out += "\r\n";
        append_key(out, op.key);
        out += "\r\n";
        if (op.set) {
            out += "$";
            out += size_text_;
            out += "\r\n";
            out += value(op.key);
            out += "\r\n";
        }
    }

private:
    Fatal on_line(std::string_view line, std::vector<Outcome>& done) override {
        if (line.starts_with('-')) {
            finish(done, Outcome{.error_reply = true});
            return Fatal::none;
        }
        if (front().set) {
            if (line != "+OK") return Fatal::parse;
            finish(done, Outcome{.kv = KvResult::stored});
            return Fatal::none;
        }
        if (line == "$-1") {
            finish(done, Outcome{.kv = KvResult::miss});
            return Fatal::none;
        }
        uint64_t size = 0;
        if (!line.starts_with('$') || !parse_decimal(line.substr(1), size)) return Fatal::parse;
        if (size != value_size()) return Fatal::verify;  // not the value kqbench stores
        start_value();
        return Fatal::none;
    }

    void on_value_end(std::vector<Outcome>& done) override { finish(done, Outcome{.kv = KvResult::hit}); }

    std::string size_text_;  // value_size in decimal
};

}  // namespace

std::unique_ptr<Codec> make_resp_codec(const Config& cfg, std::shared_ptr<const Payloads> payloads,
                                       uint64_t stream_seed, bool sequential) {
    return std::make_unique<RespCodec>(cfg, std::move(payloads), stream_seed, sequential);
}

}  // namespace kq::bench
