// The protocols that ship with kqserver, by name: echo and upper (stateless byte streams) and http
// (kq/http.hpp for its options); and a wrapper that blocks its worker on purpose, for measurements.
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

}  // namespace kq
