// The protocol handler interface: a Protocol opens one Session per connection; the worker calls the
// session with the bytes it receives, and the session acts on its connection through Conn: it sends,
// closes, pauses reading, sets timers, and hands a ConnHandle to other threads that answer later (a
// database client, an offload pool: kq/offload.hpp). The built-in protocols and users' own
// (docs/handler-api.md, examples/) use exactly this; kq::Server runs any of them.
// Thread rules: Protocol::open() may be called from every worker thread at once; a Session is created,
// called and destroyed only by the worker that owns its connection, so its own state needs no locks, and
// Conn is used only there. ConnHandle is the one thing any thread may use. None of the calls may block
// (the worker's other connections wait meanwhile), and an exception escaping a session's call
// terminates the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <netinet/in.h>
#include <sys/socket.h>

namespace kq {

class Conn;
class Session;
class ConnPort;  // a worker's inbox for other threads (worker/src/conn_port.hpp)

// A socket address (IPv4 or IPv6) as getpeername()/getsockname() return it.
struct SocketAddress {
    // A numeric address ("127.0.0.1", "::1") and port, without name resolution (which blocks: resolve
    // names before the server starts). Throws std::invalid_argument if host is not numeric.
    static SocketAddress numeric(const std::string& host, uint16_t port);

    sockaddr_storage storage{};
    socklen_t length = 0;  // 0: unknown (the call failed: the peer is gone)
    // "1.2.3.4:80", "[::1]:80"; "?" when unknown.
    std::string to_string() const;
    uint16_t port() const noexcept;
};

// A place in a connection's output, reserved now and filled later from any thread (ConnHandle::fill):
// what the session sends after reserving goes out after it. Obtained from Conn::reserve().
struct Reservation {
    uint64_t ticket = 0;
};

// A connection's address for other threads: copyable, cheap (a shared pointer and two integers), and
// valid after the connection has closed, when its calls do nothing. Each call is carried to the worker
// that owns the connection and runs there in the order this thread made them; a call returns false when
// the connection is known to be closed (or the server stopped), true when the call was queued. A queued
// call still does nothing if the connection closes before the worker gets to it (its worker counts those
// in WorkerStats::handle_dropped): the answer to a client that left has nobody to go to.
class ConnHandle {
public:
    ConnHandle() = default;  // refers to nothing: every call returns false
    // Sends a copy of bytes (Conn::send) on the owning worker.
    bool send(std::string bytes) const;
    // Conn::close on the owning worker.
    bool close() const;
    // Fills a reservation the session made (Conn::reserve): its bytes go out once everything before
    // them has. Each reservation must be filled exactly once (with an empty string for nothing), or
    // the connection's later output waits until it closes.
    bool fill(Reservation r, std::string bytes) const;
    // Gives up a reservation instead of filling it: the connection closes once everything before the
    // reservation has been written; the reservation and everything after it (later reservations, later
    // sends) are never written, so that a pipelining client cannot take a later answer for the one
    // that failed. kq::offload() calls it when a job throws. An unknown or already filled one is ignored.
    bool fail(Reservation r) const;
    // Runs fn(conn) on the owning worker, where it may do anything a session may; not if it closed first.
    // So fn may capture the session's `this`: it runs only while the session exists. (The thread that
    // posts must not touch the session itself.)
    bool post(std::function<void(Conn&)> fn) const;
    // False once the connection has closed (a snapshot: it may close right after a true).
    bool alive() const noexcept;
    explicit operator bool() const noexcept { return port_ != nullptr; }

private:
    friend class Connection;
    ConnHandle(std::shared_ptr<ConnPort> port, uint32_t slot, uint64_t generation)
        : port_(std::move(port)), slot_(slot), generation_(generation) {}
    std::shared_ptr<ConnPort> port_;
    uint32_t slot_ = 0;
    uint64_t generation_ = 0;
};

// Identifies a user timer of one connection (Conn::after, Conn::every); 0 is never one.
using TimerId = uint64_t;

// The session's view of its connection: valid from open() until the session is destroyed, on the
// owning worker's thread only (a session may keep a reference to it).
class Conn {
public:
    // ---- Output.
    // Queues bytes for the peer: written at once when possible; the unsent tail is copied and sent
    // when the socket becomes writable again. Bytes go out in the order of the calls (reservations
    // included); one send() per on_data() with every reply gathered costs the fewest system calls.
    // Bytes sent after close() are dropped.
    virtual void send(std::span<const char> bytes) = 0;
    void send(std::string_view s) { send(std::span<const char>(s.data(), s.size())); }
    void send(const std::string& s) { send(std::string_view(s)); }  // else ambiguous: span or string_view
    void send(const char* s) { send(std::string_view(s)); }
    // Reserves the next place in the output for bytes that a ConnHandle fills later from any thread
    // (the answer a pool computes, or another service returns); later sends wait behind it.
    virtual Reservation reserve() = 0;
    // Closes the connection once everything sent so far (and every reservation made) has been written.
    // No on_data() or on_peer_eof() call follows; the session is destroyed later on this thread.
    virtual void close() = 0;
    // Half-closes: once everything sent so far (and every reservation made) has been written, the peer
    // gets EOF (shutdown(SHUT_WR)); reading goes on, and later sends are dropped. A proxy passes on a
    // client's half-close this way; close() still ends the connection.
    virtual void shutdown_write() = 0;
    // Adds n to the worker's request counter (metrics, exit summary): call once per request answered.
    virtual void count_requests(uint64_t n = 1) = 0;

