// FLkOS location + MSSE scale on a sorted series (see series.hpp).
#include "series.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace badpix {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The lambda-sigma refit may move the FLkOS location by at most this many k-window rms before we
// distrust it: with heavy contamination the refit runs away to the contaminated mean (reference
// section 6.1). On clean data the (n^-1/3, noisy) shorth/FLkOS start can sit ~0.5 sigma off, so
// 1.0 fired spuriously on ~1 % of 256-sample pixels; 1.5 keeps the seed case below 1 % failures.
constexpr double kGuard = 1.5;

struct Window {
    std::size_t lo, hi;
};

// Start of the k consecutive sorted values nearest to t (k <= n): O(log n).
std::size_t nearest_k(const double* y, std::size_t n, std::size_t k, double t) {
    if (k >= n) return 0;
    std::size_t lo = 0, hi = n - k;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (t - y[mid] > y[mid + k] - t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// All values with |y - t| <= r.
Window within(const SortedSeries& s, double t, double r) {
    const double* b = s.y;
    const double* e = s.y + s.n;
    return {static_cast<std::size_t>(std::lower_bound(b, e, t - r) - b),
            static_cast<std::size_t>(std::upper_bound(b, e, t + r) - b)};
}

double wsum(const SortedSeries& s, std::size_t lo, std::size_t hi) {
    return s.P0 ? s.P0[hi] - s.P0[lo] : static_cast<double>(hi - lo);
}
double wmean(const SortedSeries& s, std::size_t lo, std::size_t hi) {
    return (s.P1[hi] - s.P1[lo]) / wsum(s, lo, hi);
}
// sum w (y - t)^2 over [lo, hi)
double wss(const SortedSeries& s, std::size_t lo, std::size_t hi, double t) {
    const double W = wsum(s, lo, hi), S1 = s.P1[hi] - s.P1[lo], S2 = s.P2[hi] - s.P2[lo];
    return std::max(0.0, S2 - 2.0 * t * S1 + t * t * W);
}

// nearest_k from a nearby start `a` (the previous FLkOS window): the predicate of the binary
// search is monotone in a, so stepping from the hint gives the same answer in O(|move|).
std::size_t nearest_k_from(const double* y, std::size_t n, std::size_t k, double t, std::size_t a) {
    if (k >= n) return 0;
    const std::size_t top = n - k;
    if (a > top) a = top;
    auto ok = [&](std::size_t i) { return !(t - y[i] > y[i + k] - t); };
    if (a < top && !ok(a)) {
        do ++a;
        while (a < top && !ok(a));
    } else {
        while (a > 0 && ok(a - 1)) --a;
    }
    return a;
}

// First start of the narrowest window of k sorted values (the shorth), k <= n.
std::size_t shorth(const double* y, std::size_t n, std::size_t k) {
    const std::size_t m = n - k + 1;  // number of windows
    const double* hi = y + (k - 1);
    double best = std::numeric_limits<double>::infinity();
    std::size_t a = 0;
#ifdef __SSE2__
    __m128d b0 = _mm_set1_pd(best), b1 = b0;
    for (; a + 4 <= m; a += 4) {
        b0 = _mm_min_pd(b0, _mm_sub_pd(_mm_loadu_pd(hi + a), _mm_loadu_pd(y + a)));
        b1 = _mm_min_pd(b1, _mm_sub_pd(_mm_loadu_pd(hi + a + 2), _mm_loadu_pd(y + a + 2)));
    }
    b0 = _mm_min_pd(b0, b1);
    best = std::min(_mm_cvtsd_f64(b0), _mm_cvtsd_f64(_mm_unpackhi_pd(b0, b0)));
#endif
    for (; a < m; ++a) best = std::min(best, hi[a] - y[a]);
    for (a = 0; a < m; ++a)
        if (hi[a] - y[a] == best) return a;  // the first narrowest (widths are finite)
    return 0;
}

// MSSE walk outward from t in order of |y - t|: the first k values (and those closer than
// min_res) are inliers; then each next value joins while r^2 <= lambda^2 sigma_i^2, where
// sigma_i^2 = (sum w r^2 / sum w) * i / (i - 1). Returns the uncorrected sigma; O(inliers).
// The test is evaluated without divisions (r^2 W (i-1) > lambda^2 S i; unweighted W = i), and
// the sentinels y[-1] = -inf, y[n] = +inf end either side without bounds checks.
double msse_walk(const SortedSeries& s, double t, std::size_t k, double lambda, double min_res,
                 std::size_t* n_in) {
    const std::size_t n = s.n;
    // The k nearest values are inliers by definition: take them at once from the prefix sums
    // (a sorted window), then walk outward one value at a time.
    const std::size_t a = nearest_k(s.y, n, k, t);
    const double* y = s.y;
    std::ptrdiff_t l = static_cast<std::ptrdiff_t>(a) - 1;
    std::ptrdiff_t r = static_cast<std::ptrdiff_t>(a + k);
    double S = wss(s, a, a + k, t), W = wsum(s, a, a + k);
    std::size_t i = k;
    const double lam2 = lambda * lambda;
    if (!s.w) {
        // Jumps: the window of the K = i + m nearest values is accepted at once when even its
        // farthest value passes the test at the largest rank with the current (smallest) S:
        // r_j <= d_max, j - 1 <= K - 2 and S_j >= S for every rank j in [i, K). Each try costs
        // a binary search over m starts; m halves on a refusal, and below 4 the walk steps.
        std::size_t lo = a, hi = a + k;
        std::size_t m = std::max<std::size_t>(4, k / 4);
        while (m >= 4 && hi - lo < n) {
            const std::size_t K = std::min(n, hi - lo + m);
            std::size_t b0 = hi > K ? hi - K : 0, b1 = std::min(lo, n - K);  // starts keeping [lo, hi)
            while (b0 < b1) {  // first start whose window is at least as near as the next one
                const std::size_t mid = b0 + (b1 - b0) / 2;
                if (t - y[mid] > y[mid + K] - t)
                    b0 = mid + 1;
                else
                    b1 = mid;
            }
            const double dmax = std::max(t - y[b0], y[b0 + K - 1] - t);
            if (dmax * dmax * static_cast<double>(K - 2) <= lam2 * S) {
                lo = b0;
                hi = b0 + K;
                S = wss(s, lo, hi, t);
            } else {
                m /= 2;
            }
        }
        i = hi - lo;
        l = static_cast<std::ptrdiff_t>(lo) - 1;
        r = static_cast<std::ptrdiff_t>(hi);
        for (; i < n; ++i) {
            const double dl = t - y[l], dr = y[r] - t;
            const bool left = dl <= dr;
            const double d = left ? dl : dr;
            l -= left;
            r += !left;
            const double d2 = d * d;
            if (d2 * static_cast<double>(i - 1) > lam2 * S && d >= min_res) break;
            S += d2;
        }
        W = static_cast<double>(i);
    } else {
        for (; i < n; ++i) {
            const double dl = t - y[l], dr = y[r] - t;
            const bool left = dl <= dr;
            const std::ptrdiff_t idx = left ? l : r;
            const double d = left ? dl : dr;
            l -= left;
            r += !left;
            const double d2 = d * d;
            if (d2 * W * static_cast<double>(i - 1) > lam2 * S * static_cast<double>(i) && d >= min_res)
                break;
            const double wi = s.w[idx];
            S += wi * d2;
            W += wi;
        }
    }
    *n_in = i;
    if (i < 2 || !(W > 0)) return 0.0;
    return std::sqrt(S / W * static_cast<double>(i) / static_cast<double>(i - 1));
}


// The lambda-sigma clipping fixed point started at (t, sd): the single Gaussian of the whole
// sample. Each step takes the values within lambda*sd of t, their mean and their variance
// (divisor cnt - 1) corrected for the truncation at lambda; it stops when the window repeats.
struct Clip {
    double loc, sd;
    Window win;
};
Clip clip_fixed_point(const SortedSeries& s, double t, double sd, double lam, double min_res, double tv) {
    Window w{0, 0};
    for (int it = 0; it < 40; ++it) {
        const Window nw = within(s, t, std::max(lam * sd, min_res));
        if (nw.hi - nw.lo < 2 || (nw.lo == w.lo && nw.hi == w.hi)) break;
        w = nw;
        const double cnt = static_cast<double>(w.hi - w.lo);
        t = wmean(s, w.lo, w.hi);
        sd = std::sqrt(wss(s, w.lo, w.hi, t) / wsum(s, w.lo, w.hi) * cnt / (cnt - 1.0) / tv);
    }
    return {t, sd, w};
}

// exp(x) for x <= 0 on two lanes (Cody-Waite reduction by ln 2, degree-13 Taylor on
// |r| <= ln2/2: truncation error < 1e-17 relative, i.e. within ~1 ulp of libm). The EM
// responsibilities below need one exp per value and round; libm's scalar call was 60 % of the
// instructions of a 16-48 sample series. x below -708 is clamped (exp < 1e-307 there: a
// responsibility of 0 either way).
#ifdef __SSE2__
inline __m128d exp_nonpos(__m128d x) {
    x = _mm_max_pd(x, _mm_set1_pd(-708.0));
    const __m128i ki = _mm_cvtpd_epi32(_mm_mul_pd(x, _mm_set1_pd(1.4426950408889634)));  // round
    const __m128d k = _mm_cvtepi32_pd(ki);
    __m128d r = _mm_sub_pd(x, _mm_mul_pd(k, _mm_set1_pd(6.93145751953125e-1)));
    r = _mm_sub_pd(r, _mm_mul_pd(k, _mm_set1_pd(1.42860682030941723212e-6)));
    // Estrin's scheme (depth 4 instead of Horner's 13): the loop below is latency-bound.
    auto P = [](double v) { return _mm_set1_pd(v); };
    auto lin = [](__m128d a, __m128d b, __m128d x) { return _mm_add_pd(a, _mm_mul_pd(b, x)); };
    const __m128d r2 = _mm_mul_pd(r, r), r4 = _mm_mul_pd(r2, r2), r8 = _mm_mul_pd(r4, r4);
    const __m128d p0 = lin(P(1.0), P(1.0), r), p1 = lin(P(1.0 / 2), P(1.0 / 6), r),
                  p2 = lin(P(1.0 / 24), P(1.0 / 120), r), p3 = lin(P(1.0 / 720), P(1.0 / 5040), r),
                  p4 = lin(P(1.0 / 40320), P(1.0 / 362880), r),
                  p5 = lin(P(1.0 / 3628800), P(1.0 / 39916800), r),
                  p6 = lin(P(1.0 / 479001600), P(1.0 / 6227020800.0), r);
    const __m128d q0 = lin(p0, p1, r2), q1 = lin(p2, p3, r2), q2 = lin(p4, p5, r2);
    const __m128d q = lin(lin(q0, q1, r4), lin(q2, p6, r4), r8);
    // 2^k from the exponent bits: k in [-1022, 0], so k + 1023 in [1, 1023].
    const __m128i e = _mm_shuffle_epi32(_mm_add_epi32(ki, _mm_set1_epi32(1023)), _MM_SHUFFLE(1, 1, 0, 0));
    return _mm_mul_pd(q, _mm_castsi128_pd(_mm_slli_epi64(e, 52)));
}
#endif

// Do the values hold two populations (a telegraph pixel's two levels, or a peak on a broad
// background) rather than one Gaussian? A two-Gaussian mixture is fitted by EM, started from the
// robust fit's window [lo, hi) (major) and the rest (minor), and compared by BIC with the single
// Gaussian of all values. The components' sigma are floored at `floor` (half the single
// Gaussian's): a chance cluster of a few values of a plain Gaussian has a tiny sigma of its own
// and would otherwise "win". Two populations also need at least 2 values in the minor component
// and either separated means (|m1 - m2| >= 1.8 (s1 + s2)) or a minor component much broader
// than the major one (a peak on a background, as in the heavy-contamination case). O(n x rounds),
// run only where the robust and the single-Gaussian fits disagree.
// The answer only picks which of two finished fits is returned, so the E-steps may be computed
// in any summation order with the polynomial exp above: they differ from the scalar libm version
// by rounding only, which can flip the decision only on its knife edge (none in 10^6 series,
// see tests/benchmarks/README.md).
bool two_populations(const SortedSeries& s, std::size_t lo, std::size_t hi, double floor) {
    const std::size_t n = s.n;
    const double Wt = wsum(s, 0, n);
    double W1 = wsum(s, lo, hi), W2 = Wt - W1;
    if (!(W1 > 0) || !(W2 > 0) || !(floor > 0)) return false;
    auto fit = [](double w, double s1, double s2, double& m, double& sd) {
        m = s1 / w;
        sd = std::sqrt(std::max(0.0, s2 / w - m * m));
    };
    double m1, s1, m2, s2;
    fit(W1, s.P1[hi] - s.P1[lo], s.P2[hi] - s.P2[lo], m1, s1);
    fit(W2, s.P1[n] - s.P1[0] - (s.P1[hi] - s.P1[lo]), s.P2[n] - s.P2[0] - (s.P2[hi] - s.P2[lo]), m2, s2);
    double p1 = W1 / Wt;
    constexpr int kRounds = 15;
    // The totals do not depend on the round: once.
    double T1 = 0, T2 = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double y = s.y[i], wi = s.w ? s.w[i] : 1.0;
        T1 += wi * y;
        T2 += wi * y * y;
    }
    for (int round = 0; round < kRounds; ++round) {
        const double a1 = std::max(s1, floor), a2 = std::max(s2, floor);
        const double la0 = std::log(p1 / a1), lb0 = std::log((1.0 - p1) / a2);
        const double i1 = 0.5 / (a1 * a1), i2 = 0.5 / (a2 * a2);
        double R0 = 0, R1 = 0, R2 = 0;
#ifdef __SSE2__
        const __m128d vla0 = _mm_set1_pd(la0), vlb0 = _mm_set1_pd(lb0), vi1 = _mm_set1_pd(i1),
                      vi2 = _mm_set1_pd(i2), vm1 = _mm_set1_pd(m1), vm2 = _mm_set1_pd(m2),
                      one = _mm_set1_pd(1.0), sign = _mm_set1_pd(-0.0);
        for (std::size_t i = 0; i < n; i += 2) {
            // the odd tail: lane 1 gets weight 0 (and a finite y)
            const bool pair = i + 1 < n;
            const __m128d y = pair ? _mm_loadu_pd(s.y + i) : _mm_set_sd(s.y[i]);
            const __m128d wi = s.w ? (pair ? _mm_loadu_pd(s.w + i) : _mm_set_sd(s.w[i]))
                                   : (pair ? one : _mm_set_sd(1.0));
            const __m128d d1 = _mm_sub_pd(y, vm1), d2 = _mm_sub_pd(y, vm2);
            const __m128d la = _mm_sub_pd(vla0, _mm_mul_pd(vi1, _mm_mul_pd(d1, d1)));
            const __m128d lb = _mm_sub_pd(vlb0, _mm_mul_pd(vi2, _mm_mul_pd(d2, d2)));
            const __m128d diff = _mm_sub_pd(la, lb);
            const __m128d e = exp_nonpos(_mm_or_pd(diff, sign));  // exp(-|la - lb|)
            const __m128d major = _mm_cmpge_pd(la, lb);
            const __m128d num = _mm_or_pd(_mm_and_pd(major, one), _mm_andnot_pd(major, e));
            const __m128d wr = _mm_mul_pd(wi, _mm_div_pd(num, _mm_add_pd(one, e)));
            const __m128d wry = _mm_mul_pd(wr, y), wryy = _mm_mul_pd(wry, y);
            // sums in the scalar order (lane 0, then lane 1): the same rounding as one at a time
            R0 += _mm_cvtsd_f64(wr);
            R1 += _mm_cvtsd_f64(wry);
            R2 += _mm_cvtsd_f64(wryy);
            if (pair) {
                R0 += _mm_cvtsd_f64(_mm_unpackhi_pd(wr, wr));
                R1 += _mm_cvtsd_f64(_mm_unpackhi_pd(wry, wry));
                R2 += _mm_cvtsd_f64(_mm_unpackhi_pd(wryy, wryy));
            }
        }
#else
        for (std::size_t i = 0; i < n; ++i) {
            const double y = s.y[i], wi = s.w ? s.w[i] : 1.0;
            const double la = la0 - i1 * (y - m1) * (y - m1), lb = lb0 - i2 * (y - m2) * (y - m2);
            const double e = std::exp(-std::fabs(la - lb));
            const double r = (la >= lb) ? 1.0 / (1.0 + e) : e / (1.0 + e);
            R0 += wi * r;
            R1 += wi * r * y;
            R2 += wi * r * y * y;
        }
#endif
        const double Q0 = Wt - R0;
        if (!(R0 > 1e-9) || !(Q0 > 1e-9)) return false;  // one component emptied: one Gaussian
        p1 = std::clamp(R0 / Wt, 1e-6, 1.0 - 1e-6);
        fit(R0, R1, R2, m1, s1);
        fit(Q0, T1 - R1, T2 - R2, m2, s2);
    }
    // The mixture's log-likelihood at the final parameters (once: libm exp/log1p).
    double llm = 0.0;
    {
        const double a1 = std::max(s1, floor), a2 = std::max(s2, floor);
        const double la0 = std::log(p1 / a1), lb0 = std::log((1.0 - p1) / a2);
        const double i1 = 0.5 / (a1 * a1), i2 = 0.5 / (a2 * a2);
        for (std::size_t i = 0; i < n; ++i) {
            const double y = s.y[i], wi = s.w ? s.w[i] : 1.0;
            const double la = la0 - i1 * (y - m1) * (y - m1), lb = lb0 - i2 * (y - m2) * (y - m2);
            llm += wi * (std::max(la, lb) + std::log1p(std::exp(-std::fabs(la - lb))));
        }
    }
    s1 = std::max(s1, floor);
    s2 = std::max(s2, floor);
    double m0, s0;
    fit(Wt, s.P1[n] - s.P1[0], s.P2[n] - s.P2[0], m0, s0);
    if (!(s0 > 0)) return false;
    const double ll1 = -Wt * (std::log(s0) + 0.5);  // the common -log(sqrt(2 pi)) terms cancel
    const double nn = static_cast<double>(n);
    if (!(2.0 * (llm - ll1) > 3.0 * std::log(nn))) return false;  // 3 more parameters
    if (std::min(p1, 1.0 - p1) * nn < 2.0) return false;
    return std::fabs(m1 - m2) >= 1.8 * (s1 + s2) || std::max(s1, s2) >= 3.0 * std::min(s1, s2);
}

}  // namespace

