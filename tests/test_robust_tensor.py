"""fit_value_tensor: accuracy on an AGIPD-like tensor, layouts, dtypes, classical statistics."""

from __future__ import annotations

import numpy as np
import pytest

from badpix.robust import fit_value, fit_value_tensor


@pytest.fixture(scope="module")
def agipd_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Reference section 6.2: (256, 512, 128), offset 5000 + 200 N(0,1), sigma 25 (1 + 0.2 U),
    # 1 % of entries displaced by +-U(10, 100) sigma. float32 throughout to bound memory.
    rng = np.random.default_rng(42)
    shape = (256, 512, 128)
    mu = (5000 + 200 * rng.standard_normal(shape[1:])).astype(np.float32)
    sig = (25 * (1 + 0.2 * rng.random(shape[1:]))).astype(np.float32)
    t = rng.standard_normal(shape, dtype=np.float32)
    t *= sig
    t += mu
    out = np.nonzero(rng.random(shape, dtype=np.float32) < 0.01)
    n = out[0].size
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    t[out] += (sign * rng.uniform(10, 100, n) * sig[out[1], out[2]]).astype(np.float32)
    return t, mu, sig


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_agipd_like_tensor_accuracy(agipd_like, dtype) -> None:
    t, mu, sig = agipd_like
    x = t if dtype == np.float32 else np.rint(t).clip(0, 65535).astype(np.uint16)
    fit = fit_value_tensor(x, axis=0)
    err = np.abs(fit.mean - mu) / sig
    ratio = fit.std / sig
    assert np.median(err) <= 0.045
    lo, hi = np.percentile(ratio, [1, 99])
    assert lo >= 0.87 and hi <= 1.13
    assert fit.mean.dtype == np.float32 and fit.n_inliers.dtype == np.int32
    assert (fit.n_valid == 256).all()


def test_matches_scalar_fit_any_axis_and_strides() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, size=(7, 50, 9))
    x[rng.random(x.shape) < 0.05] = 1e3
    x[3, 10, :] = np.nan
    for axis in (0, 1, 2, -1):
        fit = fit_value_tensor(x, axis=axis, return_classical=True)
        moved = np.moveaxis(x, axis, -1)
        assert fit.mean.shape == moved.shape[:-1]
        for idx in [(0, 0), (1, 3), (-1, -1)]:
            ref = fit_value(moved[idx])
            assert fit.mean[idx] == pytest.approx(ref.mean, rel=1e-6)
            assert fit.std[idx] == pytest.approx(ref.std, rel=1e-5, abs=1e-6)
            assert fit.n_inliers[idx] == ref.n_inliers
            finite = moved[idx][np.isfinite(moved[idx])]
            assert fit.n_valid[idx] == finite.size
            assert fit.median[idx] == pytest.approx(np.median(finite), rel=1e-6)
            assert fit.sample_std[idx] == pytest.approx(np.std(finite), rel=1e-5)
    # non-contiguous views and negative strides give the same numbers as a contiguous copy
    view = x[:, ::-3, 1::2]
    a = fit_value_tensor(view, n_threads=2)
    b = fit_value_tensor(np.ascontiguousarray(view), n_threads=1)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int16])
def test_dtypes_agree(dtype) -> None:
    rng = np.random.default_rng(2)
    base = np.rint(rng.normal(300, 20, size=(300, 4, 5)))
    base[::17] = 30000
    ref = fit_value_tensor(base.astype(np.float64))
    fit = fit_value_tensor(base.astype(dtype), return_classical=True)
    np.testing.assert_allclose(fit.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(fit.std, ref.std, rtol=1e-5)
    np.testing.assert_allclose(fit.median, np.median(base, axis=0), rtol=1e-6)
    np.testing.assert_allclose(fit.sample_std, base.std(axis=0), rtol=1e-5)


def test_missing_and_short_series() -> None:
    x = np.full((5, 4), np.nan, np.float32)
    x[:2, 1] = 1.0  # n = 2 < MIN_SAMPLES
    x[:, 2] = 7.0  # constant
    x[:, 3] = [1, 2, np.inf, 3, 4]
    fit = fit_value_tensor(x, return_classical=True)
    assert np.isnan(fit.mean[0]) and fit.n_inliers[0] == 0 and fit.n_valid[0] == 0
    assert np.isnan(fit.median[0])
    assert np.isnan(fit.mean[1]) and fit.n_inliers[1] == 0 and fit.n_valid[1] == 2
    assert fit.median[1] == 1.0
    assert (fit.mean[2], fit.std[2], fit.n_inliers[2]) == (7.0, 0.0, 5)
    assert fit.n_valid[3] == 4 and np.isfinite(fit.mean[3])


def test_threads_do_not_change_results() -> None:
    x = np.random.default_rng(3).normal(0, 1, size=(64, 33, 17)).astype(np.float32)
    a = fit_value_tensor(x, n_threads=1)
    b = fit_value_tensor(x, n_threads=3)
    for u, v in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(u, v)
