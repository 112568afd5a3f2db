// The proxy's two sessions: ClientSession on the accepted connection, BackendSession on the outbound one
// it makes on the same worker. Each keeps a pointer to the other and clears it in its destructor (sessions
// are destroyed on their worker, and a Conn is valid as long as its session), so either side's close,
// reset or time-out reaches the other as a close after flushing what it owes.
#include "proxy.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace kqproxy {
namespace {

class BackendSession;

// Sends bytes on to the other side, straight from the worker's read buffer (the Conn keeps only what the
// socket does not take at once). Once the other side's output is congested, the side they came from
// stops reading until the other's on_drained(): at most low water plus one read is held per direction.
size_t forward(std::span<char> bytes, kq::Conn& from, kq::Conn& to, ProxyStats& stats) {
    to.send(bytes);
    if (to.congested()) {
        from.pause_reading();
        stats.pauses.fetch_add(1, std::memory_order_relaxed);
        uint64_t held = to.unsent(), seen = stats.max_buffered.load(std::memory_order_relaxed);
        while (held > seen && !stats.max_buffered.compare_exchange_weak(seen, held, std::memory_order_relaxed)) {}
    }
    return bytes.size();
}

class ClientSession final : public kq::Session {
public:
    ClientSession(ProxyProtocol& proxy, kq::Conn& conn) : proxy_(proxy), conn_(conn), first_(proxy.next_backend()) {
        conn.pause_reading();  // the client's bytes wait in the kernel until a backend is connected
        connect_next();
    }
    ~ClientSession() override;

    size_t on_data(std::span<char> bytes, kq::Conn& conn) override {
        if (backend_conn_ == nullptr) {  // not connected (reading is paused until then): hold them
            conn.pause_reading();
            return 0;
        }
        return forward(bytes, conn, *backend_conn_, proxy_.stats());
    }
    // The client finished sending: the backend gets EOF once it has everything before it.
    void on_peer_eof(kq::Conn& conn) override {
        client_eof_ = true;
        if (backend_conn_ == nullptr) conn.close();
        else if (backend_eof_) close_both();
        else backend_conn_->shutdown_write();
    }
    void on_drained(kq::Conn&) override {
        if (backend_conn_ != nullptr) backend_conn_->resume_reading();
    }

    // From the backend's session.
    kq::Conn& conn() noexcept { return conn_; }
    ProxyStats& stats() noexcept { return proxy_.stats(); }
    void backend_eof() {
        backend_eof_ = true;
        if (client_eof_) close_both();
        else conn_.shutdown_write();
    }
    void backend_gone() {  // the backend's connection closed (its reset, its close, a time-out)
        backend_ = nullptr;
        backend_conn_ = nullptr;
        conn_.close();  // after what the backend sent has been written
    }

private:
    friend class BackendSession;
    void connect_next();
    std::unique_ptr<kq::Session> backend_connected(kq::Conn& backend);
    void connect_failed(int error) {
        last_error_ = error;
        ++tried_;
        proxy_.stats().retries.fetch_add(1, std::memory_order_relaxed);
        connect_next();
    }
    void close_both() {
        conn_.close();
        if (backend_conn_ != nullptr) backend_conn_->close();
    }

    ProxyProtocol& proxy_;
    kq::Conn& conn_;
    const size_t first_;  // the round-robin choice; failures move on from it
    size_t tried_ = 0;
    int last_error_ = 0;
    BackendSession* backend_ = nullptr;  // both set while the backend's session exists
    kq::Conn* backend_conn_ = nullptr;
    bool client_eof_ = false, backend_eof_ = false;
};

class BackendSession final : public kq::Session {
public:
    explicit BackendSession(ClientSession& client) : client_(&client) {}
    ~BackendSession() override {
        if (client_ != nullptr) client_->backend_gone();
    }
    size_t on_data(std::span<char> bytes, kq::Conn& conn) override {
        if (client_ == nullptr) return bytes.size();  // not reached: the client's end closed this one
        return forward(bytes, conn, client_->conn(), client_->stats());
    }
    void on_peer_eof(kq::Conn& conn) override {
        if (client_ == nullptr) conn.close();
        else client_->backend_eof();
    }
    void on_drained(kq::Conn&) override {
        if (client_ != nullptr) client_->conn().resume_reading();
    }

    ClientSession* client_;  // null once the client's session is gone
};

ClientSession::~ClientSession() {
    if (backend_ == nullptr) return;  // a connect still under way is closed by the worker
    backend_->client_ = nullptr;
    backend_conn_->close();  // after what the client sent has been written
}

// The next backend in round-robin order that was not tried yet, or the error line once all were.
void ClientSession::connect_next() {
    const auto& backends = proxy_.options().backends;
    if (tried_ >= backends.size()) {
        proxy_.stats().unavailable.fetch_add(1, std::memory_order_relaxed);
        conn_.send("kqproxy: no backend available (last error: " + std::string(std::strerror(last_error_)) + ")\n");
        conn_.close();
        return;
    }
    conn_.connect(
        backends[(first_ + tried_) % backends.size()], proxy_.options().connect_timeout,
        [this](kq::Conn& backend) { return backend_connected(backend); }, [this](int error) { connect_failed(error); });
}

std::unique_ptr<kq::Session> ClientSession::backend_connected(kq::Conn& backend) {
    auto session = std::make_unique<BackendSession>(*this);
    backend_ = session.get();
    backend_conn_ = &backend;
    proxy_.stats().forwarded.fetch_add(1, std::memory_order_relaxed);
    conn_.resume_reading();  // what the client sent meanwhile is read on the worker's next pass
    return session;
}

}  // namespace

ProxyProtocol::ProxyProtocol(ProxyOptions options) : options_(std::move(options)) {
    if (options_.backends.empty()) throw std::invalid_argument("kqproxy: no backend");
}

std::unique_ptr<kq::Session> ProxyProtocol::open(kq::Conn& conn) {
    return std::make_unique<ClientSession>(*this, conn);
}

size_t ProxyProtocol::next_backend() noexcept {
    return static_cast<size_t>(next_.fetch_add(1, std::memory_order_relaxed) % options_.backends.size());
}

kq::SocketAddress resolve_backend(const std::string& host_port) {
    const size_t colon = host_port.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        throw std::invalid_argument("--upstream " + host_port + ": expected HOST:PORT");
    }
    std::string host = host_port.substr(0, colon);
    const std::string port_text = host_port.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos)
        throw std::invalid_argument("--upstream " + host_port + ": write an IPv6 address as [ADDRESS]:PORT");
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
        throw std::invalid_argument("--upstream " + host_port + ": port must be 1..65535");
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
        throw std::invalid_argument("--upstream " + host_port + ": " + ::gai_strerror(rc));
    }
    kq::SocketAddress a;
    std::memcpy(&a.storage, found->ai_addr, std::min<size_t>(found->ai_addrlen, sizeof a.storage));
    a.length = static_cast<socklen_t>(found->ai_addrlen);
    ::freeaddrinfo(found);
    return a;
}

}  // namespace kqproxy
