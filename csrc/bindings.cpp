// The only file that includes pybind11: argument checks, GIL release, module definition.
// Pattern: check dtype/shape/contiguity and allocate outputs with the GIL held, then release it
// and call the pure C++ core (which touches no Python object).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

// Exact dtype (native byte order), exact ndim and C-contiguity, or a clear TypeError/ValueError:
// the private core never converts or copies silently; badpix.robust decides when to copy.
template <class T>
py::array_t<T> require(const py::array& a, const std::string& name, int ndim, const char* tname) {
    if (!py::isinstance<py::array_t<T>>(a))
        throw py::type_error(name + " must be a native-endian " + tname + " array, got dtype " +
                             std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw py::value_error(name + " must have " + std::to_string(ndim) + " dimension(s), got " +
                              std::to_string(a.ndim()));
    if (!(a.flags() & py::array::c_style)) throw py::value_error(name + " must be C-contiguous");
    return py::reinterpret_borrow<py::array_t<T>>(a);
}

badpix::FitParams params(double likely_ratio, double certain_ratio, double msse_lambda, int opt_iters,
                         double min_residual) {
    badpix::FitParams p;
    p.likely_ratio = likely_ratio;
    p.certain_ratio = certain_ratio;
    p.msse_lambda = msse_lambda;
    p.opt_iters = opt_iters;
    p.min_residual = min_residual;
    badpix::check_params(p);  // std::invalid_argument -> ValueError
    return p;
}

py::tuple fit_value(const py::array& x, const std::optional<py::array>& weights, double likely_ratio,
                    double certain_ratio, double msse_lambda, int opt_iters, double min_residual) {
    const auto p = params(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual);
    auto xa = require<double>(x, "x", 1, "float64");
    const double* w = nullptr;
    py::array_t<double> wa;
    if (weights) {
        wa = require<double>(*weights, "weights", 1, "float64");
        if (wa.shape(0) != xa.shape(0)) throw py::value_error("weights must have the same length as x");
        w = wa.data();
    }
    badpix::ValueFit f;
    {
        py::gil_scoped_release release;
        f = badpix::fit_value(xa.data(), w, static_cast<std::size_t>(xa.shape(0)), p);
    }
    return py::make_tuple(f.mean, f.std, f.n_inliers);
}

py::tuple msse(const py::array& r, std::int64_t k, double msse_lambda, double min_residual) {
    auto ra = require<double>(r, "residuals", 1, "float64");
    if (k < 0) throw py::value_error("k must be >= 0");
    std::int64_t n_in = 0;
    double s;
    {
        py::gil_scoped_release release;
        s = badpix::msse(ra.data(), static_cast<std::size_t>(ra.shape(0)), static_cast<std::size_t>(k),
                         msse_lambda, min_residual, &n_in);
    }
    return py::make_tuple(s, n_in);
}

py::tuple fit_value_tensor(const py::array& x, int n_threads, double likely_ratio, double certain_ratio,
                           double msse_lambda, int opt_iters, double min_residual, bool return_classical) {
    const auto p = params(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual);
    badpix::DType dt;
    if (py::isinstance<py::array_t<float>>(x))
        dt = badpix::DType::f32;
    else if (py::isinstance<py::array_t<double>>(x))
        dt = badpix::DType::f64;
    else if (py::isinstance<py::array_t<std::uint16_t>>(x))
        dt = badpix::DType::u16;
    else if (py::isinstance<py::array_t<std::int16_t>>(x))
        dt = badpix::DType::i16;
    else
        throw py::type_error("x must be float32, float64, uint16 or int16 in native byte order, got dtype " +
                             std::string(py::str(x.dtype())));
    if (x.ndim() < 1) throw py::value_error("x must have at least 1 dimension");
    if (x.shape(0) > std::numeric_limits<std::int32_t>::max())
        throw py::value_error("series longer than 2**31-1 samples are not supported");
    if (n_threads < 1) throw py::value_error("n_threads must be >= 1");
    const int rank = static_cast<int>(x.ndim()) - 1;
    std::vector<std::size_t> shape(static_cast<std::size_t>(rank));
    std::vector<std::ptrdiff_t> strides(static_cast<std::size_t>(rank));
    std::vector<py::ssize_t> oshape(static_cast<std::size_t>(rank));
    for (int d = 0; d < rank; ++d) {
        shape[d] = static_cast<std::size_t>(x.shape(d + 1));
        strides[d] = static_cast<std::ptrdiff_t>(x.strides(d + 1));
        oshape[d] = x.shape(d + 1);
    }
    py::array_t<float> mean(oshape), sd(oshape);
    py::array_t<std::int32_t> n_in(oshape), n_valid(oshape);
    py::array_t<float> med, sstd;
    badpix::TensorOut out{mean.mutable_data(), sd.mutable_data(), n_in.mutable_data(), n_valid.mutable_data(),
                          nullptr, nullptr};
    if (return_classical) {
        med = py::array_t<float>(oshape);
        sstd = py::array_t<float>(oshape);
        out.median = med.mutable_data();
        out.sample_std = sstd.mutable_data();
    }
    const badpix::TensorView view{static_cast<const char*>(x.data()), dt, static_cast<std::size_t>(x.shape(0)),
                                  static_cast<std::ptrdiff_t>(x.strides(0)), rank, shape.data(), strides.data()};
    {
        py::gil_scoped_release release;  // safe: the core touches no Python object
        badpix::fit_value_tensor(view, p, n_threads, out);
    }
    if (return_classical) return py::make_tuple(mean, sd, n_in, n_valid, med, sstd);
    return py::make_tuple(mean, sd, n_in, n_valid);
}

py::tuple fit_line(const py::array& x, const py::array& y, double likely_ratio, double certain_ratio,
                   double msse_lambda, int opt_iters, double min_residual) {
    const auto p = params(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual);
    auto xa = require<double>(x, "x", 1, "float64");
    auto ya = require<double>(y, "y", 1, "float64");
    if (xa.shape(0) != ya.shape(0)) throw py::value_error("x and y must have the same length");
    badpix::LineFitResult f;
    {
        py::gil_scoped_release release;
        f = badpix::fit_line(xa.data(), ya.data(), static_cast<std::size_t>(xa.shape(0)), p);
    }
    return py::make_tuple(f.slope, f.intercept, f.std, f.n_inliers);
}

py::tuple fit_plane(const py::array& x, const py::array& y, const py::array& z, double likely_ratio,
                    double certain_ratio, double msse_lambda, int opt_iters, double min_residual) {
    const auto p = params(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual);
    auto xa = require<double>(x, "x", 1, "float64");
    auto ya = require<double>(y, "y", 1, "float64");
    auto za = require<double>(z, "z", 1, "float64");
    if (xa.shape(0) != ya.shape(0) || xa.shape(0) != za.shape(0))
        throw py::value_error("x, y and z must have the same length");
    badpix::PlaneFitResult f;
    {
        py::gil_scoped_release release;
        f = badpix::fit_plane(xa.data(), ya.data(), za.data(), static_cast<std::size_t>(xa.shape(0)), p);
    }
    return py::make_tuple(f.a, f.b, f.c, f.std, f.n_inliers);
}

py::tuple fit_background(const py::array& image, const std::optional<py::array>& mask, std::int64_t win_r,
                         std::int64_t win_c, int n_shifts, bool plane, std::int64_t min_pixels,
                         double likely_ratio, double certain_ratio, double msse_lambda, int opt_iters,
                         double min_residual, int n_threads) {
    const auto p = params(likely_ratio, certain_ratio, msse_lambda, opt_iters, min_residual);
    auto im = require<double>(image, "image", 2, "float64");
    const std::uint8_t* mp = nullptr;
    py::array_t<std::uint8_t> ma;
    if (mask) {
        ma = require<std::uint8_t>(*mask, "mask", 2, "uint8");
        if (ma.shape(0) != im.shape(0) || ma.shape(1) != im.shape(1))
            throw py::value_error("mask must have the shape of image");
        mp = ma.data();
    }
    if (win_r < 1 || win_c < 1) throw py::value_error("window sizes must be >= 1");
    if (n_shifts < 1) throw py::value_error("n_shifts must be >= 1");
    if (min_pixels < 0) throw py::value_error("min_pixels must be >= 0");
    if (n_threads < 1) throw py::value_error("n_threads must be >= 1");
    py::array_t<double> mean({im.shape(0), im.shape(1)}), sd({im.shape(0), im.shape(1)});
    double* mo = mean.mutable_data();
    double* so = sd.mutable_data();
    {
        py::gil_scoped_release release;
        badpix::fit_background(im.data(), mp, static_cast<std::size_t>(im.shape(0)),
                               static_cast<std::size_t>(im.shape(1)), static_cast<std::size_t>(win_r),
                               static_cast<std::size_t>(win_c), n_shifts, plane,
                               static_cast<std::size_t>(min_pixels), p, n_threads, mo, so);
    }
    return py::make_tuple(mean, sd);
}

py::array remove_islands(const py::array& mask, std::int64_t min_size, int connectivity) {
    auto m = require<std::uint8_t>(mask, "mask", 2, "uint8");
    if (min_size < 0) throw py::value_error("min_size must be >= 0");
    if (connectivity != 4 && connectivity != 8) throw py::value_error("connectivity must be 4 or 8");
    py::array_t<std::uint8_t> out({m.shape(0), m.shape(1)});
    std::uint8_t* o = out.mutable_data();
    const std::uint8_t* src = m.data();
    const std::size_t rows = static_cast<std::size_t>(m.shape(0)), cols = static_cast<std::size_t>(m.shape(1));
    {
        py::gil_scoped_release release;
        for (std::size_t i = 0; i < rows * cols; ++i) o[i] = src[i] ? 1 : 0;
        badpix::remove_islands(o, rows, cols, static_cast<std::size_t>(min_size), connectivity);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "badpix compiled core (private; use badpix.robust)";
    m.attr("MIN_SAMPLES") = badpix::kMinSamples;
    m.def("fit_value", &fit_value, "x"_a, "weights"_a, "likely_ratio"_a, "certain_ratio"_a, "msse_lambda"_a,
          "opt_iters"_a, "min_residual"_a, "Robust (mean, std, n_inliers) of a float64 series.");
    m.def("msse", &msse, "residuals"_a, "k"_a, "msse_lambda"_a, "min_residual"_a,
          "Consistency-corrected MSSE scale of float64 residuals: (sigma, n_inliers).");
    m.def("fit_value_tensor", &fit_value_tensor, "x"_a, "n_threads"_a, "likely_ratio"_a, "certain_ratio"_a,
          "msse_lambda"_a, "opt_iters"_a, "min_residual"_a, "return_classical"_a,
          "Robust fit of every series along axis 0 (any strides).");
    m.def("fit_line", &fit_line, "x"_a, "y"_a, "likely_ratio"_a, "certain_ratio"_a, "msse_lambda"_a,
          "opt_iters"_a, "min_residual"_a, "Robust (slope, intercept, std, n_inliers).");
    m.def("fit_plane", &fit_plane, "x"_a, "y"_a, "z"_a, "likely_ratio"_a, "certain_ratio"_a, "msse_lambda"_a,
          "opt_iters"_a, "min_residual"_a, "Robust (a, b, c, std, n_inliers) of z = a*x + b*y + c.");
    m.def("fit_background", &fit_background, "image"_a, "mask"_a, "win_r"_a, "win_c"_a, "n_shifts"_a, "plane"_a,
          "min_pixels"_a, "likely_ratio"_a, "certain_ratio"_a, "msse_lambda"_a, "opt_iters"_a,
          "min_residual"_a, "n_threads"_a, "Windowed robust background: (mean, std) maps.");
    m.def("remove_islands", &remove_islands, "mask"_a, "min_size"_a, "connectivity"_a,
          "Copy of a uint8 mask without connected groups of nonzero pixels smaller than min_size.");
}
