// What a backend reports for an idle connected socket, through the poller interface (kq/poller.hpp), on
// every backend: writable, not readable, until data arrives.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>

#include "test_util.hpp"

using namespace kq;
using namespace kq::test;

namespace {

using PollerReadiness = BackendTest;

// A kqueue filter is not a flag (EVFILT_READ is -1, so `flags & EVFILT_READ` is always true): the backend
// translates filters, and an idle connected socket must be reported writable and not readable, and
// becomes readable only when data arrives.
TEST_P(PollerReadiness, FilterIsNotAFlag) {
    auto poller = make_poller(GetParam());
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    UniqueFd a(sv[0]), b(sv[1]);
    int token = 0;
    poller->add(a.get(), &token);
    std::array<PollEvent, 4> ev;
    ASSERT_EQ(poller->wait(ev, 1000), 1);
    EXPECT_TRUE(ev[0].writable);
    EXPECT_FALSE(ev[0].readable);
    send_all(b.get(), "z");
    ASSERT_EQ(poller->wait(ev, 1000), 1);
    EXPECT_TRUE(ev[0].readable);
}

INSTANTIATE_TEST_SUITE_P(Backends, PollerReadiness, ::testing::ValuesIn(poller_backends()), backend_label);

}  // namespace
