// Intrusive doubly-linked list: O(1) append, unlink and move-to-back, no allocation. The worker keeps
// its connections on one (WorkerContext::OpenList) to drain and close them all.
// Thread rules: a list and its elements belong to one thread.
#pragma once

#include <cstddef>

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
    size_t size() const noexcept { return size_; }
    T* front() const noexcept { return head_; }
    static bool contains(const T& x) noexcept { return (x.*Hook).linked; }

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
        ++size_;
    }
    void remove(T& x) noexcept {
        auto& h = x.*Hook;
        if (!h.linked) return;
        if (h.prev) (h.prev->*Hook).next = h.next;
        else head_ = h.next;
        if (h.next) (h.next->*Hook).prev = h.prev;
        else tail_ = h.prev;
        h = ListHook<T>{};
        --size_;
    }
    void move_to_back(T& x) noexcept {
        if (tail_ == &x) return;
        remove(x);
        push_back(x);
    }

private:
    T* head_ = nullptr;
    T* tail_ = nullptr;
    size_t size_ = 0;
};

}  // namespace kq
