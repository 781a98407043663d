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

// Smallest relative weight of a window's estimate at a pixel whose 3x3 neighbourhood are outliers
// of that window's model (weight = inlier fraction squared): near an ASIC step only the windows on
// the pixel's own side count. Estimates are also weighted by 1/std^2 of their window, which
// down-weights windows straddling a step.
constexpr double kOutlierWeight = 1e-3;

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

struct BgScratch {
    std::vector<double> u, v, z, sw, swm, sws;
    std::vector<std::uint32_t> pix;
    std::vector<std::uint8_t> flag;
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
    const double lam = p.msse_lambda;

    parallel_for(wins.size(), nt, [&](std::size_t t, std::size_t tid) {
        BgScratch& s = scratch[tid];
        if (s.sw.empty()) {  // per-thread accumulators, reduced after the loop (no locks)
            s.sw.assign(npix, 0.0);
            s.swm.assign(npix, 0.0);
            s.sws.assign(npix, 0.0);
        }
        const Win w = wins[t];
        const double rc = static_cast<double>(w.r0) + 0.5 * static_cast<double>(wr - 1);
        const double cc = static_cast<double>(w.c0) + 0.5 * static_cast<double>(wc - 1);
        s.u.clear();
        s.v.clear();
        s.z.clear();
        s.pix.clear();
        for (std::size_t r = w.r0; r < w.r0 + wr; ++r)
            for (std::size_t c = w.c0; c < w.c0 + wc; ++c) {
                const std::size_t q = r * cols + c;
                if ((mask && mask[q]) || !std::isfinite(image[q])) continue;
                s.u.push_back(static_cast<double>(r) - rc);
                s.v.push_back(static_cast<double>(c) - cc);
                s.z.push_back(image[q]);
            }
        if (s.z.size() < std::max<std::size_t>(min_pixels, kMinSamples + 2)) return;
        double b0 = 0.0, b1 = 0.0, b2, sd;
        if (plane) {
            const LinearFit f = fit_linear(s.u.data(), s.v.data(), s.z.data(), s.z.size(), p, s.lin);
            if (!f.ok || !std::isfinite(f.std)) return;
            b0 = f.beta[0];
            b1 = f.beta[1];
            b2 = f.beta[2];
            sd = f.std;
        } else {
            std::sort(s.z.begin(), s.z.end());
            const ValueFit f = fit_sorted(s.buf.load(s.z.data(), nullptr, s.z.size()), p, consts);
            if (!std::isfinite(f.mean)) return;
            b2 = f.mean;
            sd = f.std;
        }
        const double thr = std::max(lam * sd, p.min_residual);
        // Inverse-variance weights: a window straddling an ASIC step has an inflated scale.
        const double wvar = 1.0 / std::max(sd * sd, 1e-300);
        auto model_at = [&](std::size_t r, std::size_t c) {
            return b0 * (static_cast<double>(r) - rc) + b1 * (static_cast<double>(c) - cc) + b2;
        };
        // 1 = usable inlier, 0 = usable outlier, 2 = not usable (masked / non-finite).
        s.flag.resize(wr * wc);
        for (std::size_t r = 0; r < wr; ++r)
            for (std::size_t c = 0; c < wc; ++c) {
                const std::size_t q = (w.r0 + r) * cols + (w.c0 + c);
                const bool usable = !(mask && mask[q]) && std::isfinite(image[q]);
                s.flag[r * wc + c] = !usable ? 2 : (std::fabs(image[q] - model_at(w.r0 + r, w.c0 + c)) <= thr);
            }
        for (std::size_t r = 0; r < wr; ++r)
            for (std::size_t c = 0; c < wc; ++c) {
                // Does this window's model describe the pixel's 3x3 neighbourhood? (A bad pixel
                // is an outlier everywhere; its neighbours tell which side of a step it is on.)
                int inl = 0, use = 0;
                for (std::size_t rr = r ? r - 1 : 0; rr <= std::min(r + 1, wr - 1); ++rr)
                    for (std::size_t c2 = c ? c - 1 : 0; c2 <= std::min(c + 1, wc - 1); ++c2) {
                        const std::uint8_t f = s.flag[rr * wc + c2];
                        if (f != 2) {
                            ++use;
                            inl += f;
                        }
                    }
                const double frac = use ? static_cast<double>(inl) / use : 1.0;
                const double wt = wvar * std::max(kOutlierWeight, frac * frac);
                const std::size_t q = (w.r0 + r) * cols + (w.c0 + c);
                s.sw[q] += wt;
                s.swm[q] += wt * model_at(w.r0 + r, w.c0 + c);
                s.sws[q] += wt * sd;
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
