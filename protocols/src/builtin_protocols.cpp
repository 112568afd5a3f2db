// Built-in protocols by name: echo and upper, both stateless, and http.
#include <array>
#include <thread>

#include "kq/handler.hpp"
#include "kq/http.hpp"
#include "kq/protocols.hpp"

namespace kq {
namespace {

// Sends every byte back unchanged; the scratch buffer is sent directly, no copy unless the socket is full.
class EchoSession final : public Session {
public:
    // A "request" of a stream protocol is one chunk received and answered.
    void on_data(std::span<char> bytes, Reply& reply) override {
        reply.send(bytes);
        reply.count_requests();
    }
};

// Sends every byte back ASCII-uppercased (in place: the scratch buffer is ours to change). It assumes
// neither a NUL-terminated line nor a non-empty read (no buf[readlen - 1]).
class UpperSession final : public Session {
public:
    void on_data(std::span<char> bytes, Reply& reply) override {
        for (char& c : bytes) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        }
        reply.send(bytes);
        reply.count_requests();
    }
};

template <class S>
class StatelessProtocol final : public Protocol {
public:
    explicit StatelessProtocol(std::string_view name) : name_(name) {}
    std::string_view name() const override { return name_; }
    std::unique_ptr<Session> open() override { return std::make_unique<S>(); }

private:
    std::string_view name_;
};

constexpr std::array<std::string_view, 3> kNames = {"echo", "upper", "http"};

class BlockingSession final : public Session {
public:
    BlockingSession(std::unique_ptr<Session> inner, std::chrono::milliseconds delay)
        : inner_(std::move(inner)), delay_(delay) {}
    void on_data(std::span<char> bytes, Reply& reply) override {
        std::this_thread::sleep_for(delay_);
        inner_->on_data(bytes, reply);
    }
    void on_peer_eof(Reply& reply) override { inner_->on_peer_eof(reply); }
    bool mid_request() const override { return inner_->mid_request(); }
    void on_request_timeout(Reply& reply) override { inner_->on_request_timeout(reply); }

private:
    std::unique_ptr<Session> inner_;
    std::chrono::milliseconds delay_;
};

class BlockingProtocol final : public Protocol {
public:
    BlockingProtocol(std::unique_ptr<Protocol> inner, std::chrono::milliseconds delay)
        : inner_(std::move(inner)), delay_(delay) {}
    std::string_view name() const override { return inner_->name(); }
    std::unique_ptr<Session> open() override { return std::make_unique<BlockingSession>(inner_->open(), delay_); }

private:
    std::unique_ptr<Protocol> inner_;
    std::chrono::milliseconds delay_;
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

}  // namespace kq
