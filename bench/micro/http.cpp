// Cost of HTTP request handling per request: http-parser alone with callbacks shaped like the
// session's, then a whole kq HTTP session (parse + route + response build) through the Protocol API,
// for a minimal wrk request, a browser-like one with 11 headers, and 16 pipelined wrk requests.
#include <http_parser.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kq/http.hpp"
#include "micro_util.hpp"

namespace kq::micro {
namespace {

constexpr std::string_view kWrkRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
constexpr std::string_view kBrowserRequest =
    "GET / HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "\r\n";

std::string repeated(std::string_view request, int times) {
    std::string s;
    for (int i = 0; i < times; ++i) s += request;
    return s;
}

// What the session's callbacks do, minus routing and responses: keep the URL, count head bytes.
struct ParseState {
    std::string url;
    size_t head_bytes = 0;
    uint64_t messages = 0;
};

ParseState& parse_state(http_parser* p) { return *static_cast<ParseState*>(p->data); }

const http_parser_settings& parse_settings() {
    static const http_parser_settings settings = [] {
        http_parser_settings s{};
        s.on_message_begin = [](http_parser* p) {
            parse_state(p).url.clear();
            parse_state(p).head_bytes = 0;
            return 0;
        };
        s.on_url = [](http_parser* p, const char* at, size_t len) {
            parse_state(p).url.append(at, len);
            parse_state(p).head_bytes += len;
            return 0;
        };
        s.on_header_field = [](http_parser* p, const char*, size_t len) {
            parse_state(p).head_bytes += len;
            return 0;
        };
        s.on_header_value = s.on_header_field;
        s.on_message_complete = [](http_parser* p) {
            ++parse_state(p).messages;
            return 0;
        };
        return s;
    }();
    return settings;
}

// One keep-alive connection's parser, fed one request (or a pipelined run) per iteration.
void BM_HttpParser(benchmark::State& state, std::string_view request, int requests) {
    ParseState ps;
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &ps;
    for (auto _ : state) {
        size_t n = http_parser_execute(&parser, &parse_settings(), request.data(), request.size());
        if (n != request.size() || HTTP_PARSER_ERRNO(&parser) != HPE_OK) return state.SkipWithError("parse error");
    }
    if (ps.messages != static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(requests))
        return state.SkipWithError("wrong number of requests parsed");
    state.SetItemsProcessed(state.iterations() * requests);
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.size()));
}

// A Reply that only records what the session does with it.
class RecordingReply final : public Reply {
public:
    void send(std::span<const char> bytes) override {
        if (first.empty()) first.assign(bytes.data(), bytes.size());
        sent_bytes += bytes.size();
    }
    void close() override { closed = true; }
    void count_requests(uint64_t n) override { requests += n; }

    std::string first;  // the first response, for a sanity check
    uint64_t sent_bytes = 0;
    uint64_t requests = 0;
    bool closed = false;
};

// The worker's path for one read: bytes land in its scratch buffer (copied each iteration, since a
// session may modify them in place), then on_data parses, routes and builds the responses.
void BM_HttpSession(benchmark::State& state, std::string_view request, int requests) {
    auto protocol = make_http_protocol();
    auto session = protocol->open();
    std::vector<char> scratch(request.size());
    RecordingReply reply;
    for (auto _ : state) {
        scratch.assign(request.begin(), request.end());
        session->on_data(scratch, reply);
    }
    if (reply.closed || !reply.first.starts_with("HTTP/1.1 200 ") ||
        reply.requests != static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(requests))
        return state.SkipWithError("the session did not answer every request with 200 on a kept-alive connection");
    state.SetItemsProcessed(state.iterations() * requests);
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.size()));
    state.counters["resp_bytes/req"] = static_cast<double>(reply.sent_bytes) / static_cast<double>(reply.requests);
}

}  // namespace

void register_http_benchmarks() {
    static const std::string pipelined = repeated(kWrkRequest, 16);
    struct Case {
        const char* name;
        std::string_view request;
        int requests;
    };
    for (const Case& c : {Case{"wrk", kWrkRequest, 1}, Case{"browser", kBrowserRequest, 1},
                          Case{"wrk_pipelined16", pipelined, 16}}) {
        benchmark::RegisterBenchmark((std::string("BM_HttpParser/") + c.name).c_str(), BM_HttpParser, c.request,
                                     c.requests);
        benchmark::RegisterBenchmark((std::string("BM_HttpSession/") + c.name).c_str(), BM_HttpSession, c.request,
                                     c.requests);
    }
}

}  // namespace kq::micro
