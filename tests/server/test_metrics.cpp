// Metrics: the exposition is well-formed Prometheus text, and its counters agree with each other and
// with what the clients really did, scraped while the load runs and after it. The endpoint under
// hostile clients: trickling, never reading, too many, malformed; none may delay another scrape.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "kq/metrics.hpp"
#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

// A scrape over a real socket, through the MetricsServer's HTTP endpoint.
std::string scrape(uint16_t port, const std::string& path = "/metrics") {
    UniqueFd fd = connect_blocking(port);
    send_all(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    return recv_until_eof(fd.get());
}

// One keep-alive HTTP response: the head up to the blank line, then Content-Length bytes of body.
std::string read_response(int fd) {
    std::string r;
    char buf[4096];
    for (;;) {
        auto end = r.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto cl = r.find("Content-Length: ");
            size_t length = cl < end ? std::stoul(r.substr(cl + 16)) : 0;
            if (r.size() >= end + 4 + length) return r;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return r;
        r.append(buf, static_cast<size_t>(n));
    }
}

// "name{labels}" -> value, for every sample line.
std::map<std::string, double> samples(const std::string& response) {
    std::map<std::string, double> out;
    std::istringstream in(response.substr(response.find("\r\n\r\n") + 4));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto sp = line.rfind(' ');
        out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    return out;
}

double sum_over_workers(const std::map<std::string, double>& s, const std::string& name, size_t workers) {
    double total = 0;
    for (size_t i = 0; i < workers; ++i) total += s.at(name + "{worker=\"" + std::to_string(i) + "\"}");
    return total;
}

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A scrape that gives up after deadline_ms: the whole response and how long it took, or nullopt if the
// endpoint did not answer and close in time.
std::optional<std::pair<std::string, int64_t>> timed_scrape(
    uint16_t port, int deadline_ms, const std::string& request = "GET /metrics HTTP/1.1\r\n\r\n") {
    auto start = Clock::now();
    UniqueFd fd = connect_blocking(port);  // completes in the kernel's backlog even if nobody accepts
    send_all(fd.get(), request);
    std::string out;
    for (;;) {
        int left = deadline_ms - static_cast<int>(ms_since(start));
        if (left <= 0 || !readable_within(fd.get(), left)) return std::nullopt;
        char buf[65536];
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) return std::make_pair(out, ms_since(start));
        out.append(buf, static_cast<size_t>(n));
    }
}

