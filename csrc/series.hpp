// Robust location/scale of one *sorted* series: the FLkOS + MSSE core shared by the scalar fit,
// the tensor fit and the constant background model. Window queries are O(log n) on prefix sums.
#pragma once
#include <cstddef>
#include <limits>
#include <vector>

#include "core.hpp"

namespace badpix {

// Ascending values y (shifted by `shift` so that float64 prefix sums keep their precision),
// optional weights w (null = all 1) and prefix sums P0 = sum w (null when w is null: the count),
// P1 = sum w*y, P2 = sum w*y^2. y[-1] = -inf and y[n] = +inf are readable sentinels.
struct SortedSeries {
    const double* y;
    const double* w;
    const double* P0;
    const double* P1;
    const double* P2;
    std::size_t n;
    double shift;
};

// Per-parameter constants computed once per call, not per series.
struct FitConstants {
    double msse_corr;    // sigma_MSSE / sigma for a clean Gaussian (self-consistent truncation)
    double trunc_var;    // truncated_variance(lambda): the final lambda-window variance factor
    explicit FitConstants(const FitParams& p);
};

// Per-thread buffers reused across series: no allocation per pixel once they have grown.
class SeriesBuffers {
public:
    // Loads ascending values (any arithmetic type) and optional weights, returns the prepared view.
    template <class T>
    SortedSeries load(const T* sorted, const double* w_sorted, std::size_t n) {
        return load_with(n, w_sorted, [sorted](std::size_t i) { return static_cast<double>(sorted[i]); });
    }

    // Loads ascending order-preserving keys (sort.hpp) of element type T, unweighted.
    template <class RK, class K>
    SortedSeries load_keys(const K* keys, std::size_t n) {
        return load_with(n, nullptr, [keys](std::size_t i) { return static_cast<double>(RK::from(keys[i])); });
    }

private:
    template <class Get>
    SortedSeries load_with(std::size_t n, const double* w, Get get) {
        grow(n);
        double* y = y_.data() + 1;
        const double shift = n ? get(n / 2) : 0.0;
        P1_[0] = P2_[0] = 0.0;
        if (w) {
            double p0 = 0, p1 = 0, p2 = 0;
            P0_[0] = 0.0;
            for (std::size_t i = 0; i < n; ++i) {
                const double yi = get(i) - shift;
                const double wi = w[i];
                y[i] = yi;
                p0 += wi;
                p1 += wi * yi;
                p2 += wi * yi * yi;
                P0_[i + 1] = p0;
                P1_[i + 1] = p1;
                P2_[i + 1] = p2;
            }
        } else {
            double p1 = 0, p2 = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const double yi = get(i) - shift;
                y[i] = yi;
                p1 += yi;
                p2 += yi * yi;
                P1_[i + 1] = p1;
                P2_[i + 1] = p2;
            }
        }
        y[-1] = -std::numeric_limits<double>::infinity();
        y[n] = std::numeric_limits<double>::infinity();
        return SortedSeries{y, w, w ? P0_.data() : nullptr, P1_.data(), P2_.data(), n, shift};
    }

    void grow(std::size_t n) {
        if (y_.size() < n + 2) {
            y_.resize(n + 2);
            P0_.resize(n + 1);
            P1_.resize(n + 1);
            P2_.resize(n + 1);
        }
    }
    std::vector<double> y_, P0_, P1_, P2_;
};

// The robust fit of a prepared series (see badpix/robust.py for the algorithm).
ValueFit fit_sorted(const SortedSeries& s, const FitParams& p, const FitConstants& c);

// Classical median (numpy convention) and population std (ddof=0) of a prepared series.
void classical_sorted(const SortedSeries& s, double* median, double* std);

}  // namespace badpix
