// Robust line and plane fits (see linear.hpp): FLkOS concentration + MSSE + inlier refits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "linear.hpp"
#include "series.hpp"

namespace badpix {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kElementalStarts = 24;       // exact fits through random minimal subsets
constexpr std::size_t kScoreSample = 256;  // starts are ranked on at most this many points
constexpr int kRefinedStarts = 2;          // best starts refined by concentration steps
constexpr std::size_t kFitSample = 1024;   // FLkOS + MSSE on at most this many points (regular
                                           // subsample); the inlier refits always use all points

using Beta = std::array<double, 3>;

struct Model {
    const double* u;
    const double* v;
    const double* z;
    std::size_t n;
    int np;  // 2 (line) or 3 (plane)
    double resid(const Beta& b, std::size_t i) const {
        return z[i] - (b[0] * u[i] + (v ? b[1] * v[i] : 0.0) + b[2]);
    }
};

// Least squares on the listed points (float64 normal equations, partial pivoting).
bool least_squares(const Model& m, const std::uint32_t* idx, std::size_t cnt, Beta* out) {
    double A[3][4] = {};
    for (std::size_t t = 0; t < cnt; ++t) {
        const std::size_t i = idx[t];
        const double row[3] = {m.u[i], m.v ? m.v[i] : 0.0, 1.0};
        for (int r = 0; r < 3; ++r) {
            for (int c = 0; c < 3; ++c) A[r][c] += row[r] * row[c];
            A[r][3] += row[r] * m.z[i];
        }
    }
    if (!m.v) {  // line: make the unused b1 row trivial
        A[1][0] = A[1][2] = A[0][1] = A[2][1] = A[1][3] = 0.0;
        A[1][1] = 1.0;
    }
    double scale = 0.0;
    for (int r = 0; r < 3; ++r) scale = std::max(scale, std::fabs(A[r][r]));
    for (int c = 0; c < 3; ++c) {
        int piv = c;
        for (int r = c + 1; r < 3; ++r)
            if (std::fabs(A[r][c]) > std::fabs(A[piv][c])) piv = r;
        if (!(std::fabs(A[piv][c]) > 1e-12 * scale)) return false;
        if (piv != c)
            for (int k = 0; k < 4; ++k) std::swap(A[c][k], A[piv][k]);
        for (int r = 0; r < 3; ++r) {
            if (r == c) continue;
            const double f = A[r][c] / A[c][c];
            for (int k = c; k < 4; ++k) A[r][k] -= f * A[c][k];
        }
    }
    for (int r = 0; r < 3; ++r) (*out)[r] = A[r][3] / A[r][r];
    if (!m.v) (*out)[1] = 0.0;
    return std::isfinite((*out)[0]) && std::isfinite((*out)[1]) && std::isfinite((*out)[2]);
}

// k-th smallest |residual| over every `step`-th point (the LkOS objective).
double kth_abs_residual(const Model& m, const Beta& b, std::size_t step, double ratio,
                        std::vector<double>& a) {
    a.clear();
    for (std::size_t i = 0; i < m.n; i += step) a.push_back(std::fabs(m.resid(b, i)));
    std::size_t k = std::min(a.size() - 1, static_cast<std::size_t>(ratio * a.size()));
    std::nth_element(a.begin(), a.begin() + k, a.end());
    return a[k];
}

// One FLkOS concentration step: least squares on the residual ranks [kc, k). The rank bounds are
// found by nth_element on a copy of the values (a direct selection is several times faster than
// selecting indices through a comparator); ties at a bound may add a few points.
bool concentrate(const Model& m, Beta* b, std::size_t k, std::size_t kc, LinearScratch& s,
                 double* objective) {
    s.r.resize(m.n);
    for (std::size_t i = 0; i < m.n; ++i) s.r[i] = std::fabs(m.resid(*b, i));
    s.a.assign(s.r.begin(), s.r.end());
    std::nth_element(s.a.begin(), s.a.begin() + (k - 1), s.a.end());
    const double hi = s.a[k - 1];
    *objective = hi;  // the LkOS objective of the input model
    double lo = -1.0;
    if (kc > 0) {
        std::nth_element(s.a.begin(), s.a.begin() + kc, s.a.begin() + (k - 1));
        lo = s.a[kc];
    }
    s.idx.resize(m.n);
    std::size_t c = 0;
    for (std::size_t i = 0; i < m.n; ++i)
        if (s.r[i] <= hi && s.r[i] >= lo) s.idx[c++] = static_cast<std::uint32_t>(i);
    return least_squares(m, s.idx.data(), c, b);
}

// MSSE on |residuals| sorted ascending with np fitted parameters; uncorrected sigma.
double msse_abs(const std::vector<double>& a, std::size_t k, double lambda, double min_res, int np) {
    double S = 0.0;
    std::size_t i = 0;
    const double lam2 = lambda * lambda;
    for (; i < a.size(); ++i) {
        const double d = a[i];
        if (i >= k && d >= min_res && d * d > lam2 * S / static_cast<double>(i - np)) break;
        S += d * d;
    }
    return std::sqrt(S / static_cast<double>(i - np));
}

// Points within r of the model: indices into s.idx, returns their count.
std::size_t inliers(const Model& m, const Beta& b, double r, LinearScratch& s) {
    s.idx.resize(m.n);
    std::size_t c = 0;
    for (std::size_t i = 0; i < m.n; ++i)
        if (std::fabs(m.resid(b, i)) <= r) s.idx[c++] = static_cast<std::uint32_t>(i);
    return c;
}

double sorted_abs_residuals(const Model& m, const Beta& b, std::vector<double>& a) {
    a.resize(m.n);
    for (std::size_t i = 0; i < m.n; ++i) a[i] = std::fabs(m.resid(b, i));
    std::sort(a.begin(), a.end());
    return 0.0;
}

}  // namespace