// A client on its own thread that sends `bytes` one at a time, one every `period`, until they are all
// sent, the server answers or closes, or the Trickler is destroyed; what the server sent is kept.
class Trickler {
public:
    Trickler(uint16_t port, std::chrono::milliseconds period, std::string bytes)
        : fd_(connect_blocking(port)), thread_([this, period, bytes] { run(period, bytes); }) {
        for (auto start = Clock::now(); !started_.load() && ms_since(start) < 10'000;) std::this_thread::sleep_for(1ms);
    }
    ~Trickler() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    // Waits for the thread (at most the rest of its bytes' time); the server's answer, and how long
    // after the first byte it came, or -1 if the server never answered or closed.
    std::pair<std::string, int64_t> result() {
        if (thread_.joinable()) thread_.join();
        return {reply_, cut_after_ms_};
    }

private:
    void run(std::chrono::milliseconds period, const std::string& bytes) {
        auto first = Clock::now();
        for (size_t i = 0; i < bytes.size() && !stop_.load(); ++i) {
            if (::send(fd_.get(), &bytes[i], 1, MSG_NOSIGNAL) != 1) break;
            started_ = true;
            if (readable_within(fd_.get(), static_cast<int>(period.count()))) {
                cut_after_ms_ = ms_since(first);
                reply_ = recv_until_eof(fd_.get());
                return;
            }
        }
    }

    UniqueFd fd_;
    std::atomic<bool> started_{false}, stop_{false};
    std::string reply_;
    int64_t cut_after_ms_ = -1;
    std::thread thread_;
};

const std::string kSlowRequest = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";

// 40 keep-alive clients send 50 HTTP requests each in lock-step while another thread scrapes; the
// counters never go backwards, and afterwards accepted/requests/bytes match what was sent exactly.
TEST(Metrics, CountersAreConsistentUnderLoad) {
    ServerConfig cfg;
    cfg.workers = 2;
    RunningServer srv(cfg, "http");
    ListenOptions mo;
    MetricsServer metrics(srv.server(), mo);
    metrics.start();

    constexpr int kClients = 40, kRequests = 50;
    const std::string request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    std::atomic<bool> done{false};
    std::atomic<int> scrapes{0};
    std::thread scraper([&] {
        double last_requests = 0;
        while (!done.load()) {
            auto s = samples(scrape(metrics.port()));
            double req = sum_over_workers(s, "kqserver_worker_requests_total", 2);
            EXPECT_GE(req, last_requests) << "a counter went backwards";
            last_requests = req;
            scrapes.fetch_add(1);
        }
    });
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&] {
            UniqueFd fd = connect_blocking(srv.port());
            for (int r = 0; r < kRequests; ++r) {
                send_all(fd.get(), request);
                ASSERT_TRUE(read_response(fd.get()).starts_with("HTTP/1.1 200 OK\r\n"));
            }
        });
    }
    for (auto& t : clients) t.join();
    done = true;
    scraper.join();
    EXPECT_GT(scrapes.load(), 0);

    auto s = samples(scrape(metrics.port()));
    EXPECT_EQ(s.at("kqserver_acceptor_accepted_total"), kClients);
    EXPECT_EQ(sum_over_workers(s, "kqserver_worker_connections_accepted_total", 2), kClients);
    EXPECT_EQ(sum_over_workers(s, "kqserver_worker_requests_total", 2), kClients * kRequests);
    EXPECT_EQ(sum_over_workers(s, "kqserver_worker_read_bytes_total", 2),
              static_cast<double>(kClients * kRequests * request.size()));
    EXPECT_EQ(sum_over_workers(s, "kqserver_worker_handoff_queue_full_total", 2), 0);
    // The events-per-wait histogram counts waits: at least one per answered request batch, and never
    // more than the workers have done by now.
    double waits = sum_over_workers(s, "kqserver_worker_events_per_wait_count", 2);
    EXPECT_GT(waits, 0);
    EXPECT_LE(waits, static_cast<double>(srv.server().worker(0).stats().waits.get() +
                                         srv.server().worker(1).stats().waits.get()));
    EXPECT_GT(s.at("process_cpu_seconds_total"), 0);
    EXPECT_GT(s.at("process_resident_memory_bytes"), 1 << 20);
    EXPECT_GT(s.at("process_open_fds"), 3);
    EXPECT_GT(s.at("process_start_time_seconds"), 1.6e9);
}

// Every sample belongs to a family declared with HELP and TYPE; counters end in _total; histograms
// have cumulative buckets ending in +Inf equal to _count.
TEST(Metrics, ExpositionIsWellFormed) {
    ServerConfig cfg;
    cfg.workers = 3;
    RunningServer srv(cfg, "echo");
    MetricsServer metrics(srv.server(), ListenOptions{});
    metrics.start();
    std::string response = scrape(metrics.port());
    ASSERT_NE(response.find("HTTP/1.1 200 OK"), std::string::npos);
    ASSERT_NE(response.find("text/plain; version=0.0.4"), std::string::npos);
    std::string body = response.substr(response.find("\r\n\r\n") + 4);
    std::map<std::string, std::string> types;
    std::istringstream in(body);
    std::string line;
    std::regex type_re("# TYPE ([a-z_]+) (counter|gauge|histogram)");
    std::regex sample_re("([a-z_]+)(\\{[^}]*\\})? [0-9.e+]+");
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, type_re)) {
            types[m[1]] = m[2];
            if (m[2] == "counter") {
                EXPECT_TRUE(std::string(m[1]).ends_with("_total")) << line;
            }
        } else if (line.starts_with("# HELP ")) {
            continue;
        } else {
            ASSERT_TRUE(std::regex_match(line, m, sample_re)) << "malformed sample: " << line;
            std::string name = m[1];
            for (const char* suffix : {"_bucket", "_sum", "_count"}) {
                if (!types.count(name) && name.ends_with(suffix)) name.resize(name.size() - std::strlen(suffix));
            }
            EXPECT_TRUE(types.count(name)) << "sample without TYPE: " << line;
        }
    }
    auto s = samples(response);
    for (int w = 0; w < 3; ++w) {
        std::string lbl = "{worker=\"" + std::to_string(w) + "\"";
        EXPECT_EQ(s.at("kqserver_worker_events_per_wait_bucket" + lbl + ",le=\"+Inf\"}"),
                  s.at("kqserver_worker_events_per_wait_count" + lbl + "}"));
    }
    EXPECT_NE(scrape(metrics.port(), "/other").find("404"), std::string::npos);
}

