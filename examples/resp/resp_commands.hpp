// The commands of the RESP example: a subset of Redis 7.0's (examples/resp/README.md lists them), with
// its replies and error texts. Hand-written: Debian packages no Redis command set to embed.
// Thread rules: execute() may run on every worker thread at once; the store is the only shared state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "resp_store.hpp"

namespace resp {

using Args = std::span<const std::string_view>;

// What a command may know of the connection that sent it.
struct Client {
    uint64_t id = 0;
    bool quit = false;  // set by QUIT: close once the reply is written
};

// Runs one request (args non-empty) and appends its reply to out.
void execute(Args args, Store& store, Client& client, std::string& out);

// Lower-case ASCII copy, for case-insensitive names.
std::string lower(std::string_view s);
bool equals_nocase(std::string_view a, std::string_view b);

}  // namespace resp