double truncated_variance(double c) {
    if (!(c > 0)) return 0.0;
    if (c < 1e-4) return c * c / 3.0;
    const double phi = std::exp(-0.5 * c * c) / std::sqrt(2.0 * M_PI);
    return 1.0 - 2.0 * c * phi / std::erf(c / std::sqrt(2.0));
}

FitConstants::FitConstants(const FitParams& p) {
    const double lam = p.msse_lambda;
    // MSSE stops at lambda * sigma_trunc, which itself is truncated: solve c = lambda*sqrt(f(c)).
    double c = lam;
    for (int it = 0; it < 100; ++it) c = lam * std::sqrt(truncated_variance(c));
    msse_corr = (c > 1e-3) ? c / lam : std::sqrt(truncated_variance(lam));
    if (!(msse_corr > 0)) msse_corr = 1.0;
    trunc_var = truncated_variance(lam);
    if (!(trunc_var > 0)) trunc_var = 1.0;
}

void check_params(const FitParams& p) {
    if (!(p.certain_ratio >= 0.0 && p.certain_ratio < p.likely_ratio && p.likely_ratio <= 1.0))
        throw std::invalid_argument("need 0 <= certain_ratio < likely_ratio <= 1");
    if (!(p.msse_lambda > 0.0) || !std::isfinite(p.msse_lambda))
        throw std::invalid_argument("msse_lambda must be a positive finite number");
    if (p.opt_iters < 0) throw std::invalid_argument("opt_iters must be >= 0");
    if (!(p.min_residual >= 0.0) || !std::isfinite(p.min_residual))
        throw std::invalid_argument("min_residual must be a finite number >= 0");
}

