// Backend registry: names, parsing, and the factory that picks among the backends this build has.
#include "kq/poller.hpp"

#include <stdexcept>
#include <string>

#include "backends.hpp"

namespace kq {

std::string_view backend_name(Backend b) {
    switch (b) {
    case Backend::automatic:
        return "auto";
    case Backend::epoll:
        return "epoll";
    case Backend::kqueue:
        return "kqueue";
    case Backend::io_uring:
        return "io_uring";
    }
    return "?";
}

bool parse_backend(std::string_view text, Backend& out) {
    for (Backend b : {Backend::automatic, Backend::epoll, Backend::kqueue, Backend::io_uring}) {
        if (text == backend_name(b)) {
            out = b;
            return true;
        }
    }
    return false;
}

std::vector<Backend> poller_backends() {
    std::vector<Backend> v;
#ifdef KQ_HAVE_EPOLL
    v.push_back(Backend::epoll);  // native on Linux: preferred over the libkqueue emulation
#endif
#ifdef KQ_HAVE_KQUEUE
    v.push_back(Backend::kqueue);
#endif
    return v;
}

std::vector<Backend> built_backends() {
    std::vector<Backend> v = poller_backends();
#ifdef KQ_HAVE_URING
    v.push_back(Backend::io_uring);  // listed last; a worker's automatic picks it where it runs (automatic_backend)
#endif
    return v;
}

std::unique_ptr<Poller> make_poller(Backend b) {
    if (b == Backend::io_uring)
        throw std::invalid_argument("io_uring is a completion backend: the worker runs it, it has no Poller");
    if (b == Backend::automatic) {
        auto built = poller_backends();
        if (built.empty()) throw std::invalid_argument("no poller backend was built");
        b = built.front();
    }
#ifdef KQ_HAVE_EPOLL
    if (b == Backend::epoll) return detail::make_epoll_poller();
#endif
#ifdef KQ_HAVE_KQUEUE
    if (b == Backend::kqueue) return detail::make_kqueue_poller();
#endif
    throw std::invalid_argument("backend '" + std::string(backend_name(b)) + "' was not built into this binary");
}

}  // namespace kq
