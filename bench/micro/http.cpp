// Cost of HTTP request handling per request: the request reader alone (protocols/src/http_request.hpp), then
// a whole kq HTTP session (framing + route + response build) through the Protocol API,
// for a minimal wrk request, a browser-like one with 11 headers, and 16 pipelined wrk requests; and the
// session answering GET /bytes/N of 64 KiB and 1 MiB (the cost of producing a large body).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http_request.hpp"
#include "kq/conn_stub.hpp"
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

// One keep-alive connection's request reader, fed one request (or a pipelined run) per iteration.
void BM_HttpRequestReader(benchmark::State& state, std::string_view request, int requests) {
    http::RequestReader reader(http::Limits{});
    uint64_t messages = 0;
    for (auto _ : state) {
        std::string_view in = request;
        for (;;) {
            const auto e = reader.next(in);
            if (e == http::RequestReader::Event::need_more) break;
            if (e == http::RequestReader::Event::error) return state.SkipWithError("parse error");
            if (e == http::RequestReader::Event::head) benchmark::DoNotOptimize(reader.head().path.data());
            if (e == http::RequestReader::Event::message) ++messages;
        }
    }
    if (messages != static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(requests))
        return state.SkipWithError("wrong number of requests parsed");
    state.SetItemsProcessed(state.iterations() * requests);
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.size()));
}

// A head of up to `size` bytes (many short fields) trickled in 16-byte reads: the cost per read must not grow with
// what has arrived before it (each read goes on where the last stopped).
void BM_HttpHeadTrickled(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
    while (head.size() + 11 + 2 <= size) head += "X:aaaaaaa\r\n";
    head += "\r\n";  // at most `size` bytes
    int64_t reads = 0;
    for (auto _ : state) {
        http::RequestReader reader(http::Limits{size, 0});
        auto last = http::RequestReader::Event::need_more;
        for (size_t i = 0; i < head.size(); i += 16, ++reads) {
            std::string_view in(head.data() + i, std::min<size_t>(16, head.size() - i));
            last = reader.next(in);
        }
        if (last != http::RequestReader::Event::head) return state.SkipWithError("the head was not read whole");
    }
    state.SetItemsProcessed(reads);
}

// A Reply that only records what the session does with it.
class RecordingReply final : public testing::ConnStub {
public:
    using ConnStub::send;
    void send(std::span<const char> bytes) override {
        if (first.empty()) first.assign(bytes.data(), bytes.size());
        sent_bytes += bytes.size();
    }

    std::string first;  // the first response, for a sanity check
    uint64_t sent_bytes = 0;
};

// The worker's path for one read: bytes land in its scratch buffer (copied each iteration, since a
// session may modify them in place), then on_data parses, routes and builds the responses.
void BM_HttpSession(benchmark::State& state, std::string_view request, int requests) {
    auto protocol = make_http_protocol();
    RecordingReply reply;
    auto session = protocol->open(reply);
    std::vector<char> scratch(request.size());
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
    benchmark::RegisterBenchmark("BM_HttpHeadTrickled", BM_HttpHeadTrickled)->Arg(8192)->Arg(65536)->Arg(1 << 20);
    static const std::string pipelined = repeated(kWrkRequest, 16);
    static const std::string bytes64k = "GET /bytes/65536 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    static const std::string bytes1m = "GET /bytes/1048576 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    struct Case {
        const char* name;
        std::string_view request;
        int requests;
    };
    for (const Case& c :
         {Case{"wrk", kWrkRequest, 1}, Case{"browser", kBrowserRequest, 1}, Case{"wrk_pipelined16", pipelined, 16}}) {
        benchmark::RegisterBenchmark((std::string("BM_HttpRequestReader/") + c.name).c_str(), BM_HttpRequestReader,
                                     c.request, c.requests);
        benchmark::RegisterBenchmark((std::string("BM_HttpSession/") + c.name).c_str(), BM_HttpSession, c.request,
                                     c.requests);
    }
    // The reply's output never congests here (it keeps nothing unsent): the body is produced whole.
    benchmark::RegisterBenchmark("BM_HttpSession/bytes64k", BM_HttpSession, std::string_view(bytes64k), 1);
    benchmark::RegisterBenchmark("BM_HttpSession/bytes1m", BM_HttpSession, std::string_view(bytes1m), 1);
}

}  // namespace kq::micro
