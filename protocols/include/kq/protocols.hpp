// The protocols that ship with kqserver, by name: echo and upper (stateless byte streams) and http
// (kq/http.hpp for its options); and two wrappers that make any of them slow on purpose, for
// measurements: one blocks its worker, the other offloads the wait to a pool.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string_view>

#include "kq/handler.hpp"

namespace kq {

// Built-in protocols by name ("echo", "upper", "http" with default options); nullptr for an unknown name.
std::unique_ptr<Protocol> make_builtin_protocol(std::string_view name);
// Names accepted by make_builtin_protocol, for --help and validation.
std::span<const std::string_view> builtin_protocol_names();

// Breaks the no-blocking rule on purpose (kqserver --block-ms): each on_data() call first sleeps for
// `delay` on the worker thread, as a handler calling sleep() would, then runs inner's session. It
// exists to measure what one blocking handler does to every other connection on the same worker.
std::unique_ptr<Protocol> make_blocking_protocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay);

// The same delay done right (kqserver --offload-ms): the sleep runs on an OffloadPool of `threads`
// threads (0: one per core) while the connection's reading pauses, then inner's session handles the
// read on its worker. Each connection waits as long as with make_blocking_protocol; its worker's other
// connections do not wait at all (while the pool has a free thread).
std::unique_ptr<Protocol> make_offloading_protocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay,
                                                   size_t threads = 0);

}  // namespace kq