    // ---- Flow control.
    // Bytes sent but not yet taken by the kernel (reserved places not counted).
    virtual size_t unsent() const noexcept = 0;
    // True while unsent() is above WorkerConfig::low_water: a session producing a large answer stops
    // here and goes on in Session::on_drained(), which follows once the output has drained below it.
    virtual bool congested() const noexcept = 0;
    // Stops reading this connection until resume_reading(): no on_data() meanwhile (the client's
    // bytes wait in the kernel, and TCP slows the client down). Time-outs still apply.
    virtual void pause_reading() = 0;
    // Reads again; input the session left unconsumed is offered again at once (without waiting for
    // new bytes), after the current call returns.
    virtual void resume_reading() = 0;
    virtual bool reading_paused() const noexcept = 0;

    // ---- Timers, on the owning worker (the worker's clock has millisecond resolution). fn runs on
    // this thread while the connection has not closed; every timer is cancelled when it closes.
    virtual TimerId after(std::chrono::milliseconds delay, std::function<void(Conn&)> fn) = 0;
    virtual TimerId every(std::chrono::milliseconds period, std::function<void(Conn&)> fn) = 0;
    // False if the timer already ran (one-shot), was cancelled, or is not this connection's.
    virtual bool cancel(TimerId id) = 0;

    // ---- Who and where.
    virtual SocketAddress peer() const = 0;   // getpeername(), asked on each call
    virtual SocketAddress local() const = 0;  // getsockname(), asked on each call
    virtual int worker() const noexcept = 0;  // index of the owning worker, 0-based
    // Unique among this server's connections: (worker << 48) | the worker's connection count.
    virtual uint64_t id() const noexcept = 0;

    // ---- Outbound connections, on this worker (a proxy's backend, a call to another service).
    // Connects to `to`, non-blocking. Once connected, open(new_conn) makes the new connection's session
    // (as Protocol::open does; nullptr closes it) and the connection lives on this worker like an
    // accepted one. If the connect fails, or has not succeeded within timeout, failed(errno) runs
    // instead (ETIMEDOUT for the time-out). Either runs on this worker, later, and only while this
    // connection is still open, so both may capture the session's `this`; if it closed meanwhile the
    // new connection is closed and neither runs.
    virtual void connect(const SocketAddress& to, std::chrono::milliseconds timeout,
                         std::function<std::unique_ptr<Session>(Conn&)> open,
                         std::function<void(int error)> failed) = 0;

    // ---- For other threads.
    virtual ConnHandle handle() = 0;
    // Input the session left unconsumed (on_data's return value), held by the worker; empty otherwise.
    // A session answering a last, unterminated request in on_peer_eof() finds it here.
    virtual std::span<char> held_input() noexcept = 0;

protected:
    ~Conn() = default;
};

// One connection's protocol state. Destroyed when the connection closes for any reason (the session's
// close(), the peer's reset, a write error, the server stopping), on its worker's thread; Conn must not
// be used from its destructor.
class Session {
public:
    virtual ~Session() = default;
    // Bytes received, in order, never empty. TCP keeps no message boundaries: one request may span
    // several calls and one call may hold several. Returns how many bytes it consumed (from the front):
    // the worker holds the rest and offers it again, followed by the next bytes that arrive, so a
    // session that needs a whole request returns 0 until it has one (at most WorkerConfig::max_input
    // are held: a session that still consumes nothing then is closed). The span is the worker's (its
    // scratch buffer, or the held input): the session may modify it in place, and must copy whatever it
    // keeps after returning.
    virtual size_t on_data(std::span<char> bytes, Conn& conn) = 0;
    // The peer finished sending (half-close). Every on_data() has happened and no call follows this
    // one, so a session that overrides it answers what it still holds (conn.held_input()) and then closes.
    // Default: close after flushing.
    virtual void on_peer_eof(Conn& conn) { conn.close(); }
    // Output that was congested (Conn::congested) has drained below low water. Default: nothing.
    virtual void on_drained(Conn&) {}
    // True while part of a request has arrived but not all of it (held input counts as such without
    // asking). The worker then applies its request time-out (--header-timeout) from the moment the
    // request began, however slowly bytes trickle in (slowloris); otherwise only the idle time-out
    // applies. A request began with the read after which the connection became mid-request, or with a
    // read that answered one (count_requests()) and left it mid-request again.
    virtual bool mid_request() const { return false; }
    // Asked once the session has closed the connection and its output is written: whether the peer
    // may still be sending input the session did not read (it stopped on an error or a limit, or input
    // followed the request it closed on). If so the worker half-closes and reads until the peer's EOF
    // (lingering close), so that unread input cannot make the kernel reset the connection and destroy
    // the answer. Default: true (safe for any protocol); false saves the linger when the peer asked to close.
    virtual bool input_may_follow() const { return true; }
    // The request time-out expired while mid-request. Default: close. HTTP answers 408 first.
    virtual void on_request_timeout(Conn& conn) { conn.close(); }
};

// A connection factory and whatever its sessions share. kq::Server owns it and destroys it only after
// every session, so sessions may keep references into it; what they share must be thread-safe.
class Protocol {
public:
    virtual ~Protocol() = default;
    // For logs ("echo", "http", ...).
    virtual std::string_view name() const = 0;
    // A new session for a new connection; called on the worker that owns it, when the worker takes the
    // connection over (in every accept and hand-off mode). conn outlives the session.
    virtual std::unique_ptr<Session> open(Conn& conn) = 0;
};

}  // namespace kq
