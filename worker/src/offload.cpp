// OffloadPool over Boost.Asio's thread_pool (header-only, in libboost-dev): a packaged, well-tested pool
// rather than one of our own; the header keeps Boost out of users' builds.
#include "kq/offload.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <thread>

namespace kq {

struct OffloadPool::Impl {
    explicit Impl(size_t n) : pool(n) {}
    boost::asio::thread_pool pool;
};

namespace {
size_t pool_size(size_t threads) {
    if (threads > 0) return threads;
    unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? n : 1;
}
}  // namespace

OffloadPool::OffloadPool(size_t threads)
    : impl_(std::make_unique<Impl>(pool_size(threads))), threads_(pool_size(threads)) {}

OffloadPool::~OffloadPool() { impl_->pool.join(); }

void OffloadPool::submit(std::function<void()> job) { boost::asio::post(impl_->pool, std::move(job)); }

}  // namespace kq
