// The RESP session: framing through RequestParser, one send per received chunk, flow control for large
// answers, protocol errors answered and then the connection closed (as Redis does).
#include "resp_protocol.hpp"

#include <cstdint>
#include <string>

#include "resp_commands.hpp"

namespace resp {
namespace {

// Replies are gathered up to this much, then sent; past it the session checks the connection's output.
constexpr size_t kSendBatch = 64 * 1024;

// The worker holds an unfinished request (on_data returns only what complete ones used) and offers it
// again with what follows; the parser remembers how far it got in it. Once the client's unread output
// passes the worker's low water, the session stops taking requests and pauses reading until the output
// drains (on_drained): a client that pipelines LRANGEs of a long list and reads slowly costs the server
// about high water, not the sum of the answers. One answer is built whole, though (README.md).
class RespSession final : public kq::Session {
public:
    RespSession(Store& store, const Limits& limits, uint64_t id) : store_(store), parser_(limits) { client_.id = id; }

    size_t on_data(std::span<char> bytes, kq::Conn& conn) override {
        const std::string_view in(bytes.data(), bytes.size());
        std::string out;
        uint64_t answered = 0;
        size_t used = 0;  // bytes of the requests answered; the parser's offsets count from here
        bool failed = false;
        while (used < in.size() && !client_.quit) {
            if (out.size() >= kSendBatch) {
                conn.send(std::string_view(out));
                out.clear();
                if (conn.congested()) {  // the rest waits, held by the worker, until the client reads
                    conn.pause_reading();
                    break;
                }
            }
            const std::string_view request = in.substr(used);
            const auto status = parser_.parse(request);
            if (status == RequestParser::Status::need_more) break;
            if (status == RequestParser::Status::error) {
                out += "-ERR " + parser_.error() + "\r\n";
                failed = true;
                break;
            }
            if (status == RequestParser::Status::complete) {
                execute(parser_.args(request), store_, client_, out);
                ++answered;
            }
            used += parser_.consumed();
            parser_.reset();
        }
        if (!out.empty()) conn.send(std::string_view(out));  // send(std::string) would be ambiguous
        if (answered > 0) conn.count_requests(answered);
        if (failed || client_.quit) {
            quit_alone_ = client_.quit && used == in.size();
            conn.close();  // after the replies above: close() waits until they are written
            return in.size();
        }
        return used;
    }

    // The output drained: take the held requests again.
    void on_drained(kq::Conn& conn) override { conn.resume_reading(); }

    // A client that sent QUIT and nothing after it needs no lingering read before the close.
    bool input_may_follow() const override { return !quit_alone_; }

private:
    Store& store_;
    RequestParser parser_;
    Client client_;
    bool quit_alone_ = false;  // QUIT was the last thing the client sent
};

}  // namespace

size_t max_input_for(const Limits& limits) { return limits.max_request + 64 * 1024; }

RespProtocol::RespProtocol(RespOptions options, Clock clock)
    : options_(options), store_(options.shards, std::move(clock)) {}

std::unique_ptr<kq::Session> RespProtocol::open(kq::Conn& conn) {
    return std::make_unique<RespSession>(store_, options_.limits, conn.id());
}

}  // namespace resp
