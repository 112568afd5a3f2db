// The protocol handler interface: a Protocol opens one Session per connection; the worker calls the
// session with the bytes it receives and the session answers through Reply.
// Thread rules: Protocol::open() may be called from every worker thread at once; a Session is only
// ever called by the worker that owns its connection.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace kq {

// What a session may do with its connection. Valid only during the call that received it.
class Reply {
public:
    // Queues bytes for the peer: written at once when possible; the unsent tail is copied and sent
    // when the socket becomes writable again. Bytes sent after close() are dropped.
    virtual void send(std::span<const char> bytes) = 0;
    void send(std::string_view s) { send(std::span<const char>(s.data(), s.size())); }
    // Closes the connection once everything sent so far has been written.
    virtual void close() = 0;
    // Adds n to the worker's request counter (metrics, exit summary): call once per request answered.
    virtual void count_requests(uint64_t n = 1) = 0;

protected:
    ~Reply() = default;
};

class Session {
public:
    virtual ~Session() = default;
    // Bytes received, in order. The span points into the worker's scratch buffer: the session may
    // modify it in place and must copy whatever it keeps after returning.
    virtual void on_data(std::span<char> bytes, Reply& reply) = 0;
    // The peer finished sending (half-close). Every on_data() has happened. Default: close after flushing.
    virtual void on_peer_eof(Reply& reply) { reply.close(); }
};

class Protocol {
public:
    virtual ~Protocol() = default;
    virtual std::string_view name() const = 0;
    virtual std::unique_ptr<Session> open() = 0;
};

// Built-in protocols by name ("echo", "upper", "http" with default options); nullptr for an unknown name.
std::unique_ptr<Protocol> make_builtin_protocol(std::string_view name);
// Names accepted by make_builtin_protocol, for --help and validation.
std::span<const std::string_view> builtin_protocol_names();

}  // namespace kq
