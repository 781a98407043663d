// Windowed robust background (constant or plane per window), averaged over shifted window grids.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core.hpp"
#include "linear.hpp"
#include "parallel.hpp"
#include "series.hpp"

namespace badpix {
namespace {

// How the shifted estimates are combined. Every window's model is judged at every pixel it covers
// by its local bias: the mean residual (image - model) over the usable pixels of the
// (2 kRadius + 1)^2 box around the pixel (clipped to the window) that lie within lambda * s of the
// model, where s is the smallest window scale at that pixel (the best-fitting window's noise).
// The estimate gets the weight f3^kSidePower f^2 / (bias^2 + s^2 / n_in): the last factor is an
// inverse mean-square-error, so a window fitting a compromise plane through an ASIC step is off
// by many noise-means near the pixel and counts little; f is the inlier fraction of the box and
// f3 that of the pixel's own 3x3 neighbourhood, which tells on which side of a step the pixel
// lies (bad pixels are outliers of every window, so they do not change the ratios). Shifting and
// averaging then no longer smears steps. Without any inlier in the box a window keeps
// kNoInlierWeight / sd^2 (only relevant where no window has local information).
constexpr std::ptrdiff_t kRadius = 4;
constexpr int kSidePower = 8;
constexpr double kNoInlierWeight = 1e-6;

// Window starts along one axis of length L for window w and grid offset s: a window at 0 covers the
// part before s, and the last window is shifted back to end at the edge (all windows are full).
std::vector<std::size_t> window_starts(std::size_t L, std::size_t w, std::size_t s) {
    std::vector<std::size_t> st;
    if (s > 0) st.push_back(0);
    for (std::size_t a = s; a < L; a += w) st.push_back(std::min(a, L - w));
    st.erase(std::unique(st.begin(), st.end()), st.end());
    return st;
}

struct Win {
    std::size_t r0, c0;
};

struct WinFit {
    bool ok = false;
    double b0 = 0, b1 = 0, b2 = 0, sd = 0, rc = 0, cc = 0;
    double model(std::size_t r, std::size_t c) const {
        return b0 * (static_cast<double>(r) - rc) + b1 * (static_cast<double>(c) - cc) + b2;
    }
};

struct BgScratch {
    std::vector<double> u, v, z, sw, swm, sws;
    std::vector<double> cu, ci, cr;  // (wr + 1) x (wc + 1) summed-area tables
    LinearScratch lin;
    SeriesBuffers buf;
};

}  // namespace

void fit_background(const double* image, const std::uint8_t* mask, std::size_t rows, std::size_t cols,
                    std::size_t win_r, std::size_t win_c, int n_shifts, bool plane,
                    std::size_t min_pixels, const FitParams& p, int n_threads, double* mean_out,
                    double* std_out) {
    check_params(p);
    if (rows == 0 || cols == 0) return;
    if (win_r == 0 || win_c == 0) throw std::invalid_argument("window sizes must be >= 1");
    if (n_shifts < 1) throw std::invalid_argument("n_shifts must be >= 1");
    const std::size_t wr = std::min(win_r, rows), wc = std::min(win_c, cols);
    std::vector<Win> wins;
    for (int i = 0; i < n_shifts; ++i)
        for (int j = 0; j < n_shifts; ++j) {
            const std::size_t sr = wr * static_cast<std::size_t>(i) / static_cast<std::size_t>(n_shifts);
            const std::size_t sc = wc * static_cast<std::size_t>(j) / static_cast<std::size_t>(n_shifts);
            for (std::size_t r0 : window_starts(rows, wr, sr))
                for (std::size_t c0 : window_starts(cols, wc, sc)) wins.push_back({r0, c0});
        }
    const FitConstants consts(p);
    const std::size_t npix = rows * cols;
    const int nt = static_cast<int>(std::min<std::size_t>(std::max(1, n_threads), wins.size()));
    std::vector<BgScratch> scratch(static_cast<std::size_t>(nt));
    std::vector<WinFit> fits(wins.size());
    const double lam = p.msse_lambda;
    auto usable = [&](std::size_t q) { return !(mask && mask[q]) && std::isfinite(image[q]); };

    // Pass 1: one robust fit per window.
    parallel_for(wins.size(), nt, [&](std::size_t t, std::size_t tid) {
        BgScratch& s = scratch[tid];
        const Win w = wins[t];
        WinFit& f = fits[t];
        f.rc = static_cast<double>(w.r0) + 0.5 * static_cast<double>(wr - 1);
        f.cc = static_cast<double>(w.c0) + 0.5 * static_cast<double>(wc - 1);
        s.u.clear();
        s.v.clear();
        s.z.clear();
        for (std::size_t r = w.r0; r < w.r0 + wr; ++r)
            for (std::size_t c = w.c0; c < w.c0 + wc; ++c) {
                const std::size_t q = r * cols + c;
                if (!usable(q)) continue;
                s.u.push_back(static_cast<double>(r) - f.rc);
                s.v.push_back(static_cast<double>(c) - f.cc);
                s.z.push_back(image[q]);
            }
        if (s.z.size() < std::max<std::size_t>(min_pixels, kMinSamples + 2)) return;
        if (plane) {
            const LinearFit lf = fit_linear(s.u.data(), s.v.data(), s.z.data(), s.z.size(), p, s.lin);
            if (!lf.ok || !std::isfinite(lf.std)) return;
            f.b0 = lf.beta[0];
            f.b1 = lf.beta[1];
            f.b2 = lf.beta[2];
            f.sd = lf.std;
        } else {
            std::sort(s.z.begin(), s.z.end());
            const ValueFit vf = fit_sorted(s.buf.load(s.z.data(), nullptr, s.z.size()), p, consts);
            if (!std::isfinite(vf.mean)) return;
            f.b2 = vf.mean;
            f.sd = vf.std;
        }
        f.ok = true;
    });

    // Pass 2: the reference scale of each pixel, the smallest scale of the windows covering it.
    std::vector<double> sref(npix, std::numeric_limits<double>::infinity());
    for (std::size_t t = 0; t < wins.size(); ++t) {
        if (!fits[t].ok) continue;
        for (std::size_t r = wins[t].r0; r < wins[t].r0 + wr; ++r) {
            double* row = sref.data() + r * cols + wins[t].c0;
            for (std::size_t c = 0; c < wc; ++c) row[c] = std::min(row[c], fits[t].sd);
        }
    }

    // Pass 3: each window's estimate at each of its pixels, weighted by its local fit quality.
    parallel_for(wins.size(), nt, [&](std::size_t t, std::size_t tid) {
        BgScratch& s = scratch[tid];
        if (s.sw.empty()) {  // per-thread accumulators, reduced after the loop (no locks)
            s.sw.assign(npix, 0.0);
            s.swm.assign(npix, 0.0);
            s.sws.assign(npix, 0.0);
        }
        const WinFit& f = fits[t];
        if (!f.ok) return;
        const Win w = wins[t];
        const std::size_t W1 = wc + 1;
        s.cu.assign((wr + 1) * W1, 0.0);
        s.ci.assign((wr + 1) * W1, 0.0);
        s.cr.assign((wr + 1) * W1, 0.0);
        // Summed-area tables of: usable, inlier (|residual| <= lambda * s_ref), inlier residual.
        for (std::size_t r = 0; r < wr; ++r) {
            double ru = 0, ri = 0, rr = 0;
            for (std::size_t c = 0; c < wc; ++c) {
                const std::size_t q = (w.r0 + r) * cols + (w.c0 + c);
                if (usable(q)) {
                    const double res = image[q] - f.model(w.r0 + r, w.c0 + c);
                    ru += 1.0;
                    if (std::fabs(res) <= std::max(lam * sref[q], p.min_residual)) {
                        ri += 1.0;
                        rr += res;
                    }
                }
                const std::size_t o = (r + 1) * W1 + (c + 1);
                s.cu[o] = s.cu[o - W1] + ru;
                s.ci[o] = s.ci[o - W1] + ri;
                s.cr[o] = s.cr[o - W1] + rr;
            }
        }
        auto box = [&](const std::vector<double>& T, std::size_t r0, std::size_t r1, std::size_t c0,
                       std::size_t c1) { return T[r1 * W1 + c1] - T[r0 * W1 + c1] - T[r1 * W1 + c0] + T[r0 * W1 + c0]; };
        const double wfall = kNoInlierWeight / std::max(f.sd * f.sd, 1e-300);
        for (std::size_t r = 0; r < wr; ++r) {
            const std::size_t r0 = r > static_cast<std::size_t>(kRadius) ? r - kRadius : 0;
            const std::size_t r1 = std::min(wr, r + kRadius + 1);
            for (std::size_t c = 0; c < wc; ++c) {
                const std::size_t c0 = c > static_cast<std::size_t>(kRadius) ? c - kRadius : 0;
                const std::size_t c1 = std::min(wc, c + kRadius + 1);
                const std::size_t q = (w.r0 + r) * cols + (w.c0 + c);
                const double nu = box(s.cu, r0, r1, c0, c1);
                const double ni = box(s.ci, r0, r1, c0, c1);
                double wt = wfall;
                if (ni > 0) {
                    // Squared bias: the mean residuals of the box's four overlapping quadrants
                    // (a compromise plane through a step cancels in the whole box's mean, not
                    // in the quadrants'), averaged with their inlier counts as weights.
                    double b2 = 0.0, nsum = 0.0;
                    for (int qr = 0; qr < 2; ++qr)
                        for (int qc = 0; qc < 2; ++qc) {
                            const std::size_t x0 = qr ? r : r0, x1 = qr ? r1 : r + 1;
                            const std::size_t y0 = qc ? c : c0, y1 = qc ? c1 : c + 1;
                            const double nq = box(s.ci, x0, x1, y0, y1);
                            if (nq > 0) {
                                const double mq = box(s.cr, x0, x1, y0, y1) / nq;
                                b2 += nq * mq * mq;
                                nsum += nq;
                            }
                        }
                    const double bias2 = b2 / nsum;  // nsum >= ni > 0
                    const double frac = ni / nu;
                    const std::size_t a0 = r ? r - 1 : 0, a1 = std::min(wr, r + 2);
                    const std::size_t d0 = c ? c - 1 : 0, d1 = std::min(wc, c + 2);
                    const double nu3 = box(s.cu, a0, a1, d0, d1);
                    double side = nu3 > 0 ? box(s.ci, a0, a1, d0, d1) / nu3 : 1.0;
                    side *= side;
                    side *= side;
                    side *= side;  // ^kSidePower
                    static_assert(kSidePower == 8);
                    const double s2 = std::isfinite(sref[q]) ? sref[q] * sref[q] : f.sd * f.sd;
                    wt = std::max(wfall, side * frac * frac / std::max(bias2 + s2 / ni, 1e-300));
                }
                s.sw[q] += wt;
                s.swm[q] += wt * f.model(w.r0 + r, w.c0 + c);
                s.sws[q] += wt * f.sd;
            }
        }
    });
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::size_t q = 0; q < npix; ++q) {
        double sw = 0.0, swm = 0.0, sws = 0.0;
        for (const BgScratch& s : scratch)
            if (!s.sw.empty()) {
                sw += s.sw[q];
                swm += s.swm[q];
                sws += s.sws[q];
            }
        mean_out[q] = sw > 0 ? swm / sw : nan;
        std_out[q] = sw > 0 ? sws / sw : nan;
    }
}

}  // namespace badpix
