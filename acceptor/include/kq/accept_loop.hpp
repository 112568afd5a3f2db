// The one accept loop of the server, shared by the acceptor thread and by each worker with --accept
// reuseport (as nginx shares ngx_event_accept between its accept models): the listening socket, the
// connection limit, the EMFILE/ENFILE pause with its rate-limited warning, a bound on accepts per call
// and one set of counters. What happens to an accepted fd is the owner's business (a callback).
// Thread rules: an AcceptLoop is used on its owner's thread only (the acceptor's, or the worker's);
// its AcceptStats may be read from any thread (relaxed counters).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include <spdlog/spdlog.h>

#include "kq/accept_stats.hpp"
#include "kq/counter.hpp"
#include "kq/fd.hpp"
#include "kq/net.hpp"

namespace kq {

class AcceptLoop {
public:
    // Why accept() returned.
    enum class Outcome {
        drained,  // EAGAIN: the backlog is empty; the next client brings a new edge
        bounded,  // max_batch accepts done: clients may still be queued
        limit,    // max_connections open: clients stay in the kernel backlog until some close
        paused,   // EMFILE/ENFILE/ENOBUFS/ENOMEM: no accept before paused_until_ms()
        failed,   // another accept4 error, counted and logged
        held,     // the owner's callback asked to stop (it could not hand the fd on)
        closed,   // no listening socket
    };

    // who names the loop in its log lines ("accept4", "worker accept4"). stats may be shared with
    // readers on other threads and must outlive the loop.
    AcceptLoop(AcceptStats& stats, const char* who) : stats_(stats), who_(who), pause_log_(who) {}

    // Takes the listening socket (non-blocking) and the limit on open connections it may reach.
    void listen(UniqueFd listener, size_t max_connections) noexcept {
        listener_ = std::move(listener);
        max_connections_ = max_connections;
    }
    // Closes the listening socket (clients still in its backlog are refused) and logs the pauses no
    // warning has reported yet. Idempotent.
    void close() noexcept {
        listener_.reset();
        pause_log_.flush();
    }
    bool listening() const noexcept { return static_cast<bool>(listener_); }
    int fd() const noexcept { return listener_.get(); }
    AcceptStats& stats() noexcept { return stats_; }

    // Whether accept() may run now: listening, not paused, and below the limit with open connections
    // open (a stretch at the limit is counted once, when it begins). now_ms: steady_now_ms() (kq/clock.hpp).
    bool may_accept(int64_t now_ms, uint64_t open) noexcept {
        return listener_ && paused_until_ms_ <= now_ms && below_limit(open);
    }
    bool at_limit() const noexcept { return at_limit_; }
    // The end of the current EMFILE pause (0 or past: none).
    int64_t paused_until_ms() const noexcept { return paused_until_ms_; }

    // Edge-triggered: accepts until EAGAIN, or until max_batch accepts, the limit, a pause, an error or
    // the callback returning false. open() gives the open connections before each accept (what the
    // owner counts: handed over and not yet closed). on_accepted(UniqueFd) -> bool takes the fd.
    template <class Open, class OnAccepted>
    Outcome accept(int64_t now_ms, Open&& open, OnAccepted&& on_accepted,
                   size_t max_batch = std::numeric_limits<size_t>::max()) {
        if (!listener_) return Outcome::closed;
        for (size_t i = 0; i < max_batch; ++i) {
            // At the limit, leave clients in the kernel backlog rather than accept-and-close them
            // (memcached's choice): they are served as soon as connections close, not turned away.
            if (!below_limit(open())) return Outcome::limit;
            UniqueFd fd;
            switch (accept_client(listener_.get(), fd)) {
            case AcceptResult::accepted:
                stats_.accepted.add();
                if (!on_accepted(std::move(fd))) return Outcome::held;
                continue;
            case AcceptResult::retry:
                continue;
            case AcceptResult::drained:
                return Outcome::drained;
            case AcceptResult::out_of_fds:
                // Never spin: leave the clients in the kernel backlog and retry after a pause.
                stats_.accept_pauses.add();
                pause_log_.paused(errno);
                paused_until_ms_ = now_ms + kAcceptPauseMs;
                return Outcome::paused;
            case AcceptResult::failed:
                stats_.accept_errors.add();
                spdlog::error("{}: {}", who_, std::strerror(errno));
                return Outcome::failed;
            }
        }
        return Outcome::bounded;
    }

    // A completion-model accept (--backend io_uring with --accept reuseport: a multishot accept on the
    // ring): the kernel did the accept and res is its result, a new fd or -errno, with accept()'s
    // bookkeeping. An fd is counted and handed to on_accepted (the owner checks the limit itself: the
    // kernel accepted it already); an error is sorted as accept4's. Returns bounded after an fd (more
    // may follow) or a retry, held when on_accepted said false, paused (EMFILE...: no accept before
    // paused_until_ms()) or failed (counted and logged, and held back for as long as a pause).
    template <class OnAccepted>
    Outcome completed(int64_t now_ms, int res, OnAccepted&& on_accepted) {
        if (res >= 0) {
            stats_.accepted.add();
            return on_accepted(UniqueFd(res)) ? Outcome::bounded : Outcome::held;
        }
        switch (accept_error(-res)) {
        case AcceptResult::accepted:
        case AcceptResult::drained:
        case AcceptResult::retry:
            return Outcome::bounded;
        case AcceptResult::out_of_fds:
            stats_.accept_pauses.add();
            pause_log_.paused(-res);
            paused_until_ms_ = now_ms + kAcceptPauseMs;
            return Outcome::paused;
        case AcceptResult::failed:
            break;
        }
        // Not armed again at once: a multishot accept that keeps failing would otherwise spin.
        stats_.accept_errors.add();
        spdlog::error("{}: {}", who_, std::strerror(-res));
        paused_until_ms_ = now_ms + kAcceptPauseMs;
        return Outcome::failed;
    }

    // Whether open connections leave room for one more (a stretch at the limit is counted once).
    bool below_limit(uint64_t open) noexcept {
        bool full = open >= max_connections_;
        if (full && !at_limit_) stats_.limit_pauses.add();
        at_limit_ = full;
        return !full;
    }

private:
    AcceptStats& stats_;
    const char* who_;
    UniqueFd listener_;
    size_t max_connections_ = 0;
    bool at_limit_ = false;
    int64_t paused_until_ms_ = 0;
    AcceptPauseLog pause_log_;
};

}  // namespace kq
