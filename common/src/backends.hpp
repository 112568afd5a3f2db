// Private factory functions of the poller backends; poller.cpp chooses among those that were built.
#pragma once

#include <memory>

#include "kq/poller.hpp"

namespace kq::detail {

#ifdef KQ_HAVE_EPOLL
std::unique_ptr<Poller> make_epoll_poller();
#endif
#ifdef KQ_HAVE_KQUEUE
std::unique_ptr<Poller> make_kqueue_poller();
#endif

}  // namespace kq::detail