LinearFit fit_linear(const double* u, const double* v, const double* z, std::size_t n,
                     const FitParams& p, LinearScratch& s) {
    const int np = v ? 3 : 2;
    LinearFit bad{{kNaN, kNaN, kNaN}, kNaN, 0, false};
    if (n < static_cast<std::size_t>(np) + 2) return bad;
    const Model full{u, v, z, n, np};
    // Large inputs (background windows): search on a regular subsample, refit on everything.
    const std::size_t sub_step = (n + kFitSample - 1) / kFitSample;
    Model m = full;
    if (sub_step > 1) {
        s.su.clear();
        s.sv.clear();
        s.sz.clear();
        for (std::size_t i = 0; i < n; i += sub_step) {
            s.su.push_back(u[i]);
            if (v) s.sv.push_back(v[i]);
            s.sz.push_back(z[i]);
        }
        m = Model{s.su.data(), v ? s.sv.data() : nullptr, s.sz.data(), s.sz.size(), np};
    }
    const FitConstants consts(p);
    const std::size_t ns = m.n;
    const std::size_t k =
        std::min(ns, std::max<std::size_t>(np + 1, static_cast<std::size_t>(p.likely_ratio * ns)));
    std::size_t kc = static_cast<std::size_t>(p.certain_ratio * ns);
    if (kc + static_cast<std::size_t>(np) > k) kc = k - np;  // keep >= np points in the band
    const std::size_t step = std::max<std::size_t>(1, ns / kScoreSample);

    // Candidate starts: least squares on everything, a flat model at the median, exact fits
    // through pseudo-random minimal subsets (a fixed generator: results are reproducible).
    std::vector<std::pair<double, Beta>> cands;
    Beta b{};
    s.idx.resize(ns);
    for (std::size_t i = 0; i < ns; ++i) s.idx[i] = static_cast<std::uint32_t>(i);
    if (least_squares(m, s.idx.data(), ns, &b)) cands.push_back({0.0, b});
    s.a.assign(m.z, m.z + ns);
    std::nth_element(s.a.begin(), s.a.begin() + ns / 2, s.a.end());
    cands.push_back({0.0, Beta{0.0, 0.0, s.a[ns / 2]}});
    std::uint64_t state = 0x9E3779B97F4A7C15ull ^ ns;
    auto next = [&state, ns]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>((state >> 33) % ns);
    };
    for (int e = 0; e < kElementalStarts; ++e) {
        std::uint32_t pick[3];
        for (int j = 0; j < np; ++j) pick[j] = next();
        if (least_squares(m, pick, static_cast<std::size_t>(np), &b)) cands.push_back({0.0, b});
    }
    for (auto& c : cands) c.first = kth_abs_residual(m, c.second, step, p.likely_ratio, s.a);
    std::sort(cands.begin(), cands.end(), [](const auto& x, const auto& y) { return x.first < y.first; });

    // Refine the best starts by concentration steps; keep the best LkOS objective on all points.
    double best_score = std::numeric_limits<double>::infinity();
    Beta best{};
    const int iters = std::max(1, p.opt_iters);
    for (int c = 0; c < std::min<int>(kRefinedStarts, static_cast<int>(cands.size())); ++c) {
        // The ring band [kc, k) can cycle instead of converging: keep the model with the best
        // LkOS objective and stop after two steps without improvement.
        Beta cur = cands[c].second;
        int stall = 0;
        for (int it = 0; it < iters && stall < 2; ++it) {
            Beta nb = cur;
            double obj;
            const bool ok = concentrate(m, &nb, k, kc, s, &obj);
            if (obj < best_score * (1.0 - 1e-12)) {
                best_score = obj;
                best = cur;
                stall = 0;
            } else {
                ++stall;
            }
            if (!ok) break;
            cur = nb;
        }
        const double obj = kth_abs_residual(m, cur, 1, p.likely_ratio, s.a);
        if (obj < best_score) {
            best_score = obj;
            best = cur;
        }
    }
    if (!std::isfinite(best_score)) return bad;

    // Scale, then least squares on all inliers (twice), keeping the FLkOS model if the refit
    // makes the LkOS objective clearly worse (runaway to a contaminated solution).
    const double lam = p.msse_lambda;
    Beta cur = best;
    double sigma = 0.0;
    for (int pass = 0; pass < 2; ++pass) {
        sorted_abs_residuals(m, cur, s.a);
        sigma = msse_abs(s.a, k, lam, p.min_residual, np) / consts.msse_corr;
        const std::size_t c = inliers(full, cur, std::max(lam * sigma, p.min_residual), s);
        Beta nb = cur;
        if (c < static_cast<std::size_t>(np) + 1 || !least_squares(full, s.idx.data(), c, &nb)) break;
        if (kth_abs_residual(m, nb, 1, p.likely_ratio, s.a) > 1.5 * best_score + 1e-300) break;
        cur = nb;
    }
    const Model& m_final = full;
    // Final scale from the lambda-sigma window, corrected for the truncation at lambda.
    const std::size_t c = inliers(m_final, cur, std::max(lam * sigma, p.min_residual), s);
    double ss = 0.0;
    for (std::size_t t = 0; t < c; ++t) {
        const double r = m_final.resid(cur, s.idx[t]);
        ss += r * r;
    }
    double sd = sigma;
    if (c > static_cast<std::size_t>(np)) sd = std::sqrt(ss / static_cast<double>(c - np) / consts.trunc_var);
    return {cur, sd, static_cast<std::int64_t>(c), true};
}