// A client trickling a byte a second holds one connection of the endpoint, nothing else: scrapes
// meanwhile are answered at once.
TEST(MetricsEndpoint, TricklingClientDoesNotDelayOtherScrapes) {
    RunningServer srv(ServerConfig{}, "echo");
    MetricsServer metrics(srv.server(), ListenOptions{});
    metrics.start();
    Trickler slow(metrics.port(), 1000ms, kSlowRequest);
    for (int i = 0; i < 3; ++i) {
        auto r = timed_scrape(metrics.port(), 2000);
        ASSERT_TRUE(r) << "scrape " << i << " not answered within 2 s while a client trickles";
        EXPECT_TRUE(r->first.starts_with("HTTP/1.1 200 OK\r\n")) << r->first.substr(0, 100);
        EXPECT_LT(r->second, 500) << "scrape " << i << " took " << r->second << " ms";
    }
}

// 50 scrapes at once, beside a trickling client: every one is answered in full.
TEST(MetricsEndpoint, FiftyConcurrentScrapesAllSucceed) {
    RunningServer srv(ServerConfig{}, "echo");
    MetricsServer metrics(srv.server(), ListenOptions{});
    metrics.start();
    Trickler slow(metrics.port(), 1000ms, kSlowRequest);
    constexpr size_t kScrapes = 50;
    std::vector<UniqueFd> fds;
    std::vector<std::string> replies(kScrapes);
    std::vector<bool> done(kScrapes, false);
    for (size_t i = 0; i < kScrapes; ++i) fds.push_back(connect_tcp("127.0.0.1", metrics.port(), true));
    for (auto& fd : fds) {
        ASSERT_EQ(wait_connected(fd.get(), 5000), 0);
        send_all(fd.get(), "GET /metrics HTTP/1.1\r\n\r\n");
    }
    auto start = Clock::now();
    while (std::count(done.begin(), done.end(), false) > 0 && ms_since(start) < 10'000) {
        std::vector<pollfd> pfds;
        std::vector<size_t> who;
        for (size_t i = 0; i < kScrapes; ++i) {
            if (!done[i]) pfds.push_back({fds[i].get(), POLLIN, 0}), who.push_back(i);
        }
        ::poll(pfds.data(), pfds.size(), 100);
        for (size_t k = 0; k < pfds.size(); ++k) {
            if (!pfds[k].revents) continue;
            char buf[65536];
            ssize_t n = ::recv(pfds[k].fd, buf, sizeof buf, 0);
            if (n > 0) replies[who[k]].append(buf, static_cast<size_t>(n));
            else done[who[k]] = true;
        }
    }
    for (size_t i = 0; i < kScrapes; ++i) {
        EXPECT_TRUE(done[i]) << "scrape " << i << " unfinished after 10 s";
        EXPECT_TRUE(replies[i].starts_with("HTTP/1.1 200 OK\r\n")) << i << ": " << replies[i].substr(0, 100);
        EXPECT_NE(replies[i].find("\nprocess_open_fds "), std::string::npos) << i << ": body cut short";
    }
}

