// Metrics: the exposition is well-formed Prometheus text, and its counters agree with each other and
// with what the clients really did, scraped while the load runs and after it.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <regex>
#include <sstream>
#include <cstring>

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

}  // namespace