LineFitResult fit_line(const double* x, const double* y, std::size_t n, const FitParams& p) {
    check_params(p);
    std::vector<double> u, z;
    u.reserve(n);
    z.reserve(n);
    double mx = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        if (std::isfinite(x[i]) && std::isfinite(y[i])) {
            u.push_back(x[i]);
            z.push_back(y[i]);
            mx += x[i];
        }
    if (!u.empty()) mx /= static_cast<double>(u.size());
    for (double& t : u) t -= mx;  // centred: the intercept is not tied to x's offset
    LinearScratch s;
    const LinearFit f = fit_linear(u.data(), nullptr, z.data(), u.size(), p, s);
    if (!f.ok) return {kNaN, kNaN, kNaN, 0};
    return {f.beta[0], f.beta[2] - f.beta[0] * mx, f.std, f.n_inliers};
}

PlaneFitResult fit_plane(const double* x, const double* y, const double* z, std::size_t n,
                         const FitParams& p) {
    check_params(p);
    std::vector<double> u, v, w;
    double mx = 0.0, my = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        if (std::isfinite(x[i]) && std::isfinite(y[i]) && std::isfinite(z[i])) {
            u.push_back(x[i]);
            v.push_back(y[i]);
            w.push_back(z[i]);
            mx += x[i];
            my += y[i];
        }
    if (!u.empty()) {
        mx /= static_cast<double>(u.size());
        my /= static_cast<double>(u.size());
    }
    for (double& t : u) t -= mx;
    for (double& t : v) t -= my;
    LinearScratch s;
    const LinearFit f = fit_linear(u.data(), v.data(), w.data(), u.size(), p, s);
    if (!f.ok) return {kNaN, kNaN, kNaN, kNaN, 0};
    return {f.beta[0], f.beta[1], f.beta[2] - f.beta[0] * mx - f.beta[1] * my, f.std, f.n_inliers};
}

}  // namespace badpix