// Clients that ask and never read their answers each hold a connection until the idle time-out, and
// nothing else: a scrape meanwhile is answered at once.
TEST(MetricsEndpoint, ClientsThatNeverReadDoNotBlockOthers) {
    ServerConfig cfg;
    cfg.workers = 16;  // a longer exposition
    RunningServer srv(cfg, "echo");
    MetricsServer metrics(srv.server(), ListenOptions{});
    metrics.start();
    std::vector<UniqueFd> sleepers;
    for (int i = 0; i < 20; ++i) {
        sleepers.push_back(connect_blocking(metrics.port()));
        int small = 1024;  // the kernel's minimum: most of the answer has to wait on the server's side
        ::setsockopt(sleepers.back().get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        send_all(sleepers.back().get(), "GET /metrics HTTP/1.1\r\n\r\n");
    }
    auto r = timed_scrape(metrics.port(), 2000);
    ASSERT_TRUE(r) << "no answer within 2 s beside 20 clients that do not read";
    EXPECT_TRUE(r->first.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_LT(r->second, 500);
}

// The deadline covers the whole request from its first byte, not each read: a client sending a byte
// every 100 ms, each well within any per-read time-out, is answered 408 and closed at the deadline.
TEST(MetricsEndpoint, TricklingClientIsCutAtTheWholeRequestDeadline) {
    RunningServer srv(ServerConfig{}, "echo");
    MetricsConfig cfg;
    cfg.request_timeout_ms = 1000;
    cfg.idle_timeout_ms = 10'000;
    MetricsServer metrics(srv.server(), ListenOptions{}, cfg);
    metrics.start();
    Trickler slow(metrics.port(), 100ms, kSlowRequest);  // 26 s to send it all
    auto [reply, cut_ms] = slow.result();
    std::printf("trickling client cut %lld ms after its first byte\n", static_cast<long long>(cut_ms));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << reply;
    EXPECT_GE(cut_ms, 900);
    EXPECT_LT(cut_ms, 3000) << "not cut at the 1 s deadline";
    EXPECT_EQ(metrics.stats().request_timeouts.get(), 1u);
}

// GET (and HEAD) /metrics[?...] are answered 200; other paths 404, other methods 405, garbage 400 at once,
// a head above the limit 431; every answer closes the connection.
TEST(MetricsEndpoint, AnswersOnlyGetMetrics) {
    RunningServer srv(ServerConfig{}, "echo");
    MetricsConfig cfg;
    cfg.max_request = 1024;
    MetricsServer metrics(srv.server(), ListenOptions{}, cfg);
    metrics.start();
    const std::pair<std::string, std::string> cases[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
        {"GET /metrics?name[]=process_open_fds HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
        {"GET /metrics HTTP/1.1\n\n", "HTTP/1.1 200 OK\r\n"},
        {"GET /other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
        {"GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
        {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"},
        {"\x16\x03\x01\x02\x00\x01", "HTTP/1.1 400 Bad Request\r\n"},     // a TLS hello: 400 without waiting
        {"GET /metrics\r\nHost: x\r\n", "HTTP/1.1 400 Bad Request\r\n"},  // no version: 400 at the line's end
        {"GET /metrics HTTP/1.1\r\nX: " + std::string(2000, 'a'), "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
    };
    for (const auto& [request, status] : cases) {
        auto r = timed_scrape(metrics.port(), 2000, request);
        ASSERT_TRUE(r) << "no answer (and close) within 2 s to: " << request.substr(0, 40);
        EXPECT_TRUE(r->first.starts_with(status)) << request.substr(0, 40) << " -> " << r->first.substr(0, 60);
        EXPECT_NE(r->first.find("Connection: close\r\n"), std::string::npos);
    }
    auto head = timed_scrape(metrics.port(), 2000, "HEAD /metrics HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_TRUE(head->first.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_TRUE(head->first.ends_with("\r\n\r\n")) << "HEAD got a body";
}

// At the connection limit further clients wait in the kernel's backlog; clients that hold a connection
// without sending are closed at the idle time-out, and the waiting scrape is then answered.
TEST(MetricsEndpoint, ConnectionsAreBoundedAndSilentHoldersAreCut) {
    RunningServer srv(ServerConfig{}, "echo");
    MetricsConfig cfg;
    cfg.max_connections = 4;
    cfg.idle_timeout_ms = 1000;
    MetricsServer metrics(srv.server(), ListenOptions{}, cfg);
    metrics.start();
    std::vector<UniqueFd> silent;
    for (size_t i = 0; i < cfg.max_connections; ++i) silent.push_back(connect_blocking(metrics.port()));
    for (auto start = Clock::now(); metrics.stats().accepted.get() < cfg.max_connections && ms_since(start) < 5000;)
        std::this_thread::sleep_for(1ms);
    ASSERT_EQ(metrics.stats().accepted.get(), cfg.max_connections);
    auto r = timed_scrape(metrics.port(), 5000);
    ASSERT_TRUE(r) << "the waiting scrape was never served";
    EXPECT_TRUE(r->first.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_GE(r->second, 800) << "served beyond the connection limit";
    EXPECT_EQ(metrics.stats().idle_timeouts.get(), cfg.max_connections);
    for (auto& fd : silent) EXPECT_TRUE(readable_within(fd.get(), 0) && recv_until_eof(fd.get()).empty());
}

}  // namespace
