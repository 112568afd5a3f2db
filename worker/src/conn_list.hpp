// Intrusive doubly-linked list: O(1) append and unlink, no allocation. The worker keeps
// its connections on one (WorkerContext::OpenList) to drain and close them all.
// Thread rules: a list and its elements belong to one thread.
#pragma once

namespace kq {

template <class T>
struct ListHook {
    T* prev = nullptr;
    T* next = nullptr;
    bool linked = false;
};

template <class T, ListHook<T> T::*Hook>
class IntrusiveList {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    T* front() const noexcept { return head_; }

    // x must not be on this list already: linked twice, it would point at itself. The worker's
    // connection states make each push happen once (connection.hpp, ConnState).
    void push_back(T& x) noexcept {
        auto& h = x.*Hook;
        h.prev = tail_;
        h.next = nullptr;
        h.linked = true;
        if (tail_) (tail_->*Hook).next = &x;
        else head_ = &x;
        tail_ = &x;
    }
    void remove(T& x) noexcept {
        auto& h = x.*Hook;
        if (!h.linked) return;
        if (h.prev) (h.prev->*Hook).next = h.next;
        else head_ = h.next;
        if (h.next) (h.next->*Hook).prev = h.prev;
        else tail_ = h.prev;
        h = ListHook<T>{};
    }

private:
    T* head_ = nullptr;
    T* tail_ = nullptr;
};

}  // namespace kq
