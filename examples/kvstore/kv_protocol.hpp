// The kvstore protocol on kqserver's handler API (kq/handler.hpp): one command per line, one reply line
// per command, answered in order.
//
//   SET key value   ->  OK                      (value: the rest of the line, spaces included)
//   GET key         ->  VALUE value | NOT_FOUND
//   DEL key         ->  DELETED | NOT_FOUND
//   anything else   ->  ERROR <why>             (the connection stays open)
//   a line longer than max_line  ->  ERROR line too long, then the server closes the connection
//   a line begun but not ended within the worker's request time-out  ->  ERROR timeout, then close
//
// Lines end with "\n"; a "\r" before it is ignored. Commands are case-insensitive, keys and values are
// not. Keys are one word (no spaces).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "kq/handler.hpp"
#include "kv_store.hpp"

namespace kvstore {

struct KvOptions {
    size_t max_line = 64 * 1024;  // longest command line in bytes, its "\n" not counted
    size_t shards = 64;           // locks of the shared store (see ShardedStore)
};

// One store for every connection on every worker: a key set through one connection is seen by all.
class KvProtocol final : public kq::Protocol {
public:
    explicit KvProtocol(KvOptions options = {});
    std::string_view name() const override { return "kvstore"; }
    // Called by every worker thread at once: reads only what the constructor set.
    std::unique_ptr<kq::Session> open(kq::Conn&) override;
    ShardedStore& store() noexcept { return store_; }

private:
    KvOptions options_;
    ShardedStore store_;
};

// Runs one command line (without its "\n") against store and appends the reply line to out.
void execute(std::string_view line, ShardedStore& store, std::string& out);

}  // namespace kvstore
