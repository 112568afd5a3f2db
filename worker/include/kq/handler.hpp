// The protocol handler interface: a Protocol opens one Session per connection; the worker calls the
// session with the bytes it receives and the session answers through Reply. The built-in protocols and
// users' own (docs/handler-api.md, examples/kvstore) use exactly this; kq::Server runs any of them.
// Thread rules: Protocol::open() may be called from every worker thread at once; a Session is created,
// called and destroyed only by the worker that owns its connection, so its own state needs no locks.
// None of these calls may block (the worker's other connections wait meanwhile), and an exception
// escaping open(), on_data() or on_peer_eof() terminates the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace kq {

// What a session may do with its connection. Valid only during the call that received it: never store it.
class Reply {
public:
    // Queues bytes for the peer: written at once when possible; the unsent tail is copied and sent
    // when the socket becomes writable again. Bytes go out in the order of the calls; one send() per
    // on_data() with every reply gathered costs the fewest system calls. Bytes sent after close() are
    // dropped. Nothing limits what one call may queue: while more than WorkerConfig::high_water bytes
    // are unsent the worker stops reading this connection, but it cannot stop a session mid-call.
    virtual void send(std::span<const char> bytes) = 0;
    void send(std::string_view s) { send(std::span<const char>(s.data(), s.size())); }
    void send(const std::string& s) { send(std::string_view(s)); }  // else ambiguous: span or string_view
    // Closes the connection once everything sent so far has been written. No on_data() or
    // on_peer_eof() call follows, and input the session did not consume is discarded (see
    // Session::input_may_follow()); the session is destroyed later on the same worker thread.
    virtual void close() = 0;
    // Adds n to the worker's request counter (metrics, exit summary): call once per request answered.
    virtual void count_requests(uint64_t n = 1) = 0;

protected:
    ~Reply() = default;
};

// One connection's protocol state. Destroyed when the connection closes for any reason (the session's
// close(), the peer's reset, a write error, the server stopping), on its worker's thread.
class Session {
public:
    virtual ~Session() = default;
    // Bytes received, in order, never empty, at most WorkerConfig::read_buffer (64 KiB) per call. TCP
    // keeps no message boundaries: one request may span several calls and one call may hold several.
    // The span points into the worker's scratch buffer, reused by the next read: the session may
    // modify it in place and must copy whatever it keeps after returning.
    virtual void on_data(std::span<char> bytes, Reply& reply) = 0;
    // The peer finished sending (half-close). Every on_data() has happened and no call follows this
    // one, so a session that overrides it answers what it still holds and then closes.
    // Default: close after flushing.
    virtual void on_peer_eof(Reply& reply) { reply.close(); }
    // True while part of a request has arrived but not all of it. The worker then applies its
    // request time-out (--header-timeout) from the moment the request began, however slowly bytes
    // trickle in (slowloris); otherwise only the idle time-out applies. A request began with the read
    // after which mid_request() became true, or with a read that answered one (count_requests()) and
    // left the session mid-request again: the next request's first bytes came in that read.
    virtual bool mid_request() const { return false; }
    // Asked once the session has closed the connection and its output is written: whether the peer
    // may still be sending input the session did not read (it stopped on an error or a limit, or input
    // followed the request it closed on). If so the worker half-closes and reads until the peer's EOF
    // (lingering close), so that unread input cannot make the kernel reset the connection and destroy
    // the answer. Default: true (safe for any protocol); false saves the linger when the peer asked to close.
    virtual bool input_may_follow() const { return true; }
    // The request time-out expired while mid_request() was true. Default: close. HTTP answers 408 first.
    virtual void on_request_timeout(Reply& reply) { reply.close(); }
};

// A connection factory and whatever its sessions share. kq::Server owns it and destroys it only after
// every session, so sessions may keep references into it; what they share must be thread-safe.
class Protocol {
public:
    virtual ~Protocol() = default;
    // For logs ("echo", "http", ...).
    virtual std::string_view name() const = 0;
    // A new session for an accepted connection; called on the worker that owns it, when the worker
    // takes the connection over (in every accept and hand-off mode).
    virtual std::unique_ptr<Session> open() = 0;
};

}  // namespace kq
