// Scalar robust fit, the MSSE estimator on its own, and the parallel tensor driver.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core.hpp"
#include "parallel.hpp"
#include "series.hpp"
#include "sort.hpp"

namespace badpix {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per-thread scratch of the tensor driver, sized once: memory is O(threads x tile x n).
template <class K>
struct TensorScratch {
    std::vector<K> gathered;  // tile x n order-preserving keys, pixel-major
    std::vector<K> spare;     // n: the radix sort's second buffer
    std::vector<const char*> rows;
    std::vector<std::ptrdiff_t> offsets;
    std::vector<std::size_t> index;
    SeriesBuffers buffers;
};

// Frames gathered per block: one 64-byte line of 4-byte keys per pixel, so the transposed writes
// fill whole cache lines while the reads walk kFrameBlock rows in parallel.
constexpr std::size_t kFrameBlock = 16;

template <class T>
void tensor_impl(const TensorView& v, const FitParams& p, int n_threads, const TensorOut& out) {
    using RK = detail::RadixKey<T>;
    using K = typename RK::K;
    const std::size_t n = v.n;
    std::size_t n_pix = 1;
    for (int d = 0; d < v.rank; ++d) n_pix *= v.shape[d];
    if (n_pix == 0) return;
    // Tiles of pixels sized so one tile's series fit in L2 (~128 KiB) and rows of the input are
    // read in runs of up to 64 elements.
    const std::size_t tile =
        std::clamp<std::size_t>((128 * 1024 / sizeof(K)) / std::max<std::size_t>(n, 1), 1, 64);
    const std::size_t n_tiles = (n_pix + tile - 1) / tile;
    const FitConstants consts(p);
    const int nt = static_cast<int>(std::min<std::size_t>(std::max(1, n_threads), n_tiles));
    std::vector<TensorScratch<K>> scratch(static_cast<std::size_t>(nt));

    parallel_for(n_tiles, nt, [&](std::size_t task, std::size_t tid) {
        TensorScratch<K>& sc = scratch[tid];
        if (sc.offsets.size() < tile) {  // first task of this thread (n may be 0)
            sc.gathered.resize(tile * n);
            sc.spare.resize(n);
            sc.rows.resize(n);
            for (std::size_t f = 0; f < n; ++f) sc.rows[f] = v.data + static_cast<std::ptrdiff_t>(f) * v.s0;
            sc.offsets.resize(tile);
            sc.index.resize(static_cast<std::size_t>(std::max(v.rank, 1)));
        }
        const std::size_t p0 = task * tile;
        const std::size_t cnt = std::min(tile, n_pix - p0);
        // Byte offsets of the tile's pixels: C-order multi-index, incremented with carries.
        std::size_t rem = p0;
        for (int d = v.rank - 1; d >= 0; --d) {
            sc.index[d] = rem % v.shape[d];
            rem /= v.shape[d];
        }
        for (std::size_t j = 0; j < cnt; ++j) {
            std::ptrdiff_t off = 0;
            for (int d = 0; d < v.rank; ++d) off += static_cast<std::ptrdiff_t>(sc.index[d]) * v.strides[d];
            sc.offsets[j] = off;
            for (int d = v.rank - 1; d >= 0; --d) {
                if (++sc.index[d] < v.shape[d]) break;
                sc.index[d] = 0;
            }
        }
        // Gather (transpose) the tile into keys: blocks of frames, pixel-major scratch.
        K* g = sc.gathered.data();
        const char* const* rows = sc.rows.data();
        for (std::size_t f0 = 0; f0 < n; f0 += kFrameBlock) {
            const std::size_t f1 = std::min(n, f0 + kFrameBlock);
            for (std::size_t j = 0; j < cnt; ++j) {
                const std::ptrdiff_t off = sc.offsets[j];
                K* dst = g + j * n;
                for (std::size_t f = f0; f < f1; ++f) {
                    T val;
                    std::memcpy(&val, rows[f] + off, sizeof(T));  // no alignment assumption
                    dst[f] = RK::to(val);
                }
            }
        }
        for (std::size_t j = 0; j < cnt; ++j) {
            K* a = g + j * n;
            std::size_t m = n;
            if constexpr (std::is_floating_point_v<T>) {  // drop NaN / inf (rare: check first)
                bool all = true;
                for (std::size_t f = 0; f < n; ++f) all &= detail::key_is_finite<T>(a[f]);
                if (!all) {
                    m = 0;
                    for (std::size_t f = 0; f < n; ++f)
                        if (detail::key_is_finite<T>(a[f])) a[m++] = a[f];
                }
            }
            const K* sorted = radix_sort_keys(a, sc.spare.data(), m);
            const SortedSeries s = sc.buffers.template load_keys<RK>(sorted, m);
            const ValueFit fit = fit_sorted(s, p, consts);
            const std::size_t q = p0 + j;
            out.mean[q] = static_cast<float>(fit.mean);
            out.std[q] = static_cast<float>(fit.std);
            out.n_inliers[q] = static_cast<std::int32_t>(fit.n_inliers);
            out.n_valid[q] = static_cast<std::int32_t>(m);
            if (out.median) {
                double med, sd;
                classical_sorted(s, &med, &sd);
                out.median[q] = static_cast<float>(med);
                out.sample_std[q] = static_cast<float>(sd);
            }
        }
    });
}

}  // namespace

