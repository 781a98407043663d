// Robust linear model z ~ b0*u + b1*v + b2 (line: no v) by FLkOS concentration steps from several
// deterministic starts, an MSSE scale, and least-squares refits on all lambda-sigma inliers.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core.hpp"

namespace badpix {

struct LinearFit {
    std::array<double, 3> beta;  // b0, b1 (0 for a line), b2 (intercept at u = v = 0)
    double std;
    std::int64_t n_inliers;
    bool ok;
};

// Reusable buffers so repeated fits (background windows) do not reallocate.
struct LinearScratch {
    std::vector<double> r, a, su, sv, sz;
    std::vector<std::uint32_t> idx;
};

// u, v: coordinates (v null for a line; callers centre them for conditioning), z: values;
// all finite, n entries. Needs n >= n_params + 2.
LinearFit fit_linear(const double* u, const double* v, const double* z, std::size_t n,
                     const FitParams& p, LinearScratch& scratch);

}  // namespace badpix
