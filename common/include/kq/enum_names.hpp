// Names of the server's two-way choices (--dispatch, --handoff, --accept): a table whose entry i names
// the enumerator of value i, read both ways by one parser and one lookup.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace kq {

template <class E, size_t N>
bool parse_enum_name(const std::array<std::string_view, N>& names, std::string_view text, E& out) {
    for (size_t i = 0; i < N; ++i) {
        if (text == names[i]) {
            out = static_cast<E>(i);
            return true;
        }
    }
    return false;
}

template <class E, size_t N>
std::string_view enum_name(const std::array<std::string_view, N>& names, E value) {
    return names[static_cast<size_t>(value)];
}

}  // namespace kq