ValueFit fit_value(const double* x, const double* w, std::size_t n, const FitParams& p) {
    check_params(p);
    std::vector<std::size_t> idx;
    idx.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) continue;
        if (w && !(std::isfinite(w[i]) && w[i] > 0)) continue;
        idx.push_back(i);
    }
    std::sort(idx.begin(), idx.end(), [x](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    std::vector<double> xs(idx.size()), ws(w ? idx.size() : 0);
    for (std::size_t i = 0; i < idx.size(); ++i) {
        xs[i] = x[idx[i]];
        if (w) ws[i] = w[idx[i]];
    }
    SeriesBuffers buf;
    const SortedSeries s = buf.load(xs.data(), w ? ws.data() : nullptr, xs.size());
    return fit_sorted(s, p, FitConstants(p));
}

double msse(const double* residuals, std::size_t n, std::size_t k, double lambda, double min_residual,
            std::int64_t* n_in) {
    FitParams p;
    p.msse_lambda = lambda;
    p.min_residual = min_residual;
    check_params(p);
    std::vector<double> a;
    a.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        if (std::isfinite(residuals[i])) a.push_back(std::fabs(residuals[i]));
    *n_in = 0;
    if (a.size() < kMinSamples) return kNaN;
    std::sort(a.begin(), a.end());
    k = std::min(a.size(), std::max<std::size_t>(k, 2));
    // Same stopping rule as the walk in series.cpp, on residuals measured from 0.
    double S = 0.0;
    std::size_t i = 0;
    const double lam2 = lambda * lambda;
    for (; i < a.size(); ++i) {
        const double d = a[i];
        if (i >= k && d >= min_residual && d * d > lam2 * S / static_cast<double>(i - 1)) break;
        S += d * d;
    }
    *n_in = static_cast<std::int64_t>(i);
    return std::sqrt(S / static_cast<double>(i - 1)) / FitConstants(p).msse_corr;
}

void fit_value_tensor(const TensorView& v, const FitParams& p, int n_threads, const TensorOut& out) {
    check_params(p);
    switch (v.dtype) {
        case DType::f32: return tensor_impl<float>(v, p, n_threads, out);
        case DType::f64: return tensor_impl<double>(v, p, n_threads, out);
        case DType::u16: return tensor_impl<std::uint16_t>(v, p, n_threads, out);
        case DType::i16: return tensor_impl<std::int16_t>(v, p, n_threads, out);
    }
    throw std::invalid_argument("unsupported dtype");
}

}  // namespace badpix
