// One accept loop's counters (the acceptor's, or with --accept reuseport each worker's). limit_pauses
// counts the times the loop reached the connection limit (once per stretch at the limit, not once per
// re-check).
// Thread rules: written by the loop's thread, read from any (relaxed counters).
#pragma once

#include "kq/counter.hpp"

namespace kq {

struct AcceptStats {
    Counter accepted, accept_errors, accept_pauses, limit_pauses;
};

}  // namespace kq
