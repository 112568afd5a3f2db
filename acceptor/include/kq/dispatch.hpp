// How the acceptor spreads connections over the workers, and how it hands one over: the choices a
// ServerConfig makes, apart from the acceptor itself (which is not part of the installed API).
// Thread rules: plain values and pure functions, any thread.
#pragma once

#include <string_view>

namespace kq {

enum class Dispatch { round_robin, least_connections };
bool parse_dispatch(std::string_view text, Dispatch& out);
std::string_view dispatch_name(Dispatch d);

// queue: the fd goes through the worker's spsc mailbox (a wake only if the worker sleeps) and the worker
// registers it. direct: the acceptor registers it in the worker's poller; the kernel event wakes the worker.
enum class Handoff { queue, direct };
bool parse_handoff(std::string_view text, Handoff& out);
std::string_view handoff_name(Handoff h);

}  // namespace kq
