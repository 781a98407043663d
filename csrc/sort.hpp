// Sorting of one short series (a pixel's frames, ~256-2000 values). LSD radix sort on order-
// preserving unsigned keys: 8-bit digits, one histogram pass for all digits, and digits on which
// every key agrees are skipped (a pixel's values share their top bits), so float32 usually needs
// 2-3 scatter passes and 16-bit integers 1-2. No comparisons, no worst case, ties are free.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace badpix {

namespace detail {

template <class T>
struct RadixKey;  // maps T to an unsigned key with the same order

template <>
struct RadixKey<float> {
    using K = std::uint32_t;
    static K to(float v) {
        K k;
        std::memcpy(&k, &v, 4);
        return (k & 0x80000000u) ? ~k : (k | 0x80000000u);
    }
    static float from(K k) {
        k = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
        float v;
        std::memcpy(&v, &k, 4);
        return v;
    }
};
template <>
struct RadixKey<double> {
    using K = std::uint64_t;
    static K to(double v) {
        K k;
        std::memcpy(&k, &v, 8);
        return (k >> 63) ? ~k : (k | (K{1} << 63));
    }
    static double from(K k) {
        k = (k >> 63) ? (k & ~(K{1} << 63)) : ~k;
        double v;
        std::memcpy(&v, &k, 8);
        return v;
    }
};
template <>
struct RadixKey<std::uint16_t> {
    using K = std::uint16_t;
    static K to(std::uint16_t v) { return v; }
    static std::uint16_t from(K k) { return k; }
};
template <>
struct RadixKey<std::int16_t> {
    using K = std::uint16_t;
    static K to(std::int16_t v) { return static_cast<K>(static_cast<std::uint16_t>(v) ^ 0x8000u); }
    static std::int16_t from(K k) { return static_cast<std::int16_t>(static_cast<std::uint16_t>(k ^ 0x8000u)); }
};

}  // namespace detail

// Reusable scratch for sort_series (per thread).
struct SortScratch {
    std::vector<std::uint64_t> a, b;
};

// Sorts v[0..n) ascending (finite values only for floating types).
template <class T>
void sort_series(T* v, std::size_t n, SortScratch& s) {
    using RK = detail::RadixKey<T>;
    using K = typename RK::K;
    constexpr int kDigits = static_cast<int>(sizeof(K));
    if (n < 64) {  // insertion-sort territory: radix setup would dominate
        std::sort(v, v + n);
        return;
    }
    if (s.a.size() < n) {
        s.a.resize(n);
        s.b.resize(n);
    }
    K* a = reinterpret_cast<K*>(s.a.data());
    K* b = reinterpret_cast<K*>(s.b.data());
    std::uint32_t hist[kDigits][256] = {};
    for (std::size_t i = 0; i < n; ++i) {
        const K k = RK::to(v[i]);
        a[i] = k;
        for (int d = 0; d < kDigits; ++d) ++hist[d][(k >> (8 * d)) & 0xFF];
    }
    for (int d = 0; d < kDigits; ++d) {
        std::uint32_t* h = hist[d];
        if (h[(a[0] >> (8 * d)) & 0xFF] == n) continue;  // all keys share this digit
        std::uint32_t sum = 0;
        for (int j = 0; j < 256; ++j) {
            const std::uint32_t c = h[j];
            h[j] = sum;
            sum += c;
        }
        for (std::size_t i = 0; i < n; ++i) b[h[(a[i] >> (8 * d)) & 0xFF]++] = a[i];
        std::swap(a, b);
    }
    for (std::size_t i = 0; i < n; ++i) v[i] = RK::from(a[i]);
}

}  // namespace badpix
