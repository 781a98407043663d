// Sorting of one short series (a pixel's frames). Kept in one place so the tensor, scalar and
// background paths share the fastest available method per element type.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace badpix {

template <class T>
inline void sort_series(T* v, std::size_t n) {
    std::sort(v, v + n);
}

}  // namespace badpix
