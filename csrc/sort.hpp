// Sorting of one short series (a pixel's frames, ~256-2000 values): LSD radix sort on order-
// preserving unsigned keys (see radix_sort_keys). No comparisons, no worst case, ties are free.
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

// Finite-value test in key space (floating keys: NaN/inf map to the extreme key ranges).
template <class T>
inline bool key_is_finite(typename RadixKey<T>::K k) {
    if constexpr (std::is_same_v<T, float>)
        return k > 0x007FFFFFu && k < 0xFF800000u;
    else if constexpr (std::is_same_v<T, double>)
        return k > 0x000FFFFFFFFFFFFFull && k < 0xFFF0000000000000ull;
    else
        return true;
}

}  // namespace detail

namespace detail {

// Digit histograms of (a[i] - lo) for P passes. Dark data concentrate in a few buckets of the top
// digit, so consecutive increments hit the same counter (a store-to-load chain): even and odd
// elements count into separate tables that are summed afterwards.
// P > 0: exactly P digits (unrolled); P == 0: `passes` digits.
template <int P, class K>
void digit_histograms(const K* a, std::size_t n, K lo, const int* shift_in, const K* mask_in,
                      std::uint32_t (*h0)[256], std::uint32_t (*h1)[256], int passes) {
    constexpr int kMax = 8 * static_cast<int>(sizeof(K));
    const int np = P > 0 ? P : passes;
    int shift[kMax];
    K mask[kMax];
    for (int d = 0; d < np; ++d) {
        shift[d] = shift_in[d];
        mask[d] = mask_in[d];
    }
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const K k0 = static_cast<K>(a[i] - lo), k1 = static_cast<K>(a[i + 1] - lo);
        for (int d = 0; d < (P > 0 ? P : np); ++d) {
            ++h0[d][k0 >> shift[d] & mask[d]];
            ++h1[d][k1 >> shift[d] & mask[d]];
        }
    }
    if (i < n) {
        const K k0 = static_cast<K>(a[i] - lo);
        for (int d = 0; d < np; ++d) ++h0[d][k0 >> shift[d] & mask[d]];
    }
}

}  // namespace detail

// Sorts unsigned keys a[0..n) ascending using b[0..n) as scratch; returns a or b, whichever holds
// the result. LSD radix on (key - min): the span max - min fixes how many bits must be sorted
// (dark data of one pixel span a narrow range, so float32 keys usually need 3 passes and 16-bit
// keys 1-2, a single counting pass when the span is < 256). The span's bits are split evenly into
// digits of at most 8 bits, all histogrammed in one pass. Each scatter pass fills every bucket
// from both ends at once (the first half of the input forwards from the bucket's start, the
// second half backwards from its end: still stable), halving the store-to-load chains on the
// few crowded buckets. No comparisons, no worst case, ties are free.
template <class K>
K* radix_sort_keys(K* a, K* b, std::size_t n) {
    static_assert(std::is_unsigned_v<K>);
    constexpr int kMaxDigit = 8;
    constexpr int kMaxPasses = (8 * static_cast<int>(sizeof(K)) + kMaxDigit - 1) / kMaxDigit;
    if (n < 2) return a;
    K lo = a[0], hi = a[0];
    for (std::size_t i = 1; i < n; ++i) {
        lo = std::min(lo, a[i]);
        hi = std::max(hi, a[i]);
    }
    const K span = static_cast<K>(hi - lo);
    if (span == 0) return a;
    if (n < 32) {  // insertion-sort territory: radix setup would dominate
        std::sort(a, a + n);
        return a;
    }
    int bits = 0;
    for (K s = span; s; s = static_cast<K>(s >> 1)) ++bits;
    const int passes = (bits + kMaxDigit - 1) / kMaxDigit;
    int shift[kMaxPasses], width[kMaxPasses];
    K mask[kMaxPasses];
    for (int d = 0, sh = 0; d < passes; ++d) {
        width[d] = (bits - sh + (passes - d) - 1) / (passes - d);  // even split, low digits wider
        shift[d] = sh;
        mask[d] = static_cast<K>((K{1} << width[d]) - 1);
        sh += width[d];
    }
    std::uint32_t h0[kMaxPasses][256], h1[kMaxPasses][256];
    for (int d = 0; d < passes; ++d) {
        std::memset(h0[d], 0, sizeof(std::uint32_t) << width[d]);
        std::memset(h1[d], 0, sizeof(std::uint32_t) << width[d]);
    }
    switch (passes) {
        case 1: detail::digit_histograms<1>(a, n, lo, shift, mask, h0, h1, 1); break;
        case 2: detail::digit_histograms<2>(a, n, lo, shift, mask, h0, h1, 2); break;
        case 3: detail::digit_histograms<3>(a, n, lo, shift, mask, h0, h1, 3); break;
        default: detail::digit_histograms<0>(a, n, lo, shift, mask, h0, h1, passes); break;
    }
    std::uint32_t front[256], back[256];
    const std::size_t half = n / 2;
    for (int d = 0; d < passes; ++d) {
        const K m = mask[d];
        const int sh = shift[d];
        const std::size_t nb = std::size_t{1} << width[d];
        if (h0[d][static_cast<K>(a[0] - lo) >> sh & m] + h1[d][static_cast<K>(a[0] - lo) >> sh & m] == n)
            continue;  // all keys share this digit
        std::uint32_t sum = 0;
        for (std::size_t j = 0; j < nb; ++j) {
            front[j] = sum;
            sum += h0[d][j] + h1[d][j];
            back[j] = sum;  // one past the bucket's end
        }
        // a[0..half) forwards from the starts, a[half..n) backwards (from n-1) from the ends.
        std::size_t i = 0, r = n;
        for (; i < half; ++i) {
            const K kf = a[i];
            const K kb = a[--r];
            b[front[static_cast<K>(kf - lo) >> sh & m]++] = kf;
            b[--back[static_cast<K>(kb - lo) >> sh & m]] = kb;
        }
        if (r > i) {  // odd n: the middle element belongs to the back half
            const K kb = a[--r];
            b[--back[static_cast<K>(kb - lo) >> sh & m]] = kb;
        }
        std::swap(a, b);
    }
    return a;
}

// Reusable scratch for sort_series (per thread).
struct SortScratch {
    std::vector<std::uint64_t> a, b;
};

// Sorts v[0..n) ascending (finite values only for floating types).
template <class T>
void sort_series(T* v, std::size_t n, SortScratch& s) {
    using RK = detail::RadixKey<T>;
    using K = typename RK::K;
    if (s.a.size() < n) {
        s.a.resize(n);
        s.b.resize(n);
    }
    K* a = reinterpret_cast<K*>(s.a.data());
    K* b = reinterpret_cast<K*>(s.b.data());
    for (std::size_t i = 0; i < n; ++i) a[i] = RK::to(v[i]);
    const K* r = radix_sort_keys(a, b, n);
    for (std::size_t i = 0; i < n; ++i) v[i] = RK::from(r[i]);
}

}  // namespace badpix
