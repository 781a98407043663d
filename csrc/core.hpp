// Pure C++ interface of the robust-fitting core. Knows nothing about Python; bindings.cpp wraps it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace badpix {

// Parameters shared by every robust fit (meaning as in RGFLib, see badpix/robust.py).
struct FitParams {
    double likely_ratio = 0.5;   // assumed lower bound on the inlier fraction: FLkOS window and MSSE k
    double certain_ratio = 0.35; // FLkOS averages the residual ranks [certain, likely)
    double msse_lambda = 3.0;    // inlier threshold in sigma units
    int opt_iters = 12;          // FLkOS iterations (0: classical mean/std)
    double min_residual = 0.0;   // residuals below this are always inliers
};

// Smallest number of usable samples for which fit_value gives a finite result.
constexpr std::size_t kMinSamples = 3;

struct ValueFit {
    double mean;
    double std;
    std::int64_t n_inliers;
};

struct LineFitResult {
    double slope, intercept, std;
    std::int64_t n_inliers;
};

struct PlaneFitResult {
    double a, b, c, std;  // z = a*x + b*y + c
    std::int64_t n_inliers;
};

// Throws std::invalid_argument unless 0 <= certain < likely <= 1, lambda > 0, opt_iters >= 0, ...
void check_params(const FitParams& p);

// Variance of a standard normal truncated to |z| <= c (the MSSE consistency factor squared).
double truncated_variance(double c);

// MSSE scale of residuals (any sign, finite), consistency-corrected. k <- max(k, 2).
// Returns NaN when fewer than kMinSamples residuals. `n_in` receives the number of MSSE inliers.
double msse(const double* residuals, std::size_t n, std::size_t k, double lambda, double min_residual,
            std::int64_t* n_in);

// Robust location/scale of x (non-finite x and weights <= 0 or non-finite are ignored; w may be null).
ValueFit fit_value(const double* x, const double* w, std::size_t n, const FitParams& p);

// Element type codes accepted by the tensor fit.
enum class DType { f32, f64, u16, i16 };

// Strided view of an N-d input: series axis first (length n, byte stride s0), then `rank` pixel axes.
struct TensorView {
    const char* data;
    DType dtype;
    std::size_t n;
    std::ptrdiff_t s0;
    int rank;
    const std::size_t* shape;     // rank entries
    const std::ptrdiff_t* strides; // rank entries, bytes
};

struct TensorOut {
    float* mean;
    float* std;
    std::int32_t* n_inliers;
    std::int32_t* n_valid;
    float* median;      // may be null (return_classical=False)
    float* sample_std;  // may be null
};

// Fits every series of the view in parallel; outputs are C-contiguous over the pixel axes.
void fit_value_tensor(const TensorView& v, const FitParams& p, int n_threads, const TensorOut& out);

LineFitResult fit_line(const double* x, const double* y, std::size_t n, const FitParams& p);
PlaneFitResult fit_plane(const double* x, const double* y, const double* z, std::size_t n,
                         const FitParams& p);

// Windowed robust background of a (rows, cols) C-contiguous image; mask may be null (nonzero = ignore).
// Outputs (rows*cols) are averaged over n_shifts x n_shifts window offsets; NaN where never fitted.
void fit_background(const double* image, const std::uint8_t* mask, std::size_t rows, std::size_t cols,
                    std::size_t win_r, std::size_t win_c, int n_shifts, bool plane,
                    std::size_t min_pixels, const FitParams& p, int n_threads, double* mean_out,
                    double* std_out);

// Sets to 0 the connected groups of nonzero pixels with fewer than min_size pixels (in place).
void remove_islands(std::uint8_t* mask, std::size_t rows, std::size_t cols, std::size_t min_size,
                    int connectivity);

}  // namespace badpix