void classical_sorted(const SortedSeries& s, double* median, double* std) {
    const std::size_t n = s.n;
    if (n == 0) {
        *median = *std = kNaN;
        return;
    }
    const double mid = (n % 2) ? s.y[n / 2] : 0.5 * (s.y[n / 2 - 1] + s.y[n / 2]);
    *median = mid + s.shift;
    const double W = wsum(s, 0, n);
    const double m = s.P1[n] / W;
    *std = std::sqrt(std::max(0.0, s.P2[n] / W - m * m));
}

ValueFit fit_sorted(const SortedSeries& s, const FitParams& p, const FitConstants& c) {
    const std::size_t n = s.n;
    if (n < kMinSamples) return {kNaN, kNaN, 0};
    if (p.opt_iters == 0) {  // the original's meaning: plain weighted mean and std
        const double m = wmean(s, 0, n);
        return {m + s.shift, std::sqrt(wss(s, 0, n, m) / wsum(s, 0, n)), static_cast<std::int64_t>(n)};
    }
    const std::size_t k = std::min(n, std::max<std::size_t>(2, static_cast<std::size_t>(p.likely_ratio * n)));
    std::size_t kc = static_cast<std::size_t>(p.certain_ratio * n);
    if (kc >= k) kc = k - 1;

    // Start: the densest window of k values (shorth), not a sentinel or an arbitrary value.
    const std::size_t a0 = shorth(s.y, n, k);
    double t = wmean(s, a0, a0 + k);

    // FLkOS: t <- mean of the residual ranks [kc, k) around t; both sets are sorted windows.
    // The windows move little between iterations: step them from the previous ones.
    std::size_t a = a0, b = a0 + (k - kc) / 2;
    for (int it = 0; it < p.opt_iters; ++it) {
        a = nearest_k_from(s.y, n, k, t, a);
        double S = s.P1[a + k] - s.P1[a], W = wsum(s, a, a + k);
        if (kc > 0) {
            b = nearest_k_from(s.y, n, kc, t, b);
            S -= s.P1[b + kc] - s.P1[b];
            W -= wsum(s, b, b + kc);
        }
        if (!(W > 0)) break;
        const double tn = S / W;
        if (tn == t) break;
        t = tn;
    }

    // The k nearest values: a fallback location and the yardstick of the runaway guard.
    const std::size_t ak = nearest_k(s.y, n, k, t);
    const double loc_k = wmean(s, ak, ak + k);
    const double rms_k = std::sqrt(wss(s, ak, ak + k, t) / wsum(s, ak, ak + k));
    const double guard = kGuard * std::max(rms_k, p.min_residual);
    const double lam = p.msse_lambda;

    std::size_t m = 0;
    double sigma = msse_walk(s, t, k, lam, p.min_residual, &m) / c.msse_corr;
    Window win = within(s, t, lam * sigma);
    double loc = (win.hi > win.lo) ? wmean(s, win.lo, win.hi) : t;
    bool guarded = std::fabs(loc - t) > guard;
    if (guarded) loc = loc_k;
    // sigma is kept from the walk around the FLkOS location (within ~sigma of loc when not
    // guarded): a second walk changed the results by far less than their noise and cost 15 %.
    win = within(s, loc, std::max(lam * sigma, p.min_residual));
    if (!guarded && win.hi > win.lo) {
        const double loc2 = wmean(s, win.lo, win.hi);
        if (std::fabs(loc2 - t) > guard) {
            guarded = true;
            loc = loc_k;
            win = within(s, loc, std::max(lam * sigma, p.min_residual));
        } else {
            loc = loc2;
            win = within(s, loc, std::max(lam * sigma, p.min_residual));
        }
    }
    // Final scale: variance of the values within lambda*sigma of the location, corrected for the
    // truncation at lambda (unbiased for a clean Gaussian at any n, unlike the raw MSSE stop).
    const std::size_t cnt = win.hi - win.lo;
    double std_out = sigma;
    if (cnt >= 2) {
        const double W = wsum(s, win.lo, win.hi);
        const double v = wss(s, win.lo, win.hi, loc) / W * static_cast<double>(cnt) /
                         static_cast<double>(cnt - 1);
        std_out = std::sqrt(v / c.trunc_var);
    }
    // Final check against the single Gaussian of the whole sample (the lambda-sigma clipping fixed
    // point started from this fit, with the scale raised to the MAD's when that is larger). With
    // short series (n ~ 16-64) the k-window can be a chance cluster of a plain Gaussian: the MSSE
    // walk then stops early (sigma too small, a third of the frames "outliers") or the guard keeps
    // the location on the cluster (sigma around it inflated). Where the two disagree, the robust
    // fit is kept only if the values really hold two populations.
    const std::size_t kh = (n + 1) / 2;
    const double med = (n % 2) ? s.y[n / 2] : 0.5 * (s.y[n / 2 - 1] + s.y[n / 2]);
    const std::size_t am = nearest_k(s.y, n, kh, med);
    const double mad = 1.482602218505602 * std::max(med - s.y[am], s.y[am + kh - 1] - med);
    // Top-down (from the sample std, capped at 3 MADs so that a few far spikes cannot hold the
    // window open): clipping converges to the widest fixed point, never to a chance gap.
    const double sd_all = std::sqrt(wss(s, 0, n, wmean(s, 0, n)) / wsum(s, 0, n) *
                                    static_cast<double>(n) / static_cast<double>(n - 1));
    const double start = std::max(std_out, std::min(sd_all, 3.0 * mad));
    const Clip w = clip_fixed_point(s, loc, start, lam, p.min_residual, c.trunc_var);
    const std::size_t cw = w.win.hi - w.win.lo;
    // With likely_ratio < 0.5 the caller says outliers may be the majority: a single Gaussian of
    // the whole sample is then no candidate (the reference's section 6.1 seed case), skip it.
    if (cw >= 2 && p.likely_ratio >= 0.5 && !(w.sd > 0 && std_out > 0 && w.win.lo == win.lo && w.win.hi == win.hi &&
                     std::fabs(w.loc - loc) <= 0.1 * w.sd)) {
        const bool same = cw + 1 >= cnt && cw <= cnt + 1 + n / 100 && std::fabs(w.loc - loc) <= 0.2 * w.sd &&
                          std::fabs(w.sd - std_out) <= 0.15 * w.sd;
        // EM starts from the fit's inliers, or from its k nearest values when the window holds
        // (almost) everything (the guarded case: a right location, an inflated window).
        Window init = win;
        if (cnt + 2 > n) {
            const std::size_t a = nearest_k(s.y, n, k, loc);
            init = {a, a + k};
        }
        // Only values within the single Gaussian's window or the fit's count: far spikes that both
        // reject are no second population.
        const std::size_t a = std::min(init.lo, w.win.lo), b = std::max(init.hi, w.win.hi);
        SortedSeries sub = s;
        sub.y = s.y + a;
        sub.w = s.w ? s.w + a : nullptr;
        sub.P0 = s.P0 ? s.P0 + a : nullptr;
        sub.P1 = s.P1 + a;
        sub.P2 = s.P2 + a;
        sub.n = b - a;
        if (!same && !two_populations(sub, init.lo - a, init.hi - a, 0.25 * w.sd))
            return {w.loc + s.shift, w.sd, static_cast<std::int64_t>(cw)};
    }
    return {loc + s.shift, std_out, static_cast<std::int64_t>(cnt)};
}

}  // namespace badpix
