// kqresp's protocol on kqserver's handler API (kq/handler.hpp): Redis's RESP2 requests (multibulk and
// inline), pipelined, answered in order from one keyspace shared by every connection on every worker.
// Hand-written: Debian packages no RESP server library to put behind a socket (redis-server is a whole
// server, hiredis a client).
// Thread rules: RespProtocol::open() runs on every worker at once; each session only on its own worker.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "kq/handler.hpp"
#include "resp_parser.hpp"
#include "resp_store.hpp"

namespace resp {

struct RespOptions {
    Limits limits;
    size_t shards = 64;  // locks of the keyspace (see Store)
};

// The worker's held input must be able to hold the largest request the limits allow, plus one read of
// what follows it: what main() sets WorkerConfig::max_input to.
size_t max_input_for(const Limits& limits);

class RespProtocol final : public kq::Protocol {
public:
    explicit RespProtocol(RespOptions options = {}, Clock clock = steady_now_ms);
    std::string_view name() const override { return "resp"; }
    // Called by every worker thread at once: reads only what the constructor set.
    std::unique_ptr<kq::Session> open(kq::Conn& conn) override;
    Store& store() noexcept { return store_; }

private:
    RespOptions options_;
    Store store_;
};

}  // namespace resp
