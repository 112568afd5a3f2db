// Built-in protocols by name: echo and upper, both stateless, and http; and the two wrappers that put
// a slow handler in front of any of them, one blocking its worker and one offloading to a pool.
#include <array>
#include <memory>
#include <string>
#include <thread>

#include "kq/handler.hpp"
#include "kq/http.hpp"
#include "kq/offload.hpp"
#include "kq/protocols.hpp"

namespace kq {
namespace {

// Sends every byte back unchanged; the scratch buffer is sent directly, no copy unless the socket is full.
class EchoSession final : public Session {
public:
    // A "request" of a stream protocol is one chunk received and answered.
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        conn.send(bytes);
        conn.count_requests();
        return bytes.size();
    }
};

// Sends every byte back ASCII-uppercased (in place: the scratch buffer is ours to change). It assumes
// neither a NUL-terminated line nor a non-empty read (no buf[readlen - 1]).
class UpperSession final : public Session {
public:
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        for (char& c : bytes) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        }
        conn.send(bytes);
        conn.count_requests();
        return bytes.size();
    }
};

template <class S>
class StatelessProtocol final : public Protocol {
public:
    explicit StatelessProtocol(std::string_view name) : name_(name) {}
    std::string_view name() const override { return name_; }
    std::unique_ptr<Session> open(Conn&) override { return std::make_unique<S>(); }

private:
    std::string_view name_;
};

constexpr std::array<std::string_view, 3> kNames = {"echo", "upper", "http"};

// Forwards everything else to the wrapped session.
class WrappingSession : public Session {
public:
    explicit WrappingSession(std::unique_ptr<Session> inner) : inner_(std::move(inner)) {}
    void on_peer_eof(Conn& conn) override { inner_->on_peer_eof(conn); }
    void on_drained(Conn& conn) override { inner_->on_drained(conn); }
    bool mid_request() const override { return inner_->mid_request(); }
    bool input_may_follow() const override { return inner_->input_may_follow(); }
    void on_request_timeout(Conn& conn) override { inner_->on_request_timeout(conn); }

protected:
    std::unique_ptr<Session> inner_;
};

// --block-ms: sleeps on the worker thread before each read is handled, as a handler calling sleep() would.
class BlockingSession final : public WrappingSession {
public:
    BlockingSession(std::unique_ptr<Session> inner, std::chrono::milliseconds delay)
        : WrappingSession(std::move(inner)), delay_(delay) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        std::this_thread::sleep_for(delay_);
        return inner_->on_data(bytes, conn);
    }

private:
    std::chrono::milliseconds delay_;
};

// --offload-ms: the same sleep on the offload pool. Reading pauses while a read's sleep runs (the bytes
// that arrive meanwhile wait, held or in the kernel), then the wrapped session handles the read on its
// worker, as it would have after a blocking sleep: each connection sees the same delay, but its worker
// serves every other connection meanwhile.
class OffloadingSession final : public WrappingSession {
public:
    OffloadingSession(std::unique_ptr<Session> inner, std::chrono::milliseconds delay, OffloadPool& pool)
        : WrappingSession(std::move(inner)), delay_(delay), pool_(pool) {}
    size_t on_data(std::span<char> bytes, Conn& conn) override {
        if (slept_) {  // this read's sleep is over: the wrapped session handles it now
            slept_ = false;
            return inner_->on_data(bytes, conn);
        }
        conn.pause_reading();
        // The job carries `this` only to the worker: a posted call runs only while the connection, and
        // so its session, still exists.
        pool_.submit([handle = conn.handle(), delay = delay_, self = this] {
            std::this_thread::sleep_for(delay);
            handle.post([self](Conn& c) {
                self->slept_ = true;
                c.resume_reading();
            });
        });
        return 0;  // held: offered again when reading resumes
    }

private:
    std::chrono::milliseconds delay_;
    OffloadPool& pool_;
    bool slept_ = false;
};

class BlockingProtocol final : public Protocol {
public:
    BlockingProtocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay)
        : inner_(std::move(inner)), delay_(delay) {}
    std::string_view name() const override { return inner_->name(); }
    std::unique_ptr<Session> open(Conn& conn) override {
        return std::make_unique<BlockingSession>(inner_->open(conn), delay_);
    }

private:
    std::unique_ptr<Protocol> inner_;
    std::chrono::milliseconds delay_;
};

class OffloadingProtocol final : public Protocol {
public:
    OffloadingProtocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay, size_t threads)
        : inner_(std::move(inner)), delay_(delay), pool_(threads) {}
    std::string_view name() const override { return inner_->name(); }
    std::unique_ptr<Session> open(Conn& conn) override {
        return std::make_unique<OffloadingSession>(inner_->open(conn), delay_, pool_);
    }

private:
    std::unique_ptr<Protocol> inner_;
    std::chrono::milliseconds delay_;
    OffloadPool pool_;  // destroyed first: it waits for the sleeps under way, whose posts then go nowhere
};

}  // namespace

std::unique_ptr<Protocol> make_builtin_protocol(std::string_view name) {
    if (name == kNames[0]) return std::make_unique<StatelessProtocol<EchoSession>>(kNames[0]);
    if (name == kNames[1]) return std::make_unique<StatelessProtocol<UpperSession>>(kNames[1]);
    if (name == kNames[2]) return make_http_protocol();
    return nullptr;
}

std::span<const std::string_view> builtin_protocol_names() { return kNames; }

std::unique_ptr<Protocol> make_blocking_protocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay) {
    return std::make_unique<BlockingProtocol>(std::move(inner), delay);
}

std::unique_ptr<Protocol> make_offloading_protocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay,
                                                   size_t threads) {
    return std::make_unique<OffloadingProtocol>(std::move(inner), delay, threads);
}

}  // namespace kq
