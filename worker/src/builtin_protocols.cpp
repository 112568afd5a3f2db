// Built-in protocols by name: echo (seed 003) and upper (seed 001), both stateless, and http.
#include <array>

#include "kq/handler.hpp"
#include "kq/http.hpp"

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

// Sends every byte back ASCII-uppercased (in place: the scratch buffer is ours to change). Unlike the
// seed, it neither assumes a NUL-terminated line nor indexes buf[readlen - 1].
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

}  // namespace

std::unique_ptr<Protocol> make_builtin_protocol(std::string_view name) {
    if (name == kNames[0]) return std::make_unique<StatelessProtocol<EchoSession>>(kNames[0]);
    if (name == kNames[1]) return std::make_unique<StatelessProtocol<UpperSession>>(kNames[1]);
    if (name == kNames[2]) return make_http_protocol();
    return nullptr;
}

std::span<const std::string_view> builtin_protocol_names() { return kNames; }

}  // namespace kq
